//! What a merge refuses: shards of different runs (models, settings, datasets, detbench
//! builds), a shard given twice, shards whose images overlap or are not the partition, and
//! missing shards unless the merge is allowed to be partial. Every error names the shards, by
//! the file they were read from, and what differs.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::results::ModelResult;
use crate::shard::{SHARD_FORMAT_VERSION, Shard, ShardResult};

use super::{MergeError, ShardInput};

/// Checks the shards belong to one run and returns the missing shard indices.
pub(super) fn check(shards: &[ShardInput], allow_partial: bool) -> Result<Vec<usize>, MergeError> {
    let first = shards.first().ok_or(MergeError::NoShards)?;
    for input in shards {
        if input.result.shard_format_version != SHARD_FORMAT_VERSION {
            return Err(MergeError::FormatVersion {
                source_file: input.source.clone(),
                found: input.result.shard_format_version,
                supported: SHARD_FORMAT_VERSION,
            });
        }
    }
    let count = first.result.shard.count;
    let mut seen: BTreeMap<usize, &ShardInput> = BTreeMap::new();
    for input in shards {
        let shard = input.result.shard;
        if shard.count != count {
            return Err(MergeError::Different {
                what: "shard count".into(),
                a: (first.source.clone(), count.to_string()),
                b: (input.source.clone(), shard.count.to_string()),
            });
        }
        if let Some(other) = seen.insert(shard.index, input) {
            return Err(MergeError::Duplicate {
                shard,
                a: other.source.clone(),
                b: input.source.clone(),
            });
        }
        same_run(first, input)?;
    }
    let missing: Vec<usize> = (0..count).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() && !allow_partial {
        return Err(MergeError::Missing {
            missing,
            count,
            present: seen
                .iter()
                .map(|(index, input)| (*index, input.source.clone()))
                .collect(),
        });
    }
    for row in 0..first.result.rows.len() {
        disjoint(shards, row)?;
        if missing.is_empty() {
            partition(shards, row)?;
        }
    }
    Ok(missing)
}

/// `b` is a shard of the same run as `a`: same detbench build, same rows with the same
/// settings and datasets.
fn same_run(a: &ShardInput, b: &ShardInput) -> Result<(), MergeError> {
    let (ra, rb) = (&a.result, &b.result);
    let differ = |what: &str, x: String, y: String| MergeError::Different {
        what: what.to_owned(),
        a: (a.source.clone(), x),
        b: (b.source.clone(), y),
    };
    if ra.run.detbench_version != rb.run.detbench_version {
        return Err(differ(
            "detbench version",
            ra.run.detbench_version.clone(),
            rb.run.detbench_version.clone(),
        ));
    }
    let labels = |r: &ShardResult| -> Vec<String> { r.run.models.iter().map(row_key).collect() };
    if labels(ra) != labels(rb) || ra.rows.len() != ra.run.models.len() {
        return Err(differ(
            "models and batch sizes",
            labels(ra).join(", "),
            labels(rb).join(", "),
        ));
    }
    for ((ma, sa), (mb, sb)) in ra.rows().zip(rb.rows()) {
        let (fa, fb) = (fingerprint(ma), fingerprint(mb));
        if let Some((path, x, y)) = first_difference(&fa, &fb, String::new()) {
            return Err(differ(&format!("{}: {path}", row_key(ma)), x, y));
        }
        if sa.run_images != sb.run_images {
            return Err(differ(
                &format!("{}: images in the run", row_key(ma)),
                sa.run_images.to_string(),
                sb.run_images.to_string(),
            ));
        }
    }
    Ok(())
}

/// A row's name in messages: `yolox_nano (batch 2)`.
pub(super) fn row_key(m: &ModelResult) -> String {
    m.label()
}

/// What must be equal between the shards of one row: the model file, the engine and its
/// settings, the pipeline, the harness settings and the dataset. Left out: the device index
/// (a `--devices` run puts each shard on its own device), paths (folders differ between
/// hosts: files are compared by name and sha256), and what each shard measured.
fn fingerprint(m: &ModelResult) -> Value {
    let file_name = |path: &str| {
        std::path::Path::new(path)
            .file_name()
            .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
    };
    let backend = m.backend.as_ref().map(|b| {
        let options: Vec<(String, String)> = b
            .options
            .iter()
            .map(|(k, v)| {
                let v = if v.starts_with('/') {
                    file_name(v)
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        json!({
            "engine": b.engine.name(),
            "engine_version": b.engine_version,
            "device_kind": match b.device {
                detbench_backends::Device::Cpu => "cpu",
                detbench_backends::Device::Cuda(_) => "cuda",
            },
            "precision": b.precision.as_str(),
            "options": options,
        })
    });
    let harness = m.provenance.get("harness");
    let setting = |key: &str| harness.and_then(|h| h.get(key)).cloned();
    json!({
        "family": m.family,
        "input": m.input,
        "model file": file_name(&m.model.file),
        "model sha256": m.model.sha256,
        "backend": backend,
        "pipeline": m.provenance.get("pipeline"),
        "warm-up": setting("warmup_iterations"),
        "decode": setting("decode"),
        "annotation file": m.dataset.annotation_file.as_deref().map(file_name),
        "annotation sha256": m.dataset.annotation_sha256,
    })
}

/// The first place two JSON values differ: (path, left, right).
fn first_difference(a: &Value, b: &Value, path: String) -> Option<(String, String, String)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                first_difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    path,
                )
            })
        }
        _ if a == b => None,
        _ => Some((path, a.to_string(), b.to_string())),
    }
}

/// No image is in two shards of a row.
fn disjoint(shards: &[ShardInput], row: usize) -> Result<(), MergeError> {
    let mut owner: HashMap<u64, &ShardInput> = HashMap::new();
    for input in shards {
        for &id in &input.result.rows[row].image_ids {
            if let Some(other) = owner.insert(id, input) {
                return Err(MergeError::Overlap {
                    image_id: id,
                    row: row_key(&input.result.run.models[row]),
                    a: (other.result.shard, other.source.clone()),
                    b: (input.result.shard, input.source.clone()),
                });
            }
        }
    }
    Ok(())
}

/// With every shard present, each one holds exactly its part of the union (and the union is
/// the run): a shard of another `--limit` or another annotation file fails here.
fn partition(shards: &[ShardInput], row: usize) -> Result<(), MergeError> {
    let mut union: Vec<u64> = shards
        .iter()
        .flat_map(|s| s.result.rows[row].image_ids.iter().copied())
        .collect();
    union.sort_unstable();
    let run_images = shards[0].result.rows[row].run_images;
    for input in shards {
        let shard: Shard = input.result.shard;
        let ids = &input.result.rows[row].image_ids;
        if *ids != shard.take(&union) || union.len() != run_images {
            return Err(MergeError::NotThePartition {
                shard,
                source_file: input.source.clone(),
                row: row_key(&input.result.run.models[row]),
                images: ids.len(),
                union: union.len(),
                run_images,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let a = json!({"backend": {"precision": "fp32", "engine": "onnxruntime"}, "x": 1});
        let b = json!({"backend": {"precision": "fp16", "engine": "onnxruntime"}, "x": 1});
        assert_eq!(
            first_difference(&a, &b, String::new()),
            Some((
                "backend.precision".into(),
                "\"fp32\"".into(),
                "\"fp16\"".into()
            ))
        );
        assert_eq!(first_difference(&a, &a, String::new()), None);
    }
}
