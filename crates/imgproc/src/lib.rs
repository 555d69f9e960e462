//! Image decoding and resampling that give the pixels the upstream Python pipelines see:
//! JPEG through libjpeg-turbo as `cv2.imread` does, and OpenCV's resize and warps reproduced
//! bit for bit (the recipes of `../shared/tools/reference/exact_preproc.py`).

pub mod affine;
pub mod decode;
pub mod encode;
pub mod error;
pub mod image;
pub mod orient;
pub mod resize;
pub mod warp;

pub use affine::{PoseCrop, simple_pose_crop};
pub use decode::{decode_bytes, decode_file};
pub use encode::encode_jpeg;
pub use error::ImageError;
pub use image::BgrImage;
pub use orient::{apply_orientation, exif_orientation};
pub use resize::{resize_linear, resize_linear_into, resize_linear_rows};
pub use warp::{
    warp_affine_inverse_linear_constant0, warp_affine_linear_constant0,
    warp_perspective_linear_constant0,
};
