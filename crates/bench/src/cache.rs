//! Datasets and ground truths, loaded once per kind and shared by every model of a run (and by
//! whatever the caller computes afterwards, such as the agreement with reference detections).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use detbench_eval::{EvalError, GroundTruth};

use crate::dataset::{Dataset, DatasetError, DatasetSource, GroundTruthKind};

/// A loading error shared by every model that needed the same file.
pub type Shared<E> = Arc<E>;

/// Datasets and ground truths of one run, loaded on first use.
pub struct DatasetCache {
    source: DatasetSource,
    datasets: HashMap<GroundTruthKind, Result<Arc<Dataset>, Shared<DatasetError>>>,
    ground_truths: HashMap<GroundTruthKind, Result<Arc<GroundTruth>, Shared<EvalError>>>,
    ground_truth_load: HashMap<GroundTruthKind, Duration>,
}

impl DatasetCache {
    pub fn new(source: DatasetSource) -> Self {
        DatasetCache {
            source,
            datasets: HashMap::new(),
            ground_truths: HashMap::new(),
            ground_truth_load: HashMap::new(),
        }
    }

    pub fn source(&self) -> &DatasetSource {
        &self.source
    }

    /// The dataset of `kind`, loaded on first use.
    pub fn dataset(&mut self, kind: GroundTruthKind) -> Result<Arc<Dataset>, Shared<DatasetError>> {
        let source = &self.source;
        self.datasets
            .entry(kind)
            .or_insert_with(|| source.load(kind).map(Arc::new).map_err(Arc::new))
            .clone()
    }

    /// The ground truth of `kind`, or `None` for a speed-only run. A dataset that cannot be
    /// loaded is the caller's error to report first ([`dataset`](Self::dataset)); here it means
    /// no ground truth.
    pub fn ground_truth(
        &mut self,
        kind: GroundTruthKind,
    ) -> Result<Option<Arc<GroundTruth>>, Shared<EvalError>> {
        let Some(path) = self
            .dataset(kind)
            .ok()
            .and_then(|dataset| dataset.annotation_file.clone())
        else {
            return Ok(None);
        };
        let load_times = &mut self.ground_truth_load;
        self.ground_truths
            .entry(kind)
            .or_insert_with(|| {
                let start = Instant::now();
                let gt = GroundTruth::load(&path).map(Arc::new).map_err(Arc::new);
                load_times.insert(kind, start.elapsed());
                gt
            })
            .clone()
            .map(Some)
    }

    /// How long loading the ground truth of `kind` took (once per run, shared by every model).
    pub fn ground_truth_load_time(&self, kind: GroundTruthKind) -> Option<Duration> {
        self.ground_truth_load.get(&kind).copied()
    }
}
