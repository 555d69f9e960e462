//! Reading image files into [`BgrImage`]s with the pixels `cv2.imread(path, cv2.IMREAD_COLOR)`
//! gives (OpenCV `modules/imgcodecs/src/grfmt_jpeg.cpp`, `JpegDecoder::readData`).
//!
//! JPEG goes through libjpeg-turbo 3.x (the `turbojpeg` crate builds the same library OpenCV
//! 5.0.0 bundles) with OpenCV's settings: integer slow DCT and fancy upsampling (the libjpeg
//! defaults, which OpenCV does not change), output straight to BGR. Grayscale JPEGs come out with
//! the gray value replicated into B, G and R, as libjpeg-turbo's gray->BGR conversion does for
//! OpenCV. CMYK/YCCK JPEGs are decoded to CMYK and converted with OpenCV's own formula
//! (`icvCvt_CMYK2BGR_8u_C4C3R` in `modules/imgcodecs/src/utils.cpp`).
//! Verified: decoded buffers hash to the `bgr_uint8_sha256` values the reference pipelines
//! recorded from cv2.imread, and D2Go's full-image parity tensors are our pixels (tests/decode.rs);
//! during development all 206 subset images were compared with opencv-python-headless 5.0.0
//! `cv2.imread`: 0 differing values. The grayscale and CMYK fixtures in tests/data carry hashes of
//! cv2.imread's output.
//!
//! Deliberate differences from `cv2.imread`:
//! - No EXIF orientation is applied (cv2.imread with IMREAD_COLOR would rotate): COCO's
//!   annotations and image sizes refer to the stored, unrotated pixels.
//! - A JPEG that libjpeg-turbo can only partly decode (truncated file, premature end of a data
//!   segment, bad Huffman/arithmetic code, lost restart marker) is an error. libjpeg-turbo only
//!   warns there and cv2.imread returns an image whose missing part is gray; a benchmark must not
//!   silently score such pixels. Warnings that leave the pixels complete (extraneous bytes before
//!   a marker, unknown JFIF revision, unknown Adobe transform code, bad ICC marker, odd SOS or
//!   progression parameters) are accepted, as cv2.imread accepts them.
//! - A header larger than OpenCV's limits (2^20 pixels a side, 2^30 in all) is an error before
//!   any buffer is allocated, as in cv2.imread.
//!
//! Harmless warnings met while reading the header (an unknown JFIF revision, bytes before a
//! marker) make `tj3DecompressHeader` return -1 after reading the header completely; they are
//! accepted too (the TurboJPEG C API is called directly for this: the `turbojpeg` crate's
//! wrapper stops at any header warning).
//!
//! Known limit of the warning check: libjpeg keeps only the first warning of an image for the
//! caller (`emit_message` passes on later ones only at trace level 3, which TurboJPEG does not
//! expose), so when that first warning is a harmless one, later damage in the same file (a
//! truncation after extraneous bytes, say) is not seen.
//!
//! PNG and BMP files are read with the `image` crate (8-bit gray, gray+alpha, RGB or RGBA become
//! BGR; alpha is dropped as cv2.imread does with IMREAD_COLOR). Parity with OpenCV is only claimed
//! for JPEG; PNG/BMP are lossless so the pixel values agree, but 16-bit PNGs are reduced to 8 bits
//! by the `image` crate's rounding, not OpenCV's `>> 8`.

use std::cell::RefCell;
use std::path::Path;

use turbojpeg::raw;

use crate::error::ImageError;
use crate::image::BgrImage;

/// `cv2.imread(path, cv2.IMREAD_COLOR)` without EXIF rotation: the file's pixels as BGR u8.
pub fn decode_file(path: impl AsRef<Path>) -> Result<BgrImage, ImageError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source: with_kind_of_entry(source, path),
    })?;
    decode_bytes(&bytes, &path.display().to_string())
}

/// Says what the entry is when a name that looks like an image is not a readable file: a
/// folder, or a symbolic link whose target is gone.
fn with_kind_of_entry(source: std::io::Error, path: &Path) -> std::io::Error {
    let what = if path.is_dir() {
        "a folder, not an image file"
    } else if source.kind() == std::io::ErrorKind::NotFound
        && path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    {
        "a symbolic link whose target does not exist"
    } else {
        return source;
    };
    std::io::Error::new(source.kind(), format!("{what} ({source})"))
}

/// Decodes an in-memory JPEG, PNG or BMP file (`cv2.imdecode(buf, cv2.IMREAD_COLOR)` without EXIF
/// rotation). `name` is only used in error messages (usually the file path).
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<BgrImage, ImageError> {
    match sniff_format(bytes) {
        Some(Format::Jpeg) => decode_jpeg(bytes, name),
        Some(Format::Png) => decode_with_image_crate(bytes, name, image::ImageFormat::Png, "PNG"),
        Some(Format::Bmp) => decode_with_image_crate(bytes, name, image::ImageFormat::Bmp, "BMP"),
        None if bytes.is_empty() => Err(ImageError::Empty {
            name: name.to_string(),
        }),
        None => Err(ImageError::UnknownFormat {
            name: name.to_string(),
            first_bytes: bytes
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

enum Format {
    Jpeg,
    Png,
    Bmp,
}

/// The signatures OpenCV's decoders check (`JpegDecoder::signatureLength`/`checkSignature` etc.).
fn sniff_format(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(b"BM") {
        Some(Format::Bmp)
    } else {
        None
    }
}

thread_local! {
    /// One libjpeg-turbo decompressor per thread, reused across images (tj3Init allocates).
    static DECOMPRESSOR: RefCell<Option<JpegHandle>> = const { RefCell::new(None) };
}

fn decode_jpeg(bytes: &[u8], name: &str) -> Result<BgrImage, ImageError> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(JpegHandle::new().ok_or_else(|| ImageError::CorruptJpeg {
                name: name.to_string(),
                message: "cannot create a libjpeg-turbo decompressor".into(),
            })?);
        }
        let handle = slot.as_mut().expect("just initialised");
        let decoded = decode_jpeg_with(handle, bytes, name);
        if decoded.is_err() {
            // A handle that failed mid-stream can fail the next, intact image on this thread
            // (seen in CI: the image after a truncated one was reported corrupt); start afresh.
            *slot = None;
        }
        decoded
    })
}

fn decode_jpeg_with(
    handle: &mut JpegHandle,
    bytes: &[u8],
    name: &str,
) -> Result<BgrImage, ImageError> {
    // A warning while reading the header fails tj3DecompressHeader after the header was read
    // completely (turbojpeg.c sets the values first); a harmless one is accepted, as cv2.imread
    // accepts such files.
    let (width, height, colorspace) = match handle.read_header(bytes) {
        Ok(values) => values,
        Err(TjFailure::Warning {
            message,
            values: Some(values),
        }) if warning_kind(&message) == WarningKind::Harmless => values,
        Err(failure) => return Err(failure_error(failure, name)),
    };
    if width == 0 || height == 0 {
        return Err(ImageError::CorruptJpeg {
            name: name.to_string(),
            message: format!("header gives an empty image ({width}x{height})"),
        });
    }
    // Before the output buffer is allocated from the header's size: a few bytes of header can
    // ask for gigabytes, and a failed allocation aborts the whole process.
    check_size_like_opencv(width, height, name)?;
    match colorspace {
        raw::TJCS_TJCS_YCbCr | raw::TJCS_TJCS_GRAY | raw::TJCS_TJCS_RGB => {
            let mut bgr = BgrImage::filled(width, height, 0);
            let status =
                handle.decompress(bytes, &mut bgr.data, width, height, 3, raw::TJPF_TJPF_BGR);
            check_decompress(status, name)?;
            Ok(bgr)
        }
        raw::TJCS_TJCS_CMYK | raw::TJCS_TJCS_YCCK => {
            let mut cmyk = vec![0u8; width * height * 4];
            let status = handle.decompress(bytes, &mut cmyk, width, height, 4, raw::TJPF_TJPF_CMYK);
            check_decompress(status, name)?;
            Ok(cmyk_to_bgr_like_opencv(&cmyk, width, height))
        }
        other => Err(ImageError::UnsupportedJpeg {
            name: name.to_string(),
            colorspace: format!("code {other}"),
        }),
    }
}

/// How a TurboJPEG call failed: a libjpeg warning (the call ran to its end; `values` are what
/// it read, where it reads any) or an error.
#[derive(Debug)]
enum TjFailure<T> {
    Warning { message: String, values: Option<T> },
    Error(String),
}

/// A TurboJPEG decompression handle (`tj3Init`), used through the TurboJPEG C API directly: the
/// `turbojpeg` crate's wrapper turns every warning into an error and reads the header again
/// before decompressing, so a harmless header warning would stop it before any pixel is
/// written. The calls and their defaults (accurate DCT, fancy upsampling, no scaling) are the
/// ones that wrapper makes.
struct JpegHandle(raw::tjhandle);

impl Drop for JpegHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once, here.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

impl JpegHandle {
    /// A new handle, or `None` when libjpeg-turbo cannot make one (out of memory).
    fn new() -> Option<Self> {
        // SAFETY: tj3Init returns a new handle or null.
        let handle =
            unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as turbojpeg::libc::c_int) };
        (!handle.is_null()).then_some(Self(handle))
    }

    /// The message of the last failed call and whether it was only a warning.
    fn failure<T>(&self, values: Option<T>) -> TjFailure<T> {
        // SAFETY: the handle is valid; tj3GetErrorStr returns a NUL-terminated string owned by
        // the handle (or a static one), copied here before any other call.
        let (code, message) = unsafe {
            (
                raw::tj3GetErrorCode(self.0),
                std::ffi::CStr::from_ptr(raw::tj3GetErrorStr(self.0))
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        if code == raw::TJERR_TJERR_WARNING as turbojpeg::libc::c_int {
            TjFailure::Warning { message, values }
        } else {
            TjFailure::Error(message)
        }
    }

    fn get(&self, param: raw::TJPARAM) -> turbojpeg::libc::c_int {
        // SAFETY: the handle is valid; tj3Get only reads a parameter.
        unsafe { raw::tj3Get(self.0, param as turbojpeg::libc::c_int) }
    }

    /// Width, height and TJCS colour space from the header.
    #[allow(clippy::type_complexity)]
    fn read_header(
        &mut self,
        bytes: &[u8],
    ) -> Result<(usize, usize, raw::TJCS), TjFailure<(usize, usize, raw::TJCS)>> {
        // SAFETY: the handle is valid and `bytes` is readable for its whole length during the
        // call, which keeps no pointer to it.
        let status = unsafe { raw::tj3DecompressHeader(self.0, bytes.as_ptr(), bytes.len() as _) };
        let values = || {
            let (width, height) = (
                self.get(raw::TJPARAM_TJPARAM_JPEGWIDTH),
                self.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT),
            );
            let colorspace = self.get(raw::TJPARAM_TJPARAM_COLORSPACE);
            (width > 0 && height > 0 && colorspace >= 0).then_some((
                width as usize,
                height as usize,
                colorspace as raw::TJCS,
            ))
        };
        if status == 0 {
            values().ok_or_else(|| {
                TjFailure::Error("header gives no image size or colour space".into())
            })
        } else {
            Err(self.failure(values()))
        }
    }

    /// Decompresses the whole image into `pixels` (`width * height * channels` bytes, rows of
    /// `width * channels`) as `format`. A warning comes back as `Err(Warning)`: the call ran to
    /// its end and filled the buffer, possibly with gray where data was missing.
    fn decompress(
        &mut self,
        bytes: &[u8],
        pixels: &mut [u8],
        width: usize,
        height: usize,
        channels: usize,
        format: raw::TJPF,
    ) -> Result<(), TjFailure<()>> {
        assert_eq!(
            pixels.len(),
            width * height * channels,
            "output buffer size"
        );
        // SAFETY: the handle is valid; `bytes` is readable for its length; `pixels` holds
        // `height` rows of `width * channels` bytes, exactly what tj3Decompress8 writes for an
        // unscaled image of the size the header gave (the same bytes were read for it above).
        let status = unsafe {
            raw::tj3Decompress8(
                self.0,
                bytes.as_ptr(),
                bytes.len() as _,
                pixels.as_mut_ptr(),
                (width * channels) as turbojpeg::libc::c_int,
                format as turbojpeg::libc::c_int,
            )
        };
        if status == 0 {
            Ok(())
        } else {
            Err(self.failure(None))
        }
    }
}

/// OpenCV's `CV_IO_MAX_IMAGE_WIDTH` / `CV_IO_MAX_IMAGE_HEIGHT` (1 << 20) and
/// `CV_IO_MAX_IMAGE_PIXELS` (1 << 30), the defaults `validateInputImageSize` in
/// modules/imgcodecs/src/loadsave.cpp checks before any decoder allocates (imread then returns an
/// empty image).
pub const MAX_IMAGE_SIDE: usize = 1 << 20;
pub const MAX_IMAGE_PIXELS: usize = 1 << 30;

fn check_size_like_opencv(width: usize, height: usize, name: &str) -> Result<(), ImageError> {
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || width * height > MAX_IMAGE_PIXELS {
        return Err(ImageError::TooLarge {
            name: name.to_string(),
            width,
            height,
            max_side: MAX_IMAGE_SIDE,
            max_pixels: MAX_IMAGE_PIXELS,
        });
    }
    Ok(())
}

/// What a libjpeg warning means for the decoded pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WarningKind {
    /// Part of the image is missing or garbled.
    Damaged,
    /// The pixels are complete (cv2.imread accepts the file).
    Harmless,
    /// Not a recognised warning: a fatal libjpeg error.
    Unknown,
}

/// Sorts a libjpeg-turbo message (libjpeg-turbo's `jerror.h` JWRN_* texts).
fn warning_kind(message: &str) -> WarningKind {
    const DAMAGED: [&str; 5] = [
        "Premature end of JPEG file",                       // JWRN_JPEG_EOF
        "Corrupt JPEG data: premature end of data segment", // JWRN_HIT_MARKER
        "Corrupt JPEG data: bad Huffman code",              // JWRN_HUFF_BAD_CODE
        "Corrupt JPEG data: bad arithmetic code",           // JWRN_ARITH_BAD_CODE
        "Corrupt JPEG data: found marker",                  // JWRN_MUST_RESYNC
    ];
    const HARMLESS: [&str; 5] = [
        "Warning: unknown JFIF revision number", // JWRN_JFIF_MAJOR
        "Unknown Adobe color transform code",    // JWRN_ADOBE_XFORM
        "Corrupt JPEG data: bad ICC marker",     // JWRN_BOGUS_ICC
        "Invalid SOS parameters for sequential JPEG", // JWRN_NOT_SEQUENTIAL
        "Inconsistent progression sequence",     // JWRN_BOGUS_PROGRESSION
    ];
    if DAMAGED.iter().any(|m| message.starts_with(m)) {
        WarningKind::Damaged
    } else if message.contains("extraneous bytes before marker") // JWRN_EXTRANEOUS_DATA
        || HARMLESS.iter().any(|m| message.starts_with(m))
    {
        WarningKind::Harmless
    } else {
        WarningKind::Unknown
    }
}

/// libjpeg-turbo reports warnings (stop-on-warning is off, as in OpenCV) as a failed call with the
/// first warning's message, after filling the whole output buffer. Sort them into
/// "pixels complete" (accept, like cv2.imread) and "pixels missing/garbled" (error); an error
/// (not a warning) is a fatal libjpeg error.
fn check_decompress(result: Result<(), TjFailure<()>>, name: &str) -> Result<(), ImageError> {
    match result {
        Ok(()) => Ok(()),
        Err(TjFailure::Warning { message, .. })
            if warning_kind(&message) == WarningKind::Harmless =>
        {
            Ok(())
        }
        Err(failure) => Err(failure_error(failure, name)),
    }
}

/// The error for a failed TurboJPEG call: a warning that leaves pixels missing is
/// [`ImageError::DamagedJpeg`]; any other failure is [`ImageError::CorruptJpeg`].
fn failure_error<T>(failure: TjFailure<T>, name: &str) -> ImageError {
    match failure {
        TjFailure::Warning { message, .. } if warning_kind(&message) == WarningKind::Damaged => {
            ImageError::DamagedJpeg {
                name: name.to_string(),
                message,
            }
        }
        TjFailure::Warning { message, .. } | TjFailure::Error(message) => ImageError::CorruptJpeg {
            name: name.to_string(),
            message,
        },
    }
}

/// OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R` (modules/imgcodecs/src/utils.cpp), applied to the raw
/// CMYK values libjpeg returns (OpenCV does no Adobe inversion either).
fn cmyk_to_bgr_like_opencv(cmyk: &[u8], width: usize, height: usize) -> BgrImage {
    let mut bgr = BgrImage::filled(width, height, 0);
    for (out, px) in bgr.data.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
        let (c, m, y, k) = (px[0] as i32, px[1] as i32, px[2] as i32, px[3] as i32);
        let c = k - (((255 - c) * k) >> 8);
        let m = k - (((255 - m) * k) >> 8);
        let y = k - (((255 - y) * k) >> 8);
        out[2] = c as u8;
        out[1] = m as u8;
        out[0] = y as u8;
    }
    bgr
}

/// PNG/BMP through the `image` crate. OpenCV parity is only claimed for JPEG (see module docs).
fn decode_with_image_crate(
    bytes: &[u8],
    name: &str,
    format: image::ImageFormat,
    format_name: &'static str,
) -> Result<BgrImage, ImageError> {
    let decoded =
        image::load_from_memory_with_format(bytes, format).map_err(|e| ImageError::Decode {
            name: name.to_string(),
            format: format_name,
            message: e.to_string(),
        })?;
    let rgb = decoded.into_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    let mut data = rgb.into_raw();
    for px in data.chunks_exact_mut(3) {
        px.swap(0, 2);
    }
    Ok(BgrImage {
        width,
        height,
        data,
    })
}
