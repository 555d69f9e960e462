//! Decoding gives exactly the BGR pixels `cv2.imread(path, IMREAD_COLOR)` gave the reference
//! pipelines (opencv-python 5.0.0, libjpeg-turbo 3.1.2).

mod common;

use detbench_imgproc::{BgrImage, decode_bytes, decode_file};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every parity case that records `bgr_uint8_sha256` (the sha256 of `cv2.imread(...).tobytes()`):
/// our decode hashes to the same value and has the recorded size.
#[test]
fn parity_images_hash_like_cv2_imread() {
    let mut checked = 0;
    for model in [
        "yolox_nano_416",
        "nanodet_m_320",
        "nanodet_m_416",
        "fastestdet_352",
        "d2go_fasterrcnn_fbnetv3a",
    ] {
        for (json_path, case) in common::parity_cases(model) {
            let file = case["file"].as_str().expect("file");
            let expected = case["bgr_uint8_sha256"].as_str().expect("bgr_uint8_sha256");
            let image = decode_file(common::coco_image(file)).unwrap();
            assert_eq!(
                [image.height as u64, image.width as u64],
                [
                    case["orig_hw"][0].as_u64().unwrap(),
                    case["orig_hw"][1].as_u64().unwrap()
                ],
                "{}",
                json_path.display()
            );
            assert_eq!(
                sha256_hex(&image.data),
                expected,
                "{} ({file})",
                json_path.display()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * 3 + 3, "parity cases checked");
}

/// D2Go's parity tensors hold the whole decoded image as BGR / 255 (CHW): rounding x * 255 gives
/// back our decoded pixels exactly.
#[test]
fn d2go_input_tensors_are_our_decoded_pixels() {
    for (json_path, case) in common::parity_cases("d2go_fasterrcnn_fbnetv3a") {
        let npz = json_path.with_extension("npz");
        let tensor = common::npz_f32(&npz, "input_chw_bgr_0_1");
        let reference = common::tensor_to_bgr(&tensor, [0, 1, 2], 1e-3, |_, v| v as f64 * 255.0);
        let ours = decode_file(common::coco_image(case["file"].as_str().unwrap())).unwrap();
        assert_eq!(
            common::mismatches(&ours, &reference),
            0,
            "{}",
            npz.display()
        );
    }
}

/// All 206 subset images decode, with the sizes the COCO annotations give.
#[test]
fn every_subset_image_decodes_at_its_annotated_size() {
    let annotations = detbench_assets::shared::instances_subset().unwrap();
    let text = std::fs::read_to_string(&annotations).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 206);
    for image in images {
        let file = image["file_name"].as_str().unwrap();
        let decoded = decode_file(common::coco_image(file)).unwrap();
        assert_eq!(
            (decoded.width as u64, decoded.height as u64),
            (
                image["width"].as_u64().unwrap(),
                image["height"].as_u64().unwrap()
            ),
            "{file}"
        );
    }
}

/// Bytes between the last scan and the EOI marker make libjpeg-turbo warn ("extraneous bytes
/// before marker"); cv2.imdecode still returns the full image, and so do we (hash recorded with
/// opencv-python 5.0.0 on the same modified bytes: identical to the unmodified file's).
#[test]
fn extraneous_bytes_warning_is_accepted_like_opencv() {
    let bytes = std::fs::read(common::coco_image("000000000139.jpg")).unwrap();
    assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9]);
    let mut modified = bytes[..bytes.len() - 2].to_vec();
    modified.extend_from_slice(&[0x00, 0x01, 0x02, 0xFF, 0xD9]);
    let image = decode_bytes(&modified, "modified 000000000139.jpg").unwrap();
    assert_eq!(
        sha256_hex(&image.data),
        "051176186751df30e1fe179f6cede5003f752be484fc48a20781b3df4e81892e"
    );
}

/// Harmless warnings met while reading the header (libjpeg-turbo's tj3DecompressHeader returns
/// -1 for them): an unknown JFIF major revision and junk bytes before the first DQT marker. The
/// pixels are the unmodified file's (as cv2.imread decodes both), not an error.
#[test]
fn harmless_header_warnings_are_accepted_like_opencv() {
    let bytes = std::fs::read(common::coco_image("000000000139.jpg")).unwrap();
    let original = decode_bytes(&bytes, "000000000139.jpg").unwrap();
    // FF D8, FF E0, length 00 10, "JFIF\0", then the major and minor version.
    assert_eq!(&bytes[6..13], b"JFIF\0\x01\x01");
    let mut revision = bytes.clone();
    revision[11] = 2;
    let mut junk = bytes.clone();
    assert_eq!(&junk[20..22], &[0xFF, 0xDB]);
    junk.splice(20..20, [0x00, 0x01, 0x02]);
    for (what, modified) in [("JFIF 2.01", revision), ("junk before DQT", junk)] {
        let image = decode_bytes(&modified, what).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(image, original, "{what}");
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A grayscale JPEG (written by cv2.imwrite) decodes to B = G = R; hash of cv2.imread's output.
#[test]
fn grayscale_jpeg_is_replicated_into_three_channels() {
    let image: BgrImage = decode_file(fixture("gray_23x17.jpg")).unwrap();
    assert_eq!((image.width, image.height), (23, 17));
    assert!(
        image
            .data
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    );
    assert_eq!(
        sha256_hex(&image.data),
        "e62fec01d26f4d518ec95e8b6daaf7eca33335f3d534cb0d0f950ffb768cba8e"
    );
}

/// A CMYK JPEG (Adobe, written by Pillow) goes through OpenCV's CMYK->BGR formula; hash and first
/// pixels of cv2.imread's output (opencv-python 5.0.0).
#[test]
fn cmyk_jpeg_matches_opencv_conversion() {
    let image = decode_file(fixture("cmyk_29x19.jpg")).unwrap();
    assert_eq!((image.width, image.height), (29, 19));
    assert_eq!(&image.data[..9], &[9, 10, 2, 10, 11, 2, 14, 16, 5]);
    assert_eq!(
        sha256_hex(&image.data),
        "8de1b5bde2163b73c796f5a22bed13f8c7e2d2acf8162faabcd4d71f6500989b"
    );
}

/// PNG and BMP (read with the `image` crate; lossless, so the values are the file's) come out
/// in BGR order, alpha dropped.
#[test]
fn png_and_bmp_decode_to_bgr() {
    let dir = tempfile::tempdir().unwrap();
    let mut rgba = image::RgbaImage::new(3, 2);
    for (x, y, pixel) in rgba.enumerate_pixels_mut() {
        *pixel = image::Rgba([10 * x as u8 + 1, 50 + y as u8, 200, 7]);
    }
    for (name, format) in [
        ("t.png", image::ImageFormat::Png),
        ("t.bmp", image::ImageFormat::Bmp),
    ] {
        let path = dir.path().join(name);
        image::DynamicImage::ImageRgba8(rgba.clone())
            .to_rgb8()
            .save_with_format(&path, format)
            .unwrap();
        let decoded = decode_file(&path).unwrap();
        assert_eq!((decoded.width, decoded.height), (3, 2), "{name}");
        assert_eq!(decoded.pixel(2, 1), [200, 51, 21], "{name}");
        assert_eq!(decoded.pixel(0, 0), [200, 50, 1], "{name}");
    }
}
