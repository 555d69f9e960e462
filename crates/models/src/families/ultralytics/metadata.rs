//! The metadata Ultralytics writes into its ONNX exports (`ultralytics/engine/exporter.py`:
//! `metadata_props` with `stride`, `task`, `batch`, `imgsz`, `names`, `kpt_shape`, `args`,
//! `end2end`, `version`), read as `AutoBackend` reads it (`nn/backends/base.py::apply_metadata`:
//! `stride`/`batch`/`channels` are ints, `imgsz`/`names`/`kpt_shape`/`args`/`end2end` are Python
//! literals read with `ast.literal_eval`, and `end2end` is also set by `args['nms']`).
//!
//! The values are Python reprs (`{0: 'person', 1: 'bicycle'}`, `[640, 640]`,
//! `{'batch': 1, 'nms': False}`), so [`PyValue`] parses the literal subset `repr` writes for
//! them (dicts, lists, tuples, ints, floats, strings, True/False/None). Hand-written: no Rust
//! crate parses Python literals, and JSON parsers reject single quotes and `True`.

use std::collections::BTreeMap;

/// A Python literal.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
}

/// A Python literal that does not parse: what was wrong, at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct LiteralError {
    pub what: String,
    pub at: usize,
}

/// Ultralytics metadata whose value does not read, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata `{key}`: {source}")]
    Literal { key: String, source: LiteralError },
    #[error("metadata `names` is not a dict of index -> name: {text}")]
    Names { text: String },
    #[error("metadata `{key}` = {value}: {reason}")]
    Int {
        key: String,
        value: String,
        reason: std::num::ParseIntError,
    },
}

/// Parses one Python literal; `Err` names the byte offset and what was wrong there.
pub fn parse_literal(text: &str) -> Result<PyValue, LiteralError> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let value = p.value()?;
    p.space();
    if p.at != p.s.len() {
        return Err(p.error("unexpected text"));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: impl Into<String>) -> LiteralError {
        LiteralError {
            what: what.into(),
            at: self.at,
        }
    }

    fn space(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.space();
        self.s.get(self.at).copied()
    }

    fn value(&mut self) -> Result<PyValue, LiteralError> {
        match self.peek() {
            Some(b'{') => self.dict(),
            Some(b'[') => self.sequence(b']'),
            Some(b'(') => self.sequence(b')'),
            Some(b'\'' | b'"') => self.string().map(PyValue::Str),
            Some(c) if c == b'-' || c == b'+' || c.is_ascii_digit() || c == b'.' => self.number(),
            Some(_) => self.word(),
            None => Err(self.error("unexpected end of text")),
        }
    }

    fn dict(&mut self) -> Result<PyValue, LiteralError> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(PyValue::Dict(items));
            }
            let key = self.value()?;
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.at += 1;
            let value = self.value()?;
            items.push((key, value));
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn sequence(&mut self, close: u8) -> Result<PyValue, LiteralError> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(PyValue::List(items));
            }
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(c) if c == close => {}
                _ => return Err(self.error(format!("expected ',' or '{}'", close as char))),
            }
        }
    }

    fn string(&mut self) -> Result<String, LiteralError> {
        let quote = self.s[self.at];
        self.at += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.at) {
            self.at += 1;
            match c {
                b'\\' => {
                    let escaped = *self
                        .s
                        .get(self.at)
                        .ok_or_else(|| self.error("unterminated escape"))?;
                    self.at += 1;
                    out.push(match escaped {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => other,
                    });
                }
                c if c == quote => {
                    return String::from_utf8(out)
                        .map_err(|e| self.error(format!("string not UTF-8 ({e})")));
                }
                c => out.push(c),
            }
        }
        Err(self.error("unterminated string"))
    }

    fn number(&mut self) -> Result<PyValue, LiteralError> {
        let start = self.at;
        while self.at < self.s.len()
            && matches!(
                self.s[self.at],
                b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'_'
            )
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.at])
            .expect("ASCII")
            .replace('_', "");
        if let Ok(i) = text.parse::<i64>() {
            return Ok(PyValue::Int(i));
        }
        text.parse::<f64>()
            .map(PyValue::Float)
            .map_err(|_| LiteralError {
                what: format!("bad number `{text}`"),
                at: start,
            })
    }

    fn word(&mut self) -> Result<PyValue, LiteralError> {
        let start = self.at;
        while self.at < self.s.len() && self.s[self.at].is_ascii_alphanumeric() {
            self.at += 1;
        }
        match &self.s[start..self.at] {
            b"True" => Ok(PyValue::Bool(true)),
            b"False" => Ok(PyValue::Bool(false)),
            b"None" => Ok(PyValue::None),
            other => Err(LiteralError {
                what: format!("unexpected `{}`", String::from_utf8_lossy(other)),
                at: start,
            }),
        }
    }
}

/// What detbench reads from an Ultralytics export's metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UltralyticsMetadata {
    /// `detect`, `segment`, `pose`, `obb`, `classify`, ...
    pub task: String,
    /// Class names by index (`names`), in index order.
    pub names: Vec<String>,
    /// `imgsz` as (height, width).
    pub imgsz: Option<(usize, usize)>,
    pub stride: Option<usize>,
    pub batch: Option<usize>,
    /// `kpt_shape`: keypoints per instance and values per keypoint (2 or 3).
    pub kpt_shape: Option<(usize, usize)>,
    /// `end2end`, or `args['nms']` (NMS inside the graph).
    pub end2end: bool,
    /// `args['dynamic']`.
    pub dynamic: bool,
    /// The exporting package's version.
    pub version: Option<String>,
    /// An ultralytics/yolov5 export (`export.py` writes only `stride` and `names`, no `task`):
    /// detection with objectness rows `[1, N, 5 + nc]`.
    pub yolov5: bool,
}

impl UltralyticsMetadata {
    /// Reads the metadata map of an ONNX file; `None` when it is not an Ultralytics export (no
    /// `task` and `names`) nor a YOLOv5 one (`stride` and `names`, `export.py::export_onnx`).
    /// `Err` names the key whose value does not parse.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Option<Self>, MetadataError> {
        let Some(names) = map.get("names") else {
            return Ok(None);
        };
        let yolov5 = !map.contains_key("task") && map.contains_key("stride");
        let task = match map.get("task") {
            Some(task) => task.as_str(),
            None if yolov5 => "detect",
            None => return Ok(None),
        };
        let literal = |key: &str| -> Result<Option<PyValue>, MetadataError> {
            map.get(key)
                .map(|v| {
                    parse_literal(v).map_err(|source| MetadataError::Literal {
                        key: key.to_owned(),
                        source,
                    })
                })
                .transpose()
        };
        let names = names_in_order(&literal("names")?.expect("present")).ok_or_else(|| {
            MetadataError::Names {
                text: names.clone(),
            }
        })?;
        let int = |key: &str| -> Result<Option<usize>, MetadataError> {
            map.get(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|reason| MetadataError::Int {
                            key: key.to_owned(),
                            value: v.clone(),
                            reason,
                        })
                })
                .transpose()
        };
        let pair = |value: Option<PyValue>| match value {
            Some(PyValue::List(v)) if v.len() == 2 => match (&v[0], &v[1]) {
                (PyValue::Int(a), PyValue::Int(b)) if *a > 0 && *b > 0 => {
                    Some((*a as usize, *b as usize))
                }
                _ => None,
            },
            Some(PyValue::Int(side)) if side > 0 => Some((side as usize, side as usize)),
            _ => None,
        };
        let args = literal("args")?;
        let arg = |name: &str| match &args {
            Some(PyValue::Dict(items)) => items
                .iter()
                .find(|(k, _)| *k == PyValue::Str(name.to_owned()))
                .map(|(_, v)| v.clone()),
            _ => None,
        };
        let end2end = matches!(literal("end2end")?, Some(PyValue::Bool(true)))
            || arg("nms") == Some(PyValue::Bool(true));
        Ok(Some(UltralyticsMetadata {
            task: task.trim().to_owned(),
            names,
            imgsz: pair(literal("imgsz")?),
            stride: int("stride")?,
            batch: int("batch")?,
            kpt_shape: pair(literal("kpt_shape")?),
            end2end,
            dynamic: arg("dynamic") == Some(PyValue::Bool(true)),
            version: map.get("version").cloned(),
            yolov5,
        }))
    }
}

/// `{0: 'person', 1: 'bicycle', ...}` (or a list of names) as names in index order; `None` when
/// the indices are not exactly 0..n.
fn names_in_order(value: &PyValue) -> Option<Vec<String>> {
    match value {
        PyValue::Dict(items) => {
            let mut named: Vec<(i64, String)> = items
                .iter()
                .map(|(k, v)| match (k, v) {
                    (PyValue::Int(i), PyValue::Str(s)) => Some((*i, s.clone())),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            named.sort_by_key(|(i, _)| *i);
            let in_order = named.iter().enumerate().all(|(k, (i, _))| *i == k as i64);
            in_order.then(|| named.into_iter().map(|(_, s)| s).collect())
        }
        PyValue::List(items) => items
            .iter()
            .map(|v| match v {
                PyValue::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_literals_exports_write() {
        assert_eq!(
            parse_literal("{0: 'person', 1: \"it's\"}").unwrap(),
            PyValue::Dict(vec![
                (PyValue::Int(0), PyValue::Str("person".into())),
                (PyValue::Int(1), PyValue::Str("it's".into())),
            ])
        );
        assert_eq!(
            parse_literal("[17, 3]").unwrap(),
            PyValue::List(vec![PyValue::Int(17), PyValue::Int(3)])
        );
        assert_eq!(
            parse_literal("{'half': False, 'opset': None, 'fraction': 1.0}").unwrap(),
            PyValue::Dict(vec![
                (PyValue::Str("half".into()), PyValue::Bool(false)),
                (PyValue::Str("opset".into()), PyValue::None),
                (PyValue::Str("fraction".into()), PyValue::Float(1.0)),
            ])
        );
        assert!(parse_literal("{0: 'a'").is_err());
        assert!(parse_literal("[1, 2] x").is_err());
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_a_pose_export() {
        // As the random-weight YOLO11n-pose export of tools/ultralytics/make_fixtures.py writes it.
        let m = map(&[
            ("task", "pose"),
            ("names", "{0: 'person'}"),
            ("imgsz", "[320, 320]"),
            ("stride", "32"),
            ("batch", "1"),
            ("kpt_shape", "[17, 3]"),
            ("end2end", "False"),
            ("args", "{'batch': 1, 'nms': None, 'dynamic': False}"),
        ]);
        let meta = UltralyticsMetadata::from_map(&m).unwrap().unwrap();
        assert_eq!(meta.task, "pose");
        assert_eq!(meta.names, vec!["person"]);
        assert_eq!(meta.imgsz, Some((320, 320)));
        assert_eq!(meta.kpt_shape, Some((17, 3)));
        assert!(!meta.end2end && !meta.dynamic);
    }

    #[test]
    fn a_yolov5_export_has_stride_and_names_only() {
        let m = map(&[("stride", "32"), ("names", "{0: 'person', 1: 'bicycle'}")]);
        let meta = UltralyticsMetadata::from_map(&m).unwrap().unwrap();
        assert!(meta.yolov5);
        assert_eq!((meta.task.as_str(), meta.names.len()), ("detect", 2));
    }

    #[test]
    fn nms_in_the_graph_means_end_to_end() {
        let m = map(&[
            ("task", "detect"),
            ("names", "{0: 'a', 1: 'b'}"),
            ("args", "{'nms': True, 'dynamic': True}"),
        ]);
        let meta = UltralyticsMetadata::from_map(&m).unwrap().unwrap();
        assert!(meta.end2end && meta.dynamic);
    }

    #[test]
    fn other_files_are_not_ultralytics_exports_and_bad_values_name_the_key() {
        assert_eq!(
            UltralyticsMetadata::from_map(&map(&[("producer", "x")])).unwrap(),
            None
        );
        let err = UltralyticsMetadata::from_map(&map(&[
            ("task", "detect"),
            ("names", "{0: 'a', 2: 'b'}"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("names"), "{err}");
        let err = UltralyticsMetadata::from_map(&map(&[
            ("task", "detect"),
            ("names", "{0: 'a'}"),
            ("imgsz", "[640, "),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("imgsz"), "{err}");
    }
}
