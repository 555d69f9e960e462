//! The decoded image every pipeline starts from.

/// An 8-bit, 3-channel image in OpenCV's layout: rows of pixels, each pixel B, G, R
/// (height x width x 3, row-major, no padding between rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgrImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl BgrImage {
    /// An image of the given size filled with one value in every channel.
    pub fn filled(width: usize, height: usize, value: u8) -> Self {
        BgrImage {
            width,
            height,
            data: vec![value; width * height * 3],
        }
    }

    /// The three channel values (B, G, R) of pixel (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * 3;
        [self.data[at], self.data[at + 1], self.data[at + 2]]
    }
}
