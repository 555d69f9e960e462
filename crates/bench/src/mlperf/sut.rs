//! The system under test LoadGen drives: a pool of workers, each owning one opened
//! [`Detector`], fed from one queue. `issue_query` only queues the samples, in chunks of at most
//! a batch (LoadGen's issuing thread must not wait for the model); a worker takes the next
//! samples, up to the batch, and runs preprocess + inference + postprocess on their decoded
//! images (held by the [`ImageQsl`]), then reports them through LoadGen's [`Completer`].
//!
//! Batching: a worker takes the first queued sample and then whatever else is queued, up to
//! `max_batch`; with a `timeout` it waits for more until `timeout` after the first sample
//! arrived (dynamic batching as inference servers do it, e.g. Triton's `max_queue_delay`).
//! A sample whose image did not decode, or whose call failed or panicked, is completed all the
//! same (empty response) and recorded as failed, so the run goes on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use detbench_eval::Detection;
use detbench_loadgen::{Completer, QuerySample, QuerySampleResponse, SystemUnderTest};
use serde::{Deserialize, Serialize};

use super::qsl::ImageQsl;
use crate::results::FailedImage;
use crate::runner::{check_outputs, guarded_detect};
use crate::sut::{BatchSupport, Detector, ImageInput, StageClock};
use crate::timing::{CallTiming, LatencyRecorder};

/// What one sample's latency covers on the SUT's side, as results and summaries say it.
pub const SUT_WORK: &str = "preprocess + inference + postprocess of an image decoded in memory \
     (decoding is LoadGen's LoadSamplesToRam, outside the timed section)";

/// How a worker groups queued samples into one `detect` call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Batching {
    /// The most samples in one call.
    pub max_batch: usize,
    /// How long after the first sample of a call arrived a worker waits for more (zero: take
    /// what is queued and go).
    #[serde(with = "millis_f64")]
    pub timeout: Duration,
}

mod millis_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(crate::timing::millis(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)? / 1e3))
    }
}

/// Samples queued together: one query's samples, cut into chunks of at most `max_batch` so
/// that a worker can take a whole batch at once and several workers can share a large query.
struct Work {
    samples: Vec<QuerySample>,
    completer: Completer,
    arrived: Instant,
}

/// Why a sample was completed without detections.
#[derive(Debug, Clone, thiserror::Error)]
enum SampleFailure {
    #[error("the sample was not loaded into memory")]
    NotLoaded,
    #[error("decode failed: {0}")]
    Decode(String),
    #[error("pipeline failed: {0}")]
    Pipeline(String),
}

/// One sample a worker holds, waiting for its call.
struct Pending {
    sample: QuerySample,
    completer: Completer,
    arrived: Instant,
}

/// What the workers write while the test runs.
struct Shared {
    qsl: Arc<ImageQsl>,
    batching: Batching,
    support: BatchSupport,
    calls: Mutex<LatencyRecorder>,
    /// Samples per call, in call order (per worker interleaved).
    call_sizes: Mutex<Vec<f64>>,
    /// The first detections seen for each sample index.
    detections: Mutex<Vec<Option<Vec<Detection>>>>,
    /// The first failure of each sample index.
    failed: Mutex<BTreeMap<usize, FailedImage>>,
    failed_samples: AtomicU64,
    completed_samples: AtomicU64,
}

/// What the workers did, once the pool is stopped.
#[derive(Debug)]
pub struct SutReport {
    /// The detect calls: end to end and per stage.
    pub calls: LatencyRecorder,
    pub call_sizes: Vec<f64>,
    /// Per sample index (QSL order = dataset order), the first detections reported.
    pub detections: Vec<Option<Vec<Detection>>>,
    /// One entry per failed sample index, in index order.
    pub failed_images: Vec<FailedImage>,
    /// Failed sample completions (a sample issued several times counts each time).
    pub failed_samples: u64,
    pub completed_samples: u64,
}

/// The pool. Create with [`DetectorSut::start`], hand to `start_test`, then [`DetectorSut::stop`].
pub struct DetectorSut {
    name: String,
    queue: Sender<Work>,
    workers: Vec<JoinHandle<Box<dyn Detector>>>,
    shared: Arc<Shared>,
}

impl DetectorSut {
    /// One worker thread per detector, all reading the same queue.
    pub fn start(
        name: String,
        detectors: Vec<Box<dyn Detector>>,
        qsl: Arc<ImageQsl>,
        batching: Batching,
    ) -> Self {
        let support = detectors
            .first()
            .map_or(BatchSupport::Dynamic { max: None }, |d| d.batch_support());
        let total = qsl_total(&qsl);
        let shared = Arc::new(Shared {
            qsl,
            batching: Batching {
                max_batch: batching.max_batch.max(1),
                ..batching
            },
            support,
            calls: Mutex::new(LatencyRecorder::new()),
            call_sizes: Mutex::new(Vec::new()),
            detections: Mutex::new(vec![None; total]),
            failed: Mutex::new(BTreeMap::new()),
            failed_samples: AtomicU64::new(0),
            completed_samples: AtomicU64::new(0),
        });
        let (queue, receiver) = crossbeam_channel::unbounded();
        let workers = detectors
            .into_iter()
            .enumerate()
            .map(|(i, detector)| {
                let (receiver, shared) = (receiver.clone(), shared.clone());
                std::thread::Builder::new()
                    .name(format!("sut-worker-{i}"))
                    .spawn(move || worker(detector, &receiver, &shared))
                    .expect("spawning a SUT worker thread")
            })
            .collect();
        DetectorSut {
            name,
            queue,
            workers,
            shared,
        }
    }

    /// Stops the workers once the queue is empty; returns their detectors (for the next test)
    /// and what they did. A worker thread that died (it cannot: calls are guarded) loses its
    /// detector.
    pub fn stop(self) -> (Vec<Box<dyn Detector>>, SutReport) {
        drop(self.queue);
        let detectors: Vec<_> = self
            .workers
            .into_iter()
            .filter_map(|w| w.join().ok())
            .collect();
        let shared = Arc::into_inner(self.shared).expect("the workers are joined");
        let report = SutReport {
            calls: shared.calls.into_inner().unwrap_or_else(|e| e.into_inner()),
            call_sizes: shared
                .call_sizes
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
            detections: shared
                .detections
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
            failed_images: shared
                .failed
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .into_values()
                .collect(),
            failed_samples: shared.failed_samples.into_inner(),
            completed_samples: shared.completed_samples.into_inner(),
        };
        (detectors, report)
    }
}

fn qsl_total(qsl: &ImageQsl) -> usize {
    use detbench_loadgen::QuerySampleLibrary;
    qsl.total_sample_count()
}

impl SystemUnderTest for DetectorSut {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn issue_query(&self, samples: &[QuerySample], completer: &Completer) {
        let arrived = Instant::now();
        for chunk in samples.chunks(self.shared.batching.max_batch) {
            // The receivers live until `stop`, which cannot run while LoadGen issues.
            let _ = self.queue.send(Work {
                samples: chunk.to_vec(),
                completer: completer.clone(),
                arrived,
            });
        }
    }
}

/// A worker: takes batches off the queue until it is closed and empty.
fn worker(
    mut detector: Box<dyn Detector>,
    queue: &Receiver<Work>,
    shared: &Shared,
) -> Box<dyn Detector> {
    let mut pending = VecDeque::new();
    while let Some(batch) = next_batch(queue, &mut pending, shared.batching) {
        run_batch(detector.as_mut(), batch, shared);
    }
    detector
}

/// Moves a queued chunk's samples to the worker's pending samples.
fn hold(pending: &mut VecDeque<Pending>, work: Work) {
    pending.extend(work.samples.into_iter().map(|sample| Pending {
        sample,
        completer: work.completer.clone(),
        arrived: work.arrived,
    }));
}

/// The next call's samples: the oldest pending or queued sample, then what else is pending or
/// queued, up to `max_batch`, waiting for more until `timeout` after the first one arrived.
/// Samples taken off the queue beyond the batch stay pending for the next call. `None` once
/// the queue is closed and nothing is pending.
fn next_batch(
    queue: &Receiver<Work>,
    pending: &mut VecDeque<Pending>,
    batching: Batching,
) -> Option<Vec<Pending>> {
    if pending.is_empty() {
        hold(pending, queue.recv().ok()?);
    }
    let first = pending.pop_front()?;
    let deadline = first.arrived + batching.timeout;
    let mut batch = Vec::with_capacity(batching.max_batch);
    batch.push(first);
    while batch.len() < batching.max_batch {
        if let Some(next) = pending.pop_front() {
            batch.push(next);
            continue;
        }
        let work = match queue.try_recv() {
            Ok(work) => work,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => match queue.recv_deadline(deadline) {
                Ok(work) => work,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            },
        };
        hold(pending, work);
    }
    Some(batch)
}

/// Runs one call on the batch's decoded images and completes every sample of the batch.
fn run_batch(detector: &mut dyn Detector, batch: Vec<Pending>, shared: &Shared) {
    let loaded: Vec<_> = batch
        .iter()
        .map(|w| shared.qsl.get(w.sample.index))
        .collect();
    let mut ready = Vec::new(); // (position in batch, image id, image)
    let mut outcome: Vec<Option<Result<Vec<Detection>, SampleFailure>>> = vec![None; batch.len()];
    for (k, image) in loaded.iter().enumerate() {
        match image.as_deref() {
            None => outcome[k] = Some(Err(SampleFailure::NotLoaded)),
            Some(l) => match &l.image {
                Ok(image) => ready.push((k, l.image_id, image)),
                Err(e) => outcome[k] = Some(Err(SampleFailure::Decode(e.to_string()))),
            },
        }
    }
    if !ready.is_empty() {
        let mut inputs: Vec<ImageInput<'_>> = ready
            .iter()
            .map(|&(_, image_id, image)| ImageInput { image_id, image })
            .collect();
        if let BatchSupport::Fixed(n) = shared.support {
            // A fixed-batch model gets the last image repeated; the extra outputs are dropped.
            while inputs.len() < n {
                inputs.push(*inputs.last().expect("at least one input"));
            }
        }
        let ids: Vec<u64> = ready.iter().map(|r| r.1).collect();
        let mut clock = StageClock::new();
        let started = Instant::now();
        let result = guarded_detect(detector, &inputs, &mut clock);
        let detect = started.elapsed();
        match result.and_then(|lists| check_outputs(lists, &ids)) {
            Ok(lists) => {
                lock(&shared.calls).record(CallTiming {
                    images: ready.len(),
                    detect,
                    decode: Duration::ZERO,
                    clock,
                });
                lock(&shared.call_sizes).push(ready.len() as f64);
                for (&(k, ..), list) in ready.iter().zip(lists) {
                    outcome[k] = Some(Ok(list));
                }
            }
            Err(e) => {
                lock(&shared.calls).record_failure();
                let failure = SampleFailure::Pipeline(e.to_string());
                for &(k, ..) in &ready {
                    outcome[k] = Some(Err(failure.clone()));
                }
            }
        }
    }
    complete(batch, outcome, &loaded, shared);
}

/// Reports every sample of a batch in one `QuerySamplesComplete` (one completion time), with
/// the detections as response data where LoadGen logs them, and keeps what the run records.
fn complete(
    batch: Vec<Pending>,
    outcome: Vec<Option<Result<Vec<Detection>, SampleFailure>>>,
    loaded: &[Option<Arc<super::qsl::LoadedImage>>],
    shared: &Shared,
) {
    let completer = batch[0].completer.clone();
    let mut data: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
    for (k, (work, result)) in batch.iter().zip(outcome).enumerate() {
        let index = work.sample.index;
        let result = result.unwrap_or(Err(SampleFailure::NotLoaded));
        match result {
            Ok(list) => {
                if completer.wants_response_data(work.sample.id) {
                    data.push(accuracy_bytes(&list));
                } else {
                    data.push(Vec::new());
                }
                let mut kept = lock(&shared.detections);
                if let Some(slot @ None) = kept.get_mut(index) {
                    *slot = Some(list);
                }
            }
            Err(failure) => {
                let reason = failure.to_string();
                data.push(Vec::new());
                shared.failed_samples.fetch_add(1, Ordering::Relaxed);
                let file = loaded[k].as_ref().map_or_else(
                    || {
                        shared
                            .qsl
                            .entry(index)
                            .map(|e| e.file_name.clone())
                            .unwrap_or_default()
                    },
                    |l| l.file_name.clone(),
                );
                lock(&shared.failed)
                    .entry(index)
                    .or_insert(FailedImage { file, reason });
            }
        }
    }
    let responses: Vec<QuerySampleResponse<'_>> = batch
        .iter()
        .zip(&data)
        .map(|(w, d)| QuerySampleResponse::new(w.sample.id, d))
        .collect();
    // Every sample of a batch belongs to the same LoadGen run (a run ends only when all of its
    // samples are complete), so one completer reports them all, at one time.
    completer.complete(&responses);
    shared
        .completed_samples
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
}

/// The accuracy log's data for one image: one row of seven little-endian `f32` per detection,
/// `image_id, x, y, width, height, score, category_id` (COCO's box, original pixels), the layout
/// `tools/loadgen/python_sut.py` writes for the same comparison.
pub fn accuracy_bytes(detections: &[Detection]) -> Vec<u8> {
    let mut out = Vec::with_capacity(detections.len() * 28);
    for d in detections {
        let row = [
            d.image_id as f32,
            d.bbox[0] as f32,
            d.bbox[1] as f32,
            d.bbox[2] as f32,
            d.bbox[3] as f32,
            d.score as f32,
            d.category_id as f32,
        ];
        for v in row {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
