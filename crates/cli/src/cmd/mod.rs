//! One module per subcommand, each with its clap `Args` and a `main`.

pub mod cards;
pub mod detector;
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
pub mod train;
pub mod zoo;

/// An error that ends the command with its own exit status (e.g. 130 after Ctrl-C) instead of
/// 1.
#[derive(Debug)]
pub struct ExitStatus {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitStatus {}

/// The command line as given, each argument as text (a non-UTF-8 byte shows as U+FFFD rather
/// than stopping the program, as `std::env::args` would).
pub fn command_line() -> Vec<String> {
    std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect()
}
