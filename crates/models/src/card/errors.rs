//! Card errors, each naming the card, the line and the field, and what was expected.

/// What can be wrong with a card.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("cannot read card {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, a missing field, a wrong type or an unknown field.
    #[error("card {origin}, line {line}: {field_note}{message}")]
    Syntax {
        origin: String,
        line: usize,
        /// The field, when known (`input.size`).
        field: Option<String>,
        field_note: String,
        message: String,
    },
    /// Fields that parse but do not fit together.
    #[error("card {origin}, line {line}, field `{field}`: {reason}")]
    Invalid {
        origin: String,
        line: usize,
        field: String,
        reason: String,
    },
    /// The card and the model file disagree (or the card lacks what the file does not say).
    #[error("model `{model}`, card field `{field}`: {reason}")]
    Config {
        model: String,
        field: String,
        reason: String,
    },
    #[error(transparent)]
    ClassMap(#[from] super::ClassMapError),
    #[error("model `{model}`: cannot write its card as TOML: {reason}")]
    Print { model: String, reason: String },
    /// What the file alone says is not enough, and the card does not fill it in.
    #[error(transparent)]
    File(#[from] crate::autoconfig::AutoConfigError),
    #[error(
        "model `{model}`: output `{output}` has shape {file} in the model file, but the card says {card} \
         (fix `[output] shape` or the file)"
    )]
    OutputShape {
        model: String,
        output: String,
        card: String,
        file: String,
    },
}

impl CardError {
    /// The line the error is on, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            CardError::Syntax { line, .. } | CardError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The field the error is about, when known.
    pub fn field(&self) -> Option<&str> {
        match self {
            CardError::Syntax { field, .. } => field.as_deref(),
            CardError::Invalid { field, .. } | CardError::Config { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The dotted key of the `key = value` line at `line` (1-based), with the table header above it.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?;
    let (key, _) = here.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

/// The table a missing field belongs to, from the span toml gives (the table's header line, or
/// the whole document).
fn table_at_line(text: &str, line: usize) -> Option<String> {
    let here = text.lines().nth(line.checked_sub(1)?)?.trim();
    here.starts_with('[').then(|| {
        here.trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_owned()
    })
}

/// A toml/serde error as a [`CardError::Syntax`] naming the line and, where it can be found,
/// the field: the key of the offending line for wrong types and values, the missing field
/// (serde names it) qualified by its table.
pub fn from_toml(e: &toml::de::Error, text: &str, origin: &str) -> CardError {
    let message = e.message().trim().to_owned();
    let line = e.span().map_or(1, |s| line_at(text, s.start));
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    let field = match missing {
        Some(name) => Some(match table_at_line(text, line) {
            Some(table) => format!("{table}.{name}"),
            None => name,
        }),
        None => key_at_line(text, line),
    };
    CardError::Syntax {
        origin: origin.to_owned(),
        line,
        field_note: field
            .as_ref()
            .map_or(String::new(), |f| format!("field `{f}`: ")),
        field,
        message,
    }
}

/// The line where dotted `field` (`input.size`) is set, or 1 when it is not written.
pub fn line_of_key(text: &str, field: &str) -> usize {
    let (table, key) = field.rsplit_once('.').unwrap_or(("", field));
    let mut current = String::new();
    for (n, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            current = l.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
        } else if current == table
            && l.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == key)
        {
            return n + 1;
        }
    }
    1
}
