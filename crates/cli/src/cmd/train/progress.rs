//! Progress of a training run on stderr: a bar with the last loss and the images/s so far when
//! stderr is a terminal, else one line per step (for logs); nothing with `--quiet`.

use std::cell::Cell;
use std::io::IsTerminal;

use detbench_train::{StepRecord, TrainConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct TrainProgress {
    bar: Option<ProgressBar>,
    lines: bool,
    warmup: usize,
    /// Images per step over all processes.
    images_per_step: usize,
    /// Timed (after warm-up) steps and their summed time, for the running images/s.
    timed: Cell<(usize, f64)>,
}

impl TrainProgress {
    pub fn start(label: &str, config: &TrainConfig, quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let total = config
            .timed_steps
            .map(|timed| (config.warmup_steps + timed) as u64);
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{prefix} [{bar:30}] {pos}/{len} steps {elapsed} {msg}"
            } else {
                "{prefix} {pos} steps {elapsed} {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar
        });
        if !quiet && !terminal {
            eprintln!("{label}");
        }
        TrainProgress {
            bar,
            lines: !quiet && !terminal,
            warmup: config.warmup_steps,
            images_per_step: config.global_batch(),
            timed: Cell::new((0, 0.0)),
        }
    }

    pub fn step(&self, s: &StepRecord) {
        if s.step >= self.warmup {
            let (n, seconds) = self.timed.get();
            self.timed.set((n + 1, seconds + s.step_s));
        }
        let (n, seconds) = self.timed.get();
        let rate = if n > 0 {
            format!("{:.2} img/s", (n * self.images_per_step) as f64 / seconds)
        } else {
            "warm-up".to_owned()
        };
        let scale = s.loss_scale.map_or(String::new(), |x| {
            format!(
                " scale {x}{}",
                if s.skipped { " (step skipped)" } else { "" }
            )
        });
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.4} | {rate}{scale}", s.total_loss));
            bar.inc(1);
        } else if self.lines {
            let losses: Vec<String> = s.losses.iter().map(|v| format!("{v:.4}")).collect();
            eprintln!(
                "  step {:>4} epoch {:>2} lr {:.6} loss {:.4} [{}] {:.1} ms (data {:.1} ms) \
                 {rate}{scale}",
                s.step,
                s.epoch,
                s.lr,
                s.total_loss,
                losses.join(" "),
                s.step_s * 1e3,
                s.data_wait_s * 1e3,
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
