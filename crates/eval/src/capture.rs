//! hotcoco prints its load warnings to stderr itself (`hotcoco: ...`, in `COCO::new`,
//! `COCO::from_dataset` and `COCO::load_res`) besides keeping them (`COCO::load_warnings`).
//! detbench reports them through its own warnings, with the file named and its `warning:`
//! prefix, so the loads run with stderr captured ([`gag`]): hotcoco's own lines are dropped
//! (their text comes back through `load_warnings`), anything else is printed as it was.
//!
//! Nothing else in detbench prints while a file loads (no progress bar is drawn then). When
//! stderr cannot be captured (another capture is active, as when tests load files in parallel
//! threads), the load runs as it is and hotcoco's lines appear unchanged.

use std::io::Read;

/// The prefix of every line hotcoco prints (`COCO::warn`).
const HOTCOCO_PREFIX: &str = "hotcoco: ";

/// Runs `load` with stderr captured; hotcoco's `hotcoco: ...` lines are dropped, other output
/// is printed again afterwards.
pub(crate) fn without_hotcoco_stderr<T>(load: impl FnOnce() -> T) -> T {
    let Ok(mut redirect) = gag::BufferRedirect::stderr() else {
        return load();
    };
    let value = load();
    let mut captured = String::new();
    let _ = redirect.read_to_string(&mut captured);
    drop(redirect);
    for line in other_lines(&captured) {
        eprintln!("{line}");
    }
    value
}

/// The captured lines that are not hotcoco's own.
fn other_lines(captured: &str) -> impl Iterator<Item = &str> {
    captured
        .lines()
        .filter(|line| !line.starts_with(HOTCOCO_PREFIX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_hotcoco_lines_are_dropped() {
        let lines: Vec<&str> =
            super::other_lines("hotcoco: 2 duplicate annotation id(s)\nsomething else\n").collect();
        assert_eq!(lines, ["something else"]);
    }
}
