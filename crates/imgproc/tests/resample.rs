//! Our resize and warps rebuild, pixel for pixel, the uint8 network images behind the reference
//! pipelines' parity input tensors (`<shared>/reference/<model>/parity/*.npz`, key `input`),
//! which were made with opencv-python 5.0.0 (see each model's SPEC.md).

mod common;

use detbench_imgproc::affine::{
    SIMPLE_POSE_INPUT, SIMPLE_POSE_SCALE_MULT, box_to_center_scale, get_affine_transform,
};
use detbench_imgproc::{
    BgrImage, decode_file, resize_linear, simple_pose_crop, warp_perspective_linear_constant0,
};

fn decode_case_image(case: &serde_json::Value) -> BgrImage {
    decode_file(common::coco_image(case["file"].as_str().expect("file"))).unwrap()
}

/// YOLOX `preproc`: r = min(416/h, 416/w), `cv2.resize` to (int(w*r), int(h*r)), pasted at the
/// top-left of a 416x416 canvas of 114; the tensor is the BGR canvas as float (CHW).
#[test]
fn yolox_letterbox_matches_parity_inputs() {
    const S: usize = 416;
    for (json_path, case) in common::parity_cases("yolox_nano_416") {
        let image = decode_case_image(&case);
        let (w, h) = (image.width, image.height);
        let r = (S as f64 / h as f64).min(S as f64 / w as f64);
        let (nw, nh) = ((w as f64 * r) as usize, (h as f64 * r) as usize);
        assert_eq!(
            (nw as u64, nh as u64),
            (
                case["meta"]["nw"].as_u64().unwrap(),
                case["meta"]["nh"].as_u64().unwrap()
            ),
            "{}",
            json_path.display()
        );
        let resized = resize_linear(&image, nw, nh);
        let mut canvas = BgrImage::filled(S, S, 114);
        for y in 0..nh {
            canvas.data[y * S * 3..(y * S + nw) * 3]
                .copy_from_slice(&resized.data[y * nw * 3..(y + 1) * nw * 3]);
        }
        let tensor = common::npz_f32(&json_path.with_extension("npz"), "input");
        let reference = common::tensor_to_bgr(&tensor, [0, 1, 2], 0.0, |_, v| v as f64);
        assert_eq!(
            common::mismatches(&canvas, &reference),
            0,
            "{}",
            json_path.display()
        );
    }
}

/// FastestDet: `cv2.resize` stretched to 352x352; tensor = BGR / 255 in float32.
#[test]
fn fastestdet_stretch_resize_matches_parity_inputs() {
    const S: usize = 352;
    for (json_path, case) in common::parity_cases("fastestdet_352") {
        let resized = resize_linear(&decode_case_image(&case), S, S);
        let tensor = common::npz_f32(&json_path.with_extension("npz"), "input");
        let reference = common::tensor_to_bgr(&tensor, [0, 1, 2], 1e-3, |_, v| v as f64 * 255.0);
        // The rounding is unambiguous: p / 255 in float32 gives back the tensor bit for bit.
        let flat = tensor.as_slice().unwrap();
        for c in 0..3 {
            for i in 0..S * S {
                let pixel = reference.data[i * 3 + c] as f32;
                assert_eq!((pixel / 255.0).to_bits(), flat[c * S * S + i].to_bits());
            }
        }
        assert_eq!(
            common::mismatches(&resized, &reference),
            0,
            "{}",
            json_path.display()
        );
    }
}

/// NanoDet: `cv2.warpPerspective(img, M, (S, S))` with the recorded float64 M; tensor =
/// `(p/255 - mean/255) / (std/255)` in float32 (BGR).
#[test]
fn nanodet_letterbox_warp_matches_parity_inputs() {
    const MEAN: [f32; 3] = [103.53, 116.28, 123.675];
    const STD: [f32; 3] = [57.375, 57.12, 58.395];
    for (model, size) in [("nanodet_m_320", 320usize), ("nanodet_m_416", 416)] {
        for (json_path, case) in common::parity_cases(model) {
            let image = decode_case_image(&case);
            let rows = case["meta"]["M"].as_array().unwrap();
            let m: [[f64; 3]; 3] =
                std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c].as_f64().unwrap()));
            let warped = warp_perspective_linear_constant0(&image, &m, size, size).unwrap();
            let tensor = common::npz_f32(&json_path.with_extension("npz"), "input");
            let reference = common::tensor_to_bgr(&tensor, [0, 1, 2], 1e-3, |c, v| {
                (v as f64 * (STD[c] / 255.0) as f64 + (MEAN[c] / 255.0) as f64) * 255.0
            });
            // Forward normalisation of the rebuilt pixels reproduces the tensor bit for bit.
            let flat = tensor.as_slice().unwrap();
            for c in 0..3 {
                for i in 0..size * size {
                    let x = reference.data[i * 3 + c] as f32 / 255.0;
                    let normalised = (x - MEAN[c] / 255.0) / (STD[c] / 255.0);
                    assert_eq!(normalised.to_bits(), flat[c * size * size + i].to_bits());
                }
            }
            assert_eq!(
                common::mismatches(&warped, &reference),
                0,
                "{}",
                json_path.display()
            );
        }
    }
}

/// Ultralight-SimplePose: GluonCV centre/scale of the recorded GT box, `cv2.warpAffine` crop of
/// the RGB image to 192x256; tensor = `(rgb/255 - mean) / std` in float32, RGB channel order.
#[test]
fn simple_pose_crops_match_parity_inputs() {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let (out_w, out_h) = SIMPLE_POSE_INPUT;
    for (json_path, case) in common::parity_cases("ultralight_simplepose") {
        let file = format!("{:012}.jpg", case["image_id"].as_u64().unwrap());
        let image = decode_file(common::coco_image(&file)).unwrap();
        let corners = case["box_xyxy"].as_array().unwrap();
        let box_xyxy: [f64; 4] = std::array::from_fn(|i| corners[i].as_f64().unwrap());

        let (center, scale) = box_to_center_scale(
            box_xyxy,
            out_w as f64 / out_h as f64,
            SIMPLE_POSE_SCALE_MULT,
        );
        let recorded = |key: &str, i: usize| case[key][i].as_f64().unwrap() as f32;
        assert_eq!(center, [recorded("center", 0), recorded("center", 1)]);
        assert_eq!(scale, [recorded("scale", 0), recorded("scale", 1)]);

        let crop =
            simple_pose_crop(&image, box_xyxy, out_w, out_h, SIMPLE_POSE_SCALE_MULT).unwrap();
        assert_eq!(
            Some(crop.transform),
            get_affine_transform(center, scale, out_w, out_h, false)
        );
        let tensor = common::npz_f32(&json_path.with_extension("npz"), "input");
        // Tensor channel 0 is R = BGR channel 2.
        let reference = common::tensor_to_bgr(&tensor, [2, 1, 0], 1e-3, |c, v| {
            (v as f64 * STD[c] as f64 + MEAN[c] as f64) * 255.0
        });
        let flat = tensor.as_slice().unwrap();
        let plane = out_w * out_h;
        for rgb in 0..3 {
            for i in 0..plane {
                let x = reference.data[i * 3 + (2 - rgb)] as f32 / 255.0;
                let normalised = (x - MEAN[rgb]) / STD[rgb];
                assert_eq!(normalised.to_bits(), flat[rgb * plane + i].to_bits());
            }
        }
        assert_eq!(
            common::mismatches(&crop.image, &reference),
            0,
            "{}",
            json_path.display()
        );
    }
}

/// The keypoint decode maps heatmap coordinates back with `get_affine_transform(.., inv=True)`
/// on the 48x64 heatmap; that inverse must undo the forward heatmap transform.
#[test]
fn simple_pose_inverse_transform_undoes_forward_transform() {
    let (center, scale) = box_to_center_scale([412.8, 157.61, 464.85, 294.62], 0.75, 1.25);
    let forward = get_affine_transform(center, scale, 48, 64, false).unwrap();
    let inverse = get_affine_transform(center, scale, 48, 64, true).unwrap();
    for (x, y) in [(0.0, 0.0), (47.0, 63.0), (23.25, 10.75)] {
        let sx = inverse[0][0] * x + inverse[0][1] * y + inverse[0][2];
        let sy = inverse[1][0] * x + inverse[1][1] * y + inverse[1][2];
        let bx = forward[0][0] * sx + forward[0][1] * sy + forward[0][2];
        let by = forward[1][0] * sx + forward[1][1] * sy + forward[1][2];
        assert!(
            (bx - x).abs() < 1e-9 && (by - y).abs() < 1e-9,
            "{x},{y} -> {bx},{by}"
        );
    }
}
