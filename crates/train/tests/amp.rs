//! torch.amp.GradScaler's rules through the shim's ATen calls (`_amp_foreach_non_finite_check_
//! and_unscale_`, `_amp_update_scale_`, which have CPU kernels): gradients unscaled before the
//! step, the scale grown by `growth_factor` after `growth_interval` finite steps, a step with an
//! infinite gradient skipped and the scale backed off. And the embedded CUDA shim links against
//! this libtorch (loaded without a GPU).

#![cfg(feature = "torch")]

use detbench_train::torch::ffi::{Optimizer, ScalerSettings};
use tch::{Device, Kind, Tensor};

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.detach().reshape([-1])).unwrap()
}

#[test]
fn the_loss_scaler_follows_grad_scaler_rules() {
    let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
    let mut opt = Optimizer::new(&[&p], 0.0, 0.0).unwrap();
    let settings = ScalerSettings {
        init_scale: 8.0,
        growth_factor: 2.0,
        backoff_factor: 0.5,
        growth_interval: 2,
    };
    opt.enable_scaler(Device::Cpu, settings).unwrap();
    let step = |opt: &mut Optimizer, factor: f64| {
        let loss = (&p * factor).sum(Kind::Float);
        opt.backward(&loss).unwrap();
        opt.step(0.1).unwrap()
    };
    // The gradient 3 is scaled by 8 in backward and unscaled before the step: p -= 0.1 * 3.
    assert_eq!(step(&mut opt, 3.0), (false, 8.0));
    assert_eq!(values(&p), [0.7, 1.7]);
    assert_eq!(opt.scale(), 8.0);
    // The second finite step in a row grows the scale (interval 2).
    assert_eq!(step(&mut opt, 3.0), (false, 8.0));
    assert_eq!(opt.scale(), 16.0);
    let before = values(&p);
    // An infinite gradient: the step is skipped and the scale backs off.
    assert_eq!(step(&mut opt, f64::INFINITY), (true, 16.0));
    assert_eq!(values(&p), before);
    assert_eq!(opt.scale(), 8.0);
    // The growth tracker restarted: one finite step does not grow the scale.
    assert_eq!(step(&mut opt, 1.0), (false, 8.0));
    assert_eq!(opt.scale(), 8.0);
}

#[test]
fn sgd_matches_torch_optim_sgd_with_momentum_and_weight_decay() {
    // torch.optim.SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1) on loss = sum(2 * p), twice:
    // d = 2 + 0.1 p; buf = d, then buf = 0.9 buf + d; p -= 0.5 buf.
    let p = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
    let mut opt = Optimizer::new(&[&p], 0.9, 0.1).unwrap();
    for _ in 0..2 {
        let loss = (&p * 2.0).sum(Kind::Float);
        opt.backward(&loss).unwrap();
        assert_eq!(opt.step(0.5).unwrap(), (false, 1.0));
    }
    let d1 = 2.0f32 + 0.1 * 1.0;
    let p1 = 1.0f32 - 0.5 * d1;
    let d2 = 2.0f32 + 0.1 * p1;
    let p2 = p1 - 0.5 * (0.9 * d1 + d2);
    assert!(
        (values(&p)[0] - p2).abs() < 1e-6,
        "{} vs {p2}",
        values(&p)[0]
    );
}

#[test]
fn the_cuda_shim_links_against_this_libtorch() {
    detbench_train::torch::cuda::check_shim_links().unwrap();
}
