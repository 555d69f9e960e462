//! Where the results store is: an SQLite file (the embedded default) or a PostgreSQL database
//! named by a `postgres://` / `postgresql://` URL. Parsed once, from `--db` or `$DETBENCH_DB`;
//! shown everywhere with its password hidden.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{DB_ENV, resolve_path};

/// A store: a file path, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

/// A PostgreSQL connection URL, checked when parsed
/// (`postgresql://user[:password]@host[:port]/dbname[?param=value&...]`; a Unix socket folder as
/// `?host=/path`).
#[derive(Clone)]
pub struct PostgresUrl {
    url: String,
    pub(crate) config: Box<postgres::Config>,
}

impl PartialEq for PostgresUrl {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&redact(&self.url))
            .finish()
    }
}

/// The URL as given, password hidden.
impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl PostgresUrl {
    /// The URL as given, password included (to hand to a child process).
    pub fn as_secret_str(&self) -> &str {
        &self.url
    }
}

/// A `--db` / `$DETBENCH_DB` value that is not a store location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error(
        "`{shown}` is not a valid PostgreSQL URL: {reason} (expected postgresql://user@host:port/dbname)"
    )]
    BadUrl { shown: String, reason: String },
    #[error("the store location is empty")]
    Empty,
}

const SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

impl FromStr for StoreLocation {
    type Err = LocationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(LocationError::Empty);
        }
        if !SCHEMES.iter().any(|scheme| s.starts_with(scheme)) {
            return Ok(StoreLocation::Sqlite(PathBuf::from(s)));
        }
        let config = postgres::Config::from_str(s).map_err(|e| LocationError::BadUrl {
            shown: redact(s),
            reason: e.to_string(),
        })?;
        Ok(StoreLocation::Postgres(PostgresUrl {
            url: s.to_owned(),
            config: Box::new(config),
        }))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => url.fmt(f),
        }
    }
}

impl StoreLocation {
    /// The store a command should use: `--db` if given, else `$DETBENCH_DB`, else the default
    /// SQLite file ([`resolve_path`]).
    pub fn resolve(cli: Option<&StoreLocation>) -> Result<StoreLocation, LocationError> {
        if let Some(given) = cli {
            return Ok(given.clone());
        }
        if let Some(value) = std::env::var_os(DB_ENV).filter(|v| !v.is_empty()) {
            return value.to_string_lossy().parse();
        }
        Ok(StoreLocation::Sqlite(resolve_path(None)))
    }

    /// The SQLite file, for a file store.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }

    /// The location as a command-line argument (`--db VALUE`), password included.
    pub fn as_argument(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => url.as_secret_str().to_owned(),
        }
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> Self {
        StoreLocation::Sqlite(path)
    }
}

/// `url` with the password of its user part and any `password=` parameter replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{head}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_parse_and_passwords_never_show() {
        assert_eq!(
            "runs/detbench.db".parse::<StoreLocation>().unwrap(),
            StoreLocation::Sqlite(PathBuf::from("runs/detbench.db"))
        );
        let url: StoreLocation = "postgresql://bench:s3cret@db.example:5433/detbench"
            .parse()
            .unwrap();
        assert!(matches!(url, StoreLocation::Postgres(_)));
        assert_eq!(
            url.to_string(),
            "postgresql://bench:***@db.example:5433/detbench"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            url.as_argument(),
            "postgresql://bench:s3cret@db.example:5433/detbench"
        );
        assert_eq!(
            redact("postgres:///detbench?host=/tmp/pg&password=x&user=me"),
            "postgres:///detbench?host=/tmp/pg&password=***&user=me"
        );
        assert_eq!(
            redact("postgres://me@localhost/db"),
            "postgres://me@localhost/db"
        );
        let err = "postgres://host:notaport/db"
            .parse::<StoreLocation>()
            .unwrap_err();
        assert!(
            err.to_string().contains("not a valid PostgreSQL URL"),
            "{err}"
        );
        assert_eq!("".parse::<StoreLocation>(), Err(LocationError::Empty));
    }
}
