//! One module per subcommand, each with its clap `Args` and a `main`.

pub mod engine;
pub mod env;
pub mod eval;
pub mod import_md;
pub mod report;
pub mod run;
pub mod show;
pub mod train;
pub mod zoo;
