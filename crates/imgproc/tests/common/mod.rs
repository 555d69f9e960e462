//! Shared helpers of the parity tests: where the reference parity files are, and how to read
//! their JSON metadata and `.npz` input tensors.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};

use detbench_imgproc::BgrImage;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;

/// `<shared>/reference/<model>/parity`.
pub fn parity_dir(model: &str) -> PathBuf {
    detbench_assets::shared::reference()
        .expect("shared data folder")
        .join(model)
        .join("parity")
}

/// Every `<stem>.json` of a model's parity folder with its parsed contents, sorted by name.
pub fn parity_cases(model: &str) -> Vec<(PathBuf, serde_json::Value)> {
    let dir = parity_dir(model);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no parity JSON files in {}",
        dir.display()
    );
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read parity json");
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
            (path, value)
        })
        .collect()
}

/// The COCO image a parity case was made from.
pub fn coco_image(file_name: &str) -> PathBuf {
    detbench_assets::shared::coco_images()
        .expect("shared data folder")
        .join(file_name)
}

/// A float32 array of an `.npz` file, by key (without `.npy`).
pub fn npz_f32(path: &Path, key: &str) -> ArrayD<f32> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut npz = NpzReader::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    npz.by_name::<ndarray::OwnedRepr<f32>, IxDyn>(key)
        .unwrap_or_else(|e| panic!("{}: key {key}: {e}", path.display()))
}

/// Rebuilds the uint8 image behind a CHW float tensor (batch dimension allowed): `to_pixel`
/// maps (channel, value) to the pixel value as a real number, which must lie within `tolerance`
/// of an integer in 0..=255. `channel_of_bgr[c]` is the tensor channel holding BGR channel c.
/// Panics naming the first value that is not an integer pixel.
pub fn tensor_to_bgr(
    tensor: &ArrayD<f32>,
    channel_of_bgr: [usize; 3],
    tolerance: f64,
    to_pixel: impl Fn(usize, f32) -> f64,
) -> BgrImage {
    let shape = tensor.shape();
    let (c, h, w) = match shape.len() {
        4 => (shape[1], shape[2], shape[3]),
        3 => (shape[0], shape[1], shape[2]),
        _ => panic!("unexpected tensor shape {shape:?}"),
    };
    assert_eq!(c, 3, "tensor shape {shape:?}");
    let flat = tensor.as_slice().expect("standard layout");
    let mut image = BgrImage::filled(w, h, 0);
    for (bgr_channel, &tensor_channel) in channel_of_bgr.iter().enumerate() {
        for y in 0..h {
            for x in 0..w {
                let value = flat[(tensor_channel * h + y) * w + x];
                let pixel = to_pixel(tensor_channel, value);
                let rounded = pixel.round();
                assert!(
                    (pixel - rounded).abs() <= tolerance && (0.0..=255.0).contains(&rounded),
                    "tensor value {value} at (c={tensor_channel}, y={y}, x={x}) is pixel {pixel}, \
                     not an integer in 0..=255 (tolerance {tolerance})"
                );
                image.data[(y * w + x) * 3 + bgr_channel] = rounded as u8;
            }
        }
    }
    image
}

/// Number of differing channel values, after checking the sizes agree.
pub fn mismatches(ours: &BgrImage, reference: &BgrImage) -> usize {
    assert_eq!(
        (ours.width, ours.height),
        (reference.width, reference.height),
        "image sizes differ"
    );
    ours.data
        .iter()
        .zip(&reference.data)
        .filter(|(a, b)| a != b)
        .count()
}
