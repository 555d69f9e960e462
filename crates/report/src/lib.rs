//! Everything a run leaves behind for people: its results files, the results store (SQLite or
//! PostgreSQL) with its provenance, comparison tables rendered from it, charts, annotated images, and published
//! tables read into the store for comparison.
//!
//! One home per output concern: [`tables`] is the one table layout (Markdown, CSV, JSON),
//! [`files::write_atomic`] the one way a file is written, [`palette`] the one set of colours.

pub mod annotate;
pub mod charts;
pub mod files;
pub mod palette;
pub mod published;
pub mod run_files;
pub mod schema;
pub mod shard_tables;
pub mod store;
pub mod tables;

pub use files::write_atomic;
pub use store::{
    Filter, OpenOptions, PublishedImport, PublishedRow, ResultRecord, RunId, Store, StoreError,
    StoreLocation,
};
