//! Recording results in the store after their files are written, the same way for `run`,
//! `merge` and `import`: the store is named by `--db` (a file or a `postgres://` URL) or
//! `$DETBENCH_DB`, and when it cannot be reached or refuses the run, the error says that the
//! results files are safe and how to record them later (`detbench import`).

use std::path::Path;

use anyhow::Context;
use detbench_bench::results::RunResults;
use detbench_report::store::{Store, StoreLocation};

/// The store a command writes to: `--db`, else `$DETBENCH_DB`, else the default file.
pub fn resolve(cli: Option<&StoreLocation>) -> anyhow::Result<StoreLocation> {
    StoreLocation::resolve(cli).context("$DETBENCH_DB")
}

/// Checks, before the timed work, that the store can be opened; a warning (not an error) when
/// it cannot, since the results files keep everything and can be imported later.
pub fn check_reachable(location: &StoreLocation) {
    if let Err(e) = Store::connect(location) {
        eprintln!(
            "warning: the results store cannot be used now: {e}\n  the run goes on; its results \
             files will be written, and `detbench import` records them later"
        );
    }
}

/// Records `results` (whose files are in `results_json`'s folder) in the store at `location`.
pub fn record(
    location: &StoreLocation,
    results: &RunResults,
    results_json: &Path,
) -> anyhow::Result<()> {
    let recorded = Store::connect(location).and_then(|mut store| store.record_run(results));
    match recorded {
        Ok(run_id) => {
            eprintln!("recorded in the results store {location} as run {run_id}");
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "the run was not recorded in the results store: {e}\n  nothing is lost: the results \
             files are written; record them when the store is back with\n    detbench import {} \
             --db '{}'",
            results_json.display(),
            location
        )),
    }
}
