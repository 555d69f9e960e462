//! `detbench run --devices cuda:0,cuda:1,...` (or `cuda:all`, or `cpu,cpu` for CPU workers):
//! several devices of one host at once, as a fleet would use them.
//!
//! 1. The first device alone runs the whole run (one worker process, `detbench run --device
//!    D`): the single-device rows, scored as any run.
//! 2. One worker process per device then runs at the same time, each on its shard of the
//!    images (`--shard i/N --device Di`), writing shard.json.
//! 3. The shards are merged (`detbench merge`'s code): a row "N devices" beside each
//!    single-device row, with the same accuracy (bit for bit), the pooled latency, images/s
//!    over the span of the workers' timed passes, and the scaling efficiency: N-device images/s
//!    over N times the single device's.
//!
//! Workers are this binary, re-run with the same arguments less the ones this module sets;
//! their output goes to `<out>/devices/<worker>.log`, their files under `<out>/devices/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;

use anyhow::{Context, bail};
use detbench_backends::Device;
use detbench_bench::results::{ModelResult, RunResults, Status};
use detbench_bench::shard::{SHARD_FILE, Scaling, Shard};

use super::Options;
use crate::cmd::merge::{GroundTruthFiles, merge_files};

/// `--devices`: devices listed, or every CUDA device (`cuda:all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceList {
    Listed(Vec<Device>),
    AllCuda,
}

impl FromStr for DeviceList {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "cuda:all" {
            return Ok(DeviceList::AllCuda);
        }
        let expected = "expected e.g. cuda:0,cuda:1, cuda:all or cpu,cpu";
        let devices = s
            .split(',')
            .map(|d| d.trim().parse::<Device>())
            .collect::<Result<Vec<_>, _>>()
            .context(expected)?;
        if devices.len() < 2 {
            bail!("give at least two devices, {expected} (one device: --device)");
        }
        Ok(DeviceList::Listed(devices))
    }
}

impl DeviceList {
    /// The devices; `cuda:all` counts the GPUs `$CUDA_VISIBLE_DEVICES` leaves visible, else
    /// those `nvidia-smi` lists.
    fn resolve(&self) -> anyhow::Result<Vec<Device>> {
        match self {
            DeviceList::Listed(devices) => Ok(devices.clone()),
            DeviceList::AllCuda => {
                let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
                let count = match visible.as_deref().map(str::trim) {
                    Some(list) if !list.is_empty() => list.split(',').count(),
                    _ => detbench_env::capture()
                        .gpu
                        .map_or(0, |gpu| gpu.devices.len()),
                };
                if count < 2 {
                    bail!(
                        "--devices cuda:all: {count} CUDA device(s) visible (nvidia-smi, \
                         $CUDA_VISIBLE_DEVICES); it needs at least two"
                    );
                }
                Ok((0..count).map(Device::Cuda).collect())
            }
        }
    }
}

/// Options this module sets for its workers (taken out of the command line before theirs is
/// added): with a value, and flags.
const WORKER_VALUED: [&str; 7] = [
    "--devices",
    "--device",
    "--out",
    "--db",
    "--shard",
    "--shard-count",
    "--save-detections",
];
const WORKER_FLAGS: [&str; 3] = ["--no-store", "--quiet", "-q"];

/// The arguments after the program name, less the options a worker gets its own value of
/// (`--save-detections` kept when `keep_save`).
fn worker_args(args: &[String], keep_save: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let name = arg.split_once('=').map_or(arg.as_str(), |(name, _)| name);
        if keep_save && name == "--save-detections" {
            out.push(arg.clone());
            if !arg.contains('=') {
                out.extend(iter.next().cloned());
            }
            continue;
        }
        if WORKER_VALUED.contains(&name) {
            if !arg.contains('=') {
                iter.next();
            }
            continue;
        }
        if WORKER_FLAGS.contains(&arg.as_str()) {
            continue;
        }
        out.push(arg.clone());
    }
    out
}

/// A worker process and where its output goes.
struct Worker {
    label: String,
    child: Child,
    log: PathBuf,
}

fn spawn(
    label: String,
    base: &[String],
    device: Device,
    shard: Option<Shard>,
    out: &Path,
) -> anyhow::Result<Worker> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let log = out.with_extension("log");
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = Command::new(std::env::current_exe().context("finding detbench")?);
    command
        .args(base)
        .args(["--device", &device.to_string(), "--no-store", "--quiet"])
        .arg("--out")
        .arg(out);
    if let Some(shard) = shard {
        command.args(["--shard", &shard.to_string()]);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting worker {label}"))?;
    eprintln!(
        "--devices: worker {label}: pid {}, log {}",
        child.id(),
        log.display()
    );
    Ok(Worker { label, child, log })
}

fn wait(worker: &mut Worker) -> anyhow::Result<ExitStatus> {
    worker
        .child
        .wait()
        .with_context(|| format!("waiting for worker {}", worker.label))
}

/// The last lines of a worker's log, for an error.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n    ")
}

pub fn main(options: Options, devices: DeviceList) -> anyhow::Result<()> {
    let devices = devices.resolve()?;
    let n = devices.len();
    let started_at = detbench_env::now_rfc3339();
    let out_dir = options
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(started_at.replace(':', "-")));
    let store = match options.no_store {
        true => None,
        false => Some(crate::cmd::store::resolve(options.db.as_ref())?),
    };
    if let Some(store) = &store {
        crate::cmd::store::check_reachable(store);
    }
    let work = out_dir.join("devices");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listed: Vec<String> = devices.iter().map(Device::to_string).collect();
    eprintln!(
        "--devices: {n} devices ({}): {} alone over all images first, then {n} workers at once, \
         one shard each",
        listed.join(", "),
        devices[0]
    );
    let mut single = spawn(
        format!("{} alone", devices[0]),
        &worker_args(&args, true),
        devices[0],
        None,
        &work.join("single"),
    )?;
    let status = wait(&mut single)?;
    let single_json = work.join("single").join("results.json");
    let mut results: RunResults = std::fs::read(&single_json)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .with_context(|| {
            format!(
                "worker {} ended ({status}) without {}:\n    {}",
                single.label,
                single_json.display(),
                log_tail(&single.log)
            )
        })?;
    let merged = run_workers(&args, &devices, &work);
    results.command_line = std::env::args().collect();
    results.started_at = started_at;
    combine(&mut results, merged, n);
    super::write_results(&out_dir, &results, false, &[], store.as_ref())?;
    super::fail_on_failed_rows(&results)
}

/// Runs one worker per device at once, each on its shard, and merges their shards.
fn run_workers(args: &[String], devices: &[Device], work: &Path) -> anyhow::Result<RunResults> {
    let n = devices.len();
    let base = worker_args(args, false);
    let mut workers = Vec::new();
    for (index, &device) in devices.iter().enumerate() {
        let shard = Shard { index, count: n };
        let label = format!("shard {shard} on {device}");
        let dir = work.join(format!("shard-{index}"));
        workers.push((dir.clone(), spawn(label, &base, device, Some(shard), &dir)?));
    }
    let mut files = Vec::new();
    let mut failures = Vec::new();
    for (dir, worker) in &mut workers {
        let status = wait(worker)?;
        let file = dir.join(SHARD_FILE);
        if file.is_file() {
            files.push(file);
        } else {
            failures.push(format!(
                "worker {} ended ({status}) without {SHARD_FILE}:\n    {}",
                worker.label,
                log_tail(&worker.log)
            ));
        }
    }
    let merged = merge_files(&files, &[], false, &GroundTruthFiles::default());
    match merged {
        Ok((results, _)) => Ok(results),
        Err(e) if failures.is_empty() => Err(e),
        Err(e) => Err(anyhow::anyhow!("{e}\n  {}", failures.join("\n  "))),
    }
}

/// Puts each merged row after its single-device row, with the scaling between them; when the
/// workers failed, a failed "N devices" row says why.
fn combine(results: &mut RunResults, merged: anyhow::Result<RunResults>, n: usize) {
    let singles = std::mem::take(&mut results.models);
    let mut merged_rows = match merged {
        Ok(merged) => {
            results.sharding = merged.sharding;
            merged.models
        }
        Err(e) => {
            eprintln!("--devices: the {n}-device rows failed: {e:#}");
            singles
                .iter()
                .map(|single| failed_devices_row(single, n, &format!("{e:#}")))
                .collect()
        }
    };
    for single in singles {
        let position = merged_rows
            .iter()
            .position(|m| m.name == single.name && m.batch_size == single.batch_size);
        let mut row = match position {
            Some(position) => merged_rows.remove(position),
            None => failed_devices_row(&single, n, "no merged row"),
        };
        let sharding = row.sharding.get_or_insert_with(|| empty_sharding(n));
        sharding.devices = Some(n);
        if let (Some(one), Some(all)) = (&single.latency, &row.latency) {
            sharding.scaling = Some(Scaling::new(
                n,
                all.images_per_second,
                one.images_per_second,
            ));
        }
        results.models.push(single);
        results.models.push(row);
    }
    results.models.extend(merged_rows);
}

fn failed_devices_row(single: &ModelResult, n: usize, reason: &str) -> ModelResult {
    let mut row = single.clone();
    row.status = Status::Failed(format!("{n} devices: {reason}"));
    row.bbox = None;
    row.segm = None;
    row.keypoints = None;
    row.latency = None;
    row.detections_per_image = None;
    row.reference_agreement = None;
    row.sharding = Some(empty_sharding(n));
    row
}

fn empty_sharding(n: usize) -> detbench_bench::shard::ModelSharding {
    detbench_bench::shard::ModelSharding {
        devices: Some(n),
        wall_seconds: 0.0,
        sum_of_shard_images_per_second: 0.0,
        shards: Vec::new(),
        scaling: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_the_command_line_less_what_they_are_given() {
        let args: Vec<String> = [
            "run",
            "--model",
            "yolox_nano",
            "--devices",
            "cpu,cpu",
            "--out=runs/x",
            "--db",
            "postgres://h/db",
            "-q",
            "--limit",
            "20",
            "--save-detections",
            "d.json",
            "--no-store",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            worker_args(&args, false),
            ["run", "--model", "yolox_nano", "--limit", "20"]
        );
        assert_eq!(
            worker_args(&args, true),
            [
                "run",
                "--model",
                "yolox_nano",
                "--limit",
                "20",
                "--save-detections",
                "d.json"
            ]
        );
    }

    #[test]
    fn device_lists_parse() {
        assert_eq!(
            "cpu,cpu".parse::<DeviceList>().unwrap(),
            DeviceList::Listed(vec![Device::Cpu, Device::Cpu])
        );
        assert_eq!(
            "cuda:all".parse::<DeviceList>().unwrap(),
            DeviceList::AllCuda
        );
        assert!("cuda:0".parse::<DeviceList>().is_err());
        assert!("cuda:0,tpu".parse::<DeviceList>().is_err());
    }
}
