//! MLPerf LoadGen's scenarios, rules and summary, in Rust.
//!
//! A port of `mlcommons-loadgen` 6.0.17 (`mlcommons/inference`, `loadgen/`): the same
//! settings and config files, the same seeded choice of samples and arrival times, the same
//! statistics (percentiles, early stopping, per-scenario rates), the same VALID/INVALID rules
//! and the same `mlperf_log_summary.txt`. Like LoadGen, the harness never knows the model: it
//! drives a [`SystemUnderTest`] with sample indices from a [`QuerySampleLibrary`] and times the
//! responses the SUT reports through a [`Completer`].
//!
//! ```no_run
//! use detbench_loadgen::*;
//!
//! struct Echo;
//! impl SystemUnderTest for Echo {
//!     fn name(&self) -> String { "echo".into() }
//!     fn issue_query(&self, samples: &[QuerySample], done: &Completer) {
//!         let responses: Vec<_> = samples.iter().map(|s| QuerySampleResponse::new(s.id, &[])).collect();
//!         done.complete(&responses);
//!     }
//! }
//! let qsl = InMemoryQsl::new("numbers", 100, 100, |i| Ok(i));
//! let mut settings = TestSettings::new(Scenario::Server);
//! settings.server_target_qps = 100.0;
//! let outcome = start_test(&Echo, &qsl, &settings, &HarnessOptions::default()).unwrap();
//! print!("{}", outcome.summary_text());
//! ```
//!
//! Modules, in the order a test uses them: [`settings`] and [`conf`] (what to run),
//! [`effective`] (LoadGen's folded settings), [`qsl`] and [`schedule`] (which samples, when),
//! [`sut`] and `issue` (issuing and completion), [`results`], [`early_stopping`] and
//! [`summary`] (the verdict and its report), [`accuracy_log`], `peak` (the Server peak-QPS
//! search) and [`run`] (a whole test). [`rng`] reproduces LoadGen's random numbers.

pub mod accuracy_log;
pub mod conf;
pub mod early_stopping;
pub mod effective;
pub mod error;
mod issue;
mod os;
mod peak;
pub mod qsl;
pub mod results;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod settings;
pub mod summary;
pub mod sut;

pub use accuracy_log::{AccuracyLogError, accuracy_log_json, parse_accuracy_log};
pub use conf::{ConfFile, ConfKind, ConfWarning};
pub use effective::EffectiveSettings;
pub use error::{ConfError, LoadgenError, QslError, SettingsError};
pub use issue::HarnessOptions;
pub use peak::PeakStep;
pub use qsl::{InMemoryQsl, LoadableSampleSet, QuerySampleIndex, QuerySampleLibrary};
pub use results::{EarlyStoppingResult, LatencyStats, PerformanceResult, ScenarioResult, Validity};
pub use run::{DetailEntry, TestOutcome, WriteFile, check_log_dir, start_test};
pub use settings::{Scenario, TestMode, TestSettings};
pub use sut::{
    AccuracyEntry, Completer, QuerySample, QuerySampleResponse, ResponseId, SystemUnderTest,
};
