//! Turns hotcoco's load errors into [`EvalError`]s that name the file, the line and column, and
//! the field (`annotations[3].bbox[2]`) where a value had the wrong type.
//!
//! hotcoco's fast parallel reader reports serde's message with a line and column but not which
//! field was being read. Only when a load has already failed, the file is parsed once more
//! through `serde_path_to_error` to find that field; a clean load pays nothing.

use std::path::Path;

use crate::error::EvalError;

/// What a file was being read as, which decides the shape the diagnostic parse expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A COCO dataset object (`images`, `annotations`, `categories`).
    GroundTruth,
    /// A COCO results list, or a dataset object whose `annotations` are the results.
    Results,
}

/// The [`EvalError`] for a failed hotcoco load of `path`.
pub(crate) fn load_error(path: &Path, kind: FileKind, error: hotcoco::Error) -> EvalError {
    match error {
        hotcoco::Error::Io(source) => EvalError::Io {
            path: path.to_path_buf(),
            source: without_path_context(source, path),
        },
        hotcoco::Error::Json(json) => EvalError::Json {
            path: path.to_path_buf(),
            message: describe_json_error(path, kind, &json),
        },
        hotcoco::Error::InvalidInput(message) => EvalError::InvalidFile {
            path: path.to_path_buf(),
            message: strip_hotcoco_prefix(&message, path),
        },
        other => EvalError::Hotcoco {
            context: format!("loading {}", path.display()),
            source: other,
        },
    }
}

/// hotcoco's I/O errors carry `cannot read PATH: ` in front of the system's message, which
/// [`EvalError::Io`] says itself.
fn without_path_context(source: std::io::Error, path: &Path) -> std::io::Error {
    let text = source.to_string();
    match text.strip_prefix(&format!("cannot read {}: ", path.display())) {
        Some(rest) => std::io::Error::new(source.kind(), rest.to_owned()),
        None => source,
    }
}

/// hotcoco's NaN-score message starts `load_res(): PATH has ...`; the path is in our prefix.
fn strip_hotcoco_prefix(message: &str, path: &Path) -> String {
    let prefix = format!("load_res(): {} ", path.display());
    message
        .strip_prefix(&prefix)
        .map(str::to_owned)
        .unwrap_or_else(|| message.to_owned())
}

fn describe_json_error(path: &Path, kind: FileKind, error: &serde_json::Error) -> String {
    if starts_with_bom(path) {
        return "starts with a UTF-8 byte-order mark (BOM), which JSON does not allow (Python's \
                json.load refuses it too: \"Unexpected UTF-8 BOM\"); save the file as UTF-8 \
                without a BOM"
            .to_owned();
    }
    if kind == FileKind::GroundTruth && first_byte(path) == Some(b'[') && error.is_data() {
        return "is a JSON list; a COCO ground-truth file is a JSON object with `images`, \
                `annotations` and `categories` (a list of detections is a results file)"
            .to_owned();
    }
    let mut message = format!(
        "{} at line {}, column {}",
        plain_words(&error_text_without_position(error), kind),
        error.line(),
        error.column()
    );
    if let Some(field) = field_of_error(path, kind) {
        message.push_str(&format!(" (field `{}`)", field.path));
        if field.non_finite_number {
            message.push_str(
                "; NaN and Infinity are not JSON numbers (Python's json.dump writes them, no \
                 JSON reader accepts them): write finite values",
            );
        }
    }
    if error.is_syntax() || error.is_eof() {
        message.insert_str(0, "malformed JSON: ");
    } else {
        message.insert_str(0, "unexpected value: ");
    }
    message
}

fn first_byte(path: &Path) -> Option<u8> {
    let bytes = std::fs::read(path).ok()?;
    bytes.iter().find(|b| !b.is_ascii_whitespace()).copied()
}

fn starts_with_bom(path: &Path) -> bool {
    let mut head = [0u8; 3];
    std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut head))
        .is_ok()
        && head == [0xEF, 0xBB, 0xBF]
}

/// serde's type names (`struct Dataset`, `struct Annotation`) in words a user of COCO files
/// knows.
fn plain_words(text: &str, kind: FileKind) -> String {
    let results = match kind {
        FileKind::GroundTruth => "a COCO annotation object",
        FileKind::Results => {
            "a COCO result {\"image_id\", \"category_id\", \"bbox\", \"score\", ...}"
        }
    };
    text.replace(
        "expected struct Dataset",
        "expected a COCO dataset: a JSON object with `images`, `annotations` and `categories`",
    )
    .replace("expected struct Annotation", &format!("expected {results}"))
    .replace(
        "expected struct Image",
        "expected an image object {\"id\", \"file_name\", \"height\", \"width\", ...}",
    )
    .replace(
        "expected struct Category",
        "expected a category object {\"id\", \"name\", ...}",
    )
    .replace("expected struct Info", "expected an object")
    .replace("expected struct License", "expected an object")
}

/// serde_json's `Display` appends " at line L column C"; we print the position our own way.
fn error_text_without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

struct FieldOfError {
    /// Path of the failing value, e.g. `annotations[3].bbox[2]` or `[12].score`.
    path: String,
    /// Whether the text there is `NaN` / `Infinity`, which hotcoco reads as `null`.
    non_finite_number: bool,
}

/// Re-parses the file through `serde_path_to_error` into hotcoco's own record types to find the
/// path of the first value serde rejects; `None` when the file cannot be read again or the
/// error is at the top level.
fn field_of_error(path: &Path, kind: FileKind) -> Option<FieldOfError> {
    let bytes = std::fs::read(path).ok()?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let error = match (kind, first) {
        (FileKind::Results, Some(b'[')) => {
            serde_path_to_error::deserialize::<_, Vec<hotcoco::Annotation>>(&mut deserializer)
                .err()?
        }
        _ => serde_path_to_error::deserialize::<_, hotcoco::Dataset>(&mut deserializer).err()?,
    };
    let mut field = error.path().to_string();
    if field.is_empty() || field == "." {
        return None;
    }
    // A results list's entries are named as detbench's other messages name them.
    if kind == FileKind::Results && field.starts_with('[') {
        field.insert_str(0, "results");
    }
    let inner = error.inner();
    let offset = byte_offset(&bytes, inner.line(), inner.column());
    let rest = &bytes[offset.min(bytes.len())..];
    let rest = rest.strip_prefix(b"-").unwrap_or(rest);
    let non_finite_number = rest.starts_with(b"NaN") || rest.starts_with(b"Infinity");
    Some(FieldOfError {
        path: field,
        non_finite_number,
    })
}

/// The byte offset of serde_json's 1-based line and (1-based, pointing at the failing
/// character) column.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start = bytes
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    line_start + column.saturating_sub(1)
}
