//! The pieces of one training step that touch tensors: a loader batch on the device, the loss
//! values read back, gradient averaging over the process group, and the parameter checksum.

use tch::{Device, Kind, Tensor};

use crate::error::{Result, TrainError};
use crate::loader::Batch;
use crate::torch::dist::ProcessGroup;

/// One batch as the model takes it: images and `List[Dict[str, Tensor]]` targets.
pub struct DeviceBatch {
    pub images: Vec<Tensor>,
    pub targets: Vec<Vec<(&'static str, Tensor)>>,
}

fn torch_err(e: tch::TchError) -> TrainError {
    TrainError::Torch(e.to_string())
}

/// engine.py: `images = list(image.to(device) ...)`, `targets = [{k: v.to(device) ...}]`.
pub fn to_device(batch: &Batch, device: Device) -> Result<DeviceBatch> {
    let mut images = Vec::with_capacity(batch.samples.len());
    let mut targets = Vec::with_capacity(batch.samples.len());
    for (s, pixels) in batch.samples.iter().zip(&batch.images) {
        let (h, w, n) = (s.height as i64, s.width as i64, s.num_objects() as i64);
        let image = Tensor::f_from_slice(pixels)
            .and_then(|t| t.f_view([3, h, w]))
            .and_then(|t| t.f_to_device(device))
            .map_err(torch_err)?;
        let flat_boxes: Vec<f32> = s.boxes.iter().flatten().copied().collect();
        let mut target = vec![
            (
                "boxes",
                Tensor::f_from_slice(&flat_boxes)
                    .and_then(|t| t.f_view([n, 4]))
                    .map_err(torch_err)?,
            ),
            (
                "labels",
                Tensor::f_from_slice(&s.labels).map_err(torch_err)?,
            ),
        ];
        if let Some(masks) = &s.masks {
            target.push((
                "masks",
                Tensor::f_from_slice(masks)
                    .and_then(|t| t.f_view([n, h, w]))
                    .map_err(torch_err)?,
            ));
        }
        if let Some(k) = &s.keypoints {
            let per = s.keypoints_per_object as i64;
            target.push((
                "keypoints",
                Tensor::f_from_slice(k)
                    .and_then(|t| t.f_view([n, per, 3]))
                    .map_err(torch_err)?,
            ));
        }
        let target = target
            .into_iter()
            .map(|(key, t)| t.f_to_device(device).map(|t| (key, t)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(torch_err)?;
        images.push(image);
        targets.push(target);
    }
    Ok(DeviceBatch { images, targets })
}

/// The losses and their sum as f64 on the host (one device synchronisation, as engine.py's
/// `losses_reduced.item()`); with a process group, averaged over the ranks first
/// (`utils.reduce_dict`).
pub fn loss_values(
    losses: &[(String, Tensor)],
    total: &Tensor,
    group: Option<(&ProcessGroup, usize)>,
) -> Result<(Vec<f64>, f64)> {
    let mut all: Vec<Tensor> = losses
        .iter()
        .map(|(_, t)| t.detach().to_kind(Kind::Float).reshape([1]))
        .collect();
    all.push(total.detach().to_kind(Kind::Float).reshape([1]));
    let mut stacked = Tensor::f_cat(&all, 0).map_err(torch_err)?;
    if let Some((pg, world)) = group {
        pg.allreduce_sum(&[&stacked])?;
        let _ = stacked.f_div_scalar_(world as f64).map_err(torch_err)?;
    }
    let host = stacked
        .f_to_kind(Kind::Double)
        .and_then(|t| t.f_to_device(Device::Cpu))
        .map_err(torch_err)?;
    let mut values = vec![0f64; all.len()];
    host.f_copy_data(&mut values, all.len())
        .map_err(torch_err)?;
    let total = values.pop().unwrap_or(f64::NAN);
    Ok((values, total))
}

/// DistributedDataParallel's gradient averaging: each rank multiplies its gradients by
/// `1 / world_size` and the buckets are summed over the ranks (c10d all-reduce), in buckets of
/// at most `bucket_bytes` taken in reverse parameter order (DDP's default 25 MiB buckets).
pub fn average_gradients(
    grads: &[Tensor],
    pg: &ProcessGroup,
    world: usize,
    bucket_bytes: usize,
) -> Result<()> {
    let scale = 1.0 / world as f64;
    let mut start = grads.len();
    while start > 0 {
        let mut end = start;
        let mut bytes = 0usize;
        let kind = grads[start - 1].kind();
        while end > 0 && grads[end - 1].kind() == kind {
            let size = grads[end - 1].numel() * grads[end - 1].kind().elt_size_in_bytes();
            if bytes > 0 && bytes + size > bucket_bytes {
                break;
            }
            bytes += size;
            end -= 1;
        }
        let bucket = &grads[end..start];
        let mut flat = Tensor::f_cat(
            &bucket.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(),
            0,
        )
        .map_err(torch_err)?;
        let _ = flat.f_mul_scalar_(scale).map_err(torch_err)?;
        pg.allreduce_sum(&[&flat])?;
        let mut offset = 0i64;
        for g in bucket {
            let n = g.numel() as i64;
            let part = flat
                .f_narrow(0, offset, n)
                .and_then(|p| p.f_view_as(g))
                .map_err(torch_err)?;
            let mut g = g.shallow_clone();
            g.f_copy_(&part).map_err(torch_err)?;
            offset += n;
        }
        start = end;
    }
    Ok(())
}

/// Writes a batch to an .npz file: `img{i}`, `{key}{i}` for each target entry, and
/// `meta{i}` = [image id, flipped].
pub fn dump_batch(batch: &DeviceBatch, source: &Batch, path: &std::path::Path) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (i, (image, target)) in batch.images.iter().zip(&batch.targets).enumerate() {
        let s = &source.samples[i];
        named.push((
            format!("meta{i}"),
            Tensor::from_slice(&[s.image_id as i64, s.flipped as i64]),
        ));
        named.push((format!("img{i}"), image.to_device(Device::Cpu)));
        for (key, t) in target {
            named.push((format!("{key}{i}"), t.to_device(Device::Cpu)));
        }
    }
    Tensor::write_npz(&named, path).map_err(|e| TrainError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Sum and sum of squares of all parameters, in float64.
pub fn checksum(params: &[Tensor]) -> Result<[f64; 2]> {
    let _guard = tch::no_grad_guard();
    let mut sums = [0f64; 2];
    for p in params {
        let d = p.f_to_kind(Kind::Double).map_err(torch_err)?;
        sums[0] += d
            .f_sum(Kind::Double)
            .and_then(|s| s.f_double_value(&[]))
            .map_err(torch_err)?;
        sums[1] += (&d * &d)
            .f_sum(Kind::Double)
            .and_then(|s| s.f_double_value(&[]))
            .map_err(torch_err)?;
    }
    Ok(sums)
}
