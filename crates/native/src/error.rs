//! The native engine's errors, one variant per kind the C++ side reports (cpp/common.h
//! `ErrorKind`), each with a message that says what to do.

/// An error of the native engine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NativeError {
    /// The model file holds an architecture the engine does not implement.
    #[error("{0}")]
    UnknownArchitecture(String),
    /// The precision cannot run on the device (fp16 on the CPU).
    #[error("{0}")]
    UnsupportedPrecision(String),
    /// A CUDA library is missing or unusable (which one, and how to point to it).
    #[error("{0}")]
    CudaLibrary(String),
    /// The device ran out of memory (e.g. a large batch); later calls may still succeed.
    #[error("{0}")]
    OutOfMemory(String),
    /// An argument or image the engine cannot take.
    #[error("{0}")]
    BadInput(String),
    /// The model file cannot be read, or lacks a parameter.
    #[error("{0}")]
    ModelFile(String),
    /// Anything else the engine reported.
    #[error("native engine: {0}")]
    Engine(String),
    /// This build has no engine (cargo feature `cuda` off).
    #[error(
        "this build has no native engine: rebuild with `--features cuda` (needs libtorch: \
         scripts/setup.sh --torch, LIBTORCH=.deps/torch/torch)"
    )]
    NotBuilt,
}

impl NativeError {
    /// The error for a C ABI return code (cpp/common.h `ErrorKind`) and its message.
    pub fn from_code(code: i32, message: String) -> Self {
        match code {
            2 => NativeError::UnknownArchitecture(message),
            3 => NativeError::UnsupportedPrecision(message),
            4 => NativeError::CudaLibrary(message),
            5 => NativeError::OutOfMemory(message),
            6 => NativeError::BadInput(message),
            7 => NativeError::ModelFile(message),
            _ => NativeError::Engine(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(
            NativeError::from_code(2, "x".into()),
            NativeError::UnknownArchitecture("x".into())
        );
        assert_eq!(
            NativeError::from_code(5, "oom".into()),
            NativeError::OutOfMemory("oom".into())
        );
        assert_eq!(
            NativeError::from_code(99, "?".into()),
            NativeError::Engine("?".into())
        );
    }
}
