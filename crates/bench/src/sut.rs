//! The system under test: what the harness needs from a model pipeline, and the stage clock it
//! lends the pipeline so that preprocessing, inference and postprocessing are timed apart.

use std::time::{Duration, Instant};

use detbench_eval::{Detection, IouType};
use detbench_imgproc::BgrImage;

/// The error a pipeline reports for one call; the harness records it and goes on.
pub type DetectorError = Box<dyn std::error::Error + Send + Sync>;

/// The timed stages of one image's trip through a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Decode,
    Preprocess,
    Inference,
    Postprocess,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::Decode,
        Stage::Preprocess,
        Stage::Inference,
        Stage::Postprocess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Inference => "inference",
            Stage::Postprocess => "postprocess",
        }
    }
}

/// Accumulates the time a pipeline spends in each stage during one `detect` call, on the
/// monotonic clock. A pipeline that runs a stage several times (a top-down keypoint model runs
/// one inference per person) adds them up.
#[derive(Debug, Default, Clone)]
pub struct StageClock {
    spent: [Duration; 4],
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
    /// Detects objects in a batch of images, one list of detections per image in input order,
    /// each detection already in original-image pixels with its COCO category id. Time spent is
    /// charged to `clock` by stage.
    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError>;
}
