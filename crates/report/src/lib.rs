//! Everything a run leaves behind for people: the SQLite results store with its provenance,
//! comparison tables rendered from it, charts, annotated images, and published tables read
//! into the store for comparison.

pub mod annotate;
pub mod charts;
pub mod environment;
pub mod files;
pub mod published;
pub mod schema;
pub mod store;
pub mod tables;

pub use environment::{Environment, capture as capture_environment};
pub use store::{
    Filter, OpenOptions, PublishedImport, PublishedRow, ResultRecord, RunId, Store, StoreError,
};
