//! Everything a run leaves behind for people: its results files, the results store (SQLite or
//! PostgreSQL) with its provenance, comparison tables rendered from it, charts, annotated images, and published
//! tables read into the store for comparison.
//!
//! One home per output concern: [`tables`] is the one table layout (Markdown, CSV, JSON),
//! [`write_atomic`] (from detbench-assets, so that crates below this one write files the same
//! way) the one way a file is written, [`palette`] the one set of colours.

pub mod annotate;
pub mod charts;
pub mod palette;
pub mod published;
pub mod run_files;
pub mod scenario_table;
pub mod schema;
pub mod shard_tables;
pub mod store;
pub mod tables;

pub use detbench_assets::{WriteError, write_atomic, write_atomic_set};
pub use store::{
    Filter, OpenOptions, PublishedImport, PublishedRow, ResultRecord, RunId, Store, StoreError,
    StoreLocation,
};
