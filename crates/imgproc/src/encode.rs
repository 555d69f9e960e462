//! JPEG encoding of RGB pixels (libjpeg-turbo, the library that decodes), for annotated images
//! written as `.jpg`.

use crate::error::ImageError;

/// `rgb` (row-major, 3 bytes a pixel) as a JPEG file at `quality` (1..=100).
pub fn encode_jpeg(
    rgb: &[u8],
    width: usize,
    height: usize,
    quality: i32,
) -> Result<Vec<u8>, ImageError> {
    let image = turbojpeg::Image {
        pixels: rgb,
        width,
        pitch: width * 3,
        height,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, quality, turbojpeg::Subsamp::Sub2x2)
        .map(|buf| buf.to_vec())
        .map_err(|e| ImageError::InvalidArgument {
            what: "image to encode as JPEG",
            message: e.to_string(),
        })
}
