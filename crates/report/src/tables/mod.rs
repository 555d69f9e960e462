//! The one table layout of detbench: a [`Table`] of [`Cell`]s, rendered as Markdown, CSV or
//! JSON. Every table goes through it: a run's `results.md` and `results.csv`
//! ([`crate::run_files`]), `detbench report`'s tables from the store ([`stored`], [`compare`]),
//! the training tables ([`training`]) and the run list. Numbers keep full precision in CSV and JSON; Markdown shows them with the
//! cell's decimals.

pub mod compare;
pub mod stored;
pub mod training;

pub use compare::{CompareError, Dimension, comparison_tables};
pub use stored::{results_table, stages_table};
pub use training::{TrainingEntry, training_tables};

use serde::Serialize;

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number {
        value: f64,
        decimals: usize,
    },
    /// `value / baseline`, shown as "0.52x".
    Ratio(f64),
    /// No value: `-` in Markdown, empty in CSV, `null` in JSON.
    Empty,
}

impl Cell {
    /// A number shown with `decimals` decimals, or [`Cell::Empty`].
    pub fn number(value: Option<f64>, decimals: usize) -> Cell {
        value.map_or(Cell::Empty, |value| Cell::Number { value, decimals })
    }

    /// A count (no decimals).
    pub fn count(value: usize) -> Cell {
        Cell::Number {
            value: value as f64,
            decimals: 0,
        }
    }

    pub fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    /// Text, or [`Cell::Empty`] for an empty string.
    pub fn text_or_empty(value: impl Into<String>) -> Cell {
        let value = value.into();
        if value.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(value)
        }
    }

    fn markdown(&self) -> String {
        match self {
            Cell::Text(t) => markdown_text(t),
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

detbench_backends::named_enum! {
    /// How tables are written.
    pub enum Format as "format" {
        Markdown = "markdown" | "md",
        Csv = "csv",
        Json = "json",
    }
}

#[cfg(feature = "clap")]
detbench_backends::clap_value_enum!(Format);

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Whether a Markdown grid right-aligns its numeric columns (`---:`), as report tables do;
/// a run's `results.md` keeps plain `---` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    Plain,
    NumbersRight,
}

/// Renders tables one after another as documents: Markdown, each under a `### title` heading
/// with its notes below; CSV, each preceded by a `# title` line and separated by a blank line;
/// JSON, an array of `{title, columns, rows, notes}`.
pub fn render(tables: &[Table], format: Format) -> String {
    match format {
        Format::Markdown => tables
            .iter()
            .map(render_markdown)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Csv => tables
            .iter()
            .map(|t| format!("# {}\n{}", t.title, csv_grid(t)))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => render_json(tables),
    }
}

fn render_markdown(table: &Table) -> String {
    let mut out = format!("### {}\n\n", table.title);
    out.push_str(&markdown_grid(table, Alignment::NumbersRight));
    out.push('\n');
    for note in &table.notes {
        out.push_str(&format!("\n{note}\n"));
    }
    out
}

fn render_json(tables: &[Table]) -> String {
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

/// The header, the rule and the rows of a table in GitHub Markdown, one line each, without a
/// final line break.
pub fn markdown_grid(table: &Table, alignment: Alignment) -> String {
    let header: Vec<String> = table.columns.iter().map(|c| markdown_text(c)).collect();
    let rule: Vec<&str> = (0..table.columns.len())
        .map(|c| {
            let numeric = table
                .rows
                .iter()
                .any(|r| r.get(c).is_some_and(Cell::is_numeric));
            match alignment {
                Alignment::NumbersRight if numeric => "---:",
                _ => "---",
            }
        })
        .collect();
    let mut lines = vec![
        format!("| {} |", header.join(" | ")),
        format!("|{}|", rule.join("|")),
    ];
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(Cell::markdown).collect();
        lines.push(format!("| {} |", cells.join(" | ")));
    }
    lines.join("\n")
}

/// Text made safe for a Markdown table cell: line breaks (an engine's multi-line error
/// message) joined into one line, `|` escaped.
fn markdown_text(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The header and rows of a table as CSV (RFC 4180), each line ending in `\n`.
pub fn csv_grid(table: &Table) -> String {
    let mut out = String::new();
    let mut line = |fields: Vec<String>| {
        let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    };
    line(table.columns.clone());
    for row in &table.rows {
        line(row.iter().map(Cell::plain).collect());
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). Hand-written: one
/// function, the only CSV writing detbench does, does not justify a CSV crate.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            title: "T".into(),
            columns: vec!["name".into(), "max |x|".into(), "ms".into()],
            rows: vec![
                vec![
                    Cell::text("a, b"),
                    Cell::text("line\nbreak | pipe"),
                    Cell::number(Some(1.23456), 2),
                ],
                vec![Cell::text("say \"hi\""), Cell::Empty, Cell::Ratio(0.5)],
            ],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(
            csv_grid(&table()),
            "name,max |x|,ms\n\"a, b\",\"line\nbreak | pipe\",1.23456\n\"say \"\"hi\"\"\",,0.5\n"
        );
    }

    #[test]
    fn markdown_grids_escape_cells_and_align_as_asked() {
        let plain = markdown_grid(&table(), Alignment::Plain);
        assert_eq!(
            plain,
            "| name | max \\|x\\| | ms |\n|---|---|---|\n| a, b | line break \\| pipe | 1.23 |\n\
             | say \"hi\" | - | 0.50x |"
        );
        let aligned = markdown_grid(&table(), Alignment::NumbersRight);
        assert!(aligned.contains("|---|---|---:|"), "{aligned}");
        let doc = render(&[table()], Format::Markdown);
        assert!(
            doc.starts_with("### T\n\n| name |") && doc.ends_with("\na note\n"),
            "{doc}"
        );
    }
}
