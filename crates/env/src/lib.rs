//! The environment capture recorded with every run: machine, operating system, GPU, engine
//! libraries and the build of detbench itself, so that a number in the store can be traced to
//! the conditions it was measured under. It sits below the harness and the report crate, so
//! that `RunResults::environment` is this type, not free JSON; it also owns the run clock's
//! format ([`now_rfc3339`]) and the build's version ([`DETBENCH_VERSION`]).
//!
//! Everything is read from `/proc`, `/etc/os-release`, `/sys` and `nvidia-smi`; what cannot be
//! found is recorded as `null`, never guessed and never an error (a CPU-only machine has no
//! `nvidia-smi`).

use detbench_backends::EngineKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `git describe --always --dirty` of the checkout this binary was built from (crate version
/// when built outside a git checkout; `DETBENCH_VERSION` at build time overrides both).
pub const DETBENCH_VERSION: &str = env!("DETBENCH_BUILD_VERSION");
/// `rustc --version` of the compiler that built this binary.
pub const RUSTC_VERSION: &str = env!("DETBENCH_BUILD_RUSTC");

/// How long `nvidia-smi` may take before the GPU is recorded as unknown.
const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(15);

// Field order: alphabetical, in every struct below. Runs recorded before the capture was typed
// held it as a JSON object, whose keys serde_json writes sorted; keeping the fields sorted keeps
// `results.json` and the store's `runs.environment` byte for byte as they were.

/// The conditions of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
    pub build: Build,
    /// RFC 3339, UTC.
    pub captured_at: String,
    pub cpu: Cpu,
    /// Inference engine libraries found, with where their version came from.
    pub engines: Vec<EngineVersion>,
    /// `null` when no NVIDIA GPU (or no `nvidia-smi`) is found.
    pub gpu: Option<Gpu>,
    pub hostname: Option<String>,
    /// Kernel release (`uname -r`).
    pub kernel: Option<String>,
    /// Total physical memory in bytes (`MemTotal`).
    pub memory_bytes: Option<u64>,
    /// `PRETTY_NAME` of `/etc/os-release`, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// Processors this process may use (affinity and cgroup limits applied).
    pub available_parallelism: Option<usize>,
    /// cpufreq governor of cpu0 (`performance`, `powersave`, ...), when exposed.
    pub frequency_governor: Option<String>,
    /// Logical processors the kernel lists.
    pub logical_cores: Option<usize>,
    /// `model name` of `/proc/cpuinfo`.
    pub model: Option<String>,
    /// Distinct (package, core) pairs.
    pub physical_cores: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// The highest CUDA version the driver supports, as `nvidia-smi` prints it.
    pub cuda_version: Option<String>,
    pub devices: Vec<GpuDevice>,
    pub driver_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuDevice {
    pub index: usize,
    pub memory_mib: Option<u64>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineVersion {
    /// Recorded as the engine table's name (`onnxruntime`, `libtorch`).
    pub name: EngineKind,
    /// Where the version was read: a library file name, a version file, or "loaded" when the
    /// engine reported it itself.
    pub source: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub detbench_version: String,
    /// Cargo profile (`release`, `debug`).
    pub profile: String,
    pub rustc: String,
    pub target: String,
}

impl Environment {
    /// Records an engine version, replacing any entry of the same engine (an engine that reports
    /// its loaded version is more trustworthy than a file name found on disk).
    pub fn set_engine(
        &mut self,
        name: EngineKind,
        version: impl Into<String>,
        source: impl Into<String>,
    ) {
        self.engines.retain(|e| e.name != name);
        self.engines.push(EngineVersion {
            name,
            version: version.into(),
            source: source.into(),
        });
        self.engines.sort_by_key(|e| e.name.name());
    }

    /// The capture as JSON (what `detbench env --json` prints and the store keeps).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("Environment serialises to JSON")
    }

    /// Human-readable (label, value) rows, `-` where a value is unknown.
    pub fn rows(&self) -> Vec<(String, String)> {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let count = |v: Option<usize>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let mut rows = vec![
            ("detbench".to_owned(), self.build.detbench_version.clone()),
            (
                "built with".to_owned(),
                format!(
                    "{} ({}, {})",
                    self.build.rustc, self.build.profile, self.build.target
                ),
            ),
            ("captured at".to_owned(), self.captured_at.clone()),
            ("hostname".to_owned(), or_dash(&self.hostname)),
            ("OS".to_owned(), or_dash(&self.os)),
            ("kernel".to_owned(), or_dash(&self.kernel)),
            ("arch".to_owned(), self.arch.clone()),
            ("CPU".to_owned(), or_dash(&self.cpu.model)),
            (
                "CPU cores".to_owned(),
                format!(
                    "{} physical, {} logical, {} available to this process",
                    count(self.cpu.physical_cores),
                    count(self.cpu.logical_cores),
                    count(self.cpu.available_parallelism)
                ),
            ),
            (
                "CPU governor".to_owned(),
                or_dash(&self.cpu.frequency_governor),
            ),
            (
                "memory".to_owned(),
                self.memory_bytes.map_or_else(
                    || "-".to_owned(),
                    |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
                ),
            ),
        ];
        match &self.gpu {
            None => rows.push(("GPU".to_owned(), "none found (no nvidia-smi)".to_owned())),
            Some(gpu) => {
                for device in &gpu.devices {
                    let memory = device
                        .memory_mib
                        .map(|m| format!(", {m} MiB"))
                        .unwrap_or_default();
                    rows.push((
                        format!("GPU {}", device.index),
                        format!("{}{memory}", device.name),
                    ));
                }
                rows.push(("GPU driver".to_owned(), or_dash(&gpu.driver_version)));
                rows.push(("CUDA (driver)".to_owned(), or_dash(&gpu.cuda_version)));
            }
        }
        if self.engines.is_empty() {
            rows.push(("engines".to_owned(), "none found".to_owned()));
        }
        for engine in &self.engines {
            rows.push((
                engine.name.to_string(),
                format!("{} ({})", engine.version, engine.source),
            ));
        }
        rows
    }
}

/// Captures the environment of this process now.
pub fn capture() -> Environment {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Environment {
        captured_at: now_rfc3339(),
        hostname: read_trimmed("/proc/sys/kernel/hostname")
            .or_else(|| std::env::var("HOSTNAME").ok()),
        os: std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| os_release_field(&text, "PRETTY_NAME"))
            .or_else(|| Some(std::env::consts::OS.to_owned())),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        arch: std::env::consts::ARCH.to_owned(),
        cpu: Cpu {
            model: cpu_model(&cpuinfo),
            logical_cores: logical_cores(&cpuinfo),
            physical_cores: physical_cores(&cpuinfo),
            available_parallelism: std::thread::available_parallelism().ok().map(|n| n.get()),
            frequency_governor: read_trimmed(
                "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            ),
        },
        memory_bytes: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total_bytes(&text)),
        gpu: nvidia_gpu(),
        engines: detect_engines(),
        build: Build {
            detbench_version: DETBENCH_VERSION.to_owned(),
            rustc: RUSTC_VERSION.to_owned(),
            profile: env!("DETBENCH_BUILD_PROFILE").to_owned(),
            target: env!("DETBENCH_BUILD_TARGET").to_owned(),
        },
    }
}

/// The current time, RFC 3339 in UTC (the form `RunResults::started_at` uses).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A `KEY=value` field of os-release(5), quotes removed.
fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix('=')?;
        Some(value.trim().trim_matches('"').trim_matches('\'').to_owned())
    })
}

fn cpuinfo_values<'a>(cpuinfo: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    cpuinfo.lines().filter_map(move |line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    // x86 says "model name"; some ARM kernels only give "Hardware" or "Processor".
    ["model name", "Hardware", "Processor"]
        .iter()
        .find_map(|key| cpuinfo_values(cpuinfo, key).next().map(str::to_owned))
}

fn logical_cores(cpuinfo: &str) -> Option<usize> {
    let n = cpuinfo_values(cpuinfo, "processor").count();
    (n > 0).then_some(n)
}

fn physical_cores(cpuinfo: &str) -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    let mut package = None;
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "physical id" => package = Some(value.trim().to_owned()),
            "core id" => {
                cores.insert((package.clone(), value.trim().to_owned()));
            }
            _ => {}
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// GPU name, memory and driver from `nvidia-smi --query-gpu`, and the CUDA version from the
/// banner of plain `nvidia-smi` (the query interface has no field for it).
fn nvidia_gpu() -> Option<Gpu> {
    let query = run_with_timeout(
        Command::new("nvidia-smi").args([
            "--query-gpu=index,name,driver_version,memory.total",
            "--format=csv,noheader,nounits",
        ]),
        NVIDIA_SMI_TIMEOUT,
    )?;
    let banner = run_with_timeout(&mut Command::new("nvidia-smi"), NVIDIA_SMI_TIMEOUT);
    parse_nvidia_smi(&query, banner.as_deref())
}

/// Parses the CSV of `nvidia-smi --query-gpu=index,name,driver_version,memory.total
/// --format=csv,noheader,nounits` and the CUDA version from the banner of plain `nvidia-smi`
/// ("| NVIDIA-SMI 550.54.15  Driver Version: 550.54.15  CUDA Version: 12.4 |").
pub fn parse_nvidia_smi(query_csv: &str, banner: Option<&str>) -> Option<Gpu> {
    let mut driver_version = None;
    let mut devices = Vec::new();
    for line in query_csv.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 4 {
            continue;
        }
        let Ok(index) = fields[0].parse() else {
            continue;
        };
        driver_version.get_or_insert_with(|| fields[2].to_owned());
        devices.push(GpuDevice {
            index,
            name: fields[1].to_owned(),
            memory_mib: fields[3].parse().ok(),
        });
    }
    if devices.is_empty() {
        return None;
    }
    let cuda_version = banner.and_then(|text| {
        let rest = &text[text.find("CUDA Version:")? + "CUDA Version:".len()..];
        let version: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        (!version.is_empty()).then_some(version)
    });
    Some(Gpu {
        driver_version,
        cuda_version,
        devices,
    })
}

/// Runs a command, returning its stdout when it succeeds within `timeout` (a hung driver must
/// not hang a benchmark).
fn run_with_timeout(command: &mut Command, timeout: Duration) -> Option<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut stdout = String::new();
                std::io::Read::read_to_string(child.stdout.as_mut()?, &mut stdout).ok()?;
                return status.success().then_some(stdout);
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Engine libraries found on disk: ONNX Runtime where the `ort` crate would load it
/// (`ORT_DYLIB_PATH`, else the project-local `.deps/` of `scripts/setup.sh`), libtorch from
/// `LIBTORCH` or `.deps/torch`. The version is read from the library's file name or the
/// package's version file, as `source` says; an engine that reports its loaded version should
/// overwrite this with [`Environment::set_engine`].
fn detect_engines() -> Vec<EngineVersion> {
    let deps = detbench_assets::deps_dir();
    let mut engines = Vec::new();
    let ort_library = std::env::var_os(detbench_assets::ORT_LIBRARY_ENV)
        .map(PathBuf::from)
        .or_else(|| {
            let capi = deps.as_ref()?.join("onnxruntime/onnxruntime/capi");
            std::fs::read_dir(capi)
                .ok()?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .find(|path| onnxruntime_version_from_file_name(path).is_some())
        });
    if let Some(path) = ort_library
        && let Some(version) = onnxruntime_version_from_file_name(&path)
    {
        engines.push(EngineVersion {
            name: EngineKind::Ort,
            version,
            source: format!("library file {}", path.display()),
        });
    }
    let torch_version_file = std::env::var_os("LIBTORCH")
        .map(|dir| PathBuf::from(dir).join("build-version"))
        .filter(|path| path.is_file())
        .or_else(|| {
            let path = deps.as_ref()?.join("torch/torch/version.py");
            path.is_file().then_some(path)
        });
    if let Some(path) = torch_version_file
        && let Some(version) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| torch_version_from_file(&text))
    {
        engines.push(EngineVersion {
            name: EngineKind::Torch,
            version,
            source: format!("version file {}", path.display()),
        });
    }
    engines
}

/// `libonnxruntime.so.1.31.1` → `1.31.1`.
fn onnxruntime_version_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let version = name.strip_prefix("libonnxruntime.so.")?;
    (version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok()))
        .then(|| version.to_owned())
}

/// libtorch's `build-version` holds the bare version; the wheel's `torch/version.py` has
/// `__version__ = '2.11.0+cpu'`.
fn torch_version_from_file(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("__version__"))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))?;
    let value = line.split_once('=').map_or(line, |(_, v)| v);
    let value = value.trim().trim_matches('\'').trim_matches('"');
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_query_and_banner() {
        let query = "0, NVIDIA H100 80GB HBM3, 550.54.15, 81559\n1, NVIDIA H100 80GB HBM3, 550.54.15, 81559\n";
        let banner = "+-----------------------------------------------------------------------------------------+\n\
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |\n";
        let gpu = parse_nvidia_smi(query, Some(banner)).unwrap();
        assert_eq!(gpu.driver_version.as_deref(), Some("550.54.15"));
        assert_eq!(gpu.cuda_version.as_deref(), Some("12.4"));
        assert_eq!(gpu.devices.len(), 2);
        assert_eq!(gpu.devices[1].index, 1);
        assert_eq!(gpu.devices[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu.devices[0].memory_mib, Some(81559));
        assert_eq!(parse_nvidia_smi("", None), None);
    }

    #[test]
    fn parses_cpuinfo_meminfo_and_os_release() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t: 0\n\n\
processor\t: 1\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t: 0\n\n\
processor\t: 2\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t: 1\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(logical_cores(cpuinfo), Some(3));
        assert_eq!(physical_cores(cpuinfo), Some(2));
        assert_eq!(
            mem_total_bytes("MemTotal:       24607060 kB\nMemFree: 1 kB\n"),
            Some(24607060 * 1024)
        );
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_release_field(os, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn reads_engine_versions_from_file_names() {
        assert_eq!(
            onnxruntime_version_from_file_name(Path::new("/x/libonnxruntime.so.1.31.1")),
            Some("1.31.1".to_owned())
        );
        assert_eq!(
            onnxruntime_version_from_file_name(Path::new("/x/libonnxruntime.so")),
            None
        );
        assert_eq!(
            torch_version_from_file("__version__ = '2.11.0+cpu'\ndebug = False\n").as_deref(),
            Some("2.11.0+cpu")
        );
        assert_eq!(torch_version_from_file("2.4.1\n").as_deref(), Some("2.4.1"));
    }

    /// The capture serialises with its keys sorted at every level, as the JSON object it was
    /// stored as before it was typed.
    #[test]
    fn the_capture_serialises_with_sorted_keys() {
        let mut env = capture();
        env.gpu = parse_nvidia_smi(
            "0, NVIDIA H200, 580.1, 143771\n",
            Some("CUDA Version: 13.0"),
        );
        env.set_engine(EngineKind::Torch, "2.11.0", "test");
        let text = serde_json::to_string(&env).unwrap();
        // serde_json's own maps are sorted: re-serialising the parsed text gives the same text
        // only when every object's keys were written in sorted order.
        let reparsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&reparsed).unwrap(), text);
    }

    #[test]
    fn capture_on_this_machine_finds_the_basics() {
        let env = capture();
        // This machine is Linux with /proc: these must be found, not null.
        assert!(env.kernel.is_some());
        assert!(env.cpu.logical_cores.unwrap() >= 1);
        assert!(env.memory_bytes.unwrap() > 0);
        assert!(env.build.rustc.starts_with("rustc "), "{}", env.build.rustc);
        assert!(!env.build.detbench_version.is_empty());
        let json = env.to_json();
        assert!(json["gpu"].is_null() || json["gpu"]["devices"].is_array());
    }
}
