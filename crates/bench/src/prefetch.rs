//! The image source of a run: images decoded ahead of the model by a few worker threads and
//! handed over, in dataset order, through a bounded queue, so that file I/O and JPEG decoding
//! stay out of the timed `detect` calls and memory stays bounded on any dataset size.
//!
//! Four modes ([`DecodeMode`]):
//! - `Chunked`: the images are decoded in chunks of `chunk` images by all decode threads while
//!   the model waits; the model then runs through the chunk with no decoding competing for the
//!   CPU. Memory holds one chunk (about 0.9 MB per COCO image).
//! - `Preload`: one chunk of every image, decoded before the timed pass.
//! - `Prefetch`: worker threads decode at most a queue depth of images ahead of the model (two
//!   batches and a few images), while it runs; memory holds that many images, but decoding
//!   competes with the engine's threads.
//! - `Inline`: the timed thread decodes each image itself just before its call, as a simple
//!   Python loop does; end-to-end latency then includes decode.
//!
//! In every mode each image's decode time is measured on the thread that decoded it (the
//! `decode` stage).
//!
//! Why a hand-written pool and not `rayon::par_iter`: the consumer must get images in order,
//! one at a time, while the workers stay a bounded distance ahead; a parallel iterator decodes
//! as fast as it can and cannot be paused by a slow consumer. The pool below is a shared index
//! counter, a channel of "tickets" that caps how far ahead workers may go, and a small reorder
//! buffer.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use detbench_imgproc::{BgrImage, ImageError};

use crate::dataset::DatasetImage;

/// Turns an image file into pixels; errors name the file.
pub type DecodeFn = dyn Fn(&Path) -> Result<BgrImage, ImageError> + Send + Sync;

/// Why an image did not reach the model.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{}: the decoder panicked", path.display())]
    Panicked { path: PathBuf },
}

/// The decoder every pipeline expects: `detbench_imgproc::decode_file` (libjpeg-turbo, the
/// pixels `cv2.imread` gives, no EXIF rotation).
pub fn image_decoder() -> Arc<DecodeFn> {
    Arc::new(|path: &Path| detbench_imgproc::decode_file(path))
}

detbench_backends::named_enum! {
    /// The `--decode` choices (see the module documentation).
    pub enum DecodeKind as "decode mode" {
        Chunked = "chunked",
        Preload = "preload",
        Prefetch = "prefetch",
        Inline = "inline",
    }
}

#[cfg(feature = "clap")]
detbench_backends::clap_value_enum!(DecodeKind);

/// How images reach the model (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeMode {
    /// `threads` workers decode `chunk` images at a time while the model waits.
    Chunked { threads: usize, chunk: usize },
    /// `threads` workers decode every image before the timed pass.
    Preload { threads: usize },
    /// `threads` workers decode up to [`default_depth`] images ahead of the model.
    Prefetch { threads: usize },
    /// Decoded on the timed thread, just before each call (end to end includes decode).
    Inline,
}

impl DecodeMode {
    /// The mode `kind` with `threads` decode threads (default: every core for chunked and
    /// preload, one for prefetch, so that decoding takes at most one core from the model) and
    /// `chunk` images per chunk (chunked only).
    pub fn new(kind: DecodeKind, threads: Option<usize>, chunk: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = threads.map(|t| t.max(1));
        match kind {
            DecodeKind::Chunked => DecodeMode::Chunked {
                threads: threads.unwrap_or(cores),
                chunk: chunk.max(1),
            },
            DecodeKind::Preload => DecodeMode::Preload {
                threads: threads.unwrap_or(cores),
            },
            DecodeKind::Prefetch => DecodeMode::Prefetch {
                threads: threads.unwrap_or(1),
            },
            DecodeKind::Inline => DecodeMode::Inline,
        }
    }

    pub fn kind(self) -> DecodeKind {
        match self {
            DecodeMode::Chunked { .. } => DecodeKind::Chunked,
            DecodeMode::Preload { .. } => DecodeKind::Preload,
            DecodeMode::Prefetch { .. } => DecodeKind::Prefetch,
            DecodeMode::Inline => DecodeKind::Inline,
        }
    }

    /// Whether decode time is part of the end-to-end latency.
    pub fn includes_decode(self) -> bool {
        matches!(self, DecodeMode::Inline)
    }

    /// Whether the model deliberately waits while images are decoded (chunked and preload):
    /// those pauses are not part of the timed pass's total time.
    pub fn pauses_for_decode(self) -> bool {
        matches!(
            self,
            DecodeMode::Chunked { .. } | DecodeMode::Preload { .. }
        )
    }

    /// A short description for the run's output, at batch size `batch_size`.
    pub fn describe(self, batch_size: usize) -> String {
        match self {
            DecodeMode::Prefetch { threads } => format!(
                "prefetch: {threads} decode thread(s), up to {} images ahead of the model",
                default_depth(batch_size)
            ),
            DecodeMode::Preload { threads } => {
                format!("preload: all images decoded by {threads} thread(s) before timing")
            }
            DecodeMode::Chunked { threads, chunk } => format!(
                "chunked: {chunk} images at a time decoded by {threads} thread(s) while the model \
                 waits (pauses not timed)"
            ),
            DecodeMode::Inline => "inline: decoded on the timed thread before each call".into(),
        }
    }

    /// What the run's provenance records, at batch size `batch_size`.
    pub fn to_json(self, batch_size: usize) -> serde_json::Value {
        let mode = self.kind().as_str();
        match self {
            DecodeMode::Prefetch { threads } => serde_json::json!({
                "mode": mode,
                "threads": threads,
                "queue_depth": default_depth(batch_size),
            }),
            DecodeMode::Preload { threads } => {
                serde_json::json!({"mode": mode, "threads": threads})
            }
            DecodeMode::Chunked { threads, chunk } => {
                serde_json::json!({"mode": mode, "threads": threads, "chunk": chunk})
            }
            DecodeMode::Inline => serde_json::json!({"mode": mode}),
        }
    }
}

/// The prefetch queue depth for a batch size: two batches plus a few images of slack, so that a
/// whole next batch is ready when a call returns.
pub fn default_depth(batch_size: usize) -> usize {
    2 * batch_size + 4
}

/// One image, decoded or not.
#[derive(Debug)]
pub struct DecodedImage {
    /// Position in the dataset's image list.
    pub index: usize,
    pub image_id: u64,
    pub file_name: String,
    /// Wall time of the decode, on the thread that did it.
    pub decode_time: Duration,
    pub image: Result<BgrImage, DecodeError>,
}

pub(crate) fn decode_one(index: usize, entry: &DatasetImage, decode: &DecodeFn) -> DecodedImage {
    let start = Instant::now();
    // A panicking decoder must not take the run down or leave a hole in the image order.
    let image = match std::panic::catch_unwind(AssertUnwindSafe(|| decode(&entry.path))) {
        Ok(decoded) => decoded.map_err(DecodeError::from),
        Err(_) => Err(DecodeError::Panicked {
            path: entry.path.clone(),
        }),
    };
    DecodedImage {
        index,
        image_id: entry.id,
        file_name: entry.file_name.clone(),
        decode_time: start.elapsed(),
        image,
    }
}

/// The images of a run, in dataset order, decoded as the mode says.
pub struct ImageStream {
    inner: StreamInner,
}

enum StreamInner {
    Pool(Prefetcher),
    Chunked {
        images: Arc<Vec<DatasetImage>>,
        decode: Arc<DecodeFn>,
        threads: usize,
        chunk: usize,
        /// Index of the first image not yet decoded.
        next: usize,
        current: std::vec::IntoIter<DecodedImage>,
    },
    Inline {
        images: Arc<Vec<DatasetImage>>,
        decode: Arc<DecodeFn>,
        next: usize,
    },
}

impl ImageStream {
    /// Starts delivering `images` to calls of `batch_size` images. Chunked and preload modes
    /// decode their first chunk on the first `next`.
    pub fn start(
        images: Arc<Vec<DatasetImage>>,
        decode: Arc<DecodeFn>,
        mode: DecodeMode,
        batch_size: usize,
    ) -> Self {
        let chunked = |threads: usize, chunk: usize| StreamInner::Chunked {
            images: images.clone(),
            decode: decode.clone(),
            threads,
            chunk: chunk.max(1),
            next: 0,
            current: Vec::new().into_iter(),
        };
        let inner = match mode {
            DecodeMode::Prefetch { threads } => StreamInner::Pool(Prefetcher::start(
                images.clone(),
                decode.clone(),
                threads,
                default_depth(batch_size),
            )),
            DecodeMode::Chunked { threads, chunk } => chunked(threads, chunk),
            DecodeMode::Preload { threads } => chunked(threads, usize::MAX),
            DecodeMode::Inline => StreamInner::Inline {
                images: images.clone(),
                decode: decode.clone(),
                next: 0,
            },
        };
        ImageStream { inner }
    }
}

impl Iterator for ImageStream {
    type Item = DecodedImage;
    fn next(&mut self) -> Option<DecodedImage> {
        match &mut self.inner {
            StreamInner::Pool(pool) => pool.next(),
            StreamInner::Chunked {
                images,
                decode,
                threads,
                chunk,
                next,
                current,
            } => {
                if current.len() == 0 && *next < images.len() {
                    let end = images.len().min(next.saturating_add(*chunk));
                    let part = Arc::new(images[*next..end].to_vec());
                    let offset = *next;
                    let decoded: Vec<DecodedImage> =
                        Prefetcher::start(part, decode.clone(), *threads, end - offset)
                            .map(|mut d| {
                                d.index += offset;
                                d
                            })
                            .collect();
                    *next = end;
                    *current = decoded.into_iter();
                }
                current.next()
            }
            StreamInner::Inline {
                images,
                decode,
                next,
            } => {
                let entry = images.get(*next)?;
                let out = decode_one(*next, entry, decode.as_ref());
                *next += 1;
                Some(out)
            }
        }
    }
}

/// The worker pool behind `Prefetch` and `Chunked`.
struct Prefetcher {
    results: Option<Receiver<DecodedImage>>,
    tickets: Option<Sender<()>>,
    workers: Vec<JoinHandle<()>>,
    reorder: BTreeMap<usize, DecodedImage>,
    next: usize,
    total: usize,
}

impl Prefetcher {
    fn start(
        images: Arc<Vec<DatasetImage>>,
        decode: Arc<DecodeFn>,
        threads: usize,
        depth: usize,
    ) -> Self {
        let total = images.len();
        let depth = depth.max(1);
        // Each ticket lets a worker start one image; the consumer hands a ticket back for each
        // image it takes, so at most `depth` images are decoded but not yet taken.
        let (ticket_tx, ticket_rx) = crossbeam_channel::bounded::<()>(depth);
        for _ in 0..depth {
            ticket_tx
                .send(())
                .expect("the channel has room for every ticket");
        }
        let (result_tx, result_rx) = crossbeam_channel::bounded::<DecodedImage>(depth);
        let counter = Arc::new(AtomicUsize::new(0));
        let workers = (0..threads.max(1).min(total.max(1)))
            .map(|n| {
                let (images, decode, counter) = (images.clone(), decode.clone(), counter.clone());
                let (tickets, results) = (ticket_rx.clone(), result_tx.clone());
                std::thread::Builder::new()
                    .name(format!("detbench-decode-{n}"))
                    .spawn(move || {
                        while tickets.recv().is_ok() {
                            let index = counter.fetch_add(1, Ordering::Relaxed);
                            let Some(entry) = images.get(index) else {
                                break;
                            };
                            if results
                                .send(decode_one(index, entry, decode.as_ref()))
                                .is_err()
                            {
                                break;
                            }
                        }
                    })
                    .expect("spawning a decode thread")
            })
            .collect();
        Prefetcher {
            results: Some(result_rx),
            tickets: Some(ticket_tx),
            workers,
            reorder: BTreeMap::new(),
            next: 0,
            total,
        }
    }
}

impl Iterator for Prefetcher {
    type Item = DecodedImage;
    fn next(&mut self) -> Option<DecodedImage> {
        if self.next >= self.total {
            return None;
        }
        loop {
            if let Some(image) = self.reorder.remove(&self.next) {
                self.next += 1;
                if let Some(tickets) = &self.tickets {
                    // Fails only once every worker has finished: nothing left to start.
                    let _ = tickets.send(());
                }
                return Some(image);
            }
            // Every index is claimed by exactly one worker and decode_one never panics, so the
            // missing one arrives unless every worker is gone.
            let image = self.results.as_ref()?.recv().ok()?;
            self.reorder.insert(image.index, image);
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing both channels stops workers waiting for a ticket or for room in the queue.
        self.tickets.take();
        self.results.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn images(n: usize) -> Arc<Vec<DatasetImage>> {
        Arc::new(
            (0..n)
                .map(|i| DatasetImage {
                    id: 1000 + i as u64,
                    file_name: format!("{i}.jpg"),
                    path: PathBuf::from(format!("{i}.jpg")),
                })
                .collect(),
        )
    }

    /// A decoder that makes a 1x1 image whose pixel value is the file's number, sleeps a little
    /// on some files so that workers finish out of order, and fails on "3.jpg".
    fn fake_decoder(in_flight: Arc<Mutex<(usize, usize)>>) -> Arc<DecodeFn> {
        Arc::new(move |path: &Path| {
            let n: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            {
                let mut g = in_flight.lock().unwrap();
                g.0 += 1;
                g.1 = g.1.max(g.0);
            }
            std::thread::sleep(Duration::from_millis(if n.is_multiple_of(3) {
                6
            } else {
                1
            }));
            in_flight.lock().unwrap().0 -= 1;
            if n == 3 {
                return Err(ImageError::CorruptJpeg {
                    name: path.display().to_string(),
                    message: "corrupt".into(),
                });
            }
            if n == 5 {
                panic!("decoder bug");
            }
            Ok(BgrImage::filled(1, 1, n as u8))
        })
    }

    fn check_order(out: &[DecodedImage], n: usize) {
        assert_eq!(out.len(), n);
        for (i, d) in out.iter().enumerate() {
            assert_eq!(d.index, i);
            assert_eq!(d.image_id, 1000 + i as u64);
            match i {
                3 => assert!(
                    d.image
                        .as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("corrupt")
                ),
                5 => assert!(
                    d.image
                        .as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("panicked")
                ),
                _ => assert_eq!(d.image.as_ref().unwrap().data[0], i as u8),
            }
        }
    }

    #[test]
    fn every_mode_delivers_in_order_with_failures_in_place() {
        for (mode, batch) in [
            (DecodeMode::Prefetch { threads: 3 }, 1),
            (DecodeMode::Prefetch { threads: 1 }, 4),
            (DecodeMode::Preload { threads: 2 }, 1),
            (
                DecodeMode::Chunked {
                    threads: 2,
                    chunk: 7,
                },
                1,
            ),
            (DecodeMode::Inline, 1),
        ] {
            let counter = Arc::new(Mutex::new((0, 0)));
            let out: Vec<_> =
                ImageStream::start(images(20), fake_decoder(counter.clone()), mode, batch)
                    .collect();
            check_order(&out, 20);
        }
    }

    #[test]
    fn workers_stay_within_the_queue_depth() {
        // A slow consumer: the pool may run at most `depth` images ahead (batch 1: depth 6).
        let decoded = Arc::new(AtomicUsize::new(0));
        let seen = decoded.clone();
        let decode: Arc<DecodeFn> = Arc::new(move |_: &Path| {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(BgrImage::filled(1, 1, 0))
        });
        let depth = default_depth(1);
        let mut stream =
            ImageStream::start(images(50), decode, DecodeMode::Prefetch { threads: 2 }, 1);
        for taken in 1..=10 {
            stream.next().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            let done = decoded.load(Ordering::SeqCst);
            assert!(done <= taken + depth, "{done} decoded after taking {taken}");
        }
        // Dropping a half-read stream stops the workers.
        drop(stream);
        assert!(decoded.load(Ordering::SeqCst) <= 10 + depth);
    }

    #[test]
    fn decode_modes_record_as_before() {
        assert_eq!(
            DecodeMode::Preload { threads: 2 }.to_json(4),
            serde_json::json!({"mode": "preload", "threads": 2})
        );
        assert_eq!(
            DecodeMode::Prefetch { threads: 1 }.to_json(2),
            serde_json::json!({"mode": "prefetch", "threads": 1, "queue_depth": 8})
        );
        assert_eq!(
            DecodeMode::new(DecodeKind::Prefetch, None, 512),
            DecodeMode::Prefetch { threads: 1 }
        );
        assert!(DecodeMode::Preload { threads: 1 }.pauses_for_decode());
        assert!(DecodeMode::Inline.includes_decode());
    }

    #[test]
    fn empty_dataset_yields_nothing() {
        let decode: Arc<DecodeFn> = Arc::new(|_: &Path| Ok(BgrImage::filled(1, 1, 0)));
        let mode = DecodeMode::Prefetch { threads: 2 };
        assert_eq!(ImageStream::start(images(0), decode, mode, 1).count(), 0);
    }
}
