//! A merged row's latency: every shard's raw samples pooled (in shard order) and summarised
//! as one run's are, each shard's own summary kept beside them, and the row's wall time and
//! images/s taken over all the shards' timed passes.
//!
//! **Wall time.** A shard's timed pass starts at its recorded wall-clock time and lasts its
//! `total_seconds` (pauses for chunked decoding excluded, as in any run). The merged row's
//! `total_seconds` runs from the first shard's start to the last shard's end, and its images/s
//! is all timed images over that: the throughput of the shards together. When they did not run
//! at the same time (more than 1.25x the longest shard's time), a validity note says so; each
//! shard's own images/s stays in `sharding.shards`, and their sum in
//! `sharding.sum_of_shard_images_per_second`.

use crate::results::{LatencyReport, ModelResult, StageLatency};
use crate::shard::{ModelSharding, ShardLatency, ShardResult};
use crate::timing::{summarize, too_few_calls_note};

/// Wall times within this factor of the longest shard count as "at the same time".
const CONCURRENT_SLACK: f64 = 1.25;

/// One shard's row, as the pooling sees it.
pub(super) struct ShardRowRef<'a> {
    pub result: &'a ShardResult,
    pub model: &'a ModelResult,
    pub latency: &'a LatencyReport,
    pub images: usize,
}

/// The pooled report and the per-shard record of one row. `rows` is not empty.
pub(super) fn pool(rows: &[ShardRowRef<'_>]) -> (LatencyReport, ModelSharding) {
    let first = rows[0].latency;
    let end_to_end_samples_ms: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.latency.end_to_end_samples_ms.iter().copied())
        .collect();
    let stages: Vec<StageLatency> = first
        .stages
        .iter()
        .map(|stage| {
            let samples_ms: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.latency.stages.iter().find(|s| s.stage == stage.stage))
                .flat_map(|s| s.samples_ms.iter().copied())
                .collect();
            StageLatency {
                stage: stage.stage,
                summary: summarize(&samples_ms).unwrap_or_else(|| stage.summary.clone()),
                samples_ms,
            }
        })
        .collect();
    let shards: Vec<ShardLatency> = rows.iter().map(shard_latency).collect();
    let timed_images: usize = rows.iter().map(|r| r.latency.timed_images).sum();
    let longest = rows
        .iter()
        .map(|r| r.latency.total_seconds)
        .fold(0.0, f64::max);
    let wall_seconds = wall_time(&shards).unwrap_or(longest);
    let mut notes: Vec<String> = too_few_calls_note(end_to_end_samples_ms.len())
        .into_iter()
        .collect();
    for (row, shard) in rows.iter().zip(&shards) {
        let own_short_note = too_few_calls_note(row.latency.end_to_end_samples_ms.len());
        notes.extend(
            row.latency
                .validity_notes
                .iter()
                .filter(|note| Some(*note) != own_short_note.as_ref())
                .map(|note| format!("shard {}: {note}", shard.shard)),
        );
    }
    if rows.len() > 1 && wall_seconds > CONCURRENT_SLACK * longest {
        notes.push(format!(
            "the shards' timed passes did not run at the same time ({wall_seconds:.2} s from the \
             first start to the last end, {longest:.2} s for the longest shard): images/s is over \
             the whole span; each shard's own is under sharding.shards"
        ));
    }
    let report = LatencyReport {
        percentile_definition: first.percentile_definition.clone(),
        warmup_iterations: first.warmup_iterations,
        batch_size: first.batch_size,
        timed_images,
        total_seconds: wall_seconds,
        images_per_second: if wall_seconds > 0.0 {
            timed_images as f64 / wall_seconds
        } else {
            0.0
        },
        end_to_end: summarize(&end_to_end_samples_ms).unwrap_or_else(|| first.end_to_end.clone()),
        includes_decode: first.includes_decode,
        stages,
        end_to_end_samples_ms,
        valid: notes.is_empty(),
        validity_notes: notes,
    };
    let sharding = ModelSharding {
        devices: None,
        wall_seconds,
        sum_of_shard_images_per_second: shards.iter().map(|s| s.images_per_second).sum(),
        shards,
        scaling: None,
    };
    (report, sharding)
}

fn shard_latency(row: &ShardRowRef<'_>) -> ShardLatency {
    let harness = row.model.provenance.get("harness");
    let unix = |key: &str| {
        harness
            .and_then(|h| h.get(key))
            .and_then(serde_json::Value::as_f64)
    };
    let started_unix_s = unix("timed_pass_started_unix_s");
    ShardLatency {
        shard: row.result.shard.index,
        device: row.model.backend.as_ref().map(|b| b.device),
        hostname: row.result.run.environment.hostname.clone(),
        images: row.images,
        timed_images: row.latency.timed_images,
        total_seconds: row.latency.total_seconds,
        images_per_second: row.latency.images_per_second,
        end_to_end: row.latency.end_to_end.clone(),
        started_unix_s,
        ended_unix_s: unix("timed_pass_ended_unix_s"),
        valid: row.latency.valid,
        validity_notes: row.latency.validity_notes.clone(),
    }
}

/// First start to last end over the shards, each lasting its `total_seconds` from its start;
/// `None` when a shard recorded no start.
fn wall_time(shards: &[ShardLatency]) -> Option<f64> {
    let mut first_start = f64::INFINITY;
    let mut last_end = f64::NEG_INFINITY;
    for shard in shards {
        let start = shard.started_unix_s.filter(|s| *s > 0.0)?;
        first_start = first_start.min(start);
        last_end = last_end.max(start + shard.total_seconds);
    }
    (last_end >= first_start).then_some(last_end - first_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Summary;

    fn shard(index: usize, start: Option<f64>, total: f64) -> ShardLatency {
        ShardLatency {
            shard: index,
            device: None,
            hostname: None,
            images: 10,
            timed_images: 10,
            total_seconds: total,
            images_per_second: 10.0 / total,
            end_to_end: Summary {
                count: 1,
                mean: 1.0,
                median: 1.0,
                min: 1.0,
                max: 1.0,
                std: 0.0,
                p90: 1.0,
                p95: 1.0,
                p99: 1.0,
            },
            started_unix_s: start,
            ended_unix_s: None,
            valid: true,
            validity_notes: vec![],
        }
    }

    #[test]
    fn wall_time_spans_the_passes() {
        let together = [shard(0, Some(100.0), 2.0), shard(1, Some(100.5), 2.0)];
        assert_eq!(wall_time(&together), Some(2.5));
        let apart = [shard(0, Some(100.0), 2.0), shard(1, Some(110.0), 2.0)];
        assert_eq!(wall_time(&apart), Some(12.0));
        assert_eq!(
            wall_time(&[shard(0, None, 2.0), shard(1, Some(1.0), 2.0)]),
            None
        );
    }
}
