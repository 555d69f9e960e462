//! One module per subcommand, each with its clap `Args` and a `main`.

pub mod engine;
pub mod env;
pub mod eval;
pub mod import;
pub mod import_md;
pub mod merge;
pub mod report;
pub mod run;
pub mod show;
pub mod store;
pub mod zoo;
