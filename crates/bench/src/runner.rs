//! One detector over one dataset at one batch size: warm-up calls first (not counted), then a
//! timed pass over every image, in dataset order, with per-call stage timing. Images that cannot
//! be decoded and calls that fail are recorded and skipped; the pass goes on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use detbench_eval::Detection;
use detbench_imgproc::BgrImage;

use crate::contention::{CpuSnapshot, OTHER_CPU_SHARE_LIMIT};
use crate::dataset::DatasetImage;
use crate::prefetch::{DecodeFn, DecodeMode, DecodedImage, ImageStream};
use crate::results::{FailedImage, LatencyReport, Summary};
use crate::sut::{BatchSupport, Detector, DetectorError, ImageInput, StageClock};
use crate::timing::{CallTiming, LatencyRecorder, summarize};

/// How to drive the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Untimed calls before the timed pass, on the first images (default 10).
    pub warmup: usize,
    pub batch_size: usize,
    pub decode: DecodeMode,
}

/// What a pass produced.
#[derive(Debug)]
pub struct DetectorRun {
    pub latency: LatencyReport,
    /// Every detection of the timed pass, in image order.
    pub detections: Vec<Detection>,
    /// Number of detections on each image that went through the model.
    pub detections_per_image: Option<Summary>,
    pub failed_images: Vec<FailedImage>,
    /// Images the model processed (dataset images minus failed ones).
    pub processed_images: usize,
    /// Warm-up calls that failed (the run goes on while some succeed).
    pub warmup_failures: usize,
    /// Time the timed thread spent waiting for decoded images: in chunked mode the deliberate
    /// decode pauses (not in the total time); otherwise large values mean throughput is bound by
    /// decoding. Per-call latencies never include it.
    pub decode_wait: Duration,
    /// Share of the machine's CPU other processes used during the timed pass, where measurable.
    pub other_cpu_share: Option<f64>,
    /// Wall clock (Unix seconds) when the timed pass started and ended, so that passes of
    /// several processes can be set side by side (a merged run's wall time).
    pub started_unix_s: f64,
    pub ended_unix_s: f64,
}

/// Why a detector produced no result at all.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    #[error("the dataset has no images")]
    NoImages,
    #[error("no image could be decoded (first: {first})")]
    NothingDecoded { first: String },
    #[error("every warm-up call failed: {reason}")]
    WarmupFailed { reason: String },
    #[error("every call failed: {reason}")]
    AllCallsFailed { reason: String },
    #[error("batch size {batch} is not supported: the model's batch is fixed at {fixed}")]
    BatchFixed { batch: usize, fixed: usize },
    #[error("batch size {batch} is over the model's maximum of {max}")]
    BatchTooLarge { batch: usize, max: usize },
    #[error("{} after {done} of {total} images", crate::interrupt::NOT_MEASURED)]
    Interrupted { done: usize, total: usize },
}

/// Checks that `detector` takes batches of `batch`, with a message fit for the user.
pub fn check_batch(support: BatchSupport, batch: usize) -> Result<(), RunFailure> {
    match support {
        _ if support.accepts(batch) => Ok(()),
        BatchSupport::Fixed(fixed) => Err(RunFailure::BatchFixed { batch, fixed }),
        BatchSupport::Dynamic { max } => Err(RunFailure::BatchTooLarge {
            batch,
            max: max.unwrap_or(0),
        }),
    }
}

/// Runs warm-up and the timed pass. `progress` is told how many images each step finished;
/// `on_image` gets each processed image's detections right after its call (outside the timed
/// `detect`, inside the pass's total time), e.g. to score them while the run goes on.
pub fn run_detector(
    detector: &mut dyn Detector,
    images: Arc<Vec<DatasetImage>>,
    decode: Arc<DecodeFn>,
    options: &RunOptions,
    progress: &dyn Fn(usize),
    on_image: &mut dyn FnMut(u64, &[Detection]),
) -> Result<DetectorRun, RunFailure> {
    if images.is_empty() {
        return Err(RunFailure::NoImages);
    }
    let batch_size = options.batch_size.max(1);
    check_batch(detector.batch_support(), batch_size)?;
    let mut stream = ImageStream::start(images.clone(), decode, options.decode, batch_size);

    let head = read_head(&mut stream, images.len(), options.warmup, batch_size);
    let warm = warm_up(detector, &head, options.warmup, batch_size).map_err(|e| match e {
        RunFailure::Interrupted { done, .. } => RunFailure::Interrupted {
            done,
            total: images.len(),
        },
        other => other,
    })?;

    let mut pass = TimedPass::new(batch_size, detector.batch_support());
    let cpu_before = CpuSnapshot::now();
    let started_unix_s = unix_seconds();
    let start = Instant::now();
    let mut head = head.into_iter();
    let mut done = 0;
    loop {
        if crate::interrupt::requested() {
            return Err(RunFailure::Interrupted {
                done,
                total: images.len(),
            });
        }
        done += 1;
        let item = match head.next() {
            Some(item) => item,
            None => {
                let waited = Instant::now();
                let item = stream.next();
                pass.decode_wait += waited.elapsed();
                match item {
                    Some(item) => item,
                    None => break,
                }
            }
        };
        pass.add(item, batch_size, detector, on_image, progress)?;
    }
    if !pass.batch.is_empty() {
        progress(pass.call(detector, on_image)?);
    }
    // In chunked mode the model waits for each chunk to be decoded on purpose (so that no
    // decoding competes with it); those pauses are not part of the timed pass.
    let ended_unix_s = started_unix_s + start.elapsed().as_secs_f64();
    let total = if options.decode.pauses_for_decode() {
        start.elapsed().saturating_sub(pass.decode_wait)
    } else {
        start.elapsed()
    };
    drop(stream);
    let other_cpu_share = cpu_before
        .zip(CpuSnapshot::now())
        .and_then(|(before, after)| before.other_share_since(&after));
    let mut run = pass.finish(options, warm, total, other_cpu_share, images.len())?;
    run.started_unix_s = started_unix_s;
    run.ended_unix_s = ended_unix_s;
    Ok(run)
}

/// Reads the warm-up images; they are kept and timed again in the pass. When none of them
/// decodes, reads on until one does (the images read stay in order for the pass), so that
/// unreadable first files cannot leave the model cold for the timed calls.
fn read_head(
    stream: &mut ImageStream,
    total: usize,
    warmup: usize,
    batch_size: usize,
) -> Vec<DecodedImage> {
    let head_len = total.min(warmup.max(batch_size));
    let mut head: Vec<DecodedImage> = stream.by_ref().take(head_len).collect();
    while warmup > 0 && !head.iter().any(|d| d.image.is_ok()) {
        match stream.next() {
            Some(item) => head.push(item),
            None => break,
        }
    }
    head
}

/// Seconds since the Unix epoch on the wall clock.
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A decoded image waiting for its call.
struct Ready {
    image_id: u64,
    file_name: String,
    decode_time: Duration,
    image: BgrImage,
}

/// Why one call produced no detections.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("{0}")]
    Detector(DetectorError),
    #[error("the pipeline panicked: {0}")]
    Panicked(String),
    #[error("the pipeline returned {lists} detection lists for {images} images")]
    TooFewLists { lists: usize, images: usize },
    #[error("the pipeline returned a detection for image {stray} in the list of image {slot}")]
    StrayDetection { stray: u64, slot: u64 },
}

/// Calls `detect`; a panic becomes that call's error, like an error the pipeline returns: the
/// call's images are recorded as failed and the run goes on with the next ones (a detector
/// that panics on every image ends as "all calls failed").
pub(crate) fn guarded_detect(
    detector: &mut dyn Detector,
    inputs: &[ImageInput<'_>],
    clock: &mut StageClock,
) -> Result<Vec<Vec<Detection>>, CallError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| detector.detect(inputs, clock))) {
        Ok(result) => result.map_err(CallError::Detector),
        Err(payload) => Err(CallError::Panicked(detbench_assets::panic_message(
            payload.as_ref(),
        ))),
    }
}

/// What the warm-up did: untimed calls made and how many of them failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WarmUp {
    pub calls: usize,
    pub failures: usize,
}

/// `warmup` untimed calls of `batch_size` images cycling over the decoded head images (none
/// when no head image decoded). Fails only if every call did.
pub(crate) fn warm_up(
    detector: &mut dyn Detector,
    head: &[DecodedImage],
    warmup: usize,
    batch_size: usize,
) -> Result<WarmUp, RunFailure> {
    let decoded: Vec<ImageInput<'_>> = head
        .iter()
        .filter_map(|d| {
            d.image.as_ref().ok().map(|image| ImageInput {
                image_id: d.image_id,
                image,
            })
        })
        .collect();
    if decoded.is_empty() {
        // No image decoded at all; the timed pass reports them as failed.
        return Ok(WarmUp {
            calls: 0,
            failures: 0,
        });
    }
    let mut failures = 0;
    let mut last_error = String::new();
    for call in 0..warmup {
        if crate::interrupt::requested() {
            return Err(RunFailure::Interrupted {
                done: 0,
                total: head.len(),
            });
        }
        let inputs: Vec<ImageInput<'_>> = (0..batch_size)
            .map(|k| decoded[(call * batch_size + k) % decoded.len()])
            .collect();
        let mut clock = StageClock::new();
        if let Err(e) = guarded_detect(detector, &inputs, &mut clock) {
            failures += 1;
            last_error = e.to_string();
        }
    }
    if warmup > 0 && failures == warmup {
        return Err(RunFailure::WarmupFailed { reason: last_error });
    }
    Ok(WarmUp {
        calls: warmup,
        failures,
    })
}

/// State of the timed pass.
struct TimedPass {
    support: BatchSupport,
    batch: Vec<Ready>,
    recorder: LatencyRecorder,
    detections: Vec<Detection>,
    counts: Vec<f64>,
    failed_images: Vec<FailedImage>,
    first_call_error: Option<String>,
    decode_wait: Duration,
}

impl TimedPass {
    fn new(batch_size: usize, support: BatchSupport) -> Self {
        TimedPass {
            support,
            batch: Vec::with_capacity(batch_size),
            recorder: LatencyRecorder::new(),
            detections: Vec::new(),
            counts: Vec::new(),
            failed_images: Vec::new(),
            first_call_error: None,
            decode_wait: Duration::ZERO,
        }
    }

    /// Takes one image from the stream: a failed decode is recorded, a decoded image joins the
    /// batch, and a full batch is called.
    fn add(
        &mut self,
        item: DecodedImage,
        batch_size: usize,
        detector: &mut dyn Detector,
        on_image: &mut dyn FnMut(u64, &[Detection]),
        progress: &dyn Fn(usize),
    ) -> Result<(), RunFailure> {
        match item.image {
            Err(error) => {
                self.failed_images.push(FailedImage {
                    file: item.file_name,
                    reason: error.to_string(),
                });
                progress(1);
            }
            Ok(image) => {
                self.batch.push(Ready {
                    image_id: item.image_id,
                    file_name: item.file_name,
                    decode_time: item.decode_time,
                    image,
                });
                if self.batch.len() == batch_size {
                    progress(self.call(detector, on_image)?);
                }
            }
        }
        Ok(())
    }

    /// Runs one timed call on the pending batch; returns how many images it finished.
    fn call(
        &mut self,
        detector: &mut dyn Detector,
        on_image: &mut dyn FnMut(u64, &[Detection]),
    ) -> Result<usize, RunFailure> {
        let batch = std::mem::take(&mut self.batch);
        let real = batch.len();
        let mut inputs: Vec<ImageInput<'_>> = batch
            .iter()
            .map(|r| ImageInput {
                image_id: r.image_id,
                image: &r.image,
            })
            .collect();
        // A model with a fixed batch larger than the last, partial batch gets the last image
        // repeated; the extra outputs are dropped and not counted.
        if let BatchSupport::Fixed(n) = self.support {
            while inputs.len() < n {
                inputs.push(*inputs.last().expect("a batch has at least one image"));
            }
        }
        let mut clock = StageClock::new();
        let started = Instant::now();
        let result = guarded_detect(detector, &inputs, &mut clock);
        let detect = started.elapsed();
        let ids: Vec<u64> = batch.iter().map(|r| r.image_id).collect();
        let checked = result.and_then(|lists| check_outputs(lists, &ids));
        match checked {
            Ok(lists) => {
                self.recorder.record(CallTiming {
                    images: real,
                    detect,
                    decode: batch.iter().map(|r| r.decode_time).sum(),
                    clock,
                });
                for (list, ready) in lists.into_iter().zip(&batch) {
                    on_image(ready.image_id, &list);
                    self.counts.push(list.len() as f64);
                    self.detections.extend(list);
                }
            }
            Err(error) => {
                let reason = error.to_string();
                self.recorder.record_failure();
                self.first_call_error.get_or_insert_with(|| reason.clone());
                self.failed_images.extend(batch.iter().map(|r| FailedImage {
                    file: r.file_name.clone(),
                    reason: format!("pipeline failed: {reason}"),
                }));
            }
        }
        Ok(real)
    }

    fn finish(
        mut self,
        options: &RunOptions,
        warm: WarmUp,
        total: Duration,
        other_cpu_share: Option<f64>,
        dataset_images: usize,
    ) -> Result<DetectorRun, RunFailure> {
        let processed_images = self.counts.len();
        if processed_images == 0 {
            return Err(match self.first_call_error {
                Some(reason) => RunFailure::AllCallsFailed { reason },
                None => RunFailure::NothingDecoded {
                    first: self
                        .failed_images
                        .first()
                        .map(|f| f.reason.clone())
                        .unwrap_or_default(),
                },
            });
        }
        if let Some(share) = other_cpu_share
            && share > OTHER_CPU_SHARE_LIMIT
        {
            self.recorder.add_validity_note(format!(
                "other processes used {:.0}% of the machine's CPU during the timed pass",
                share * 100.0
            ));
        }
        if warm.failures > 0 {
            self.recorder.add_validity_note(format!(
                "{} of {} warm-up calls failed",
                warm.failures, warm.calls
            ));
        }
        debug_assert_eq!(processed_images + self.failed_images.len(), dataset_images);
        let latency = self
            .recorder
            .finish(
                warm.calls,
                options.batch_size.max(1),
                total,
                options.decode.includes_decode(),
            )
            .expect("at least one call succeeded");
        Ok(DetectorRun {
            latency,
            detections: self.detections,
            detections_per_image: summarize(&self.counts),
            failed_images: self.failed_images,
            processed_images,
            warmup_failures: warm.failures,
            decode_wait: self.decode_wait,
            other_cpu_share,
            started_unix_s: 0.0,
            ended_unix_s: 0.0,
        })
    }
}

/// Keeps the lists of the real (unpadded) images, `image_ids` in call order, and checks that
/// each detection belongs to the image in its slot.
pub(crate) fn check_outputs(
    mut lists: Vec<Vec<Detection>>,
    image_ids: &[u64],
) -> Result<Vec<Vec<Detection>>, CallError> {
    if lists.len() < image_ids.len() {
        return Err(CallError::TooFewLists {
            lists: lists.len(),
            images: image_ids.len(),
        });
    }
    lists.truncate(image_ids.len());
    for (list, &slot) in lists.iter().zip(image_ids) {
        if let Some(stray) = list.iter().find(|d| d.image_id != slot) {
            return Err(CallError::StrayDetection {
                stray: stray.image_id,
                slot,
            });
        }
    }
    Ok(lists)
}
