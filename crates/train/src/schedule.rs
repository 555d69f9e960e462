//! The learning rate of every step, as torchvision's reference computes it: `MultiStepLR`
//! (train.py, stepped after each epoch) chained with the warm-up `LinearLR(start_factor=1/1000,
//! total_iters=min(1000, len(data_loader) - 1))` of epoch 0 (engine.py, stepped after each
//! iteration). Both schedulers update the optimiser's lr multiplicatively, in torch's recursive
//! (chainable) form, which this file reproduces operation for operation in f64 (Python floats).

use crate::config::Recipe;

/// The lr schedule's state.
#[derive(Debug, Clone)]
pub struct LrSchedule {
    lr: f64,
    start_factor: f64,
    warmup_iters: usize,
    /// LinearLR's `last_epoch` (iterations stepped in epoch 0).
    warmup_step: usize,
    milestones: Vec<usize>,
    gamma: f64,
    epoch: usize,
}

impl LrSchedule {
    /// `base_lr` is the optimiser's initial lr; `batches_per_epoch` is `len(data_loader)`.
    pub fn new(base_lr: f64, recipe: &Recipe, batches_per_epoch: usize) -> Self {
        let warmup_iters = recipe
            .warmup_max_iters
            .min(batches_per_epoch.saturating_sub(1));
        LrSchedule {
            // LinearLR's initial step: group["lr"] * start_factor
            lr: base_lr * recipe.warmup_factor,
            start_factor: recipe.warmup_factor,
            warmup_iters,
            warmup_step: 0,
            milestones: recipe.lr_steps.clone(),
            gamma: recipe.lr_gamma,
            epoch: 0,
        }
    }

    /// The lr of the next optimiser step.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    pub fn warmup_iters(&self) -> usize {
        self.warmup_iters
    }

    /// After each iteration of epoch 0 (`lr_scheduler.step()` in train_one_epoch).
    pub fn step_iteration(&mut self) {
        if self.epoch != 0 {
            return;
        }
        self.warmup_step += 1;
        let (t, s, e) = (self.warmup_iters, self.start_factor, 1.0);
        let i = self.warmup_step;
        // LinearLR.get_lr: unchanged once last_epoch > total_iters.
        if i > t {
            return;
        }
        let factor = 1.0 + (e - s) / (t as f64 * s + (i as f64 - 1.0) * (e - s));
        self.lr *= factor;
    }

    /// After each epoch (`lr_scheduler.step()` of MultiStepLR in train.py).
    pub fn step_epoch(&mut self) {
        self.epoch += 1;
        // MultiStepLR: lr * gamma ** milestones.count(last_epoch)
        let hits = self.milestones.iter().filter(|&&m| m == self.epoch).count();
        if hits > 0 {
            self.lr *= self.gamma.powi(hits as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_rises_linearly_to_the_base_lr_then_steps_down_at_milestones() {
        let recipe = Recipe {
            lr_steps: vec![2],
            ..Recipe::default()
        };
        let mut s = LrSchedule::new(0.02, &recipe, 5);
        assert_eq!(s.warmup_iters(), 4);
        assert!((s.lr() - 0.02e-3).abs() < 1e-18);
        let mut seen = vec![s.lr()];
        for _ in 0..5 {
            s.step_iteration();
            seen.push(s.lr());
        }
        // closed form: base * (f + (1 - f) * min(i, T) / T)
        for (i, lr) in seen.iter().enumerate() {
            let expect = 0.02 * (1e-3 + (1.0 - 1e-3) * (i.min(4) as f64) / 4.0);
            assert!((lr - expect).abs() < 1e-15, "step {i}: {lr} vs {expect}");
        }
        s.step_epoch();
        assert!((s.lr() - 0.02).abs() < 1e-15);
        s.step_iteration(); // epochs after the first have no warm-up
        s.step_epoch();
        assert!((s.lr() - 0.002).abs() < 1e-15);
    }

    #[test]
    fn one_batch_per_epoch_keeps_the_warm_up_factor_as_the_reference_does() {
        let mut s = LrSchedule::new(1.0, &Recipe::default(), 1);
        s.step_iteration();
        s.step_iteration();
        assert_eq!(s.lr(), 1e-3);
    }
}
