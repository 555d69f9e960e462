//! Reading published results tables (Markdown, GitHub table syntax) into store records: the
//! TF2 Detection Model Zoo README (`Model name | Speed (ms) | COCO mAP | Outputs`),
//! torchvision's weights tables (`Weight | Box MAP | Mask MAP | Params | GFLOPS`), and
//! detbench's own results table. Markdown is parsed with pulldown-cmark; only the mapping from
//! column headers to metrics is ours.

use crate::store::PublishedRow;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    #[error(
        "{file}: no results table found: expected a Markdown table with a model column (e.g. \
         `Model name`, `Weight`, `Model`) and an AP or latency column (e.g. `COCO mAP`, `Box AP`, \
         `Speed (ms)`, `Latency mean (ms)`)"
    )]
    NoTable { file: String },
    #[error("{file}:{line}: column `{column}`: cannot read `{text}` as {expected}")]
    BadValue {
        file: String,
        line: usize,
        column: String,
        text: String,
        expected: &'static str,
    },
    #[error(
        "{file}:{line}: `{text}` in column `{column}` holds {found} values but the `{outputs}` column names {named} outputs"
    )]
    OutputsMismatch {
        file: String,
        line: usize,
        column: String,
        text: String,
        found: usize,
        outputs: String,
        named: usize,
    },
}

/// A table as parsed: header texts and rows of cells, each with the line it starts on.
#[derive(Debug, Clone, PartialEq, Default)]
struct RawTable {
    /// The text of the last heading before the table (e.g. `Keypoints`), which says what a
    /// bare `AP` column measures.
    section: String,
    header: Vec<String>,
    rows: Vec<(usize, Vec<RawCell>)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct RawCell {
    text: String,
    link: Option<String>,
}

fn raw_tables(markdown: &str) -> Vec<RawTable> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(markdown.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| line_starts.partition_point(|&s| s <= offset);
    let mut tables = Vec::new();
    let mut table: Option<RawTable> = None;
    let mut in_head = false;
    let mut row: Option<(usize, Vec<RawCell>)> = None;
    let mut cell: Option<RawCell> = None;
    let mut section = String::new();
    let mut in_heading = false;
    for (event, range) in Parser::new_ext(markdown, Options::ENABLE_TABLES).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => {
                in_heading = true;
                section.clear();
            }
            Event::End(TagEnd::Heading(_)) => in_heading = false,
            Event::Text(text) if in_heading => section.push_str(&text),
            Event::Start(Tag::Table(_)) => {
                table = Some(RawTable {
                    section: section.clone(),
                    ..RawTable::default()
                })
            }
            Event::End(TagEnd::Table) => tables.extend(table.take()),
            Event::Start(Tag::TableHead) => in_head = true,
            Event::End(TagEnd::TableHead) => in_head = false,
            Event::Start(Tag::TableRow) => row = Some((line_of(range.start), Vec::new())),
            Event::End(TagEnd::TableRow) => {
                if let (Some(t), Some(r)) = (table.as_mut(), row.take()) {
                    t.rows.push(r);
                }
            }
            Event::Start(Tag::TableCell) => cell = Some(RawCell::default()),
            Event::End(TagEnd::TableCell) => {
                let done = cell.take().unwrap_or_default();
                let done = RawCell {
                    text: done.text.trim().to_owned(),
                    ..done
                };
                if in_head {
                    if let Some(t) = table.as_mut() {
                        t.header.push(done.text);
                    }
                } else if let Some((_, cells)) = row.as_mut() {
                    cells.push(done);
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                if let Some(c) = cell.as_mut() {
                    c.link.get_or_insert_with(|| dest_url.to_string());
                }
            }
            Event::Text(text) | Event::Code(text) => {
                if let Some(c) = cell.as_mut() {
                    c.text.push_str(&text);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(c) = cell.as_mut() {
                    c.text.push(' ');
                }
            }
            _ => {}
        }
    }
    tables
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Model,
    /// Box AP; in the TF2 zoo also "box/keypoint" or "box/mask" pairs, told apart by Outputs.
    BoxAp,
    MaskAp,
    KeypointAp,
    /// Milliseconds per image; `scale` converts the column's unit to ms.
    Latency {
        scale: f64,
    },
    Outputs,
    Other,
}

fn role_of(header: &str) -> Role {
    let h = header.to_lowercase();
    let has = |s: &str| h.contains(s);
    if matches!(
        h.as_str(),
        "model name" | "model" | "weight" | "weights" | "network" | "name" | "architecture"
    ) {
        Role::Model
    } else if has("mask") && (has("ap") || has("map")) {
        Role::MaskAp
    } else if (has("keypoint") || has("kp")) && (has("ap") || has("map")) {
        Role::KeypointAp
    } else if has("ap50") || has("ap75") || has("ap@") || has("p99") || has("p90") {
        Role::Other
    } else if h == "ap" || h == "map" || has("coco map") || has("box ap") || has("box map") {
        Role::BoxAp
    } else if has("outputs") {
        Role::Outputs
    } else if (has("speed") || has("latency") || has("time")) && has("(ms)") {
        Role::Latency { scale: 1.0 }
    } else if matches!(h.as_str(), "mean ms" | "median ms" | "min ms") {
        // detbench's results.md (`mean ms`, `median ms`, `min ms`; mean is preferred below).
        Role::Latency { scale: 1.0 }
    } else if (has("time") || has("latency")) && (has("(s)") || has("s / it") || has("s/it")) {
        Role::Latency { scale: 1000.0 }
    } else {
        Role::Other
    }
}

/// Column roles of a table, with the model column defaulting to the first. When several
/// columns look like latency, the one saying "mean" (detbench's own layout) or "speed" wins.
/// Under a heading about keypoints or masks (detbench's results.md: `## Keypoints`,
/// `## Masks`), a bare AP column is that kind of AP, not box AP.
fn roles(header: &[String], section: &str) -> Vec<Role> {
    let section = section.to_lowercase();
    let bare_ap = if section.contains("keypoint") {
        Role::KeypointAp
    } else if section.contains("mask") || section.contains("segm") {
        Role::MaskAp
    } else {
        Role::BoxAp
    };
    let mut roles: Vec<Role> = header
        .iter()
        .map(|h| match role_of(h) {
            Role::BoxAp if matches!(h.to_lowercase().as_str(), "ap" | "map") => bare_ap,
            role => role,
        })
        .collect();
    if !roles.contains(&Role::Model) && !roles.is_empty() {
        roles[0] = Role::Model;
    }
    let latency: Vec<usize> = (0..roles.len())
        .filter(|&i| matches!(roles[i], Role::Latency { .. }))
        .collect();
    if latency.len() > 1 {
        let preferred = latency
            .iter()
            .copied()
            .find(|&i| header[i].to_lowercase().contains("mean"))
            .or_else(|| {
                latency
                    .iter()
                    .copied()
                    .find(|&i| header[i].to_lowercase().contains("speed"))
            })
            .unwrap_or(latency[0]);
        for i in latency {
            if i != preferred {
                roles[i] = Role::Other;
            }
        }
    }
    for role in [Role::Model, Role::BoxAp, Role::MaskAp, Role::KeypointAp] {
        let mut seen = false;
        for r in roles.iter_mut().filter(|r| **r == role) {
            if seen {
                *r = Role::Other;
            }
            seen = true;
        }
    }
    roles
}

/// `--`, `-`, `n/a` and empty cells mean "not given".
fn is_missing(text: &str) -> bool {
    matches!(
        text.trim().to_lowercase().as_str(),
        "" | "-" | "--" | "—" | "–" | "n/a" | "na" | "?"
    )
}

/// The leading number of a cell ("37.0", "19", "33.6*", "3.4M" → 3.4).
fn leading_number(text: &str) -> Option<f64> {
    let t = text.trim();
    let end = t
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .map_or(t.len(), |(i, _)| i);
    // The longest prefix that is a number (`40.0e` of "40.0eval" is not); `1e999` is
    // infinite, and so no number.
    (1..=end)
        .rev()
        .find_map(|n| t[..n].parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// Reads every results table of a Markdown document. `file` names it in errors.
pub fn parse_published_markdown(
    markdown: &str,
    file: &str,
) -> Result<Vec<PublishedRow>, ImportError> {
    // (index of the table a row first came from, row)
    let mut rows: Vec<(usize, PublishedRow)> = Vec::new();
    let mut found = false;
    for (table_index, table) in raw_tables(markdown).into_iter().enumerate() {
        let roles = roles(&table.header, &table.section);
        let has_metric = roles.iter().any(|r| {
            matches!(
                r,
                Role::BoxAp | Role::MaskAp | Role::KeypointAp | Role::Latency { .. }
            )
        });
        if !has_metric {
            continue;
        }
        found = true;
        for (line, cells) in &table.rows {
            if let Some(row) = read_row(&table.header, &roles, *line, cells, file)? {
                merge_or_push(&mut rows, table_index, row);
            }
        }
    }
    if !found {
        return Err(ImportError::NoTable {
            file: file.to_owned(),
        });
    }
    Ok(rows.into_iter().map(|(_, row)| row).collect())
}

/// A row of a later table that only adds metrics a row of an earlier table left empty (the
/// `## Masks` and `## Keypoints` tables of detbench's results.md, beside its main table) joins
/// that row, so that one model is one published record; anything else is a row of its own.
fn merge_or_push(rows: &mut Vec<(usize, PublishedRow)>, table_index: usize, row: PublishedRow) {
    let fits = |earlier: &PublishedRow| {
        earlier.model == row.model
            && (row.box_ap.is_none() || earlier.box_ap.is_none())
            && (row.mask_ap.is_none() || earlier.mask_ap.is_none())
            && (row.keypoint_ap.is_none() || earlier.keypoint_ap.is_none())
            && (row.latency_ms.is_none() || earlier.latency_ms.is_none())
    };
    let Some((_, earlier)) = rows
        .iter_mut()
        .find(|(index, earlier)| *index < table_index && fits(earlier))
    else {
        rows.push((table_index, row));
        return;
    };
    earlier.box_ap = earlier.box_ap.or(row.box_ap);
    earlier.mask_ap = earlier.mask_ap.or(row.mask_ap);
    earlier.keypoint_ap = earlier.keypoint_ap.or(row.keypoint_ap);
    if earlier.latency_ms.is_none() && row.latency_ms.is_some() {
        earlier.latency_ms = row.latency_ms;
        earlier.latency_column = row.latency_column;
    }
    earlier.link = earlier.link.take().or(row.link);
    if let (serde_json::Value::Object(into), serde_json::Value::Object(from)) =
        (&mut earlier.extra, row.extra)
    {
        for (key, value) in from {
            into.entry(key).or_insert(value);
        }
    }
}

/// N of a detbench results.md row label `name (batch N)`; 1 for any other label.
fn batch_of_label(label: &str) -> usize {
    label
        .strip_suffix(')')
        .and_then(|rest| rest.rsplit_once("(batch "))
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(1)
}

fn read_row(
    header: &[String],
    roles: &[Role],
    line: usize,
    cells: &[RawCell],
    file: &str,
) -> Result<Option<PublishedRow>, ImportError> {
    let reader = RowReader {
        header,
        line,
        cells,
        file,
    };
    let model_index = roles.iter().position(|r| *r == Role::Model).unwrap_or(0);
    let model = reader.cell(model_index);
    if is_missing(&model.text) {
        return Ok(None);
    }
    // A row of a model that failed (detbench's results.md puts `failed: <reason>` in its
    // first stat column) has no results to import.
    if cells
        .iter()
        .any(|c| c.text.trim_start().to_lowercase().starts_with("failed:"))
    {
        return Ok(None);
    }
    let outputs = roles.iter().position(|r| *r == Role::Outputs);
    let mut row = PublishedRow {
        model: model.text.clone(),
        link: model.link.clone(),
        extra: serde_json::Value::Object(Default::default()),
        ..PublishedRow::default()
    };
    let mut extra = serde_json::Map::new();
    for (i, role) in roles.iter().enumerate() {
        match *role {
            Role::Model => {}
            Role::BoxAp => reader.read_box_ap(i, outputs, &mut row)?,
            Role::MaskAp => row.mask_ap = reader.ap(i)?,
            Role::KeypointAp => row.keypoint_ap = reader.ap(i)?,
            Role::Latency { scale } => {
                let value = reader.time(i)?.map(|v| v * scale);
                if batch_of_label(&model.text) > 1 {
                    // detbench's results.md gives per-call times, and this row's calls held
                    // several images: not a per-image latency; kept verbatim with the others.
                    let c = reader.cell(i);
                    extra.insert(header[i].clone(), serde_json::Value::String(c.text));
                } else {
                    row.latency_ms = value;
                    row.latency_column = header[i].clone();
                }
            }
            Role::Outputs | Role::Other => {
                let c = reader.cell(i);
                if !is_missing(&c.text) && !header[i].is_empty() {
                    extra.insert(header[i].clone(), serde_json::Value::String(c.text));
                }
            }
        }
    }
    row.extra = serde_json::Value::Object(extra);
    Ok(Some(row))
}

/// What an AP cell holds.
const AP: &str = "an AP in percent (0 to 100)";
/// What a latency cell holds.
const TIME: &str = "a time (a finite number, 0 or more)";

/// The cells of one table row, with what an error about one of them must name.
struct RowReader<'a> {
    header: &'a [String],
    line: usize,
    cells: &'a [RawCell],
    file: &'a str,
}

impl RowReader<'_> {
    fn cell(&self, i: usize) -> RawCell {
        self.cells.get(i).cloned().unwrap_or_default()
    }

    fn bad(&self, i: usize, text: &str, expected: &'static str) -> ImportError {
        ImportError::BadValue {
            file: self.file.to_owned(),
            line: self.line,
            column: self.header[i].clone(),
            text: text.to_owned(),
            expected,
        }
    }

    /// An AP in percent: a number from 0 to 100.
    fn ap(&self, i: usize) -> Result<Option<f64>, ImportError> {
        self.in_range(i, self.number(i, AP)?, 0.0..=100.0, AP)
    }

    /// A time: a number of 0 or more.
    fn time(&self, i: usize) -> Result<Option<f64>, ImportError> {
        self.in_range(i, self.number(i, TIME)?, 0.0..=f64::MAX, TIME)
    }

    fn in_range(
        &self,
        i: usize,
        value: Option<f64>,
        range: std::ops::RangeInclusive<f64>,
        expected: &'static str,
    ) -> Result<Option<f64>, ImportError> {
        match value {
            Some(v) if !range.contains(&v) => Err(self.bad(i, &self.cell(i).text, expected)),
            other => Ok(other),
        }
    }

    /// The leading number of cell `i`, or `None` where the cell says nothing.
    fn number(&self, i: usize, expected: &'static str) -> Result<Option<f64>, ImportError> {
        let text = self.cell(i).text;
        if is_missing(&text) {
            return Ok(None);
        }
        leading_number(&text)
            .map(Some)
            .ok_or_else(|| self.bad(i, &text, expected))
    }

    /// A box AP cell: one AP, or (TF2 Model Zoo) several separated by `/`, named by the row's
    /// Outputs column: "40.0/61.4" with "Boxes/Keypoints" is box AP then keypoint AP;
    /// "39.0/34.6" with "Boxes/Masks" is box AP then mask AP.
    fn read_box_ap(
        &self,
        i: usize,
        outputs: Option<usize>,
        row: &mut PublishedRow,
    ) -> Result<(), ImportError> {
        let text = self.cell(i).text;
        if is_missing(&text) {
            return Ok(());
        }
        let parts: Vec<&str> = text.split('/').map(str::trim).collect();
        if parts.len() == 1 {
            row.box_ap = self.ap(i)?;
            return Ok(());
        }
        let outputs_index = outputs.ok_or_else(|| {
            self.bad(
                i,
                &text,
                "one AP (several need an Outputs column to name them)",
            )
        })?;
        let names: Vec<String> = self
            .cell(outputs_index)
            .text
            .split('/')
            .map(|s| s.trim().to_lowercase())
            .collect();
        if names.len() != parts.len() {
            return Err(ImportError::OutputsMismatch {
                file: self.file.to_owned(),
                line: self.line,
                column: self.header[i].clone(),
                text: text.clone(),
                found: parts.len(),
                outputs: self.cell(outputs_index).text,
                named: names.len(),
            });
        }
        for (part, name) in parts.iter().zip(&names) {
            let value = if is_missing(part) {
                None
            } else {
                let ap = leading_number(part).filter(|v| (0.0..=100.0).contains(v));
                Some(ap.ok_or_else(|| self.bad(i, part, AP))?)
            };
            match name.as_str() {
                n if n.starts_with("box") => row.box_ap = value,
                n if n.starts_with("mask") => row.mask_ap = value,
                n if n.starts_with("keypoint") => row.keypoint_ap = value,
                _ => return Err(self.bad(outputs_index, name, "Boxes, Masks or Keypoints")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tf2_pairs_and_links() {
        let md = "Model name | Speed (ms) | COCO mAP | Outputs\n\
                  ---------- | :--------: | :------: | :-----:\n\
                  [A 512x512](http://x/a.tar.gz) | 76 | 40.0/61.4 | Boxes/Keypoints\n\
                  [B](http://x/b.tar.gz) |    301      | 39.0/34.6 | Boxes/Masks\n\
                  [C](http://x/c.tar.gz) | -- | -- | Boxes\n";
        let rows = parse_published_markdown(md, "zoo.md").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].model, "A 512x512");
        assert_eq!(rows[0].link.as_deref(), Some("http://x/a.tar.gz"));
        assert_eq!(rows[0].box_ap, Some(40.0));
        assert_eq!(rows[0].keypoint_ap, Some(61.4));
        assert_eq!(rows[0].latency_ms, Some(76.0));
        assert_eq!(rows[0].latency_column, "Speed (ms)");
        assert_eq!(rows[1].mask_ap, Some(34.6));
        assert_eq!(rows[2].box_ap, None);
        assert_eq!(rows[2].latency_ms, None);
    }

    #[test]
    fn bad_values_name_file_line_and_column() {
        let md = "| Weight | Box MAP |\n|---|---|\n| ok | 21.3 |\n| bad | twenty |\n";
        let err = parse_published_markdown(md, "t.md").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.md:4: column `Box MAP`: cannot read `twenty` as an AP in percent (0 to 100)"
        );
        for (cell, column) in [
            ("| m | 250 | 5 |", "Box MAP"),
            ("| m | -3 | 5 |", "Box MAP"),
            ("| m | 1e999 | 5 |", "Box MAP"),
            ("| m | 30 | -5 |", "Speed (ms)"),
            ("| m | 30 | 1e999 |", "Speed (ms)"),
        ] {
            let md = format!(
                "| Weight | Box MAP | Speed (ms) |\n|---|---|---|\n| ok | 21.3 | 4 |\n{cell}\n"
            );
            let err = parse_published_markdown(&md, "r.md")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("r.md:4: column `{column}`: cannot read")),
                "{cell}: {err}"
            );
        }
        assert_eq!(leading_number("40.0 (est)"), Some(40.0));
        assert_eq!(leading_number("2e1"), Some(20.0));
        let none = parse_published_markdown("no tables here\n", "n.md").unwrap_err();
        assert!(matches!(none, ImportError::NoTable { .. }));
    }
}
