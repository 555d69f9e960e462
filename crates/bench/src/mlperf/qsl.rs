//! The query sample library over a dataset: LoadGen's `QuerySampleLibrary` whose samples are the
//! dataset's images, decoded into memory when LoadGen loads them (`LoadSamplesToRam`, outside
//! the timed section) and dropped when it unloads them. Sample `i` is the dataset's image `i`
//! (ascending image id). At most `performance_sample_count` images are held for a performance
//! run; an accuracy run loads the dataset set by set.
//!
//! An image that cannot be decoded is kept as its error: the system under test completes its
//! sample at once and records it as failed, and the run goes on.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use detbench_imgproc::BgrImage;
use detbench_loadgen::{QslError, QuerySampleIndex, QuerySampleLibrary};

use crate::dataset::DatasetImage;
use crate::prefetch::{DecodeError, DecodeFn, decode_one};
use crate::timing::millis;

/// One loaded sample: the image, or why it could not be decoded.
#[derive(Debug)]
pub struct LoadedImage {
    pub image_id: u64,
    pub file_name: String,
    pub image: Result<BgrImage, DecodeError>,
}

/// The dataset's images as a query sample library.
pub struct ImageQsl {
    name: String,
    images: Arc<Vec<DatasetImage>>,
    decode: Arc<DecodeFn>,
    performance: usize,
    threads: usize,
    loaded: RwLock<Vec<Option<Arc<LoadedImage>>>>,
    /// Decode time of every image loaded, ms, in load order.
    decode_ms: Mutex<Vec<f64>>,
    /// Wall time spent in `load_samples_to_ram` (outside LoadGen's timed sections).
    load_wall: Mutex<Duration>,
}

impl ImageQsl {
    /// A library of `images` holding at most `performance` of them for a performance run,
    /// decoded by `threads` threads when loaded.
    pub fn new(
        name: impl Into<String>,
        images: Arc<Vec<DatasetImage>>,
        decode: Arc<DecodeFn>,
        performance: usize,
        threads: usize,
    ) -> Self {
        let total = images.len();
        ImageQsl {
            name: name.into(),
            images,
            decode,
            performance: performance.min(total),
            threads: threads.max(1),
            loaded: RwLock::new(vec![None; total]),
            decode_ms: Mutex::new(Vec::new()),
            load_wall: Mutex::new(Duration::ZERO),
        }
    }

    /// The loaded sample at `index`, if it is loaded.
    pub fn get(&self, index: QuerySampleIndex) -> Option<Arc<LoadedImage>> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.get(index).and_then(Clone::clone)
    }

    /// The dataset entry of sample `index`.
    pub fn entry(&self, index: QuerySampleIndex) -> Option<&DatasetImage> {
        self.images.get(index)
    }

    /// How many samples are in memory now.
    pub fn loaded_count(&self) -> usize {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.iter().filter(|s| s.is_some()).count()
    }

    /// Every decode so far, ms (decoding happens outside the timed section).
    pub fn decode_times_ms(&self) -> Vec<f64> {
        self.decode_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wall time spent loading samples so far.
    pub fn load_wall_time(&self) -> Duration {
        *self.load_wall.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decodes `wanted` (distinct, not loaded) on up to `threads` threads.
    fn decode_all(&self, wanted: &[QuerySampleIndex]) -> Vec<(QuerySampleIndex, LoadedImage, f64)> {
        let per_thread = wanted.len().div_ceil(self.threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = wanted
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|&index| {
                                let decoded =
                                    decode_one(index, &self.images[index], self.decode.as_ref());
                                let image = LoadedImage {
                                    image_id: decoded.image_id,
                                    file_name: decoded.file_name,
                                    image: decoded.image,
                                };
                                (index, image, millis(decoded.decode_time))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("decode_one catches decoder panics"))
                .collect()
        })
    }
}

impl QuerySampleLibrary for ImageQsl {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn total_sample_count(&self) -> usize {
        self.images.len()
    }

    fn performance_sample_count(&self) -> usize {
        self.performance
    }

    fn load_samples_to_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
        let started = Instant::now();
        let total = self.images.len();
        if let Some(&bad) = samples.iter().find(|&&i| i >= total) {
            return Err(QslError::new(format!(
                "sample {bad} requested from a library of {total} images"
            )));
        }
        let mut wanted: Vec<QuerySampleIndex> = samples
            .iter()
            .copied()
            .filter(|&i| self.get(i).is_none())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let decoded = self.decode_all(&wanted);
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        let mut times = self.decode_ms.lock().unwrap_or_else(|e| e.into_inner());
        for (index, image, ms) in decoded {
            loaded[index] = Some(Arc::new(image));
            times.push(ms);
        }
        *self.load_wall.lock().unwrap_or_else(|e| e.into_inner()) += started.elapsed();
        Ok(())
    }

    fn unload_samples_from_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        for &index in samples {
            if let Some(slot) = loaded.get_mut(index) {
                *slot = None;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn images(n: usize) -> Arc<Vec<DatasetImage>> {
        Arc::new(
            (0..n)
                .map(|i| DatasetImage {
                    id: 100 + i as u64,
                    file_name: format!("{i}.jpg"),
                    path: PathBuf::from(format!("/nowhere/{i}.jpg")),
                })
                .collect(),
        )
    }

    /// A decoder that makes a 2x1 image for even file names and fails on odd ones.
    fn decoder() -> Arc<DecodeFn> {
        Arc::new(|path: &std::path::Path| {
            let stem: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            if stem.is_multiple_of(2) {
                Ok(BgrImage::filled(2, 1, stem as u8))
            } else {
                Err(detbench_imgproc::ImageError::Empty { name: "odd".into() })
            }
        })
    }

    #[test]
    fn loads_decodes_keeps_failures_and_unloads() {
        let qsl = ImageQsl::new("t", images(6), decoder(), 10, 3);
        assert_eq!(qsl.total_sample_count(), 6);
        assert_eq!(qsl.performance_sample_count(), 6, "capped at the dataset");
        qsl.load_samples_to_ram(&[4, 1, 4, 2]).unwrap();
        assert_eq!(qsl.loaded_count(), 3);
        let four = qsl.get(4).unwrap();
        assert_eq!(four.image_id, 104);
        assert_eq!(four.image.as_ref().unwrap().data[0], 4);
        let odd = qsl.get(1).unwrap();
        assert!(odd.image.as_ref().unwrap_err().to_string().contains("odd"));
        assert!(qsl.get(0).is_none());
        assert_eq!(qsl.decode_times_ms().len(), 3, "each image decoded once");
        qsl.unload_samples_from_ram(&[4, 1, 2]).unwrap();
        assert_eq!(qsl.loaded_count(), 0);
        let err = qsl.load_samples_to_ram(&[6]).unwrap_err().to_string();
        assert!(
            err.contains("sample 6") && err.contains("6 images"),
            "{err}"
        );
    }
}
