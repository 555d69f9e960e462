//! `detbench env`: prints the environment capture that every recorded run carries (machine,
//! OS, GPU, engine libraries, detbench build), as a table or as JSON; the table also says
//! where the results store is.

use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// Print the capture as JSON (the form stored with each run).
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let environment = detbench_env::capture();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&environment)?)?;
        return Ok(());
    }
    let mut rows = environment.rows();
    // Not part of the capture (it is not the machine's): where this command's runs are
    // recorded.
    let (store, source) = detbench_report::store::resolve(None);
    rows.push((
        "results store".into(),
        format!("{} ({})", store.display(), source.describe()),
    ));
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in rows {
        writeln!(out, "{label:<width$}  {value}")?;
    }
    Ok(())
}
