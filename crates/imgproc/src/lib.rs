//! Image decoding and resampling that give the pixels the upstream Python pipelines see:
//! JPEG through libjpeg-turbo as `cv2.imread` does, and OpenCV's resize and warps reproduced
//! bit for bit (the recipes of `../shared/tools/reference/exact_preproc.py`).

pub mod image;

pub use image::BgrImage;
