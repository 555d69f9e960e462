//! The system under test: what the harness needs from a model pipeline, and the stage clock it
//! lends the pipeline so that preprocessing, inference and postprocessing are timed apart.

use std::time::{Duration, Instant};

use detbench_backends::BackendDescription;
use detbench_eval::{Detection, IouType};
use detbench_imgproc::BgrImage;

/// The error a pipeline reports for one call; the harness records it and goes on.
pub type DetectorError = Box<dyn std::error::Error + Send + Sync>;

detbench_backends::named_enum! {
    /// The timed stages of one image's trip through a pipeline. Their names, here only, are what
    /// results, tables, charts and the store call them.
    pub enum Stage as "stage" {
        Decode = "decode",
        Preprocess = "preprocess",
        Inference = "inference",
        Postprocess = "postprocess",
    }
}

/// Accumulates the time a pipeline spends in each stage during one `detect` call, on the
/// monotonic clock. A pipeline that runs a stage several times (a top-down keypoint model runs
/// one inference per person) adds them up.
#[derive(Debug, Default, Clone)]
pub struct StageClock {
    spent: [Duration; Stage::ALL.len()],
}

impl StageClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work`, charging its wall time to `stage`.
    pub fn time<T>(&mut self, stage: Stage, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = work();
        self.spent[stage as usize] += start.elapsed();
        out
    }

    /// Charges an already measured duration to `stage`.
    pub fn add(&mut self, stage: Stage, spent: Duration) {
        self.spent[stage as usize] += spent;
    }

    pub fn spent(&self, stage: Stage) -> Duration {
        self.spent[stage as usize]
    }

    pub fn reset(&mut self) {
        self.spent = Default::default();
    }
}

/// One image handed to a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct ImageInput<'a> {
    pub image_id: u64,
    pub image: &'a BgrImage,
}

/// How many images a pipeline takes per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSupport {
    /// The model's batch dimension is fixed at this size.
    Fixed(usize),
    /// Any batch size up to `max` (if any).
    Dynamic { max: Option<usize> },
}

/// `Fixed(1)`, `Dynamic { max: None }`, `Dynamic { max: Some(4) }`: the spelling pipelines record
/// in their provenance (`results.json` schema 1), written out here so that it does not depend on
/// `Debug`.
impl std::fmt::Display for BatchSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSupport::Fixed(n) => write!(f, "Fixed({n})"),
            BatchSupport::Dynamic { max: None } => f.write_str("Dynamic { max: None }"),
            BatchSupport::Dynamic { max: Some(m) } => write!(f, "Dynamic {{ max: Some({m}) }}"),
        }
    }
}

impl BatchSupport {
    pub fn accepts(self, batch: usize) -> bool {
        match self {
            BatchSupport::Fixed(n) => n == batch,
            BatchSupport::Dynamic { max } => batch >= 1 && max.is_none_or(|m| batch <= m),
        }
    }
}

/// A model pipeline as the harness sees it: images in, COCO detections out.
pub trait Detector: Send {
    /// The zoo name of the model.
    fn name(&self) -> &str;
    fn batch_support(&self) -> BatchSupport;
    /// The COCO evaluations its detections can be scored with (bbox; segm when it predicts
    /// masks; keypoints when it predicts keypoints).
    fn iou_types(&self) -> Vec<IouType>;
    /// What a run records about this pipeline: preprocessing, thresholds, engine settings.
    fn provenance(&self) -> serde_json::Value;
    /// The engine the pipeline runs on (for a pipeline of several models, the one whose
    /// settings the row reports), or `None` for a pipeline without one (test detectors).
    fn backend(&self) -> Option<BackendDescription> {
        None
    }
    /// Warnings raised since the last call (a quantized model that detects nothing on the
    /// first images), for the harness to show and record; the channel is empty by default.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Detects objects in a batch of images, one list of detections per image in input order,
    /// each detection already in original-image pixels with its COCO category id. Time spent is
    /// charged to `clock` by stage.
    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_support_reads_as_recorded() {
        assert_eq!(BatchSupport::Fixed(1).to_string(), "Fixed(1)");
        for support in [
            BatchSupport::Fixed(8),
            BatchSupport::Dynamic { max: None },
            BatchSupport::Dynamic { max: Some(4) },
        ] {
            assert_eq!(support.to_string(), format!("{support:?}"));
        }
    }

    #[test]
    fn stages_index_the_clock_in_order() {
        let mut clock = StageClock::new();
        for (i, stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(*stage as usize, i);
            clock.add(*stage, Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(clock.spent(Stage::Postprocess), Duration::from_millis(4));
    }
}
