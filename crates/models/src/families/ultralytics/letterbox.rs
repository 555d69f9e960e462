//! Ultralytics' letterbox and its inverse, as `ultralytics` 8.4.x computes them
//! (`ultralytics/data/augment.py::LetterBox.get_params` / `apply_image`,
//! `ultralytics/engine/predictor.py::BasePredictor.preprocess`, `ultralytics/utils/ops.py::
//! scale_boxes` / `scale_coords` / `clip_boxes` / `clip_coords`).
//!
//! Python's `round` rounds halves to even, so every `round` here is [`f64::round_ties_even`].
//! The predictor builds `LetterBox(imgsz, auto=False, scale_fill=False, scaleup=True,
//! center=True, padding_value=114)` for exported models of fixed input size (`auto` needs a
//! dynamic PyTorch or dynamic-shape export and `rect`), so those are the defaults.

use detbench_imgproc::BgrImage;

/// Python 3 `round(x)` on a float: to the nearest integer, halves to even.
#[inline]
pub fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// Where the resized image sits on the canvas (`LetterBox.get_params`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Canvas (network input) size.
    pub canvas_w: usize,
    pub canvas_h: usize,
    /// Original image size.
    pub image_w: usize,
    pub image_h: usize,
    /// `new_unpad`: the resized image size, `max(round(side * r), 1)`.
    pub resized_w: usize,
    pub resized_h: usize,
    pub top: usize,
    pub left: usize,
    /// The validator's path only: the size `BaseDataset.load_image` resized the image to before
    /// its letterbox, and the per-axis `ratio_pad` gains (x, y) it records.
    pub loaded: Option<LoadedImage>,
}

/// What the validator's dataloader did before its letterbox ([`Letterbox::validator`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadedImage {
    pub width: usize,
    pub height: usize,
    pub gain_x: f64,
    pub gain_y: f64,
}

impl Letterbox {
    /// `LetterBox.get_params` for an `image_w` x `image_h` image on a `canvas_w` x `canvas_h`
    /// canvas: `r = min(H/h, W/w)` (never capped: `scaleup=True`), `new_unpad = (max(round(w*r), 1),
    /// max(round(h*r), 1))`; centred: `dw = (W - new_w) / 2`, `top = round(dh - 0.1)`,
    /// `left = round(dw - 0.1)`; top-left (`center=False`): 0.
    pub fn new(
        image_w: usize,
        image_h: usize,
        canvas_w: usize,
        canvas_h: usize,
        centre: bool,
    ) -> Self {
        let r = (canvas_h as f64 / image_h as f64).min(canvas_w as f64 / image_w as f64);
        let resized_w = py_round(image_w as f64 * r).max(1) as usize;
        let resized_h = py_round(image_h as f64 * r).max(1) as usize;
        let (top, left) = if centre {
            let dw = (canvas_w as f64 - resized_w as f64) / 2.0;
            let dh = (canvas_h as f64 - resized_h as f64) / 2.0;
            (
                py_round(dh - 0.1).max(0) as usize,
                py_round(dw - 0.1).max(0) as usize,
            )
        } else {
            (0, 0)
        };
        Letterbox {
            canvas_w,
            canvas_h,
            image_w,
            image_h,
            resized_w,
            resized_h,
            top,
            left,
            loaded: None,
        }
    }

    /// The validator's geometry (`DetectionValidator`'s dataset, ultralytics 8.4.x): first
    /// `BaseDataset.load_image` resizes the long side to `imgsz = max(H, W)`, `r = imgsz /
    /// max(h, w)`, to `(min(ceil(w*r), imgsz), min(ceil(h*r), imgsz))` (`ceil`, where the predictor
    /// rounds) with `cv2.INTER_LINEAR`; then `LetterBox(imgsz, scaleup=False)` (centred, never
    /// enlarging). Boxes map back through the recorded `ratio_pad`: gains `loaded / original *
    /// r2` per axis and the letterbox's `(left, top)`.
    pub fn validator(image_w: usize, image_h: usize, canvas_w: usize, canvas_h: usize) -> Self {
        let imgsz = canvas_w.max(canvas_h);
        let r = imgsz as f64 / image_w.max(image_h) as f64;
        let (w1, h1) = if r != 1.0 {
            (
                ((image_w as f64 * r).ceil() as usize).min(imgsz),
                ((image_h as f64 * r).ceil() as usize).min(imgsz),
            )
        } else {
            (image_w, image_h)
        };
        let r2 = (canvas_h as f64 / h1 as f64)
            .min(canvas_w as f64 / w1 as f64)
            .min(1.0);
        let mut lb = Letterbox::new(w1, h1, canvas_w, canvas_h, true);
        // `Letterbox::new` never caps r; with `scaleup=False` it is min(r, 1).
        lb.resized_w = py_round(w1 as f64 * r2).max(1) as usize;
        lb.resized_h = py_round(h1 as f64 * r2).max(1) as usize;
        lb.left = py_round((canvas_w as f64 - lb.resized_w as f64) / 2.0 - 0.1).max(0) as usize;
        lb.top = py_round((canvas_h as f64 - lb.resized_h as f64) / 2.0 - 0.1).max(0) as usize;
        lb.image_w = image_w;
        lb.image_h = image_h;
        lb.loaded = Some(LoadedImage {
            width: w1,
            height: h1,
            gain_x: w1 as f64 / image_w as f64 * r2,
            gain_y: h1 as f64 / image_h as f64 * r2,
        });
        lb
    }

    /// The inverse mapping: `scale_boxes` / `scale_coords` with `ratio_pad=None` for the
    /// predictor's geometry, with the recorded `ratio_pad` for the validator's; without padding
    /// for a top-left letterbox.
    pub fn unletterbox(&self, centre: bool) -> Unletterbox {
        let u = match self.loaded {
            Some(loaded) => Unletterbox {
                gain_x: loaded.gain_x,
                gain_y: loaded.gain_y,
                pad_x: self.left as i64,
                pad_y: self.top as i64,
                image_w: self.image_w,
                image_h: self.image_h,
            },
            None => Unletterbox::new(self.canvas_w, self.canvas_h, self.image_w, self.image_h),
        };
        if centre { u } else { u.without_padding() }
    }

    /// `cv2.resize` (INTER_LINEAR, bit-exact) to `new_unpad` when the size changes, then
    /// `cv2.copyMakeBorder` with `pad_value`; the predictor's `flip(1)` (BGR to RGB) when `rgb`,
    /// and `float().div_(255)` (f32 division, as torch divides a float tensor by a scalar).
    /// Returns CHW f32 planes of the canvas.
    ///
    /// Each resized row goes straight into the planes while it is in cache
    /// ([`detbench_imgproc::resize_linear_rows`]), one plane at a time (a loop the compiler
    /// vectorises), and only the padding is filled with the pad value.
    pub fn to_chw(&self, image: &BgrImage, pad_value: u8, rgb: bool, divisor: f32) -> Vec<f32> {
        let loaded;
        let mut source = image;
        if let Some(l) = self.loaded
            && (l.width, l.height) != (image.width, image.height)
        {
            loaded = detbench_imgproc::resize_linear(image, l.width, l.height);
            source = &loaded;
        }
        let plane = self.canvas_w * self.canvas_h;
        let mut data = vec![0.0f32; 3 * plane];
        let (first, rest) = data.split_at_mut(plane);
        let (second, third) = rest.split_at_mut(plane);
        // Planes in the fed order: R, G, B from the BGR pixel when `rgb`.
        let mut planes = if rgb {
            [third, second, first]
        } else {
            [first, second, third]
        };
        let rows = self.resized_h.min(self.canvas_h - self.top);
        let cols = self.resized_w.min(self.canvas_w - self.left);
        let mut put_row = |y: usize, pixels: &[u8]| {
            if y >= rows {
                return;
            }
            let at = (self.top + y) * self.canvas_w + self.left;
            let [b, g, r] = &mut planes;
            let (b, g, r) = (
                &mut b[at..at + cols],
                &mut g[at..at + cols],
                &mut r[at..at + cols],
            );
            for (c, plane) in [b, g, r].into_iter().enumerate() {
                for (value, px) in plane.iter_mut().zip(pixels.chunks_exact(3)) {
                    *value = px[c] as f32 / divisor;
                }
            }
        };
        if (source.width, source.height) == (self.resized_w, self.resized_h) {
            let stride = source.width * 3;
            for (y, pixels) in source.data.chunks_exact(stride).enumerate() {
                put_row(y, pixels);
            }
        } else {
            detbench_imgproc::resize_linear_rows(source, self.resized_w, self.resized_h, put_row);
        }
        let pad = pad_value as f32 / divisor;
        for plane_data in planes {
            fill_outside(
                plane_data,
                self.canvas_w,
                (self.left, self.top),
                (cols, rows),
                pad,
            );
        }
        data
    }
}

/// Sets every value of a `width`-wide plane outside the `size` rectangle at `origin` to `pad`.
fn fill_outside(
    plane: &mut [f32],
    width: usize,
    (left, top): (usize, usize),
    (cols, rows): (usize, usize),
    pad: f32,
) {
    for (y, row) in plane.chunks_exact_mut(width).enumerate() {
        if y < top || y >= top + rows {
            row.fill(pad);
        } else {
            row[..left].fill(pad);
            row[left + cols..].fill(pad);
        }
    }
}

/// The inverse mapping of `scale_boxes` / `scale_coords` with `ratio_pad=None` (computed from the
/// two shapes): per-axis gains `new / old` of the rounded resized size, and the rounded padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unletterbox {
    pub gain_x: f64,
    pub gain_y: f64,
    pub pad_x: i64,
    pub pad_y: i64,
    pub image_w: usize,
    pub image_h: usize,
}

impl Unletterbox {
    /// `scale_boxes(img1_shape=(canvas_h, canvas_w), boxes, img0_shape=(image_h, image_w))`:
    /// `gain = min(h1/h0, w1/w0)`, `new = max(round(side * gain), 1)`, `gain_x = new_w / w0`,
    /// `pad_x = round((w1 - new_w) / 2 - 0.1)`.
    pub fn new(canvas_w: usize, canvas_h: usize, image_w: usize, image_h: usize) -> Self {
        let gain = (canvas_h as f64 / image_h as f64).min(canvas_w as f64 / image_w as f64);
        let new_h = py_round(image_h as f64 * gain).max(1);
        let new_w = py_round(image_w as f64 * gain).max(1);
        Unletterbox {
            gain_x: new_w as f64 / image_w as f64,
            gain_y: new_h as f64 / image_h as f64,
            pad_x: py_round((canvas_w as f64 - new_w as f64) / 2.0 - 0.1),
            pad_y: py_round((canvas_h as f64 - new_h as f64) / 2.0 - 0.1),
            image_w,
            image_h,
        }
    }

    /// The same mapping without padding (a top-left letterbox, `padding=False`).
    pub fn without_padding(self) -> Self {
        Unletterbox {
            pad_x: 0,
            pad_y: 0,
            ..self
        }
    }

    /// `scale_boxes` on one xyxy box in float32 (torch subtracts the int padding and divides by
    /// the gain, both as f32 scalars), then `clip_boxes` (`clamp_(0, w)`, `clamp_(0, h)`).
    pub fn boxes(&self, b: [f32; 4]) -> [f32; 4] {
        let (px, py) = (self.pad_x as f32, self.pad_y as f32);
        let (gx, gy) = (self.gain_x as f32, self.gain_y as f32);
        let (w, h) = (self.image_w as f32, self.image_h as f32);
        [
            ((b[0] - px) / gx).clamp(0.0, w),
            ((b[1] - py) / gy).clamp(0.0, h),
            ((b[2] - px) / gx).clamp(0.0, w),
            ((b[3] - py) / gy).clamp(0.0, h),
        ]
    }

    /// `scale_coords` on one keypoint `(x, y)`, then `clip_coords`; the visibility is untouched.
    pub fn point(&self, x: f32, y: f32) -> (f32, f32) {
        (
            ((x - self.pad_x as f32) / self.gain_x as f32).clamp(0.0, self.image_w as f32),
            ((y - self.pad_y as f32) / self.gain_y as f32).clamp(0.0, self.image_h as f32),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_takes_halves_to_even() {
        assert_eq!(py_round(2.5), 2);
        assert_eq!(py_round(3.5), 4);
        assert_eq!(py_round(-0.5), 0);
        assert_eq!(py_round(106.4), 106);
    }

    #[test]
    fn letterbox_geometry_of_the_parity_images() {
        // 640x426 at 640: r = 1, no resize; dh = 107: top = round(106.9) = 107.
        let lb = Letterbox::new(640, 426, 640, 640, true);
        assert_eq!(
            (lb.resized_w, lb.resized_h, lb.left, lb.top),
            (640, 426, 0, 107)
        );
        // 424x640 at 320: r = 0.5, new 212x320, dw = 54: left = round(53.9) = 54.
        let lb = Letterbox::new(424, 640, 320, 320, true);
        assert_eq!(
            (lb.resized_w, lb.resized_h, lb.left, lb.top),
            (212, 320, 54, 0)
        );
        // 640x427 at 320: new_h = round(213.5) = 214 (half to even), dh = 53: top 53.
        let lb = Letterbox::new(640, 427, 320, 320, true);
        assert_eq!((lb.resized_h, lb.top), (214, 53));
        // An odd padding splits with one more row at the bottom: 333 rows at 500 -> dh = 83.5.
        let lb = Letterbox::new(500, 333, 500, 500, true);
        assert_eq!(lb.top, 83);
    }

    #[test]
    fn the_validator_loads_with_ceil_then_letterboxes_without_enlarging() {
        // 500x333 at 320: r = 0.64, ceil(213.12) = 214 rows where the predictor rounds to 213.
        let lb = Letterbox::validator(500, 333, 320, 320);
        let loaded = lb.loaded.unwrap();
        assert_eq!((loaded.width, loaded.height), (320, 214));
        assert_eq!(
            (lb.resized_w, lb.resized_h, lb.top, lb.left),
            (320, 214, 53, 0)
        );
        assert_eq!(Letterbox::new(500, 333, 320, 320, true).resized_h, 213);
        let u = lb.unletterbox(true);
        assert_eq!(
            (u.gain_x, u.gain_y, u.pad_y),
            (320.0 / 500.0, 214.0 / 333.0, 53)
        );
        // A 640-wide image at 640 is not resized: the two geometries agree.
        let (v, p) = (
            Letterbox::validator(640, 427, 640, 640),
            Letterbox::new(640, 427, 640, 640, true),
        );
        assert_eq!(
            (v.resized_w, v.resized_h, v.top, v.left),
            (p.resized_w, p.resized_h, p.top, p.left)
        );
    }

    #[test]
    fn thin_images_keep_one_pixel() {
        let lb = Letterbox::new(1, 3000, 320, 320, true);
        assert_eq!((lb.resized_w, lb.resized_h), (1, 320));
    }

    #[test]
    fn unletterbox_inverts_the_padding_and_gain() {
        let u = Unletterbox::new(320, 320, 640, 427);
        assert_eq!((u.pad_x, u.pad_y), (0, 53));
        assert_eq!(u.gain_x, 0.5);
        assert_eq!(u.gain_y, 214.0 / 427.0);
        let b = u.boxes([10.0, 53.0, 330.0, 300.0]);
        assert_eq!(b[0], 20.0);
        assert_eq!(b[1], 0.0);
        assert_eq!(b[2], 640.0); // clipped
    }

    #[test]
    fn chw_planes_are_rgb_over_255_on_a_114_canvas() {
        let mut image = BgrImage::filled(2, 1, 0);
        image.data.copy_from_slice(&[10, 20, 30, 40, 50, 60]);
        let lb = Letterbox::new(2, 1, 2, 4, true);
        assert_eq!((lb.top, lb.left), (1, 0));
        let chw = lb.to_chw(&image, 114, true, 255.0);
        assert_eq!(chw.len(), 3 * 8);
        assert_eq!(chw[0], 114.0 / 255.0);
        assert_eq!(chw[2], 30.0 / 255.0); // R of pixel (0, row 1)
        assert_eq!(chw[8 + 3], 50.0 / 255.0); // G of pixel (1, row 1)
        assert_eq!(chw[16 + 2], 10.0 / 255.0); // B
    }
}
