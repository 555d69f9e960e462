//! A request to stop a run early (the CLI sets it on Ctrl-C): the timed pass stops before its
//! next image and the batch sizes and models not yet run are left out, so that the rows already
//! finished can be written. Process-wide, as the signal that sets it is.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the harness to stop at the next image.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Why a model or batch size was not measured after a stop.
pub const NOT_MEASURED: &str = "not measured: the run was interrupted (Ctrl-C)";
