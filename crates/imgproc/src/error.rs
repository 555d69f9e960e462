//! The one error type of this crate: every failure names the file (or the caller's label for an
//! in-memory buffer) and says what is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read image file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: the file is empty (0 bytes), expected an image")]
    Empty { name: String },
    #[error(
        "{name}: not a JPEG, PNG or BMP image (first bytes: {first_bytes}); only those formats are read"
    )]
    UnknownFormat { name: String, first_bytes: String },
    #[error("{name}: corrupt or unreadable JPEG: {message}")]
    CorruptJpeg { name: String, message: String },
    #[error(
        "{name}: JPEG data is damaged or truncated ({message}); libjpeg-turbo could only fill part of the \
         image (cv2.imread would return it with the missing part gray), refusing to use it"
    )]
    DamagedJpeg { name: String, message: String },
    #[error(
        "{name}: the header gives {width}x{height} pixels, over OpenCV's limits (at most {max_side} \
         per side and {max_pixels} in all; cv2.imread refuses such images); refusing to allocate it"
    )]
    TooLarge {
        name: String,
        width: usize,
        height: usize,
        max_side: usize,
        max_pixels: usize,
    },
    #[error("{name}: unsupported JPEG colour space {colorspace}")]
    UnsupportedJpeg { name: String, colorspace: String },
    #[error("{name}: cannot decode {format} image: {message}")]
    Decode {
        name: String,
        format: &'static str,
        message: String,
    },
    #[error("invalid {what}: {message}")]
    InvalidArgument { what: &'static str, message: String },
}
