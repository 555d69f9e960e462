//! Per-image preprocessing latency over the 206 subset images, single thread:
//! decode (libjpeg-turbo), YOLOX letterbox resize (cv2.resize to fit 416), FastestDet stretch
//! resize (352x352), NanoDet warpPerspective letterbox (320x320) and one SimplePose-sized crop.
//!
//! Run: `cargo run --release -p detbench-imgproc --example preproc_speed [passes]`

use std::time::Instant;

use detbench_imgproc::{
    decode_file, resize_linear, simple_pose_crop, warp_perspective_linear_constant0,
};

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let passes: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let dir = detbench_assets::shared::coco_images()?;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "jpg"));
    paths.sort();

    let stages = [
        "decode",
        "resize letterbox 416",
        "resize stretch 352",
        "warpPerspective 320",
        "pose crop 192x256",
        "decode + resize 416",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    for pass in 0..passes {
        for path in &paths {
            let t = Instant::now();
            let image = decode_file(path)?;
            let decode_ms = ms_since(t);

            let (w, h) = (image.width, image.height);
            let r = (416.0 / h as f64).min(416.0 / w as f64);
            let t = Instant::now();
            let letterbox = resize_linear(&image, (w as f64 * r) as usize, (h as f64 * r) as usize);
            let resize_ms = ms_since(t);

            let t = Instant::now();
            let stretch = resize_linear(&image, 352, 352);
            let stretch_ms = ms_since(t);

            let ratio = if (w as f64 / h as f64) < 1.0 {
                320.0 / h as f64
            } else {
                320.0 / w as f64
            };
            let m = [
                [ratio, 0.0, 160.0 - ratio * w as f64 / 2.0],
                [0.0, ratio, 160.0 - ratio * h as f64 / 2.0],
                [0.0, 0.0, 1.0],
            ];
            let t = Instant::now();
            let warped = warp_perspective_linear_constant0(&image, &m, 320, 320)?;
            let warp_ms = ms_since(t);

            let person = [
                w as f64 * 0.3,
                h as f64 * 0.2,
                w as f64 * 0.6,
                h as f64 * 0.9,
            ];
            let t = Instant::now();
            let crop = simple_pose_crop(&image, person, 192, 256, 1.25)?;
            let crop_ms = ms_since(t);

            std::hint::black_box((&letterbox, &stretch, &warped, &crop));
            if pass > 0 || passes == 1 {
                for (slot, value) in times.iter_mut().zip([
                    decode_ms,
                    resize_ms,
                    stretch_ms,
                    warp_ms,
                    crop_ms,
                    decode_ms + resize_ms,
                ]) {
                    slot.push(value);
                }
            }
        }
    }
    println!(
        "{} images x {} timed pass(es) (first pass is warm-up when passes > 1), one thread",
        paths.len(),
        passes.saturating_sub(1).max(1)
    );
    for (name, values) in stages.iter().zip(times.iter_mut()) {
        let total: f64 = values.iter().sum();
        let mean = total / values.len() as f64;
        println!(
            "{name:<22} median {:7.3} ms   mean {mean:7.3} ms",
            median(values)
        );
    }
    Ok(())
}
