//! `mlperf_log_accuracy.json` in LoadGen's format (`AsyncLog::LogAccuracy` and the
//! header/footer writers in `logging.cc`): a JSON array of `{ "seq_id" : N, "qsl_idx" : N,
//! "data" : "HEX" }` objects, one per line, the response bytes as upper-case hex. MLPerf's
//! accuracy scripts (e.g. `accuracy-coco.py`) read this file.
//!
//! LoadGen writes entries in the order its logging thread sees completions; here they are in
//! sample sequence order, which a JSON reader cannot tell apart.

use serde::Deserialize;

use crate::sut::AccuracyEntry;

/// Upper-case hex, as LoadGen's `Bin2Hex`.
fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    s
}

/// The file's text for `entries`.
pub fn accuracy_log_json(entries: &[AccuracyEntry]) -> String {
    let mut out = String::from("[");
    for (i, e) in entries.iter().enumerate() {
        out.push_str(if i == 0 { "\n{ " } else { ",\n{ " });
        out.push_str(&format!(
            "\"seq_id\" : {}, \"qsl_idx\" : {}, \"data\" : \"{}\" }}",
            e.seq_id,
            e.qsl_idx,
            hex(&e.data)
        ));
    }
    out.push_str("\n]\n");
    out
}

#[derive(Deserialize)]
struct RawEntry {
    seq_id: u64,
    qsl_idx: usize,
    data: String,
}

/// An accuracy log that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum AccuracyLogError {
    #[error("not an MLPerf accuracy log: {0}")]
    NotALog(#[from] serde_json::Error),
    #[error("seq_id {0}: odd-length hex data")]
    OddLength(u64),
    #[error("seq_id {0}: data is not hex")]
    NotHex(u64),
}

/// Reads an accuracy log back (LoadGen's or ours).
pub fn parse_accuracy_log(text: &str) -> Result<Vec<AccuracyEntry>, AccuracyLogError> {
    let raw: Vec<RawEntry> = serde_json::from_str(text)?;
    raw.into_iter()
        .map(|r| {
            let bytes = r.data.as_bytes();
            if bytes.len() % 2 != 0 {
                return Err(AccuracyLogError::OddLength(r.seq_id));
            }
            let data = bytes
                .chunks(2)
                .map(|pair| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|s| u8::from_str_radix(s, 16).ok())
                        .ok_or(AccuracyLogError::NotHex(r.seq_id))
                })
                .collect::<Result<Vec<u8>, AccuracyLogError>>()?;
            Ok(AccuracyEntry {
                seq_id: r.seq_id,
                qsl_idx: r.qsl_idx,
                data,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_loadgen() {
        assert_eq!(accuracy_log_json(&[]), "[\n]\n");
        let entries = vec![
            AccuracyEntry {
                seq_id: 0,
                qsl_idx: 12,
                data: vec![0x0a, 0xff],
            },
            AccuracyEntry {
                seq_id: 1,
                qsl_idx: 3,
                data: vec![],
            },
        ];
        let text = accuracy_log_json(&entries);
        assert_eq!(
            text,
            "[\n{ \"seq_id\" : 0, \"qsl_idx\" : 12, \"data\" : \"0AFF\" },\n\
             { \"seq_id\" : 1, \"qsl_idx\" : 3, \"data\" : \"\" }\n]\n"
        );
        assert_eq!(parse_accuracy_log(&text).unwrap(), entries);
    }
}
