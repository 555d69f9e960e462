//! Bad input gets an error naming the file (or image and detection) and saying what is wrong,
//! never a panic and never a silently wrong AP.

use std::path::PathBuf;
use std::sync::Arc;

use detbench_eval::{
    Detection, EvalParams, Evaluator, GroundTruth, IouType, Rle, evaluate_results_file,
};

const GT: &str = r#"{
 "images": [{"id": 1, "height": 10, "width": 10, "file_name": "a.jpg"}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16,
                  "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]],
                  "keypoints": [2,2,2, 3,3,2, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0,
                                0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 4,4,2],
                  "num_keypoints": 3}],
 "categories": [{"id": 1, "name": "thing"}]
}"#;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        files.write("gt.json", GT);
        files
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn gt(&self) -> GroundTruth {
        GroundTruth::load(self.dir.path().join("gt.json")).unwrap()
    }

    /// The error message of evaluating `results` (a results file's text) for `iou_type`.
    fn error(&self, results: &str, iou_type: IouType) -> String {
        let path = self.write("results.json", results);
        let error = evaluate_results_file(&self.gt(), &path, &EvalParams::new(iou_type))
            .expect_err("bad input must be an error")
            .to_string();
        assert!(
            error.contains(&path.display().to_string()),
            "message must name the file: {error}"
        );
        error
    }
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` not in: {message}");
    }
}

#[test]
fn malformed_json_names_line_and_column() {
    let files = Files::new();
    let error = files.error(
        "[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [1, 1, 4, 4], \"score\": 0.5},\n",
        IouType::Bbox,
    );
    assert_contains(&error, &["malformed JSON", "line 2, column 0"]);
}

#[test]
fn wrong_types_name_the_field() {
    let files = Files::new();
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, "x", 4], "score": 0.5}]"#,
        IouType::Bbox,
    );
    assert_contains(
        &error,
        &[
            "invalid type: string \"x\", expected f64",
            "line 1, column",
            "`results[0].bbox[2]`",
        ],
    );
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.5},
            {"image_id": "7", "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.5}]"#,
        IouType::Bbox,
    );
    assert_contains(&error, &["string \"7\"", "`results[1].image_id`", "line 2"]);
}

#[test]
fn ground_truth_errors_name_the_ground_truth_file() {
    let files = Files::new();
    let path = files.write("bad_gt.json", r#"{"images": [{"id": 1, "height": "ten"}]}"#);
    let error = GroundTruth::load(&path).unwrap_err().to_string();
    assert_contains(&error, &["bad_gt.json", "`images[0].height`", "line 1"]);
    let error = GroundTruth::load(files.dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert_contains(&error, &["cannot read", "missing.json"]);
    let path = files.write("no_images.json", r#"{"annotations": [], "categories": []}"#);
    let error = GroundTruth::load(&path).unwrap_err().to_string();
    assert_contains(&error, &["no_images.json", "no `images`"]);
}

#[test]
fn unknown_image_and_category_ids_are_errors() {
    let files = Files::new();
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.5},
            {"image_id": 99, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.5}]"#,
        IouType::Bbox,
    );
    assert_contains(
        &error,
        &["results[1]", "image_id 99 is not an image of", "gt.json"],
    );
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 0, "bbox": [1, 1, 4, 4], "score": 0.5}]"#,
        IouType::Bbox,
    );
    assert_contains(
        &error,
        &["results[0]", "category_id 0 is not a category of"],
    );
}

#[test]
fn an_empty_results_list_scores_zero_with_a_warning() {
    let files = Files::new();
    let path = files.write("results.json", "[]");
    let summary =
        evaluate_results_file(&files.gt(), &path, &EvalParams::new(IouType::Bbox)).unwrap();
    // One small object and no detections: AP/AR 0 where there is ground truth, -1 elsewhere.
    assert_eq!(
        summary.stats,
        [
            0.0, 0.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0
        ]
    );
    assert_contains(
        &summary.warnings.join("\n"),
        &["no detections", "results.json"],
    );
    // A JSON object without `annotations` is not an empty results list but the wrong file.
    let error = files.error(r#"{"info": {}, "images": []}"#, IouType::Bbox);
    assert_contains(
        &error,
        &["no `annotations`", "expected a COCO results list"],
    );
}

#[test]
fn nan_and_negative_boxes_are_errors() {
    let files = Files::new();
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [NaN, 1, 4, 4], "score": 0.5}]"#,
        IouType::Bbox,
    );
    assert_contains(
        &error,
        &[
            "`results[0].bbox[0]`",
            "NaN and Infinity are not JSON numbers",
        ],
    );
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": NaN}]"#,
        IouType::Bbox,
    );
    assert_contains(&error, &["NaN score at line 1"]);
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [5, 5, -4, 4], "score": 0.5}]"#,
        IouType::Bbox,
    );
    assert_contains(
        &error,
        &[
            "results[0]",
            "negative width or height",
            "[x, y, width, height]",
        ],
    );
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]"#,
        IouType::Bbox,
    );
    assert_contains(&error, &["results[0]", "has no `score`"]);
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": Infinity}]"#,
        IouType::Bbox,
    );
    assert_contains(&error, &["results[0]", "Infinity or NaN is read as null"]);
}

#[test]
fn polygons_with_fewer_than_three_points_are_errors() {
    let files = Files::new();
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5]], "score": 0.5}]"#,
        IouType::Segm,
    );
    assert_contains(
        &error,
        &[
            "results[0]",
            "polygon 0 has 4 coordinate(s)",
            "at least 3 points",
        ],
    );
}

#[test]
fn rle_counts_must_add_up_to_the_image() {
    let files = Files::new();
    for counts in ["[5, 3]", "[95, 10]"] {
        let results = format!(
            r#"[{{"image_id": 1, "category_id": 1, "score": 0.5,
                 "segmentation": {{"size": [10, 10], "counts": {counts}}}}}]"#
        );
        let error = files.error(&results, IouType::Segm);
        assert_contains(
            &error,
            &[
                "results[0]",
                "RLE counts add up to",
                "10x10 mask has 100 pixels",
            ],
        );
    }
    // The compressed (string) form of runs that stop short.
    let short = hotcoco::mask::rle_to_string(&hotcoco::Rle {
        h: 10,
        w: 10,
        counts: vec![5, 3],
    });
    let results = format!(
        r#"[{{"image_id": 1, "category_id": 1, "score": 0.5,
             "segmentation": {{"size": [10, 10], "counts": "{short}"}}}}]"#
    );
    let error = files.error(&results, IouType::Segm);
    assert_contains(&error, &["RLE counts add up to 8"]);
    // A string whose last run never ends (the continuation bit set on its last character).
    let results = r#"[{"image_id": 1, "category_id": 1, "score": 0.5,
                       "segmentation": {"size": [10, 10], "counts": "P"}}]"#;
    let error = files.error(results, IouType::Segm);
    assert_contains(&error, &["results[0]", "`counts` string is malformed"]);
    // A mask of another size than the image.
    let results = r#"[{"image_id": 1, "category_id": 1, "score": 0.5,
                       "segmentation": {"size": [5, 20], "counts": [100]}}]"#;
    let error = files.error(results, IouType::Segm);
    assert_contains(
        &error,
        &["RLE size [5, 20] is not the image's [height, width] [10, 10]"],
    );
}

#[test]
fn keypoints_must_have_seventeen_triples() {
    let files = Files::new();
    let error = files.error(
        r#"[{"image_id": 1, "category_id": 1, "keypoints": [1, 2, 2], "score": 0.5}]"#,
        IouType::Keypoints,
    );
    assert_contains(
        &error,
        &["results[0]", "has 3 keypoint values; expected 51"],
    );
}

fn detection() -> Detection {
    Detection {
        image_id: 1,
        category_id: 1,
        bbox: [1.0, 1.0, 4.0, 4.0],
        score: 0.9,
        mask: Some(Rle {
            height: 10,
            width: 10,
            counts: vec![11, 4, 6, 4, 6, 4, 6, 4, 55],
        }),
        keypoints: Some(vec![0.0; 51]),
    }
}

fn in_memory_error(
    gt: &Arc<GroundTruth>,
    iou_type: IouType,
    image_id: u64,
    d: Detection,
) -> String {
    let mut evaluator = Evaluator::new(gt.clone(), EvalParams::new(iou_type)).unwrap();
    evaluator
        .add_image(image_id, &[detection(), d])
        .expect_err("bad detection must be an error")
        .to_string()
}

#[test]
fn in_memory_detections_are_checked_too() {
    let files = Files::new();
    let gt = Arc::new(files.gt());
    let error = in_memory_error(&gt, IouType::Bbox, 5, detection());
    assert_contains(&error, &["image 5 is not an image of", "gt.json"]);
    let bad = Detection {
        category_id: 80,
        ..detection()
    };
    let error = in_memory_error(&gt, IouType::Bbox, 1, bad);
    assert_contains(
        &error,
        &["image 1, detection 1", "category_id 80 is not a category"],
    );
    let bad = Detection {
        score: f64::NAN,
        ..detection()
    };
    assert_contains(
        &in_memory_error(&gt, IouType::Bbox, 1, bad),
        &["score is NaN"],
    );
    let bad = Detection {
        bbox: [1.0, f64::NAN, 4.0, 4.0],
        ..detection()
    };
    assert_contains(
        &in_memory_error(&gt, IouType::Bbox, 1, bad),
        &["not a finite number"],
    );
    let bad = Detection {
        bbox: [1.0, 1.0, 4.0, -4.0],
        ..detection()
    };
    assert_contains(
        &in_memory_error(&gt, IouType::Bbox, 1, bad),
        &["negative width or height"],
    );
    let bad = Detection {
        mask: Some(Rle {
            height: 10,
            width: 10,
            counts: vec![11, 4],
        }),
        ..detection()
    };
    assert_contains(
        &in_memory_error(&gt, IouType::Segm, 1, bad),
        &["image 1, detection 1", "RLE counts add up to 15"],
    );
    let bad = Detection {
        keypoints: Some(vec![1.0; 50]),
        ..detection()
    };
    assert_contains(
        &in_memory_error(&gt, IouType::Keypoints, 1, bad),
        &["has 50 keypoint values"],
    );
    let bad = Detection {
        image_id: 2,
        ..detection()
    };
    assert_contains(
        &in_memory_error(&gt, IouType::Bbox, 1, bad),
        &["its image_id is 2"],
    );

    let mut evaluator = Evaluator::new(gt.clone(), EvalParams::new(IouType::Bbox)).unwrap();
    evaluator.add_image(1, &[detection()]).unwrap();
    let error = evaluator.add_image(1, &[]).unwrap_err().to_string();
    assert_contains(&error, &["image 1 was added twice"]);
}

#[test]
fn in_memory_evaluation_without_detections_scores_zero_with_a_warning() {
    let files = Files::new();
    let gt = Arc::new(files.gt());
    let evaluator = Evaluator::new(gt, EvalParams::new(IouType::Segm)).unwrap();
    let summary = evaluator.finish().unwrap();
    assert_eq!(
        summary.stats,
        [
            0.0, 0.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0
        ]
    );
    assert_contains(&summary.warnings.join("\n"), &["no detections"]);
    // And a perfect detection scores 1, as pycocotools computes it: precision is
    // tp / (tp + fp + np.spacing(1)) (cocoeval.py, accumulate), 1 / (1 + 2^-52) for one object.
    let gt = Arc::new(files.gt());
    let mut evaluator = Evaluator::new(gt, EvalParams::new(IouType::Bbox)).unwrap();
    evaluator.add_image(1, &[detection()]).unwrap();
    assert_eq!(
        evaluator.finish().unwrap().stats[0],
        1.0 / (1.0 + f64::EPSILON)
    );
}

#[test]
fn invalid_parameters_are_errors() {
    let files = Files::new();
    let gt = Arc::new(files.gt());
    let mut params = EvalParams::new(IouType::Bbox);
    params.max_dets = vec![100];
    let error = Evaluator::new(gt, params).err().unwrap().to_string();
    assert_contains(&error, &["exactly 3 max-detection"]);
}

/// Custom area ranges without one labelled `all`: the summary's AP is -1 (pycocotools reads the
/// `all` range by label), and per-class AP is not defined either, rather than read from
/// whichever range comes first.
#[test]
fn per_class_ap_needs_an_all_area_range() {
    let files = Files::new();
    let path = files.write(
        "results.json",
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9}]"#,
    );
    let mut params = EvalParams::new(IouType::Bbox);
    let summary = evaluate_results_file(&files.gt(), &path, &params).unwrap();
    assert!(summary.stats[0] > 0.999, "{:?}", summary.stats);
    assert_eq!(summary.per_class[0].ap, Some(summary.stats[0]));
    params.area_ranges = vec![detbench_eval::AreaRange::new("foo", 0.0, 1e10)];
    let summary = evaluate_results_file(&files.gt(), &path, &params).unwrap();
    assert_eq!(summary.stats[0], -1.0);
    assert_eq!(summary.per_class[0].ap, None);
}

/// A refused image leaves the evaluator as it was, whichever check refused it: adding the
/// corrected detections afterwards is not "added twice", and the stats are those of the
/// corrected detections alone.
#[test]
fn a_refused_image_can_be_added_again() {
    let files = Files::new();
    let gt = Arc::new(files.gt());
    let foreign = Detection {
        image_id: 2, // the detection of another image, given for image 1
        ..detection()
    };
    let bad_category = Detection {
        category_id: 80,
        ..detection()
    };
    for iou_type in [IouType::Bbox, IouType::Segm] {
        for bad in [foreign.clone(), bad_category.clone()] {
            let mut evaluator = Evaluator::new(gt.clone(), EvalParams::new(iou_type)).unwrap();
            evaluator
                .add_image(1, &[detection(), bad])
                .expect_err("a bad detection refuses the image");
            evaluator.add_image(1, &[detection()]).unwrap();
            let summary = evaluator.finish().unwrap();
            let mut once = Evaluator::new(gt.clone(), EvalParams::new(iou_type)).unwrap();
            once.add_image(1, &[detection()]).unwrap();
            assert_eq!(summary.stats, once.finish().unwrap().stats, "{iou_type:?}");
        }
    }
}

/// Ground truth pycocotools cannot evaluate (an annotation without `bbox` under bbox
/// evaluation, keypoints that are not 17 triples under keypoint evaluation) is evaluated with a
/// warning naming the file and the first such annotation, not silently.
#[test]
fn unusable_ground_truth_annotations_are_warned_about() {
    let files = Files::new();
    let mut gt: serde_json::Value = serde_json::from_str(GT).unwrap();
    gt["annotations"][0].as_object_mut().unwrap().remove("bbox");
    gt["annotations"][0]["keypoints"] = serde_json::json!([2, 2, 2]);
    files.write("gt.json", &gt.to_string());
    let path = files.write(
        "results.json",
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "score": 0.9,
             "keypoints": [2,2,2, 3,3,2, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0,
                           0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 0,0,0, 4,4,2]}]"#,
    );
    let bbox = evaluate_results_file(&files.gt(), &path, &EvalParams::new(IouType::Bbox)).unwrap();
    assert_contains(
        &bbox.warnings.join("\n"),
        &[
            "gt.json",
            "1 ground-truth annotation(s) have no `bbox`",
            "annotation id 1",
        ],
    );
    let keypoints =
        evaluate_results_file(&files.gt(), &path, &EvalParams::new(IouType::Keypoints)).unwrap();
    assert_contains(
        &keypoints.warnings.join("\n"),
        &[
            "gt.json",
            "not 17 (x, y, v) triples",
            "annotation id 1, 3 values",
        ],
    );
    // The unmodified file gives neither warning.
    files.write("gt.json", GT);
    for iou_type in [IouType::Bbox, IouType::Keypoints] {
        let summary =
            evaluate_results_file(&files.gt(), &path, &EvalParams::new(iou_type)).unwrap();
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    }
}
