//! The parts of a run's files only a merged run has (`detbench merge`, `detbench run
//! --devices`): where each shard ran, each shard's own latency beside the pooled one, and the
//! scaling of a row measured on several devices at once.

use detbench_bench::results::RunResults;

use crate::tables::{Cell, Table};

/// One line per shard for the header of `results.md`: index, host, CPU, GPU, start, images;
/// and which shards are missing from a partial merge.
pub fn shard_lines(results: &RunResults) -> Vec<String> {
    let Some(sharding) = &results.sharding else {
        return Vec::new();
    };
    let mut lines = vec![format!(
        "- sharded: {} shards, {} ({})",
        sharding.count,
        match sharding.partial {
            true => format!(
                "PARTIAL: shards {} missing, accuracy over the shards merged only",
                join(&sharding.missing)
            ),
            false => "all merged".to_owned(),
        },
        sharding.partition
    )];
    for origin in &sharding.shards {
        let env = &origin.environment;
        let gpus = env.gpu.as_ref().map_or_else(
            || "no GPU".to_owned(),
            |gpu| {
                gpu.devices
                    .iter()
                    .map(|d| d.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        lines.push(format!(
            "  - shard {}: host {}, {}, {}; started {}; {} images",
            origin.shard,
            env.hostname.as_deref().unwrap_or("?"),
            env.cpu.model.as_deref().unwrap_or("unknown CPU"),
            gpus,
            origin.started_at,
            origin.images
        ));
    }
    lines
}

fn join(items: &[usize]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each shard's own end-to-end latency, per merged row.
pub fn shard_table(results: &RunResults) -> Option<Table> {
    let mut rows = Vec::new();
    for m in &results.models {
        let Some(sharding) = &m.sharding else {
            continue;
        };
        for shard in &sharding.shards {
            let e = &shard.end_to_end;
            rows.push(vec![
                Cell::text(m.label()),
                Cell::count(shard.shard),
                Cell::text(shard.device.map(|d| d.to_string()).unwrap_or_default()),
                Cell::text(shard.hostname.clone().unwrap_or_default()),
                Cell::count(shard.timed_images),
                Cell::number(Some(shard.images_per_second), 1),
                Cell::number(Some(e.mean), 2),
                Cell::number(Some(e.median), 2),
                Cell::number(Some(e.p90), 2),
                Cell::number(Some(e.p99), 2),
                Cell::text(if shard.valid { "yes" } else { "no" }),
            ]);
        }
    }
    (!rows.is_empty()).then(|| Table {
        title: String::new(),
        columns: [
            "Model",
            "Shard",
            "Device",
            "Host",
            "Images",
            "images/s",
            "mean ms",
            "median ms",
            "p90 ms",
            "p99 ms",
            "valid",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: Vec::new(),
    })
}

/// Rows measured on several devices at once against one device.
pub fn scaling_table(results: &RunResults) -> Option<Table> {
    let rows: Vec<Vec<Cell>> = results
        .models
        .iter()
        .filter_map(|m| {
            let scaling = m.sharding.as_ref()?.scaling.as_ref()?;
            Some(vec![
                Cell::text(m.label()),
                Cell::count(scaling.devices),
                Cell::number(Some(scaling.single_device_images_per_second), 1),
                Cell::number(Some(scaling.images_per_second), 1),
                Cell::Ratio(scaling.speedup),
                Cell::number(Some(scaling.efficiency * 100.0), 1),
            ])
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: String::new(),
        columns: [
            "Model",
            "Devices",
            "1 device images/s",
            "N devices images/s",
            "speed-up",
            "efficiency %",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: Vec::new(),
    })
}
