//! Drawing on a real shipped image: the COCO ground truth of val2017 image 252219 (three
//! people with keypoints, and their belongings) drawn as if it were a model's detections.
//! `DETBENCH_SHOW_OUT=FILE.png` keeps the picture for viewing.

use detbench_eval::{Detection, Rle};
use detbench_imgproc::BgrImage;
use detbench_report::annotate::{
    DrawOptions, MASK_ALPHA, RgbImage, annotate, category_color, save_png,
};
use std::path::Path;

const IMAGE_ID: u64 = 252219;

/// Ground truth of the image as detections (score 1): masks from the instance annotations,
/// keypoints from the person-keypoint annotations (same annotation ids).
fn ground_truth() -> Vec<Detection> {
    let instances =
        hotcoco::COCO::new(&detbench_assets::shared::instances_subset().unwrap()).unwrap();
    let people = hotcoco::COCO::new(&detbench_assets::shared::keypoints_subset().unwrap()).unwrap();
    instances
        .get_ann_ids_for_img(IMAGE_ID)
        .iter()
        .map(|&id| {
            let ann = instances.get_ann(id).unwrap();
            let rle = instances.ann_to_rle(ann).unwrap();
            Detection {
                image_id: IMAGE_ID,
                category_id: ann.category_id,
                bbox: ann.bbox.unwrap(),
                score: 1.0,
                mask: Some(Rle {
                    height: rle.h,
                    width: rle.w,
                    counts: rle.counts,
                }),
                keypoints: people.get_ann(id).and_then(|p| p.keypoints.clone()),
            }
        })
        .collect()
}

#[test]
fn draws_ground_truth_boxes_masks_and_keypoints_on_a_coco_image() {
    let path = detbench_assets::shared::coco_images()
        .unwrap()
        .join(format!("{IMAGE_ID:012}.jpg"));
    let image = detbench_imgproc::decode_file(&path).unwrap();
    let detections = ground_truth();
    assert_eq!(detections.len(), 7);
    assert_eq!(
        detections.iter().filter(|d| d.keypoints.is_some()).count(),
        3
    );

    let drawn = annotate(&image, &detections, &DrawOptions::default()).unwrap();
    if let Some(out) = std::env::var_os("DETBENCH_SHOW_OUT") {
        save_png(&drawn, Path::new(&out)).unwrap();
    }
    assert_eq!((drawn.width, drawn.height), (image.width, image.height));

    assert_masks_are_blended(&drawn, &image, &detections);
    assert_box_edge_in_category_colour(&drawn, &detections);
    assert_untouched_outside_boxes(&drawn, &image, &detections);
    assert_keypoint_is_a_white_disc(&drawn, &detections);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("annotated.png");
    save_png(&drawn, &out).unwrap();
    let reread = image::open(&out).unwrap().to_rgb8();
    assert_eq!(reread.as_raw(), &drawn.data);
}

/// The drawn picture's pixel at (x, y), as RGB.
fn rgb(drawn: &RgbImage, x: usize, y: usize) -> [u8; 3] {
    let at = (y * drawn.width + x) * 3;
    [drawn.data[at], drawn.data[at + 1], drawn.data[at + 2]]
}

/// The original image's pixel at (x, y), as RGB.
fn original(image: &BgrImage, x: usize, y: usize) -> [u8; 3] {
    let [b, g, r] = image.pixel(x, y);
    [r, g, b]
}

/// Pixels under exactly one mask and far from every box edge and keypoint are the image
/// blended with the category colour at MASK_ALPHA, exactly.
fn assert_masks_are_blended(drawn: &RgbImage, image: &BgrImage, detections: &[Detection]) {
    let masks: Vec<Vec<u8>> = detections
        .iter()
        .map(|d| {
            let m = d.mask.as_ref().unwrap();
            hotcoco::mask::decode(&hotcoco::Rle {
                h: m.height,
                w: m.width,
                counts: m.counts.clone(),
            })
        })
        .collect();
    let segments = drawn_segments(detections);
    let in_label = |x: f64, y: f64| {
        detections.iter().any(|d| {
            let [bx, by, _, _] = d.bbox;
            x >= bx - 2.0 && x <= bx + 260.0 && y >= by - 40.0 && y <= by + 40.0
        })
    };
    let near_drawing =
        |x: f64, y: f64| in_label(x, y) || segments.iter().any(|&s| distance((x, y), s) < 10.0);
    let (mut checked, mut exact) = (0, 0);
    for x in 0..drawn.width {
        for y in 0..drawn.height {
            let covering: Vec<usize> = (0..masks.len())
                .filter(|&i| masks[i][x * drawn.height + y] == 1)
                .collect();
            if covering.len() != 1 || near_drawing(x as f64, y as f64) {
                continue;
            }
            let c = category_color(detections[covering[0]].category_id);
            let tint = [c.0, c.1, c.2];
            let o = original(image, x, y);
            let expected: [u8; 3] = std::array::from_fn(|k| {
                (f64::from(tint[k]) * MASK_ALPHA + f64::from(o[k]) * (1.0 - MASK_ALPHA)).round()
                    as u8
            });
            checked += 1;
            exact += usize::from(rgb(drawn, x, y) == expected);
        }
    }
    assert!(checked > 500, "only {checked} mask pixels checked");
    assert_eq!(exact, checked, "mask pixels not blended as expected");
}

/// Everything drawn with lines (box edges, labels, skeleton, keypoint discs) as segments (a
/// keypoint is a segment of length 0); mask pixels away from all of it must be a pure blend.
fn drawn_segments(detections: &[Detection]) -> Vec<[(f64, f64); 2]> {
    let mut segments: Vec<[(f64, f64); 2]> = Vec::new();
    for d in detections {
        let [bx, by, bw, bh] = d.bbox;
        let corners = [(bx, by), (bx + bw, by), (bx + bw, by + bh), (bx, by + bh)];
        for k in 0..4 {
            segments.push([corners[k], corners[(k + 1) % 4]]);
        }
        if let Some(kp) = &d.keypoints {
            let point = |k: usize| {
                (kp[3 * k] > 0.0 || kp[3 * k + 2] > 0.0).then(|| (kp[3 * k], kp[3 * k + 1]))
            };
            for k in 0..kp.len() / 3 {
                if kp[3 * k + 2] > 0.0 {
                    segments.push([(kp[3 * k], kp[3 * k + 1]); 2]);
                }
            }
            for [a, b] in detbench_report::annotate::COCO_PERSON_SKELETON {
                if kp[3 * (a - 1) + 2] > 0.0 && kp[3 * (b - 1) + 2] > 0.0 {
                    segments.push([point(a - 1).unwrap(), point(b - 1).unwrap()]);
                }
            }
        }
    }
    segments
}

/// The distance from a point to a segment.
fn distance((px, py): (f64, f64), [(ax, ay), (bx, by)]: [(f64, f64); 2]) -> f64 {
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
    };
    ((px - ax - t * dx).powi(2) + (py - ay - t * dy).powi(2)).sqrt()
}

/// Every box's left edge, halfway down, is in its category colour (boxes drawn last win where
/// they cross, so check the detection drawn last: the last with the top score).
fn assert_box_edge_in_category_colour(drawn: &RgbImage, detections: &[Detection]) {
    let last = detections.last().unwrap();
    let [bx, by, _, bh] = last.bbox;
    let c = category_color(last.category_id);
    assert_eq!(
        rgb(drawn, bx.round() as usize, (by + bh / 2.0).round() as usize),
        [c.0, c.1, c.2]
    );
}

/// Outside every box and mask the image is untouched.
fn assert_untouched_outside_boxes(drawn: &RgbImage, image: &BgrImage, detections: &[Detection]) {
    let untouched = (0..drawn.width)
        .flat_map(|x| (0..drawn.height).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            detections.iter().all(|d| {
                let [bx, by, bw, bh] = d.bbox;
                let (x, y) = (x as f64, y as f64);
                x < bx - 40.0 || x > bx + bw + 40.0 || y < by - 60.0 || y > by + bh + 40.0
            })
        })
        .filter(|&(x, y)| rgb(drawn, x, y) != original(image, x, y))
        .count();
    assert_eq!(untouched, 0);
}

/// A keypoint marker is a white disc at the keypoint (the person drawn last on top).
fn assert_keypoint_is_a_white_disc(drawn: &RgbImage, detections: &[Detection]) {
    let person = detections
        .iter()
        .rev()
        .find(|d| d.keypoints.is_some())
        .unwrap();
    let kp = person.keypoints.as_ref().unwrap();
    // The visible keypoint farthest from the others, so that no neighbour's disc covers it.
    let visible: Vec<&[f64]> = kp.chunks(3).filter(|p| p[2] > 0.0).collect();
    let isolation = |p: &[f64]| {
        visible
            .iter()
            .filter(|q| q.as_ptr() != p.as_ptr())
            .map(|q| (q[0] - p[0]).hypot(q[1] - p[1]))
            .fold(f64::INFINITY, f64::min)
    };
    let visible = *visible
        .iter()
        .max_by(|a, b| isolation(a).total_cmp(&isolation(b)))
        .unwrap();
    assert!(isolation(visible) > 12.0);
    assert_eq!(
        rgb(
            drawn,
            visible[0].round() as usize,
            visible[1].round() as usize
        ),
        [255, 255, 255]
    );
}

#[test]
fn a_mask_of_the_wrong_size_is_an_error_not_a_panic() {
    let image = detbench_imgproc::BgrImage::filled(10, 8, 0);
    let detection = Detection {
        image_id: 1,
        category_id: 1,
        bbox: [1.0, 1.0, 3.0, 3.0],
        score: 0.9,
        mask: Some(Rle {
            height: 4,
            width: 4,
            counts: vec![16],
        }),
        keypoints: None,
    };
    let err = annotate(&image, &[detection], &DrawOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "detection 0 has a 4x4 mask but the image is 10x8"
    );
}
