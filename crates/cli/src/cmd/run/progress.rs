//! Progress on stderr: a bar per pass when stderr is a terminal, messages always.

use std::cell::RefCell;
use std::io::IsTerminal;

use detbench_bench::scenario::Observer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: RefCell<Option<ProgressBar>>,
    show_bar: bool,
}

impl Progress {
    /// Bars unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        Progress {
            bar: RefCell::new(None),
            show_bar: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

impl Observer for Progress {
    fn message(&self, text: &str) {
        match self.bar.borrow().as_ref() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
    fn start_pass(&self, label: &str, total: usize) {
        if !self.show_bar {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} images {elapsed}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        *self.bar.borrow_mut() = Some(bar);
    }
    fn advance(&self, n: usize) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.inc(n as u64);
        }
    }
    fn finish_pass(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}
