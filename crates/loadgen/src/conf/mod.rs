//! LoadGen's config files (`mlperf.conf`, `user.conf`, `audit.config`): `model.scenario.key =
//! value` lines, `*` wildcards for the model and the scenario, `#` comments, later lines
//! overriding earlier ones, and the lookup order of LoadGen's `TestSettings::FromConfig`
//! (`test_settings_internal.cc`): `model.scenario.key`, then `*.scenario.key`, then
//! `model.*.key`, then `*.*.key`.
//!
//! LoadGen skips what it does not understand without a word: an unknown key, a misspelt
//! scenario, `key=value` without spaces, a line with no value. Here each of those is an error
//! naming the file, the line and the key, so a config that works here does the same in LoadGen.
//! Values are checked as they are read (an integer setting needs an integer, a percentile
//! lies between 0 and 100); LoadGen only checks that a value parses as a number.
//!
//! The built-in `mlperf.conf` is LoadGen 6.0.17's own (Apache-2.0, MLCommons), shipped
//! unchanged in `src/mlperf.conf`; as in LoadGen, reading a user config applies it first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ConfError;
use crate::settings::{Scenario, TestMode, TestSettings};

/// LoadGen 6.0.17's `mlperf.conf`.
pub const MLPERF_CONF: &str = include_str!("../mlperf.conf");
const MLPERF_CONF_NAME: &str = "mlperf.conf (built in, LoadGen 6.0.17)";

/// Which kind of config a file is: LoadGen reads some keys only from `mlperf.conf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfKind {
    /// `mlperf.conf` (LoadGen's `conf_type == 0`): also sets the RNG seeds.
    Mlperf,
    /// `user.conf` and `audit.config`: the seed keys are ignored, as LoadGen ignores them.
    User,
}

/// How a key's value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueKind {
    /// Unsigned integer (`strtoull`).
    Uint,
    /// Floating point (`strtod`).
    Float,
    /// A percentile in percent, 0 < p < 100, read as a float.
    Percent,
    /// A probability in percent, 0 <= p <= 100, read as a float.
    ProbabilityPercent,
    /// 0 or 1.
    Flag,
    /// 0 to 3 (`TestMode`).
    Mode,
    /// Accepted and ignored: present in `mlperf.conf` but read by no LoadGen code.
    Ignored,
}

/// Every key LoadGen 6.0.17's `FromConfig` reads, with how it reads it.
const KEYS: &[(&str, ValueKind)] = &[
    ("mode", ValueKind::Mode),
    ("qsl_rng_seed", ValueKind::Uint),
    ("sample_index_rng_seed", ValueKind::Uint),
    ("schedule_rng_seed", ValueKind::Uint),
    ("accuracy_log_probability", ValueKind::ProbabilityPercent),
    ("test05", ValueKind::Flag),
    ("test05_qsl_rng_seed", ValueKind::Uint),
    ("test05_sample_index_rng_seed", ValueKind::Uint),
    ("test05_schedule_rng_seed", ValueKind::Uint),
    ("use_token_latencies", ValueKind::Flag),
    ("ttft_latency", ValueKind::Uint),
    ("tpot_latency", ValueKind::Uint),
    ("infer_token_latencies", ValueKind::Flag),
    ("token_latency_scaling_factor", ValueKind::Uint),
    ("target_latency_percentile", ValueKind::Percent),
    ("samples_per_query", ValueKind::Uint),
    ("target_latency", ValueKind::Float),
    ("performance_issue_unique", ValueKind::Flag),
    ("performance_issue_same", ValueKind::Flag),
    ("performance_issue_same_index", ValueKind::Uint),
    ("sample_concatenate_permutation", ValueKind::Flag),
    ("coalesce_queries", ValueKind::Flag),
    ("max_async_queries", ValueKind::Uint),
    ("min_duration", ValueKind::Uint),
    ("max_duration", ValueKind::Uint),
    ("min_query_count", ValueKind::Uint),
    ("max_query_count", ValueKind::Uint),
    ("performance_sample_count_override", ValueKind::Uint),
    ("accuracy_sample_count_override", ValueKind::Uint),
    ("target_qps", ValueKind::Float),
    ("print_timestamps", ValueKind::Flag),
    ("accuracy_log_rng_seed", ValueKind::Uint),
    ("accuracy_log_sampling_target", ValueKind::Uint),
    ("target_duration", ValueKind::Ignored),
];

/// Keys LoadGen reads only from `mlperf.conf` (`conf_type == 0`).
const MLPERF_ONLY: &[&str] = &[
    "qsl_rng_seed",
    "sample_index_rng_seed",
    "schedule_rng_seed",
    "accuracy_log_probability",
    "test05",
    "test05_qsl_rng_seed",
    "test05_sample_index_rng_seed",
    "test05_schedule_rng_seed",
];

/// One `model.scenario.key = value` line.
#[derive(Clone, Debug)]
struct Entry {
    value: String,
    line: usize,
}

/// A parsed config file: the last value of each full key, with its line.
#[derive(Clone, Debug)]
pub struct ConfFile {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

/// Something in a config that has no effect, said once so the user knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfWarning {
    pub path: PathBuf,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.path.display(),
            self.line,
            self.key,
            self.message
        )
    }
}

impl ConfFile {
    /// Reads and parses a config file.
    pub fn read(path: &Path) -> Result<ConfFile, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConfFile::parse(path, &text)
    }

    /// LoadGen 6.0.17's built-in `mlperf.conf`.
    pub fn mlperf() -> ConfFile {
        ConfFile::parse(Path::new(MLPERF_CONF_NAME), MLPERF_CONF)
            .expect("the built-in mlperf.conf parses")
    }

    /// Parses config text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<ConfFile, ConfError> {
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if let Some((key, value)) = parse_line(path, i + 1, line)? {
                entries.insert(key, Entry { value, line: i + 1 });
            }
        }
        Ok(ConfFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The file's name as errors give it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies this file to `settings` for `model` running `scenario`, as LoadGen's
    /// `FromConfig(path, model, scenario, conf_type)` does. Returns the lines that had no effect.
    pub fn apply(
        &self,
        settings: &mut TestSettings,
        model: &str,
        scenario: Scenario,
        kind: ConfKind,
    ) -> Vec<ConfWarning> {
        let mut warnings = self.unused_key_warnings(kind);
        let l = Lookup {
            file: self,
            model,
            scenario: scenario.as_str(),
        };
        if let Some(v) = l.uint("mode", None) {
            settings.mode = match v {
                0 => TestMode::SubmissionRun,
                1 => TestMode::AccuracyOnly,
                2 => TestMode::PerformanceOnly,
                _ => TestMode::FindPeakPerformance,
            };
        }
        if kind == ConfKind::Mlperf {
            l.apply_seeds(settings);
        }
        if let Some(v) = l.uint("use_token_latencies", None) {
            settings.use_token_latencies = v == 1;
        }
        if let Some(v) = l.uint("infer_token_latencies", None) {
            settings.infer_token_latencies = v == 1;
        }
        l.apply_scenario_keys(settings);
        l.apply_common_keys(settings);
        warnings.sort_by_key(|w| w.line);
        warnings
    }

    fn unused_key_warnings(&self, kind: ConfKind) -> Vec<ConfWarning> {
        let mut out = Vec::new();
        for (full, entry) in &self.entries {
            let key = full.rsplit('.').next().unwrap_or(full);
            let message = if kind == ConfKind::User && MLPERF_ONLY.contains(&key) {
                "LoadGen reads this key only from mlperf.conf and ignores it here"
            } else if key_kind(key) == Some(ValueKind::Ignored) {
                "no LoadGen code reads this key; ignored"
            } else {
                continue;
            };
            out.push(ConfWarning {
                path: self.path.clone(),
                line: entry.line,
                key: full.clone(),
                message: message.to_string(),
            });
        }
        out
    }
}

impl TestSettings {
    /// LoadGen's `FromConfig(path, model, scenario)` for a user config: the built-in
    /// `mlperf.conf` first, then the file at `path`. (LoadGen applies `mlperf.conf` only on the
    /// first call in a process; here every call does.) Warnings: the user file's only.
    pub fn apply_user_conf(
        &mut self,
        path: &Path,
        model: &str,
        scenario: Scenario,
    ) -> Result<Vec<ConfWarning>, ConfError> {
        let user = ConfFile::read(path)?;
        ConfFile::mlperf().apply(self, model, scenario, ConfKind::Mlperf);
        Ok(user.apply(self, model, scenario, ConfKind::User))
    }

    /// The built-in `mlperf.conf` alone: MLPerf's rules (600 s minimum durations, the seeds,
    /// the percentiles) for `model` and `scenario`.
    pub fn apply_mlperf_conf(&mut self, model: &str, scenario: Scenario) {
        ConfFile::mlperf().apply(self, model, scenario, ConfKind::Mlperf);
    }
}

/// `lookupkv`: the four-step wildcard lookup, with LoadGen's unit multipliers.
struct Lookup<'a> {
    file: &'a ConfFile,
    model: &'a str,
    scenario: &'a str,
}

impl Lookup<'_> {
    fn find(&self, scenario: Option<&str>, key: &str) -> Option<&str> {
        let scenario = scenario.unwrap_or(self.scenario);
        let candidates = [
            format!("{}.{}.{}", self.model, scenario, key),
            format!("*.{scenario}.{key}"),
            format!("{}.*.{key}", self.model),
            format!("*.*.{key}"),
        ];
        candidates
            .iter()
            .find_map(|k| self.file.entries.get(k))
            .map(|e| e.value.as_str())
    }

    /// `strtoull(found, nullptr, 0)`: the leading integer of the value, so a Server
    /// `target_latency = 12.5` is 12 ms there, as in LoadGen.
    fn uint(&self, key: &str, scenario: Option<&str>) -> Option<u64> {
        self.find(scenario, key).map(strtoull_prefix)
    }

    /// `strtod(found, nullptr)`.
    fn float(&self, key: &str, scenario: Option<&str>) -> Option<f64> {
        self.find(scenario, key)
            .map(|v| parse_c_float(v).unwrap_or(0.0))
    }

    fn set_uint(&self, key: &str, scenario: Option<&str>, multiplier: u64, field: &mut u64) {
        if let Some(v) = self.uint(key, scenario) {
            *field = v.wrapping_mul(multiplier);
        }
    }

    fn set_float(&self, key: &str, scenario: Option<&str>, multiplier: f64, field: &mut f64) {
        if let Some(v) = self.float(key, scenario) {
            *field = v * multiplier;
        }
    }

    fn apply_seeds(&self, s: &mut TestSettings) {
        self.set_uint("qsl_rng_seed", None, 1, &mut s.qsl_rng_seed);
        self.set_uint(
            "sample_index_rng_seed",
            None,
            1,
            &mut s.sample_index_rng_seed,
        );
        self.set_uint("schedule_rng_seed", None, 1, &mut s.schedule_rng_seed);
        self.set_float(
            "accuracy_log_probability",
            None,
            0.01,
            &mut s.accuracy_log_probability,
        );
        if let Some(v) = self.uint("test05", None) {
            s.test05 = v == 1;
        }
        self.set_uint("test05_qsl_rng_seed", None, 1, &mut s.test05_qsl_rng_seed);
        self.set_uint(
            "test05_sample_index_rng_seed",
            None,
            1,
            &mut s.test05_sample_index_rng_seed,
        );
        self.set_uint(
            "test05_schedule_rng_seed",
            None,
            1,
            &mut s.test05_schedule_rng_seed,
        );
    }

    /// The keys LoadGen always looks up under a fixed scenario name.
    fn apply_scenario_keys(&self, s: &mut TestSettings) {
        let (ss, ms, server, offline) = (
            Some("SingleStream"),
            Some("MultiStream"),
            Some("Server"),
            Some("Offline"),
        );
        let pct = "target_latency_percentile";
        self.set_float(
            pct,
            ss,
            0.01,
            &mut s.single_stream_target_latency_percentile,
        );
        self.set_float(pct, ms, 0.01, &mut s.multi_stream_target_latency_percentile);
        self.set_uint(
            "samples_per_query",
            ms,
            1,
            &mut s.multi_stream_samples_per_query,
        );
        self.set_float(pct, server, 0.01, &mut s.server_target_latency_percentile);
        self.set_uint(
            "target_latency",
            server,
            1_000_000,
            &mut s.server_target_latency_ns,
        );
        if let Some(v) = self.uint("coalesce_queries", server) {
            s.server_coalesce_queries = v != 0;
        }
        self.set_uint(
            "max_async_queries",
            server,
            1,
            &mut s.server_max_async_queries,
        );
        let lat = "target_latency";
        self.set_float(lat, ss, 1e6, &mut s.single_stream_expected_latency_ns);
        self.set_float(lat, ms, 1e6, &mut s.multi_stream_expected_latency_ns);
        self.set_float("target_qps", server, 1.0, &mut s.server_target_qps);
        self.set_float("target_qps", offline, 1.0, &mut s.offline_expected_qps);
    }

    /// The keys looked up under the running scenario.
    fn apply_common_keys(&self, s: &mut TestSettings) {
        if let Some(v) = self.uint("performance_issue_unique", None) {
            s.performance_issue_unique = v != 0;
        }
        if let Some(v) = self.uint("performance_issue_same", None) {
            s.performance_issue_same = v != 0;
        }
        self.set_uint(
            "performance_issue_same_index",
            None,
            1,
            &mut s.performance_issue_same_index,
        );
        if let Some(v) = self.uint("sample_concatenate_permutation", None) {
            s.sample_concatenate_permutation = v == 1;
        }
        self.set_uint("min_duration", None, 1, &mut s.min_duration_ms);
        self.set_uint("max_duration", None, 1, &mut s.max_duration_ms);
        self.set_uint("min_query_count", None, 1, &mut s.min_query_count);
        self.set_uint("max_query_count", None, 1, &mut s.max_query_count);
        self.set_uint(
            "performance_sample_count_override",
            None,
            1,
            &mut s.performance_sample_count_override,
        );
        self.set_uint(
            "accuracy_sample_count_override",
            None,
            1,
            &mut s.accuracy_sample_count_override,
        );
        if let Some(v) = self.uint("print_timestamps", None) {
            s.print_timestamps = v != 0;
        }
        self.set_uint(
            "accuracy_log_rng_seed",
            None,
            1,
            &mut s.accuracy_log_rng_seed,
        );
        self.set_uint(
            "accuracy_log_sampling_target",
            None,
            1,
            &mut s.accuracy_log_sampling_target,
        );
    }
}

fn key_kind(key: &str) -> Option<ValueKind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// One line: `None` for blank lines and comments, the full key and value otherwise.
fn parse_line(path: &Path, line: usize, text: &str) -> Result<Option<(String, String)>, ConfError> {
    let err = |key: &str, message: String| ConfError::Line {
        path: path.to_path_buf(),
        line,
        key: key.to_string(),
        message,
    };
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let Some(&key) = tokens.first() else {
        return Ok(None);
    };
    if key.starts_with('#') {
        return Ok(None);
    }
    if key.contains('=') {
        return Err(err(
            key,
            "write 'model.scenario.key = value' with spaces around '=' (LoadGen ignores this \
             line without a word)"
                .into(),
        ));
    }
    match tokens.get(1) {
        Some(&"=") => {}
        Some(other) => {
            return Err(err(
                key,
                format!("expected '=' after the key, found '{other}'"),
            ));
        }
        None => return Err(err(key, "expected 'model.scenario.key = value'".into())),
    }
    let Some(&value) = tokens.get(2) else {
        return Err(err(key, "the value is missing after '='".into()));
    };
    if let Some(extra) = tokens.get(3).filter(|t| !t.starts_with('#')) {
        return Err(err(
            key,
            format!("unexpected '{extra}' after the value (comments start with '#')"),
        ));
    }
    let kind = check_key(key).map_err(|m| err(key, m.0))?;
    check_value(kind, value).map_err(|m| err(key, m.0))?;
    Ok(Some((key.to_string(), value.to_string())))
}

/// What is wrong with a key or a value, for [`ConfError::Line`].
struct Problem(String);

impl From<&str> for Problem {
    fn from(message: &str) -> Self {
        Problem(message.to_owned())
    }
}

/// `model.scenario.key`: a known key under a known scenario (or `*`).
fn check_key(full: &str) -> Result<ValueKind, Problem> {
    let mut parts = full.rsplitn(3, '.');
    let (key, scenario, model) = (parts.next(), parts.next(), parts.next());
    let (Some(key), Some(scenario), Some(model)) = (key, scenario, model) else {
        return Err(
            "expected a key of the form model.scenario.key ('*' for any model or \
                    scenario)"
                .into(),
        );
    };
    if model.is_empty() {
        return Err("the model name is empty (use '*' for any model)".into());
    }
    if scenario != "*" && !Scenario::ALL.iter().any(|s| s.as_str() == scenario) {
        return Err(Problem(format!(
            "unknown scenario '{scenario}': expected SingleStream, MultiStream, Server, Offline \
             or '*' (spelt exactly; LoadGen matches them case-sensitively)"
        )));
    }
    key_kind(key).ok_or_else(|| {
        let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        Problem(format!(
            "unknown key '{key}' (LoadGen would ignore it); LoadGen 6.0.17 reads: {}",
            known.join(", ")
        ))
    })
}

fn check_value(kind: ValueKind, value: &str) -> Result<(), Problem> {
    let number = parse_c_uint(value)
        .map(|v| v as f64)
        .or_else(|| parse_c_float(value));
    let Some(number) = number else {
        return Err(Problem(format!(
            "'{value}' is not a number (LoadGen: value needs to be integer or double)"
        )));
    };
    let uint = || {
        parse_c_uint(value).ok_or_else(|| Problem(format!("'{value}' is not an unsigned integer")))
    };
    match kind {
        ValueKind::Uint => uint().map(|_| ()),
        ValueKind::Flag => match uint()? {
            0 | 1 => Ok(()),
            _ => Err(Problem(format!("'{value}': expected 0 or 1"))),
        },
        ValueKind::Mode => match uint()? {
            0..=3 => Ok(()),
            _ => Err(Problem(format!(
                "'{value}': expected 0 (SubmissionRun), 1 (AccuracyOnly), 2 (PerformanceOnly) \
                 or 3 (FindPeakPerformance)"
            ))),
        },
        ValueKind::Percent if !(number > 0.0 && number < 100.0) => Err(Problem(format!(
            "'{value}': expected a percentage between 0 and 100, exclusive"
        ))),
        ValueKind::ProbabilityPercent if !(0.0..=100.0).contains(&number) => Err(Problem(format!(
            "'{value}': expected a percentage from 0 to 100"
        ))),
        ValueKind::Float if !(number.is_finite() && number >= 0.0) => Err(Problem(format!(
            "'{value}': expected a finite number, 0 or more"
        ))),
        _ => Ok(()),
    }
}

/// A whole token `strtoull(s, nullptr, 0)` accepts, without a sign: decimal, `0x` hex or
/// leading-zero octal. (A leading '-' would wrap around; it is refused.)
pub(crate) fn parse_c_uint(s: &str) -> Option<u64> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u64::from_str_radix(&s[1..], 8).ok();
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `strtoull(s, nullptr, 0)` on a token already known to be a non-negative number: the value
/// of its longest integer prefix in the base the prefix announces.
fn strtoull_prefix(s: &str) -> u64 {
    let s = s.strip_prefix('+').unwrap_or(s);
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.starts_with('0') {
        (s, 8)
    } else {
        (s, 10)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], radix).unwrap_or(0)
}

/// A whole token `strtod` accepts (decimal forms, `inf`, `nan`).
pub(crate) fn parse_c_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests;
