//! EXIF orientation, for photos only: a camera stores pixels as the sensor read them and says
//! in EXIF how to turn them upright. COCO's ground truth is in stored-pixel orientation (as
//! OpenCV's `IMREAD_COLOR` without rotation, and pycocotools, read it), so detbench never
//! applies it to datasets; `detbench show --exif-rotate` does for a photo.
//!
//! The tag is read with `kamadak-exif`; the eight orientations are plain pixel moves.

use crate::image::BgrImage;

/// The EXIF orientation (1..=8) of a JPEG file's bytes, when it has one.
pub fn exif_orientation(bytes: &[u8]) -> Option<u16> {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()?;
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    let value = field.value.get_uint(0)?;
    u16::try_from(value).ok().filter(|v| (1..=8).contains(v))
}

/// The image turned upright for EXIF `orientation` (1: as stored; 2: mirrored; 3: rotated 180°;
/// 4: flipped; 5: transposed; 6: rotated 90° clockwise; 7: transversed; 8: rotated 90°
/// counter-clockwise). Other values leave it as it is.
pub fn apply_orientation(image: &BgrImage, orientation: u16) -> BgrImage {
    let (w, h) = (image.width, image.height);
    if !(2..=8).contains(&orientation) {
        return image.clone();
    }
    let swap = orientation >= 5;
    let (out_w, out_h) = if swap { (h, w) } else { (w, h) };
    let mut data = vec![0u8; out_w * out_h * 3];
    for y in 0..out_h {
        for x in 0..out_w {
            // The source pixel of output pixel (x, y).
            let (sx, sy) = match orientation {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            let from = (sy * w + sx) * 3;
            let to = (y * out_w + x) * 3;
            data[to..to + 3].copy_from_slice(&image.data[from..from + 3]);
        }
    }
    BgrImage {
        width: out_w,
        height: out_h,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 image whose pixels are numbered 0..6 row by row.
    fn numbered() -> BgrImage {
        BgrImage {
            width: 3,
            height: 2,
            data: (0..6u8).flat_map(|v| [v, v, v]).collect(),
        }
    }

    fn values(image: &BgrImage) -> Vec<u8> {
        image.data.chunks(3).map(|p| p[0]).collect()
    }

    #[test]
    fn the_eight_orientations() {
        let image = numbered();
        // 0 1 2
        // 3 4 5
        let cases: [(u16, (usize, usize), [u8; 6]); 8] = [
            (1, (3, 2), [0, 1, 2, 3, 4, 5]),
            (2, (3, 2), [2, 1, 0, 5, 4, 3]),
            (3, (3, 2), [5, 4, 3, 2, 1, 0]),
            (4, (3, 2), [3, 4, 5, 0, 1, 2]),
            (5, (2, 3), [0, 3, 1, 4, 2, 5]),
            (6, (2, 3), [3, 0, 4, 1, 5, 2]),
            (7, (2, 3), [5, 2, 4, 1, 3, 0]),
            (8, (2, 3), [2, 5, 1, 4, 0, 3]),
        ];
        for (orientation, (w, h), want) in cases {
            let turned = apply_orientation(&image, orientation);
            assert_eq!((turned.width, turned.height), (w, h), "{orientation}");
            assert_eq!(values(&turned), want, "{orientation}");
        }
    }

    #[test]
    fn reads_the_tag_of_an_exif_segment() {
        assert_eq!(exif_orientation(&jpeg_with_orientation(6)), Some(6));
        assert_eq!(exif_orientation(b"\xFF\xD8\xFF\xD9"), None);
    }

    /// SOI, an APP1 "Exif" segment whose TIFF IFD holds only Orientation, EOI.
    pub(crate) fn jpeg_with_orientation(orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend(1u16.to_le_bytes()); // one entry
        tiff.extend(0x0112u16.to_le_bytes()); // Orientation
        tiff.extend(3u16.to_le_bytes()); // SHORT
        tiff.extend(1u32.to_le_bytes()); // one value
        tiff.extend(orientation.to_le_bytes());
        tiff.extend([0, 0]);
        tiff.extend(0u32.to_le_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        jpeg.extend(((app1.len() + 2) as u16).to_be_bytes());
        jpeg.extend(app1);
        jpeg.extend([0xFF, 0xD9]);
        jpeg
    }
}
