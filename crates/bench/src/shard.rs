//! Splitting a run over several processes (`detbench run --shard I/N`): which images a shard
//! takes, which shard a scheduler's task is (`--shard auto`: Slurm job arrays, Kubernetes
//! Indexed Jobs), and what a shard leaves behind for `detbench merge` ([`ShardResult`]).
//!
//! **The partition.** Shard `i` of `N` takes the run's images at positions `i, i+N, i+2N, ...`
//! of the run's image list, which is in ascending image id (after `--limit`): round-robin over
//! the ids. Why this one:
//! - it depends only on the run's image list, which every shard reads from the same
//!   annotation file, so every process computes the same partition with no coordination, and
//!   the shards are disjoint and cover the run exactly;
//! - the shards' sizes differ by at most one image;
//! - every shard spans the whole id range, so a stretch of large or crowded images (ids are
//!   assigned in collection order) is spread over all shards instead of landing on one, and the
//!   shards' latencies are comparable.
//!
//! A hash of the id would keep an image's shard stable when `--limit` changes, but balances
//! only on average; contiguous blocks balance as well, but put neighbouring ids on one worker.

use std::str::FromStr;

use detbench_env::Environment;
use detbench_eval::{CocoResult, IouType};
use serde::{Deserialize, Serialize};

use crate::results::ModelResult;

/// How the run's images are split, as recorded in shard and merged results.
pub const PARTITION: &str = "round-robin in ascending image id: shard i of N takes the images \
     at positions i, i+N, i+2N, ... of the run's image list";

/// The layout version of `shard.json`.
pub const SHARD_FORMAT_VERSION: u32 = 1;

/// The file a shard writes into its output folder.
pub const SHARD_FILE: &str = "shard.json";

/// Shard `index` of `count` (0-based), written `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard `{given}`: expected I/N with 0 <= I < N (e.g. 0/4), or `auto`")]
    BadSpec { given: String },
    #[error(
        "--shard auto: no scheduler variables found: expected Slurm's SLURM_ARRAY_TASK_ID (sbatch \
         --array) or a Kubernetes Indexed Job's JOB_COMPLETION_INDEX"
    )]
    NoScheduler,
    #[error(
        "--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; give --shard I/N"
    )]
    Ambiguous,
    #[error("--shard auto: {variable}=`{value}` is not a whole number")]
    NotANumber {
        variable: &'static str,
        value: String,
    },
    #[error(
        "--shard auto: Slurm array task {id} has no task count (SLURM_ARRAY_TASK_COUNT, or \
         SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_MAX)"
    )]
    SlurmNoCount { id: usize },
    #[error(
        "--shard auto: the Slurm array is not one evenly stepped range (task {id}: min {min}, max \
         {max}, step {step}, count {count}); submit it as --array=0-{last} or give --shard I/N",
        last = .count.saturating_sub(1)
    )]
    SlurmNotARange {
        id: usize,
        min: usize,
        max: usize,
        step: usize,
        count: usize,
    },
    #[error(
        "--shard auto: Kubernetes completion index {index} needs the number of completions: \
         --shard-count N or DETBENCH_SHARD_COUNT (the Job's spec.completions)"
    )]
    NoCompletions { index: usize },
    #[error("--shard auto: index {index} is not below the shard count {count} ({source_vars})")]
    OutOfRange {
        index: usize,
        count: usize,
        source_vars: &'static str,
    },
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError::BadSpec {
            given: s.to_owned(),
        };
        let (index, count) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: usize = index.trim().parse().map_err(|_| bad())?;
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's items of a run's list (in ascending image id): positions `index`,
    /// `index + count`, ... See the module documentation for why.
    pub fn take<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip(self.index)
            .step_by(self.count)
            .cloned()
            .collect()
    }
}

/// The environment variable Kubernetes Indexed Jobs leave the completion count to (the Job's
/// `spec.completions`, set by the Job's author; Kubernetes sets only the index).
pub const SHARD_COUNT_ENV: &str = "DETBENCH_SHARD_COUNT";

/// The shard a scheduler's task is (`--shard auto`), and which variables said so. `var` reads
/// the environment (a parameter so tests can feed it); `count` is `--shard-count`.
///
/// - Slurm job arrays (`sbatch --array=0-3`): `SLURM_ARRAY_TASK_ID`, with the count from
///   `SLURM_ARRAY_TASK_COUNT` or from `SLURM_ARRAY_TASK_MIN`/`MAX` (and `STEP`). The index is
///   the task's position in the array, so `--array=1-4` and `--array=0-6:2` work too; an array
///   that is not one evenly stepped range (`--array=1,5,6`) is refused.
/// - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX`, with the count from `count` or
///   `$DETBENCH_SHARD_COUNT`.
pub fn from_scheduler(
    var: impl Fn(&str) -> Option<String>,
    count: Option<usize>,
) -> Result<(Shard, &'static str), ShardError> {
    let number = |name: &'static str| -> Result<Option<usize>, ShardError> {
        match var(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ShardError::NotANumber {
                    variable: name,
                    value,
                }),
        }
    };
    let slurm = number("SLURM_ARRAY_TASK_ID")?;
    let kubernetes = number("JOB_COMPLETION_INDEX")?;
    let (index, total, source_vars) = match (slurm, kubernetes) {
        (Some(_), Some(_)) => return Err(ShardError::Ambiguous),
        (None, None) => return Err(ShardError::NoScheduler),
        (Some(id), None) => {
            let (index, total) = slurm_position(id, &number)?;
            (index, total, "Slurm SLURM_ARRAY_TASK_*")
        }
        (None, Some(index)) => {
            let total = match count {
                Some(n) => n,
                None => number(SHARD_COUNT_ENV)?.ok_or(ShardError::NoCompletions { index })?,
            };
            (index, total, "Kubernetes JOB_COMPLETION_INDEX")
        }
    };
    if index >= total {
        return Err(ShardError::OutOfRange {
            index,
            count: total,
            source_vars,
        });
    }
    Ok((
        Shard {
            index,
            count: total,
        },
        source_vars,
    ))
}

/// A Slurm array task's position and the array's size.
fn slurm_position(
    id: usize,
    number: &dyn Fn(&'static str) -> Result<Option<usize>, ShardError>,
) -> Result<(usize, usize), ShardError> {
    let declared = number("SLURM_ARRAY_TASK_COUNT")?;
    let min = number("SLURM_ARRAY_TASK_MIN")?;
    let max = number("SLURM_ARRAY_TASK_MAX")?;
    let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
    let (Some(min), Some(max)) = (min, max) else {
        // Without the bounds the ids are taken as 0..count.
        let count = declared.ok_or(ShardError::SlurmNoCount { id })?;
        return Ok((id, count));
    };
    let count = declared.unwrap_or((max.saturating_sub(min)) / step + 1);
    let regular = max >= min
        && id >= min
        && (id - min).is_multiple_of(step)
        && (max - min).is_multiple_of(step)
        && (max - min) / step + 1 == count;
    if !regular {
        return Err(ShardError::SlurmNotARange {
            id,
            min,
            max,
            step,
            count,
        });
    }
    Ok(((id - min) / step, count))
}

/// What one shard leaves for `detbench merge` (`shard.json` in its output folder): the run as
/// `results.json` would hold it, with accuracy left to the merge, and per row the shard's
/// image ids and detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardResult {
    pub shard_format_version: u32,
    pub shard: Shard,
    /// [`PARTITION`].
    pub partition: String,
    /// The shard's run: settings, environment, command line, and per model its latency with
    /// the raw samples (no accuracy: detections are scored once, over all shards).
    pub run: crate::results::RunResults,
    /// One per `run.models` entry, in the same order.
    pub rows: Vec<ShardRow>,
}

/// The part of one result row that only a merge needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRow {
    /// Images of the whole run (before sharding) on this row's dataset.
    pub run_images: usize,
    /// This shard's images, ascending.
    pub image_ids: Vec<u64>,
    /// Ids of `result.failed_images`, in the same order.
    pub failed_image_ids: Vec<u64>,
    /// The IoU types the detections are scored with.
    pub iou_types: Vec<IouType>,
    /// The timed pass's detections, as a COCO results file holds them.
    pub detections: Vec<CocoResult>,
}

/// Where and when one shard of a merged run ran (`results.json`: `sharding.shards`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardOrigin {
    pub shard: usize,
    pub started_at: String,
    pub command_line: Vec<String>,
    pub environment: Environment,
    /// Images of the shard on its first row's dataset.
    pub images: usize,
}

/// How a merged run was sharded (`results.json`: `sharding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSharding {
    /// [`PARTITION`].
    pub partition: String,
    /// Shards the run was split into.
    pub count: usize,
    /// Shards merged, ascending.
    pub present: Vec<usize>,
    /// Shards not merged (only with `--allow-partial`).
    pub missing: Vec<usize>,
    /// Whether shards are missing: the accuracy covers only the images of the shards merged.
    pub partial: bool,
    /// Each merged shard's origin, environment included.
    pub shards: Vec<ShardOrigin>,
}

/// One shard's own latency within a merged row (`models[].sharding.shards`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardLatency {
    pub shard: usize,
    pub device: Option<detbench_backends::Device>,
    pub hostname: Option<String>,
    pub images: usize,
    pub timed_images: usize,
    pub total_seconds: f64,
    pub images_per_second: f64,
    pub end_to_end: crate::results::Summary,
    /// Wall clock (Unix seconds) of the shard's timed pass, when recorded.
    pub started_unix_s: Option<f64>,
    pub ended_unix_s: Option<f64>,
    pub valid: bool,
    pub validity_notes: Vec<String>,
}

/// How a merged row came together (`models[].sharding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSharding {
    /// Set for a row measured on several devices at once (`detbench run --devices`): the
    /// number of devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<usize>,
    /// First timed-pass start to last timed-pass end over the shards (the row's
    /// `latency.total_seconds`).
    pub wall_seconds: f64,
    /// Sum of the shards' own images/s: the throughput had they all run at once.
    pub sum_of_shard_images_per_second: f64,
    pub shards: Vec<ShardLatency>,
    /// Against the single-device row of the same run (`--devices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
}

/// Scaling over devices: this row's images/s against one device's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub devices: usize,
    pub images_per_second: f64,
    pub single_device_images_per_second: f64,
    /// `images_per_second / single_device_images_per_second`.
    pub speedup: f64,
    /// `speedup / devices`: 1.0 is perfect scaling.
    pub efficiency: f64,
}

impl Scaling {
    pub fn new(devices: usize, images_per_second: f64, single: f64) -> Scaling {
        let speedup = if single > 0.0 {
            images_per_second / single
        } else {
            0.0
        };
        Scaling {
            devices,
            images_per_second,
            single_device_images_per_second: single,
            speedup,
            efficiency: speedup / devices.max(1) as f64,
        }
    }
}

impl ShardResult {
    /// The result rows paired with their shard data.
    pub fn rows(&self) -> impl Iterator<Item = (&ModelResult, &ShardRow)> {
        self.run.models.iter().zip(&self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shards_parse_and_partition_round_robin() {
        assert_eq!("1/4".parse(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "1/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let ids: Vec<u64> = (1..=10).collect();
        let parts: Vec<Vec<u64>> = (0..3)
            .map(|index| Shard { index, count: 3 }.take(&ids))
            .collect();
        assert_eq!(parts[0], vec![1, 4, 7, 10]);
        assert_eq!(parts[1], vec![2, 5, 8]);
        assert_eq!(parts[2], vec![3, 6, 9]);
        // More shards than images: the last ones are empty.
        assert!(Shard { index: 5, count: 6 }.take(&[1u64, 2]).is_empty());
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn slurm_arrays_give_the_task_position() {
        let shard = |pairs: &[(&str, &str)]| from_scheduler(env(pairs), None).map(|s| s.0);
        let s = |index, count| Ok(Shard { index, count });
        // sbatch --array=0-3
        let array = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
        ];
        assert_eq!(shard(&array), s(2, 4));
        assert_eq!(shard(&array[..2]), s(2, 4));
        // --array=1-4 (no COUNT): position from MIN.
        assert_eq!(
            shard(&[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_MAX", "4")
            ]),
            s(0, 4)
        );
        // --array=0-6:2 -> ids 0 2 4 6.
        assert_eq!(
            shard(&[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_MAX", "6"),
                ("SLURM_ARRAY_TASK_STEP", "2")
            ]),
            s(2, 4)
        );
        // --array=1,5,6: not a range.
        let err = shard(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "6"),
        ])
        .unwrap_err();
        assert!(matches!(err, ShardError::SlurmNotARange { .. }), "{err}");
        assert!(err.to_string().contains("--array=0-2"), "{err}");
        assert_eq!(
            shard(&[("SLURM_ARRAY_TASK_ID", "3")]),
            Err(ShardError::SlurmNoCount { id: 3 })
        );
        assert!(matches!(
            shard(&[("SLURM_ARRAY_TASK_ID", "x")]),
            Err(ShardError::NotANumber { .. })
        ));
        assert!(matches!(
            shard(&[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4")
            ]),
            Err(ShardError::OutOfRange { .. })
        ));
    }

    #[test]
    fn kubernetes_indexed_jobs_need_the_completion_count() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(
            from_scheduler(&k8s, Some(5)).unwrap().0,
            Shard { index: 3, count: 5 }
        );
        assert_eq!(
            from_scheduler(&k8s, None),
            Err(ShardError::NoCompletions { index: 3 })
        );
        let with_env = env(&[("JOB_COMPLETION_INDEX", "0"), (SHARD_COUNT_ENV, "2")]);
        assert_eq!(
            from_scheduler(with_env, None).unwrap(),
            (
                Shard { index: 0, count: 2 },
                "Kubernetes JOB_COMPLETION_INDEX"
            )
        );
        assert_eq!(from_scheduler(env(&[]), None), Err(ShardError::NoScheduler));
        let both = env(&[("JOB_COMPLETION_INDEX", "0"), ("SLURM_ARRAY_TASK_ID", "0")]);
        assert_eq!(from_scheduler(both, Some(2)), Err(ShardError::Ambiguous));
    }
}
