//! `detbench report`: tables (Markdown, CSV or JSON) and charts rendered from the results
//! store, filtered by model, backend, device, precision, batch or run; `--compare` puts one
//! setting side by side with ratios, published records alongside; training runs (`detbench
//! train`) get the training tables after the inference ones.

use anyhow::{Context, bail};
use detbench_backends::{Device, EngineKind, Precision};
use detbench_report::store::{Filter, Store, StoreLocation};
use detbench_report::tables::{
    Cell, Dimension, Format, Table, TrainingEntry, comparison_tables, render, results_table,
    stages_table, training_tables,
};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Results store: an SQLite file or a postgres:// URL [default: $DETBENCH_DB, else
    /// detbench.db in the platform data folder].
    #[arg(long, value_name = "PATH|URL")]
    db: Option<StoreLocation>,

    /// Only these models (comma-separated or repeated).
    #[arg(short, long, value_delimiter = ',')]
    model: Vec<String>,

    /// Only these engines (ort or onnxruntime, torch or libtorch).
    #[arg(long, value_enum, value_delimiter = ',')]
    backend: Vec<EngineKind>,

    /// Only these devices (cpu, cuda:0, ...).
    #[arg(long, value_delimiter = ',')]
    device: Vec<Device>,

    /// Only these precisions.
    #[arg(long, value_enum, value_delimiter = ',')]
    precision: Vec<Precision>,

    /// Only these batch sizes.
    #[arg(long, value_delimiter = ',')]
    batch: Vec<usize>,

    /// Only these runs (ids from `--list-runs`).
    #[arg(long, value_delimiter = ',')]
    run: Vec<i64>,

    /// Side-by-side tables across one setting, with ratios to the baseline column.
    #[arg(long, value_enum)]
    compare: Option<Dimension>,

    /// The baseline column of `--compare` (e.g. `cpu`, `fp32`, `onnxruntime`, `batch 1`,
    /// `1 threads`) [default: cpu / fp32 / batch 1 / fewest threads / the first engine
    /// alphabetically].
    #[arg(long)]
    baseline: Option<String>,

    /// Table format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,

    /// Write the tables to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Also write charts (latency, frontier, stages; PNG and SVG) into this folder.
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,

    /// Add the per-stage latency table.
    #[arg(long)]
    stages: bool,

    /// Leave out published records (from `detbench import-md`).
    #[arg(long)]
    no_published: bool,

    /// Include failed results.
    #[arg(long)]
    include_failed: bool,

    /// List the recorded runs instead of results.
    #[arg(long)]
    list_runs: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let db = super::store::resolve(args.db.as_ref())?;
    if let Some(path) = db.path()
        && !path.exists()
    {
        bail!(
            "no results store at {}: record runs with `detbench run` first, or name the store \
             with --db or $DETBENCH_DB",
            path.display()
        );
    }
    let store = Store::connect(&db)?;
    let format = args.format;
    if args.list_runs {
        return write_output(&args, &render(&[runs_table(&store)?], format));
    }
    let filter = Filter {
        models: args.model.clone(),
        engines: args.backend.clone(),
        devices: args.device.clone(),
        precisions: args.precision.clone(),
        batch_sizes: args.batch.clone(),
        runs: args.run.clone(),
        include_published: !args.no_published,
        include_failed: args.include_failed,
    };
    let records = store.results(&filter)?;
    let training = store.training_runs(&filter)?;
    if records.is_empty() && training.is_empty() {
        bail!(
            "no results in {db} match the filters (`detbench report --list-runs` shows what is \
             recorded)"
        );
    }
    let mut tables = Vec::new();
    if !records.is_empty() {
        tables = match args.compare {
            Some(dimension) => comparison_tables(&records, dimension, args.baseline.as_deref())?,
            None => vec![results_table(&records)],
        };
        if args.stages {
            tables.push(stages_table(&records));
        }
    }
    // Training runs (`detbench train`) in the layout of `detbench train`'s own tables.
    let training = TrainingEntry::of_records(&training);
    tables.extend(training_tables(&training));
    write_output(&args, &render(&tables, format))?;
    if let Some(dir) = &args.charts {
        let context = || format!("writing charts to {}", dir.display());
        let mut written = Vec::new();
        if !records.is_empty() {
            written.extend(
                detbench_report::charts::write_charts(&records, dir).with_context(context)?,
            );
        }
        written.extend(
            detbench_report::charts::write_loss_curves(&training, dir).with_context(context)?,
        );
        for path in written {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn write_output(args: &Args, text: &str) -> anyhow::Result<()> {
    match &args.out {
        Some(path) => {
            detbench_report::write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {}", path.display());
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

fn runs_table(store: &Store) -> anyhow::Result<Table> {
    let rows = store
        .runs()?
        .into_iter()
        .map(|run| {
            vec![
                Cell::Number {
                    value: run.id as f64,
                    decimals: 0,
                },
                Cell::Text(run.started_at),
                Cell::Text(run.detbench_version),
                Cell::Text(run.hostname.unwrap_or_default()),
                Cell::Number {
                    value: run.results as f64,
                    decimals: 0,
                },
                Cell::Number {
                    value: run.training as f64,
                    decimals: 0,
                },
                Cell::Text(match run.published_source {
                    Some(source) => format!("published: {source}"),
                    None => run.command_line.join(" "),
                }),
            ]
        })
        .collect();
    Ok(Table {
        title: format!("Runs in {}", store.location()),
        columns: [
            "Run",
            "Started (UTC)",
            "detbench",
            "Host",
            "Results",
            "Training",
            "Command",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: Vec::new(),
    })
}
