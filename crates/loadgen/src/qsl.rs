//! The query sample library: LoadGen's `QuerySampleLibrary` (`query_sample_library.h`) as a
//! trait, the seeded choice of which samples are loaded together (`GenerateLoadableSets` in
//! `loadgen.cc`), and [`InMemoryQsl`], a ready-made library generic over what a sample is.
//!
//! The harness only ever sees sample indices. What a sample is (a decoded image, a tensor, a
//! file name) is the library's and the system under test's business.

use std::sync::{Arc, RwLock};

use crate::effective::EffectiveSettings;
use crate::error::QslError;
use crate::rng::{self, Mt19937};
use crate::settings::Scenario;

/// An index into the query sample library, `0..total_sample_count()`.
pub type QuerySampleIndex = usize;

/// LoadGen's `QuerySampleLibrary`: the data set, of which a performance-sized subset is loaded
/// into memory before each timed run, and each accuracy-sized subset in turn for accuracy mode.
pub trait QuerySampleLibrary: Send + Sync {
    /// A name for the logs.
    fn name(&self) -> String;
    /// Samples in the data set.
    fn total_sample_count(&self) -> usize;
    /// How many samples fit in memory together (overridden by
    /// `performance_sample_count_override` when that is non-zero).
    fn performance_sample_count(&self) -> usize;
    /// Loads `samples` into memory; called before any query that uses them and outside the
    /// timed section. An index may appear more than once (MultiStream padding).
    fn load_samples_to_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError>;
    /// Releases what [`QuerySampleLibrary::load_samples_to_ram`] loaded.
    fn unload_samples_from_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError>;
}

/// A set of samples loaded together (`LoadableSampleSet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadableSampleSet {
    /// The sample indices, in the order queries refer to them; MultiStream appends its padding.
    pub set: Vec<QuerySampleIndex>,
    /// How many of `set` the sample choice draws from (the padding excluded).
    pub sample_distribution_end: usize,
}

/// `GenerateLoadableSets(qsl, settings, total_sample_count)`: shuffles the first
/// `total_sample_count` indices (capped at the QSL's size) with `qsl_rng_seed`, cuts them into
/// sets of `performance_sample_count`, and pads each MultiStream set with its own first
/// `samples_per_query - 1` samples so a query starting at any sample stays contiguous.
pub fn generate_loadable_sets(
    settings: &EffectiveSettings,
    qsl_total: usize,
    total_sample_count: usize,
) -> Vec<LoadableSampleSet> {
    let mut qsl_rng = Mt19937::new(settings.qsl_rng_seed);
    let count = total_sample_count.min(qsl_total);
    let mut samples: Vec<QuerySampleIndex> = (0..count).collect();
    rng::shuffle(&mut samples, &mut qsl_rng);

    let set_size = settings.performance_sample_count.max(1) as usize;
    let padding = if settings.scenario == Scenario::MultiStream {
        settings.samples_per_query as usize - 1
    } else {
        0
    };
    let mut result: Vec<LoadableSampleSet> = samples
        .chunks(set_size)
        .map(|chunk| LoadableSampleSet {
            set: chunk.to_vec(),
            sample_distribution_end: chunk.len(),
        })
        .collect();
    for loadable in &mut result {
        for i in 0..padding {
            // LoadGen indexes set[i] unchecked; validation keeps samples_per_query within the
            // set, and a short last accuracy set wraps around rather than reading past it.
            let p = loadable.set[i % loadable.sample_distribution_end];
            loadable.set.push(p);
        }
    }
    result
}

/// A query sample library holding samples of any type `S` in memory, made by a loader
/// function on [`QuerySampleLibrary::load_samples_to_ram`]. The system under test reads them
/// with [`InMemoryQsl::get`].
pub struct InMemoryQsl<S, F> {
    name: String,
    total: usize,
    performance: usize,
    loader: F,
    loaded: RwLock<Vec<Option<Arc<S>>>>,
}

impl<S, F> InMemoryQsl<S, F>
where
    S: Send + Sync,
    F: Fn(QuerySampleIndex) -> Result<S, QslError> + Send + Sync,
{
    /// A library of `total` samples of which `performance` are loaded for timed runs.
    pub fn new(name: impl Into<String>, total: usize, performance: usize, loader: F) -> Self {
        InMemoryQsl {
            name: name.into(),
            total,
            performance,
            loader,
            loaded: RwLock::new((0..total).map(|_| None).collect()),
        }
    }

    /// The loaded sample at `index`, if it is loaded.
    pub fn get(&self, index: QuerySampleIndex) -> Option<Arc<S>> {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.get(index).and_then(Clone::clone)
    }

    /// How many samples are in memory now.
    pub fn loaded_count(&self) -> usize {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.iter().filter(|s| s.is_some()).count()
    }
}

impl<S, F> QuerySampleLibrary for InMemoryQsl<S, F>
where
    S: Send + Sync,
    F: Fn(QuerySampleIndex) -> Result<S, QslError> + Send + Sync,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn total_sample_count(&self) -> usize {
        self.total
    }

    fn performance_sample_count(&self) -> usize {
        self.performance
    }

    fn load_samples_to_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
        for &index in samples {
            if index >= self.total {
                return Err(QslError::new(format!(
                    "sample {index} requested from a library of {} samples",
                    self.total
                )));
            }
            if self.get(index).is_some() {
                continue;
            }
            let sample = (self.loader)(index)
                .map_err(|e| QslError::new(format!("sample {index}: {}", e.message)))?;
            let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
            loaded[index] = Some(Arc::new(sample));
        }
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
    use crate::settings::TestSettings;

    fn settings(scenario: Scenario, psc: usize, total: usize) -> EffectiveSettings {
        EffectiveSettings::new(&TestSettings::new(scenario), psc, total)
    }

    #[test]
    fn sets_partition_a_permutation() {
        let s = settings(Scenario::SingleStream, 4, 10);
        let sets = generate_loadable_sets(&s, 10, 10);
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[2].set.len(), 2);
        let mut all: Vec<_> = sets.iter().flat_map(|s| s.set.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn multistream_sets_are_padded_with_their_head() {
        let s = settings(Scenario::MultiStream, 10, 10);
        let sets = generate_loadable_sets(&s, 10, 10);
        let set = &sets[0];
        assert_eq!(set.sample_distribution_end, 10);
        assert_eq!(set.set.len(), 17);
        assert_eq!(&set.set[10..], &set.set[..7]);
    }

    #[test]
    fn in_memory_qsl_loads_and_unloads() {
        let qsl = InMemoryQsl::new("t", 5, 3, |i| Ok(i * 10));
        qsl.load_samples_to_ram(&[1, 3, 3]).unwrap();
        assert_eq!(*qsl.get(3).unwrap(), 30);
        assert!(qsl.get(0).is_none());
        assert_eq!(qsl.loaded_count(), 2);
        qsl.unload_samples_from_ram(&[1, 3]).unwrap();
        assert_eq!(qsl.loaded_count(), 0);
        assert!(qsl.load_samples_to_ram(&[9]).is_err());
        let failing = InMemoryQsl::new("f", 2, 2, |i| -> Result<u8, QslError> {
            Err(QslError::new(format!("cannot decode {i}")))
        });
        let err = failing.load_samples_to_ram(&[1]).unwrap_err().to_string();
        assert!(
            err.contains("sample 1") && err.contains("cannot decode 1"),
            "{err}"
        );
    }
}
