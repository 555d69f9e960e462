//! Tables rendered from stored results, in the layouts the published benchmarks use: one row
//! per model and setting (like torchvision's weights table or the TF2 Model Zoo table), and
//! side-by-side comparisons with ratios ("mAP (None vs GPU)", "Latency mean (None vs GPU)";
//! one column per device, like torchvision's latency table). Each renders as Markdown, CSV or
//! JSON.

use crate::store::ResultRecord;
use serde::Serialize;
use std::collections::BTreeMap;

/// One table cell. Numbers keep full precision; `decimals` is how Markdown shows them.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number {
        value: f64,
        decimals: usize,
    },
    /// `value / baseline`, shown as "0.52x".
    Ratio(f64),
    Empty,
}

impl Cell {
    fn number(value: Option<f64>, decimals: usize) -> Cell {
        value.map_or(Cell::Empty, |value| Cell::Number { value, decimals })
    }

    fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    fn markdown(&self) -> String {
        match self {
            Cell::Text(t) => t.replace('|', "\\|"),
            Cell::Number { value, decimals } => format!("{value:.decimals$}"),
            Cell::Ratio(r) => format!("{r:.2}x"),
            Cell::Empty => "-".to_owned(),
        }
    }

    /// Full precision for machines.
    fn plain(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Number { value, .. } | Cell::Ratio(value) => value.to_string(),
            Cell::Empty => String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Text(t) => serde_json::Value::String(t.clone()),
            Cell::Number { value, .. } | Cell::Ratio(value) => serde_json::Number::from_f64(*value)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Cell::Empty => serde_json::Value::Null,
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Cell::Number { .. } | Cell::Ratio(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Sentences printed under the table (Markdown) or carried along (JSON).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Csv,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "markdown" | "md" => Ok(Format::Markdown),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(format!(
                "unknown format `{s}`: expected markdown, csv or json"
            )),
        }
    }
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Renders tables one after another (CSV: each preceded by a `# title` line and separated by
/// a blank line; JSON: an array of `{title, columns, rows, notes}`).
pub fn render(tables: &[Table], format: Format) -> String {
    match format {
        Format::Markdown => tables
            .iter()
            .map(render_markdown)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Csv => tables.iter().map(render_csv).collect::<Vec<_>>().join("\n"),
        Format::Json => {
            #[derive(Serialize)]
            struct JsonTable<'a> {
                title: &'a str,
                columns: &'a [String],
                rows: Vec<Vec<serde_json::Value>>,
                notes: &'a [String],
            }
            let json: Vec<JsonTable> = tables
                .iter()
                .map(|t| JsonTable {
                    title: &t.title,
                    columns: &t.columns,
                    rows: t
                        .rows
                        .iter()
                        .map(|r| r.iter().map(Cell::json).collect())
                        .collect(),
                    notes: &t.notes,
                })
                .collect();
            let mut text = serde_json::to_string_pretty(&json).expect("tables serialise");
            text.push('\n');
            text
        }
    }
}

fn render_markdown(table: &Table) -> String {
    let mut out = format!("### {}\n\n", table.title);
    out.push_str(&format!("| {} |\n", table.columns.join(" | ")));
    let align: Vec<&str> = (0..table.columns.len())
        .map(|c| {
            let numeric = table
                .rows
                .iter()
                .any(|r| r.get(c).is_some_and(Cell::is_numeric));
            if numeric { "---:" } else { "---" }
        })
        .collect();
    out.push_str(&format!("|{}|\n", align.join("|")));
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(Cell::markdown).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    for note in &table.notes {
        out.push_str(&format!("\n{note}\n"));
    }
    out
}

fn render_csv(table: &Table) -> String {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    writer
        .write_record(&table.columns)
        .expect("writing to memory");
    for row in &table.rows {
        writer
            .write_record(row.iter().map(Cell::plain))
            .expect("writing to memory");
    }
    let body = String::from_utf8(writer.into_inner().expect("flushing to memory"))
        .expect("CSV of UTF-8 strings is UTF-8");
    format!("# {}\n{body}", table.title)
}

/// A pycocotools stat (fraction) as published tables print it: percent, one decimal.
fn ap_cell(value: Option<f64>) -> Cell {
    // pycocotools prints -1 where there is no ground truth; that is "no value", not -100.
    Cell::number(value.filter(|v| *v >= 0.0).map(|v| v * 100.0), 1)
}

fn ms_cell(value: Option<f64>) -> Cell {
    Cell::number(value, 2)
}

/// The results table: one row per stored result, published rows labelled as such.
pub fn results_table(records: &[ResultRecord]) -> Table {
    let has = |iou: &str| records.iter().any(|r| r.accuracy.contains_key(iou));
    let (has_segm, has_kp) = (has("segm"), has("keypoints"));
    let mut columns: Vec<String> = [
        "Model",
        "Backend",
        "Device",
        "Precision",
        "Batch",
        "Threads",
        "Box AP",
        "AP50",
    ]
    .map(String::from)
    .to_vec();
    if has_segm {
        columns.push("Mask AP".into());
    }
    if has_kp {
        columns.push("Keypoint AP".into());
    }
    columns.extend(
        [
            "Latency mean (ms)",
            "Latency p99 (ms)",
            "Throughput (img/s)",
            "Images",
            "Run",
        ]
        .map(String::from),
    );
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![Cell::text(&r.model)];
            match r.published_label() {
                Some(label) => {
                    row.push(Cell::text(label));
                    row.push(Cell::text(
                        r.published
                            .as_ref()
                            .and_then(|p| p.device_label.clone())
                            .unwrap_or_default(),
                    ));
                    row.push(Cell::Empty);
                    row.push(Cell::Empty);
                    row.push(Cell::Empty);
                }
                None => {
                    row.push(Cell::text(backend_label(r)));
                    row.push(Cell::text(r.device.clone().unwrap_or_default()));
                    row.push(Cell::text(r.precision.clone().unwrap_or_default()));
                    row.push(Cell::number(r.batch_size.map(|b| b as f64), 0));
                    row.push(Cell::number(r.threads.map(|t| t as f64), 0));
                }
            }
            row.push(ap_cell(r.stat("bbox", "AP")));
            row.push(ap_cell(r.stat("bbox", "AP50")));
            if has_segm {
                row.push(ap_cell(r.stat("segm", "AP")));
            }
            if has_kp {
                row.push(ap_cell(r.stat("keypoints", "AP")));
            }
            row.push(ms_cell(r.latency_mean_ms()));
            row.push(ms_cell(r.latency_p99_ms()));
            row.push(Cell::number(
                r.latency.as_ref().map(|l| l.images_per_second),
                1,
            ));
            row.push(Cell::number(r.dataset_images.map(|n| n as f64), 0));
            row.push(Cell::number(Some(r.run_id as f64), 0));
            row
        })
        .collect();
    let mut notes = vec![
        "AP in percent (pycocotools AP@[.50:.95], maxDets 100). Latency end to end per call \
         (one batch: per image at batch 1) as measured by detbench; published rows show the \
         source's own figure (per image). Throughput is images per second at the row's batch."
            .to_owned(),
    ];
    let invalid: Vec<String> = records
        .iter()
        .filter(|r| r.latency.as_ref().is_some_and(|l| !l.valid))
        .map(|r| {
            let notes = &r.latency.as_ref().expect("filtered").validity_notes;
            format!("run {} {}: {}", r.run_id, r.model, notes.join("; "))
        })
        .collect();
    if !invalid.is_empty() {
        notes.push(format!("Latency not valid for: {}.", invalid.join(" / ")));
    }
    Table {
        title: "Results".to_owned(),
        columns,
        rows,
        notes,
    }
}

/// Per-stage latency means, one row per measured result.
pub fn stages_table(records: &[ResultRecord]) -> Table {
    let stages = ["decode", "preprocess", "inference", "postprocess"];
    let mut columns: Vec<String> = [
        "Model",
        "Backend",
        "Device",
        "Precision",
        "Batch",
        "Threads",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(stages.iter().map(|s| format!("{s} (ms)")));
    columns.push("End to end (ms)".to_owned());
    columns.push("Run".to_owned());
    let rows = records
        .iter()
        .filter(|r| !r.is_published() && r.latency.is_some())
        .map(|r| {
            let mut row = vec![
                Cell::text(&r.model),
                Cell::text(backend_label(r)),
                Cell::text(r.device.clone().unwrap_or_default()),
                Cell::text(r.precision.clone().unwrap_or_default()),
                Cell::number(r.batch_size.map(|b| b as f64), 0),
                Cell::number(r.threads.map(|t| t as f64), 0),
            ];
            row.extend(stages.iter().map(|s| ms_cell(r.stage_mean_ms(s))));
            row.push(ms_cell(r.latency_mean_ms()));
            row.push(Cell::number(Some(r.run_id as f64), 0));
            row
        })
        .collect();
    Table {
        title: "Latency by stage (mean per call)".to_owned(),
        columns,
        rows,
        notes: vec![
            "Stages and end to end are timed per call (per batch); end to end includes decode \
             only when the run decoded on the timed thread."
                .to_owned(),
        ],
    }
}

/// Which images a result was measured on: the image count and the annotation file's sha256
/// prefix, e.g. `206 images, ann 3f2a9c01`.
fn dataset_label(r: &ResultRecord) -> String {
    let images = r
        .dataset_images
        .map_or_else(|| "? images".to_owned(), |n| format!("{n} images"));
    match &r.annotation_sha256 {
        Some(sha) => format!("{images}, ann {}", &sha[..sha.len().min(8)]),
        None => images,
    }
}

fn backend_label(r: &ResultRecord) -> String {
    match (&r.engine, &r.engine_version) {
        (Some(engine), Some(version)) if !version.is_empty() => format!("{engine} {version}"),
        (Some(engine), _) => engine.clone(),
        _ => String::new(),
    }
}

/// What `--compare` puts side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Backend,
    Precision,
    Device,
    Batch,
    /// Engine intra-op threads.
    Threads,
}

impl std::str::FromStr for Dimension {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "backend" | "engine" => Ok(Dimension::Backend),
            "precision" => Ok(Dimension::Precision),
            "device" => Ok(Dimension::Device),
            "batch" | "batch-size" => Ok(Dimension::Batch),
            "threads" => Ok(Dimension::Threads),
            _ => Err(format!(
                "unknown comparison `{s}`: expected backend, precision, device, batch or threads"
            )),
        }
    }
}

impl Dimension {
    fn name(self) -> &'static str {
        match self {
            Dimension::Backend => "backend",
            Dimension::Precision => "precision",
            Dimension::Device => "device",
            Dimension::Batch => "batch",
            Dimension::Threads => "threads",
        }
    }

    /// The value of this dimension for a measured result.
    fn value(self, r: &ResultRecord) -> String {
        match self {
            Dimension::Backend => r.engine.clone().unwrap_or_default(),
            Dimension::Precision => r.precision.clone().unwrap_or_default(),
            Dimension::Device => r.device.clone().unwrap_or_default(),
            Dimension::Batch => r
                .batch_size
                .map(|b| format!("batch {b}"))
                .unwrap_or_default(),
            Dimension::Threads => match r.threads {
                None => "threads: engine default".to_owned(),
                Some(1) => "1 thread".to_owned(),
                Some(t) => format!("{t} threads"),
            },
        }
    }

    /// Sort key putting the natural baseline first: CPU before GPUs, fp32 before fp16,
    /// batch 1 before larger batches, fewer threads before more (the engine default last).
    fn order(self, value: &str) -> (i64, String) {
        match self {
            Dimension::Device => (i64::from(value != "cpu"), value.to_owned()),
            Dimension::Precision => (
                match value {
                    "fp32" => 0,
                    "fp16" => 1,
                    _ => 2,
                },
                value.to_owned(),
            ),
            Dimension::Batch => (
                value
                    .trim_start_matches("batch ")
                    .parse()
                    .unwrap_or(i64::MAX),
                value.to_owned(),
            ),
            Dimension::Threads => (
                value
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(i64::MAX),
                value.to_owned(),
            ),
            Dimension::Backend => (0, value.to_owned()),
        }
    }
}

/// Side-by-side tables comparing `dimension`: one column per value (baseline first), one ratio
/// column per other value (`value / baseline`), and published records as extra columns for the
/// same model. Where a setting was measured several times, the latest run counts.
pub fn comparison_tables(
    records: &[ResultRecord],
    dimension: Dimension,
    baseline: Option<&str>,
) -> Result<Vec<Table>, String> {
    let measured: Vec<&ResultRecord> = records.iter().filter(|r| !r.is_published()).collect();
    let mut values: Vec<String> = measured.iter().map(|r| dimension.value(r)).collect();
    values.sort_by_key(|v| dimension.order(v));
    values.dedup();
    if let Some(baseline) = baseline {
        let position = values.iter().position(|v| v == baseline).ok_or_else(|| {
            format!(
                "baseline `{baseline}` is not among the {} values of the selected results ({})",
                dimension.name(),
                values.join(", ")
            )
        })?;
        let chosen = values.remove(position);
        values.insert(0, chosen);
    }
    // With one measured value, published columns can still make a comparison.
    let published_models: Vec<&str> = records
        .iter()
        .filter(|r| r.is_published())
        .map(|r| r.model.as_str())
        .collect();
    let has_published = measured
        .iter()
        .any(|r| published_models.contains(&r.model.as_str()));
    if values.is_empty() || (values.len() < 2 && !has_published) {
        return Err(format!(
            "nothing to compare: the selected results have {} {} value(s) ({}) and no published \
             record for their models; widen the filters or record runs at another {}",
            values.len(),
            dimension.name(),
            values.join(", "),
            dimension.name()
        ));
    }

    // Rows: the settings other than the compared one. A setting that is the same for every
    // measured result is left out of the row label.
    let others: Vec<Dimension> = [
        Dimension::Backend,
        Dimension::Device,
        Dimension::Precision,
        Dimension::Batch,
        Dimension::Threads,
    ]
    .into_iter()
    .filter(|d| *d != dimension)
    .filter(|d| {
        let mut seen: Vec<String> = measured.iter().map(|r| d.value(r)).collect();
        seen.sort();
        seen.dedup();
        seen.len() > 1
    })
    .collect();
    // Results on different image sets are never put side by side: when the measured records
    // come from more than one dataset (annotation file and image count), the dataset joins the
    // row key and gets its own column.
    let datasets_differ = {
        let mut seen: Vec<String> = measured.iter().map(|r| dataset_label(r)).collect();
        seen.sort();
        seen.dedup();
        seen.len() > 1
    };
    let row_key = |r: &ResultRecord| {
        let mut key = vec![r.model.clone()];
        key.extend(others.iter().map(|d| d.value(r)));
        if datasets_differ {
            key.push(dataset_label(r));
        }
        key
    };
    // (row key) -> (column value) -> latest record.
    let mut grid: BTreeMap<Vec<String>, BTreeMap<String, &ResultRecord>> = BTreeMap::new();
    for r in &measured {
        let slot = grid
            .entry(row_key(r))
            .or_default()
            .entry(dimension.value(r));
        let newer = |old: &&ResultRecord| (r.run_id, r.result_id) > (old.run_id, old.result_id);
        match slot {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(r);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if newer(o.get()) {
                    o.insert(r);
                }
            }
        }
    }
    // Published columns, for the models that have measured rows.
    let mut published: BTreeMap<String, BTreeMap<String, &ResultRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_published()) {
        let label = r.published_label().expect("published record");
        published
            .entry(label)
            .or_default()
            .insert(r.model.clone(), r);
    }
    let published_labels: Vec<String> = published
        .iter()
        .filter(|(_, by_model)| grid.keys().any(|k| by_model.contains_key(&k[0])))
        .map(|(label, _)| label.clone())
        .collect();

    let versus = values.join(" vs ");
    let mut header = vec!["Model".to_owned()];
    header.extend(others.iter().map(|d| capitalise(d.name())));
    if datasets_differ {
        header.push("Dataset".to_owned());
    }
    let mut metrics = vec![Metric {
        title: "Box AP",
        get: |r| ap_percent(r.stat("bbox", "AP")),
        decimals: 1,
        with_published: true,
    }];
    if records.iter().any(|r| r.accuracy.contains_key("segm")) {
        metrics.push(Metric {
            title: "Mask AP",
            get: |r| ap_percent(r.stat("segm", "AP")),
            decimals: 1,
            with_published: true,
        });
    }
    if records.iter().any(|r| r.accuracy.contains_key("keypoints")) {
        metrics.push(Metric {
            title: "Keypoint AP",
            get: |r| ap_percent(r.stat("keypoints", "AP")),
            decimals: 1,
            with_published: true,
        });
    }
    metrics.push(Metric {
        title: "Latency mean, ms per call",
        get: ResultRecord::latency_mean_ms,
        decimals: 2,
        with_published: true,
    });
    // Published sources give one latency figure; the p99 table has measured columns only.
    metrics.push(Metric {
        title: "Latency p99, ms per call",
        get: ResultRecord::latency_p99_ms,
        decimals: 2,
        with_published: false,
    });

    let mut tables = Vec::new();
    for Metric {
        title: metric,
        get,
        decimals,
        with_published,
    } in &metrics
    {
        let mut columns = header.clone();
        columns.extend(values.iter().cloned());
        columns.extend(values[1..].iter().map(|v| format!("{v} / {}", values[0])));
        // A published column appears where its source gives this metric for a row's model.
        let published_here: Vec<String> = published_labels
            .iter()
            .filter(|label| {
                *with_published
                    && grid.keys().any(|key| {
                        published[*label]
                            .get(&key[0])
                            .and_then(|r| get(r))
                            .is_some()
                    })
            })
            .cloned()
            .collect();
        columns.extend(published_here.iter().cloned());
        let mut rows = Vec::new();
        for (key, by_value) in &grid {
            let cells: Vec<Option<f64>> = values
                .iter()
                .map(|v| by_value.get(v).and_then(|r| get(r)))
                .collect();
            if cells.iter().all(Option::is_none) {
                continue;
            }
            let mut row: Vec<Cell> = key.iter().map(Cell::text).collect();
            row.extend(cells.iter().map(|c| Cell::number(*c, *decimals)));
            row.extend(cells[1..].iter().map(|c| match (c, cells[0]) {
                (Some(v), Some(base)) if base != 0.0 => Cell::Ratio(v / base),
                _ => Cell::Empty,
            }));
            row.extend(published_here.iter().map(|label| {
                Cell::number(
                    published[label].get(&key[0]).and_then(|r| get(r)),
                    *decimals,
                )
            }));
            rows.push(row);
        }
        let mut notes = vec![format!(
            "Ratios are column / {}{}.",
            values[0],
            if metric.starts_with("Latency") {
                " (below 1: faster than the baseline)"
            } else {
                ""
            }
        )];
        if metric.starts_with("Latency") {
            let flagged: Vec<String> = grid
                .iter()
                .flat_map(|(key, by_value)| {
                    by_value.iter().filter_map(move |(value, r)| {
                        let latency = r.latency.as_ref()?;
                        (!latency.valid).then(|| {
                            format!(
                                "{} at {value}: {}",
                                key.join(", "),
                                latency.validity_notes.join("; ")
                            )
                        })
                    })
                })
                .collect();
            if !flagged.is_empty() {
                notes.push(format!(
                    "Timing flagged as not valid by the harness: {}.",
                    flagged.join(" / ")
                ));
            }
        }
        if !published_here.is_empty() {
            notes.push(
                "Published columns are the sources' own figures on their own hardware and \
                 dataset, not measured by detbench."
                    .to_owned(),
            );
        }
        tables.push(Table {
            title: format!("{metric} ({versus})"),
            columns,
            rows,
            notes,
        });
    }
    Ok(tables)
}

/// One quantity compared side by side.
struct Metric {
    title: &'static str,
    get: fn(&ResultRecord) -> Option<f64>,
    decimals: usize,
    /// Whether published sources can give it (they give no p99).
    with_published: bool,
}

fn ap_percent(value: Option<f64>) -> Option<f64> {
    value.filter(|v| *v >= 0.0).map(|v| v * 100.0)
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
