//! Bad input gives an error that names the file and says what is wrong, never a panic.

mod common;

use std::path::Path;

use detbench_imgproc::{ImageError, decode_bytes, decode_file};

const SAMPLE: &str = "000000000139.jpg";

fn sample_bytes() -> Vec<u8> {
    std::fs::read(common::coco_image(SAMPLE)).expect("sample COCO image")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn assert_names_path(error: &ImageError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "error message does not name {}: {message}",
        path.display()
    );
}

#[test]
fn truncated_jpeg_is_an_error_not_a_gray_filled_image() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = sample_bytes();
    let path = write(dir.path(), "truncated.jpg", &bytes[..bytes.len() / 2]);
    let error = decode_file(&path).expect_err("half a JPEG must not decode");
    assert!(
        matches!(error, ImageError::DamagedJpeg { .. }),
        "expected DamagedJpeg, got {error:?}"
    );
    assert!(
        error.to_string().contains("Premature end of JPEG file"),
        "{error}"
    );
    assert_names_path(&error, &path);
}

#[test]
fn jpeg_cut_inside_its_header_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "header_only.jpg", &sample_bytes()[..200]);
    let error = decode_file(&path).expect_err("a JPEG header fragment must not decode");
    assert!(
        matches!(
            error,
            ImageError::CorruptJpeg { .. } | ImageError::DamagedJpeg { .. }
        ),
        "{error:?}"
    );
    assert_names_path(&error, &path);
}

#[test]
fn jpeg_signature_followed_by_garbage_is_an_error() {
    let mut bytes = vec![0xFF, 0xD8, 0xFF];
    bytes.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let error = decode_bytes(&bytes, "garbage.jpg").expect_err("garbage must not decode");
    assert!(matches!(error, ImageError::CorruptJpeg { .. }), "{error:?}");
    assert!(error.to_string().starts_with("garbage.jpg: "), "{error}");
}

#[test]
fn text_file_named_jpg_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "notes.jpg", b"this is not an image\n");
    let error = decode_file(&path).expect_err("text must not decode");
    assert!(
        matches!(error, ImageError::UnknownFormat { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("74 68 69 73"), "{error}"); // "this"
    assert_names_path(&error, &path);
}

#[test]
fn empty_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.jpg", b"");
    let error = decode_file(&path).expect_err("empty file must not decode");
    assert!(matches!(error, ImageError::Empty { .. }), "{error:?}");
    assert_names_path(&error, &path);
}

#[test]
fn missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does_not_exist.jpg");
    let error = decode_file(&path).expect_err("missing file");
    assert!(matches!(error, ImageError::Io { .. }), "{error:?}");
    assert_names_path(&error, &path);
}

#[test]
fn corrupt_png_is_an_error() {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0u8; 40]);
    let error = decode_bytes(&bytes, "broken.png").expect_err("broken PNG");
    assert!(
        matches!(error, ImageError::Decode { format: "PNG", .. }),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("broken.png: "), "{error}");
}

/// Each thread reuses one libjpeg-turbo handle. A JPEG that fails inside its header, or half-way
/// through its data, must not leave that handle unusable for the next, intact image on the same
/// thread (this test runs them all on one thread). 000000000802.jpg cut at 300 bytes fails with
/// "missing SOS marker"; with that handle kept, 000000005001.jpg then failed ("integer value
/// width overflowed"), as it did in CI.
#[test]
fn a_failed_decode_does_not_spoil_the_next_image_on_the_same_thread() {
    let intact_bytes = std::fs::read(common::coco_image("000000005001.jpg")).expect("COCO image");
    let intact = decode_bytes(&intact_bytes, "intact.jpg").expect("intact image decodes");
    decode_bytes(&sample_bytes(), SAMPLE).expect("intact sample decodes");
    for broken_name in ["000000000802.jpg", SAMPLE] {
        let bytes = std::fs::read(common::coco_image(broken_name)).expect("COCO image");
        for cut in [300, 200, 2, bytes.len() / 2] {
            let broken = decode_bytes(&bytes[..cut], "broken.jpg");
            assert!(
                broken.is_err(),
                "{broken_name} cut at {cut} bytes must not decode"
            );
            let again = decode_bytes(&intact_bytes, "intact.jpg").unwrap_or_else(|e| {
                panic!("the intact image failed after {broken_name} cut at {cut} bytes: {e}")
            });
            assert_eq!(
                again.data, intact.data,
                "after {broken_name} cut at {cut} bytes"
            );
        }
    }
}

/// A header that claims 65500x65500 pixels (12.9 GB as BGR) is refused before anything is
/// allocated, as OpenCV's `validateInputImageSize` refuses it, instead of aborting the process.
#[test]
fn jpeg_header_claiming_a_huge_image_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = sample_bytes();
    // SOF0/SOF2: FF C0|C2, length (2), precision (1), height (2), width (2).
    let sof = bytes
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
        .expect("a SOF marker");
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]); // 65500 x 65500
    let path = write(dir.path(), "huge.jpg", &bytes);
    let error = decode_file(&path).expect_err("a 4.3-gigapixel header must be refused");
    assert!(
        matches!(
            error,
            ImageError::TooLarge {
                width: 65500,
                height: 65500,
                ..
            }
        ),
        "expected TooLarge, got {error:?}"
    );
    assert_names_path(&error, &path);
}
