//! Side-by-side comparisons of one setting, as the published benchmarks lay them out ("mAP (None
//! vs GPU)", "Latency mean (None vs GPU)"; one column per device, like torchvision's latency
//! table): one column per value of the compared setting (baseline first), one ratio column per
//! other value (`value / baseline`), and published records as extra columns for the same model.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use detbench_backends::{Device, Precision};
use detbench_eval::IouType;

use super::stored::{dataset_label, option_text};
use super::{Cell, Table};
use crate::store::ResultRecord;

detbench_backends::named_enum! {
    /// What `--compare` puts side by side.
    pub enum Dimension as "comparison" {
        Backend = "backend" | "engine",
        Precision = "precision",
        Device = "device",
        Batch = "batch" | "batch-size",
        /// Engine intra-op threads.
        Threads = "threads",
    }
}

#[cfg(feature = "clap")]
detbench_backends::clap_value_enum!(Dimension);

/// Why no comparison could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    #[error(
        "baseline `{baseline}` is not among the {dimension} values of the selected results \
         ({values})"
    )]
    UnknownBaseline {
        baseline: String,
        dimension: Dimension,
        values: String,
    },
    #[error(
        "nothing to compare: the selected results have {count} {dimension} value(s) ({values}) \
         and no published record for their models; widen the filters or record runs at another \
         {dimension}"
    )]
    NothingToCompare {
        count: usize,
        dimension: Dimension,
        values: String,
    },
}

/// The settings that label a comparison's rows, in column order.
const ROW_SETTINGS: [Dimension; 5] = [
    Dimension::Backend,
    Dimension::Device,
    Dimension::Precision,
    Dimension::Batch,
    Dimension::Threads,
];

impl Dimension {
    /// The value of this dimension for a measured result, as columns show it.
    fn value(self, r: &ResultRecord) -> String {
        match self {
            Dimension::Backend => option_text(r.engine),
            Dimension::Precision => option_text(r.precision),
            Dimension::Device => r.device_label(),
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

    /// Sort key putting the natural baseline first: CPU before GPUs, fp32 before fp16 (and
    /// int8), batch 1 before larger batches, fewer threads before more (the engine default
    /// last), engines by name.
    fn order(self, r: &ResultRecord) -> (i64, String) {
        let rank = match self {
            Dimension::Device => {
                i64::from(r.device != Some(Device::Cpu)) + 2 * r.devices.unwrap_or(1)
            }
            Dimension::Precision => match r.precision {
                Some(Precision::Fp32) => 0,
                Some(Precision::Fp16) => 1,
                _ => 2,
            },
            Dimension::Batch => r.batch_size.unwrap_or(i64::MAX),
            Dimension::Threads => r.threads.unwrap_or(i64::MAX),
            Dimension::Backend => 0,
        };
        (rank, self.value(r))
    }
}

/// Side-by-side tables comparing `dimension` (see the module documentation). Where a setting
/// was measured several times, the latest run counts.
pub fn comparison_tables(
    records: &[ResultRecord],
    dimension: Dimension,
    baseline: Option<&str>,
) -> Result<Vec<Table>, CompareError> {
    let measured: Vec<&ResultRecord> = records.iter().filter(|r| !r.is_published()).collect();
    let values = compared_values(&measured, dimension, baseline)?;
    // With one measured value, published columns can still make a comparison.
    let has_published = measured.iter().any(|m| {
        records
            .iter()
            .any(|r| r.is_published() && r.model == m.model)
    });
    if values.is_empty() || (values.len() < 2 && !has_published) {
        return Err(CompareError::NothingToCompare {
            count: values.len(),
            dimension,
            values: values.join(", "),
        });
    }
    let grid = Grid::build(records, &measured, dimension);
    let versus = values.join(" vs ");
    Ok(metrics(records)
        .iter()
        .map(|metric| grid.table(metric, &values, &versus))
        .collect())
}

/// The values of `dimension` among the measured records, baseline first: the one asked for,
/// else the natural one ([`Dimension::order`]).
fn compared_values(
    measured: &[&ResultRecord],
    dimension: Dimension,
    baseline: Option<&str>,
) -> Result<Vec<String>, CompareError> {
    let mut keyed: Vec<(i64, String)> = measured.iter().map(|r| dimension.order(r)).collect();
    keyed.sort();
    keyed.dedup();
    let mut values: Vec<String> = keyed.into_iter().map(|(_, value)| value).collect();
    if let Some(baseline) = baseline {
        let position = values.iter().position(|v| v == baseline).ok_or_else(|| {
            CompareError::UnknownBaseline {
                baseline: baseline.to_owned(),
                dimension,
                values: values.join(", "),
            }
        })?;
        let chosen = values.remove(position);
        values.insert(0, chosen);
    }
    Ok(values)
}

/// Whether the records differ in `label`.
fn varies(measured: &[&ResultRecord], label: impl Fn(&ResultRecord) -> String) -> bool {
    let mut seen: Vec<String> = measured.iter().map(|r| label(r)).collect();
    seen.sort();
    seen.dedup();
    seen.len() > 1
}

/// The measured records by row and column, and the published records by source and model.
struct Grid<'a> {
    /// Settings other than the compared one that differ between the records (the same for
    /// every record: left out of the row label).
    others: Vec<Dimension>,
    /// Results on different image sets are never put side by side: when the measured records
    /// come from more than one dataset (annotation file and image count), the dataset joins
    /// the row key and gets its own column.
    datasets_differ: bool,
    /// Row key (model, other settings, dataset) -> column value -> latest record.
    cells: BTreeMap<Vec<String>, BTreeMap<String, &'a ResultRecord>>,
    /// Published label -> model -> record, for the sources that have a row's model.
    published: BTreeMap<String, BTreeMap<String, &'a ResultRecord>>,
}

impl<'a> Grid<'a> {
    fn build(
        records: &'a [ResultRecord],
        measured: &[&'a ResultRecord],
        dimension: Dimension,
    ) -> Self {
        let others = ROW_SETTINGS
            .into_iter()
            .filter(|d| *d != dimension && varies(measured, |r| d.value(r)))
            .collect();
        let mut grid = Grid {
            others,
            datasets_differ: varies(measured, dataset_label),
            cells: BTreeMap::new(),
            published: BTreeMap::new(),
        };
        for r in measured {
            let newer = |old: &&ResultRecord| (r.run_id, r.result_id) > (old.run_id, old.result_id);
            match grid
                .cells
                .entry(grid.row_key(r))
                .or_default()
                .entry(dimension.value(r))
            {
                Entry::Vacant(v) => {
                    v.insert(r);
                }
                Entry::Occupied(mut o) => {
                    if newer(o.get()) {
                        o.insert(r);
                    }
                }
            }
        }
        for r in records.iter().filter(|r| r.is_published()) {
            let label = r.published_label().expect("published record");
            if grid.cells.keys().any(|k| k[0] == r.model) {
                grid.published
                    .entry(label)
                    .or_default()
                    .insert(r.model.clone(), r);
            }
        }
        grid
    }

    fn row_key(&self, r: &ResultRecord) -> Vec<String> {
        let mut key = vec![r.model.clone()];
        key.extend(self.others.iter().map(|d| d.value(r)));
        if self.datasets_differ {
            key.push(dataset_label(r));
        }
        key
    }

    /// One metric's table: `values` columns, ratio columns, then the published columns that
    /// give this metric for a row's model.
    fn table(&self, metric: &Metric, values: &[String], versus: &str) -> Table {
        let get = metric.get;
        let published_here: Vec<&String> = self
            .published
            .iter()
            .filter(|(_, by_model)| {
                metric.with_published
                    && self
                        .cells
                        .keys()
                        .any(|key| by_model.get(&key[0]).and_then(|r| get(r)).is_some())
            })
            .map(|(label, _)| label)
            .collect();
        let mut columns = vec!["Model".to_owned()];
        columns.extend(self.others.iter().map(|d| capitalise(d.as_str())));
        if self.datasets_differ {
            columns.push("Dataset".to_owned());
        }
        columns.extend(values.iter().cloned());
        columns.extend(values[1..].iter().map(|v| format!("{v} / {}", values[0])));
        columns.extend(published_here.iter().map(|label| (*label).clone()));
        let mut rows = Vec::new();
        for (key, by_value) in &self.cells {
            let cells: Vec<Option<f64>> = values
                .iter()
                .map(|v| by_value.get(v).and_then(|r| get(r)))
                .collect();
            if cells.iter().all(Option::is_none) {
                continue;
            }
            let mut row: Vec<Cell> = key.iter().map(Cell::text).collect();
            row.extend(cells.iter().map(|c| Cell::number(*c, metric.decimals)));
            row.extend(cells[1..].iter().map(|c| match (c, cells[0]) {
                (Some(v), Some(base)) if base != 0.0 => Cell::Ratio(v / base),
                _ => Cell::Empty,
            }));
            row.extend(published_here.iter().map(|label| {
                let published = self.published[*label].get(&key[0]).and_then(|r| get(r));
                Cell::number(published, metric.decimals)
            }));
            rows.push(row);
        }
        Table {
            title: format!("{} ({versus})", metric.title),
            columns,
            rows,
            notes: self.notes(metric, &values[0], !published_here.is_empty()),
        }
    }

    /// The notes under a metric's table: the ratio's baseline, the flagged timings of latency
    /// tables, and what published columns are.
    fn notes(&self, metric: &Metric, baseline: &str, has_published: bool) -> Vec<String> {
        let latency = metric.title.starts_with("Latency");
        let mut notes = vec![format!(
            "Ratios are column / {baseline}{}.",
            if latency {
                " (below 1: faster than the baseline)"
            } else {
                ""
            }
        )];
        if latency {
            let flagged: Vec<String> = self
                .cells
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
        if has_published {
            notes.push(
                "Published columns are the sources' own figures on their own hardware and \
                 dataset, not measured by detbench."
                    .to_owned(),
            );
        }
        notes
    }
}

/// One quantity compared side by side.
struct Metric {
    title: &'static str,
    get: fn(&ResultRecord) -> Option<f64>,
    decimals: usize,
    /// Whether published sources can give it (they give no p99).
    with_published: bool,
}

/// The metrics compared: box AP, mask and keypoint AP where any record has them, mean latency
/// and p99 latency (measured columns only: published sources give one latency figure).
fn metrics(records: &[ResultRecord]) -> Vec<Metric> {
    let has = |iou: IouType| records.iter().any(|r| r.accuracy.contains_key(&iou));
    let mut metrics = vec![Metric {
        title: "Box AP",
        get: |r| ap_percent(r.stat(IouType::Bbox, "AP")),
        decimals: 1,
        with_published: true,
    }];
    if has(IouType::Segm) {
        metrics.push(Metric {
            title: "Mask AP",
            get: |r| ap_percent(r.stat(IouType::Segm, "AP")),
            decimals: 1,
            with_published: true,
        });
    }
    if has(IouType::Keypoints) {
        metrics.push(Metric {
            title: "Keypoint AP",
            get: |r| ap_percent(r.stat(IouType::Keypoints, "AP")),
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
    metrics.push(Metric {
        title: "Latency p99, ms per call",
        get: ResultRecord::latency_p99_ms,
        decimals: 2,
        with_published: false,
    });
    metrics
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
