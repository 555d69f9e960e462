//! Running a test: LoadGen's `StartTest` and its mode functions (`RunPerformanceMode`,
//! `RunAccuracyMode` in `loadgen.cc`), and the logs a test leaves behind
//! (`mlperf_log_summary.txt`, `mlperf_log_accuracy.json`, `mlperf_log_detail.txt`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::accuracy_log::accuracy_log_json;
use crate::effective::EffectiveSettings;
use crate::error::LoadgenError;
use crate::issue::{HarnessOptions, IssuedRun, issue_queries};
use crate::peak::{self, PeakStep};
use crate::qsl::{QuerySampleLibrary, generate_loadable_sets};
use crate::results::{PerformanceResult, ScenarioResult, evaluate};
use crate::rng::{self, Mt19937};
use crate::schedule::{SequenceGen, generate_queries};
use crate::settings::{Scenario, TestMode, TestSettings};
use crate::summary::{performance_summary, warning_error_footer};
use crate::sut::{AccuracyEntry, AccuracyLogging, SystemUnderTest};

/// One line of the detail log: a `:::MLLOG` record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetailEntry {
    pub key: String,
    pub value: Value,
    pub is_error: bool,
    pub is_warning: bool,
}

/// What a test produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// The effective settings of the test (a FindPeakPerformance result carries the found QPS
    /// in its own settings).
    pub settings: EffectiveSettings,
    /// The performance run's verdict; `None` in accuracy mode.
    pub performance: Option<ScenarioResult>,
    /// What that run measured, sample by sample (not serialized here: it can hold millions of
    /// latencies; callers that keep raw samples take them from here).
    #[serde(skip)]
    pub performance_raw: Option<PerformanceResult>,
    /// FindPeakPerformance: every run of the search, in order.
    pub peak_search: Vec<PeakStep>,
    /// Accuracy mode: samples issued (every one of `accuracy_sample_count`, at least once).
    pub accuracy_samples_issued: Option<u64>,
    /// Entries of `mlperf_log_accuracy.json` (not serialized here: that file is their form).
    #[serde(skip)]
    pub accuracy_log: Vec<AccuracyEntry>,
    /// The detail log's records.
    pub detail: Vec<DetailEntry>,
}

impl TestOutcome {
    /// Messages logged as errors.
    pub fn errors(&self) -> impl Iterator<Item = &DetailEntry> {
        self.detail.iter().filter(|d| d.is_error)
    }

    /// `mlperf_log_summary.txt`.
    pub fn summary_text(&self) -> String {
        let mut text = self
            .performance
            .as_ref()
            .map(performance_summary)
            .unwrap_or_default();
        let warnings = self.detail.iter().filter(|d| d.is_warning).count();
        text.push_str(&warning_error_footer(warnings, self.errors().count()));
        text
    }

    /// `mlperf_log_detail.txt`: LoadGen's `:::MLLOG {...}` line format, holding the records
    /// this harness keeps (a subset of LoadGen's detail log).
    pub fn detail_text(&self) -> String {
        let mut out = String::new();
        for d in &self.detail {
            let record = json!({
                "key": d.key,
                "value": d.value,
                "namespace": "detbench::loadgen",
                "event_type": "POINT_IN_TIME",
                "metadata": {"is_error": d.is_error, "is_warning": d.is_warning},
            });
            out.push_str(&format!(":::MLLOG {record}\n"));
        }
        out
    }

    /// The logs a test leaves: (`mlperf_log_summary.txt`, its text), then the detail log and
    /// the accuracy log.
    pub fn log_files(&self) -> [(&'static str, String); 3] {
        [
            ("mlperf_log_summary.txt", self.summary_text()),
            ("mlperf_log_detail.txt", self.detail_text()),
            (
                "mlperf_log_accuracy.json",
                accuracy_log_json(&self.accuracy_log),
            ),
        ]
    }

    /// Writes [`TestOutcome::log_files`] into `dir` through `write` (the caller's file writer:
    /// detbench passes its one atomic writer, `detbench_assets::write_atomic`; a plain program may
    /// pass `std::fs::write`). Returns their paths.
    pub fn write_logs(
        &self,
        dir: &Path,
        write: &mut WriteFile<'_>,
    ) -> Result<Vec<PathBuf>, LoadgenError> {
        self.log_files()
            .iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                write(&path, text.as_bytes()).map_err(|source| LoadgenError::Write {
                    path: path.clone(),
                    source,
                })?;
                Ok(path)
            })
            .collect()
    }
}

/// A file writer [`TestOutcome::write_logs`] writes through.
pub type WriteFile<'a> = dyn FnMut(&Path, &[u8]) -> std::io::Result<()> + 'a;

/// Checks that the logs can be written to `dir` (it exists and takes a file) before a test is
/// run, so a bad path fails before the timed work rather than after. The probe is an anonymous
/// temporary file, gone when closed.
pub fn check_log_dir(dir: &Path) -> Result<(), LoadgenError> {
    let err = |source| LoadgenError::Write {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not an existing directory",
        )));
    }
    tempfile::tempfile_in(dir).map(drop).map_err(err)
}

/// Mutable state of one test: numbering and the detail log.
pub(crate) struct TestContext<'a> {
    pub sut: &'a dyn SystemUnderTest,
    pub qsl: &'a dyn QuerySampleLibrary,
    pub options: &'a HarnessOptions,
    pub seq: SequenceGen,
    pub detail: Vec<DetailEntry>,
    pub accuracy_log: Vec<AccuracyEntry>,
}

impl TestContext<'_> {
    pub fn log(&mut self, key: &str, value: Value) {
        self.detail.push(DetailEntry {
            key: key.into(),
            value,
            is_error: false,
            is_warning: false,
        });
    }

    pub fn error(&mut self, key: &str, message: String) {
        self.detail.push(DetailEntry {
            key: key.into(),
            value: Value::String(message),
            is_error: true,
            is_warning: false,
        });
    }
}

/// `StartTest`: validates the settings against the library, then runs the requested mode.
pub fn start_test(
    sut: &dyn SystemUnderTest,
    qsl: &dyn QuerySampleLibrary,
    requested: &TestSettings,
    options: &HarnessOptions,
) -> Result<TestOutcome, LoadgenError> {
    let (total, perf) = (qsl.total_sample_count(), qsl.performance_sample_count());
    requested.validate(total, perf)?;
    let settings = EffectiveSettings::new(requested, perf, total);
    let mut ctx = TestContext {
        sut,
        qsl,
        options,
        seq: SequenceGen::default(),
        detail: Vec::new(),
        accuracy_log: Vec::new(),
    };
    ctx.log("sut_name", json!(sut.name()));
    ctx.log("qsl_name", json!(qsl.name()));
    ctx.log("qsl_reported_total_count", json!(total));
    ctx.log("qsl_reported_performance_count", json!(perf));
    let mut performance: Option<(ScenarioResult, PerformanceResult)> = None;
    let mut peak_search = Vec::new();
    let mut accuracy_samples_issued = None;
    match settings.mode {
        TestMode::SubmissionRun => {
            accuracy_samples_issued = Some(run_accuracy(&mut ctx, &settings)?);
            performance = Some(run_performance(&mut ctx, &settings)?);
        }
        TestMode::AccuracyOnly => {
            accuracy_samples_issued = Some(run_accuracy(&mut ctx, &settings)?)
        }
        TestMode::PerformanceOnly => performance = Some(run_performance(&mut ctx, &settings)?),
        TestMode::FindPeakPerformance => {
            let (result, steps) = peak::find_peak_performance(&mut ctx, &settings)?;
            performance = Some(result);
            peak_search = steps;
        }
    }
    if let Some((r, _)) = &performance {
        log_result(&mut ctx, r);
    }
    let settings = performance
        .as_ref()
        .map_or(settings, |(r, _)| r.settings.clone());
    let (performance, performance_raw) = performance.unzip();
    Ok(TestOutcome {
        settings,
        performance,
        performance_raw,
        peak_search,
        accuracy_samples_issued,
        accuracy_log: ctx.accuracy_log,
        detail: ctx.detail,
    })
}

/// `RunPerformanceMode`'s body: load the performance set, issue, unload, judge.
pub(crate) fn run_performance(
    ctx: &mut TestContext<'_>,
    settings: &EffectiveSettings,
) -> Result<(ScenarioResult, PerformanceResult), LoadgenError> {
    let total = ctx.qsl.total_sample_count();
    let sets = generate_loadable_sets(settings, total, settings.performance_sample_count as usize);
    let set = &sets[0];
    ctx.log("loaded_qsl_set", json!(set.set));
    ctx.qsl.load_samples_to_ram(&set.set)?;
    let run = issue_one(ctx, settings, TestMode::PerformanceOnly, set);
    ctx.qsl.unload_samples_from_ram(&set.set)?;
    let run = run?;
    for e in run.errors {
        ctx.error("error_runtime", e);
    }
    ctx.accuracy_log.extend(run.accuracy_entries);
    Ok((evaluate(&ctx.sut.name(), settings, &run.result), run.result))
}

/// `RunAccuracyMode`: every accuracy set in turn, each sample at least once, every response
/// logged. Returns the number of samples issued.
fn run_accuracy(
    ctx: &mut TestContext<'_>,
    settings: &EffectiveSettings,
) -> Result<u64, LoadgenError> {
    let total = ctx.qsl.total_sample_count();
    let sets = generate_loadable_sets(settings, total, settings.accuracy_sample_count as usize);
    let mut issued = 0u64;
    for set in &sets {
        ctx.log("loaded_qsl_set", json!(set.set));
        ctx.qsl.load_samples_to_ram(&set.set)?;
        let run = issue_one(ctx, settings, TestMode::AccuracyOnly, set);
        ctx.qsl.unload_samples_from_ram(&set.set)?;
        let run = run?;
        issued += run.result.sample_latencies.len() as u64;
        for e in run.errors {
            ctx.error("error_runtime", e);
        }
        ctx.accuracy_log.extend(run.accuracy_entries);
    }
    Ok(issued)
}

/// Generates and issues the queries of one run over a loaded set.
pub(crate) fn issue_one(
    ctx: &mut TestContext<'_>,
    settings: &EffectiveSettings,
    mode: TestMode,
    set: &crate::qsl::LoadableSampleSet,
) -> Result<IssuedRun, LoadgenError> {
    let plan = generate_queries(settings, mode, set, &mut ctx.seq);
    ctx.log("generated_query_count", json!(plan.len()));
    ctx.log("generated_samples_per_query", json!(plan.samples_per_query));
    ctx.log(
        "generated_query_duration",
        json!(plan.generated_duration_ns),
    );
    let accuracy = if mode == TestMode::AccuracyOnly {
        AccuracyLogging::All
    } else {
        performance_accuracy_logging(settings)
    };
    issue_queries(
        ctx.sut,
        settings,
        mode,
        Arc::new(plan),
        accuracy,
        ctx.options,
    )
}

/// Performance-mode accuracy-log sampling (`IssueQueries`): a per-run random offset, and a
/// probability from `accuracy_log_probability` or `accuracy_log_sampling_target`.
fn performance_accuracy_logging(s: &EffectiveSettings) -> AccuracyLogging {
    let offset = rng::uniform_real(&mut Mt19937::new(s.accuracy_log_rng_seed), 0.0, 1.0);
    let mut probability = s.accuracy_log_probability;
    if s.accuracy_log_sampling_target > 0 {
        let mut expected = (s.target_qps * s.min_duration_ms as f64 / 1000.0) as u64;
        let mut minimum = s.min_query_count * s.samples_per_query;
        if s.scenario != Scenario::Offline {
            expected *= s.samples_per_query;
        } else {
            minimum = s.min_sample_count;
        }
        let expected = expected.max(minimum).max(1);
        probability = s.accuracy_log_sampling_target as f64 / expected as f64;
    }
    if probability > 0.0 {
        AccuracyLogging::Sampled {
            offset,
            probability,
        }
    } else {
        AccuracyLogging::Off
    }
}

/// The result records of `PerformanceSummary::LogDetail`.
fn log_result(ctx: &mut TestContext<'_>, r: &ScenarioResult) {
    ctx.log("result_validity", json!(r.validity));
    if let Some(p) = r.perf_constraints_met {
        ctx.log("result_perf_constraints_met", json!(p));
    }
    ctx.log("result_min_duration_met", json!(r.min_duration_met));
    ctx.log("result_min_queries_met", json!(r.min_queries_met));
    ctx.log("early_stopping_met", json!(r.early_stopping_met));
    ctx.log("result_query_count", json!(r.query_count));
    if let Some(n) = r.overlatency_query_count {
        ctx.log("result_overlatency_query_count", json!(n));
    }
    ctx.log("result_min_latency_ns", json!(r.sample_latency.min_ns));
    ctx.log("result_max_latency_ns", json!(r.sample_latency.max_ns));
    ctx.log("result_mean_latency_ns", json!(r.sample_latency.mean_ns));
    for p in &r.sample_latency.percentiles {
        let key = format!("result_{:.2}_percentile_latency_ns", p.percentile * 100.0);
        ctx.log(&key, json!(p.latency_ns));
    }
}
