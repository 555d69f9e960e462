//! What an ONNX file says about itself besides its graph: the `metadata_props` string map of
//! its `ModelProto` (Ultralytics exports keep `task`, `names`, `imgsz`, `stride`, `batch`,
//! `kpt_shape`, `args` there) and its producer.
//!
//! Read straight from the protobuf, as Ultralytics itself reads it
//! (`ultralytics/nn/backends/base.py::read_metadata` -> `_read_proto_map(path, (14,))`): the
//! top-level fields of `ModelProto` are walked and every field but `producer_name` (2),
//! `producer_version` (3) and `metadata_props` (14, `StringStringEntryProto { key = 1;
//! value = 2; }`) is skipped by its length, so the graph's weights are never read into memory and
//! no inference session is needed (the ONNX Runtime library need not even be loaded).
//! Hand-written: the ONNX protobuf crates pull in a full schema and read the whole file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

use crate::BackendError;

/// Why the protobuf could not be read.
#[derive(Debug, thiserror::Error)]
enum ProtoError {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("truncated at byte {at}: {source}")]
    Truncated { at: u64, source: std::io::Error },
    #[error("varint longer than 10 bytes at byte {at}")]
    LongVarint { at: u64 },
    #[error("a field of {size} bytes at byte {at} runs past the end ({len})")]
    PastTheEnd { size: u64, at: u64, len: u64 },
    #[error("cannot skip {size} bytes at byte {at}: {source}")]
    Skip {
        size: u64,
        at: u64,
        source: std::io::Error,
    },
    #[error("a string field is not UTF-8: {0}")]
    NotUtf8(std::string::FromUtf8Error),
    #[error("not an ONNX model: field {field} has wire type {wire} at byte {at}")]
    WireType { field: u64, wire: u64, at: u64 },
    #[error("metadata entry field {field} has wire type {wire}")]
    EntryWireType { field: u64, wire: u64 },
}

/// The non-graph facts of an ONNX file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OnnxInfo {
    pub producer_name: Option<String>,
    pub producer_version: Option<String>,
    /// `metadata_props`, by key (a repeated key keeps its last value, as a Python dict would).
    pub metadata: BTreeMap<String, String>,
}

/// Reads the producer and `metadata_props` of the ONNX file at `path`.
pub fn read_onnx_info(path: &Path) -> Result<OnnxInfo, BackendError> {
    read_proto(path).map_err(|e| BackendError::Load {
        engine: crate::EngineKind::Ort,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn read_proto(path: &Path) -> Result<OnnxInfo, ProtoError> {
    let file = std::fs::File::open(path).map_err(ProtoError::Open)?;
    let len = file.metadata().map_err(ProtoError::Open)?.len();
    let mut reader = BufReader::new(file);
    let mut info = OnnxInfo::default();
    let mut at = 0u64;
    while at < len {
        let (field, wire) = split_tag(read_varint(&mut reader, &mut at)?);
        match (field, wire) {
            (2 | 3 | 14, 2) => {
                let size = read_varint(&mut reader, &mut at)?;
                let bytes = read_bytes(&mut reader, &mut at, size, len)?;
                match field {
                    2 => info.producer_name = Some(utf8(bytes)?),
                    3 => info.producer_version = Some(utf8(bytes)?),
                    _ => {
                        let (key, value) = string_pair(&bytes)?;
                        info.metadata.insert(key, value);
                    }
                }
            }
            (_, 0) => {
                read_varint(&mut reader, &mut at)?;
            }
            (_, 1) => skip(&mut reader, &mut at, 8, len)?,
            (_, 5) => skip(&mut reader, &mut at, 4, len)?,
            (_, 2) => {
                let size = read_varint(&mut reader, &mut at)?;
                skip(&mut reader, &mut at, size, len)?;
            }
            (field, wire) => return Err(ProtoError::WireType { field, wire, at }),
        }
    }
    Ok(info)
}

fn split_tag(tag: u64) -> (u64, u64) {
    (tag >> 3, tag & 7)
}

fn read_varint(reader: &mut impl BufRead, at: &mut u64) -> Result<u64, ProtoError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8];
        reader
            .read_exact(&mut byte)
            .map_err(|source| ProtoError::Truncated { at: *at, source })?;
        *at += 1;
        value |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtoError::LongVarint { at: *at })
}

fn read_bytes(
    reader: &mut impl Read,
    at: &mut u64,
    size: u64,
    len: u64,
) -> Result<Vec<u8>, ProtoError> {
    if *at + size > len {
        return Err(ProtoError::PastTheEnd { size, at: *at, len });
    }
    let mut bytes = vec![0u8; size as usize];
    reader
        .read_exact(&mut bytes)
        .map_err(|source| ProtoError::Truncated { at: *at, source })?;
    *at += size;
    Ok(bytes)
}

fn skip<R: Read + Seek>(
    reader: &mut BufReader<R>,
    at: &mut u64,
    size: u64,
    len: u64,
) -> Result<(), ProtoError> {
    if *at + size > len {
        return Err(ProtoError::PastTheEnd { size, at: *at, len });
    }
    reader
        .seek_relative(size as i64)
        .map_err(|source| ProtoError::Skip {
            size,
            at: *at,
            source,
        })?;
    *at += size;
    Ok(())
}

fn utf8(bytes: Vec<u8>) -> Result<String, ProtoError> {
    String::from_utf8(bytes).map_err(ProtoError::NotUtf8)
}

/// `StringStringEntryProto`: key (1) and value (2).
fn string_pair(bytes: &[u8]) -> Result<(String, String), ProtoError> {
    let mut reader = BufReader::new(std::io::Cursor::new(bytes));
    let (mut at, len) = (0u64, bytes.len() as u64);
    let (mut key, mut value) = (String::new(), String::new());
    while at < len {
        let (field, wire) = split_tag(read_varint(&mut reader, &mut at)?);
        if wire != 2 {
            return Err(ProtoError::EntryWireType { field, wire });
        }
        let size = read_varint(&mut reader, &mut at)?;
        let text = utf8(read_bytes(&mut reader, &mut at, size, len)?)?;
        match field {
            1 => key = text,
            2 => value = text,
            _ => {}
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8];
        out.push(payload.len() as u8);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn reads_metadata_and_skips_everything_else() {
        let mut model = vec![0x08, 0x07]; // ir_version = 7 (varint)
        model.extend(field(2, b"pytorch"));
        model.extend(field(7, &[0u8; 100])); // a "graph" to skip
        let mut entry = field(1, b"task");
        entry.extend(field(2, b"detect"));
        model.extend(field(14, &entry));
        let dir = std::env::temp_dir().join(format!("onnx_info_{}", std::process::id()));
        std::fs::write(&dir, &model).unwrap();
        let info = read_onnx_info(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(info.producer_name.as_deref(), Some("pytorch"));
        assert_eq!(
            info.metadata.get("task").map(String::as_str),
            Some("detect")
        );
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("onnx_info_bad_{}", std::process::id()));
        std::fs::write(&dir, [0x3a, 0x50, 0x00]).unwrap(); // field 7, 80 bytes, 1 present
        let err = read_onnx_info(&dir).unwrap_err().to_string();
        std::fs::remove_file(&dir).unwrap();
        assert!(err.contains("runs past the end"), "{err}");
        assert!(err.contains("onnx_info_bad"), "{err}");
    }
}
