//! The harness end to end with test detectors on the shipped val2017 subset: one that returns
//! the ground truth (bbox AP must be exactly 1), one that sleeps known amounts per stage, one
//! that fails on a given image, one that panics, and rows for models that cannot be opened.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use detbench_bench::dataset::{DatasetOptions, GroundTruthKind};
use detbench_bench::prefetch::{DecodeMode, image_decoder};
use detbench_bench::results::{ModelFile, Status};
use detbench_bench::scenario::{
    DatasetCache, EvalTiming, ModelOutcome, ModelSpec, Quiet, ScenarioOptions, run_model,
};
use detbench_bench::{BatchSupport, Detector, DetectorError, ImageInput, Stage, StageClock};
use detbench_eval::{Detection, IouType};

/// Ground-truth boxes by image id (non-crowd only), read straight from the annotation file.
fn ground_truth_boxes(path: &Path) -> HashMap<u64, Vec<Detection>> {
    let gt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut by_image: HashMap<u64, Vec<Detection>> = HashMap::new();
    for ann in gt["annotations"].as_array().unwrap() {
        if ann["iscrowd"].as_u64() == Some(1) {
            continue;
        }
        let b: Vec<f64> = ann["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let image_id = ann["image_id"].as_u64().unwrap();
        by_image.entry(image_id).or_default().push(Detection {
            image_id,
            category_id: ann["category_id"].as_u64().unwrap(),
            bbox: [b[0], b[1], b[2], b[3]],
            score: 1.0,
            mask: None,
            keypoints: None,
        });
    }
    by_image
}

/// Returns the ground truth as detections; optionally sleeps per stage, fails on one image, or
/// panics on one image.
struct TestDetector {
    boxes: HashMap<u64, Vec<Detection>>,
    batch: BatchSupport,
    sleep: [Duration; 3],
    fail_on: Option<u64>,
    panic_on: Option<u64>,
    /// Every `detect` call, warm-up included, counted where the test can read it.
    calls: Arc<AtomicUsize>,
}

impl TestDetector {
    fn new() -> Self {
        TestDetector {
            boxes: ground_truth_boxes(&detbench_assets::shared::instances_subset().unwrap()),
            batch: BatchSupport::Dynamic { max: None },
            sleep: [Duration::ZERO; 3],
            fail_on: None,
            panic_on: None,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Detector for TestDetector {
    fn name(&self) -> &str {
        "ground_truth"
    }
    fn batch_support(&self) -> BatchSupport {
        self.batch
    }
    fn iou_types(&self) -> Vec<IouType> {
        vec![IouType::Bbox]
    }
    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({"test": true})
    }
    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        for (stage, sleep) in [Stage::Preprocess, Stage::Inference, Stage::Postprocess]
            .into_iter()
            .zip(self.sleep)
        {
            clock.time(stage, || std::thread::sleep(sleep));
        }
        for input in batch {
            assert!(input.image.width > 0 && input.image.height > 0);
            if Some(input.image_id) == self.fail_on {
                return Err(format!("cannot handle image {}", input.image_id).into());
            }
            if Some(input.image_id) == self.panic_on {
                panic!("bug on image {}", input.image_id);
            }
        }
        Ok(batch
            .iter()
            .map(|input| self.boxes.get(&input.image_id).cloned().unwrap_or_default())
            .collect())
    }
}

fn spec() -> ModelSpec {
    ModelSpec {
        name: "ground_truth".into(),
        family: "Test".into(),
        input: "any".into(),
        file: ModelFile {
            file: "none".into(),
            sha256: None,
        },
        ground_truth: GroundTruthKind::Instances,
        requested_backend: None,
    }
}

fn options(batch_sizes: Vec<usize>) -> ScenarioOptions {
    ScenarioOptions {
        warmup: 2,
        batch_sizes,
        decode: DecodeMode::Prefetch { threads: 1 },
        evaluation: EvalTiming::AfterRun,
        defer_scoring: false,
    }
}

fn run(
    detector: TestDetector,
    limit: Option<usize>,
    options: &ScenarioOptions,
) -> (Vec<ModelOutcome>, Vec<detbench_bench::results::SkippedRun>) {
    let source = DatasetOptions {
        limit,
        ..Default::default()
    }
    .resolve()
    .unwrap();
    run_on(detector, &mut DatasetCache::new(source), options)
}

/// `detector` run by the harness on the images of `cache`.
fn run_on(
    detector: TestDetector,
    cache: &mut DatasetCache,
    options: &ScenarioOptions,
) -> (Vec<ModelOutcome>, Vec<detbench_bench::results::SkippedRun>) {
    run_model(
        &spec(),
        || Ok(Box::new(detector) as Box<dyn Detector>),
        cache,
        &image_decoder(),
        options,
        &Quiet,
    )
}

#[test]
fn ground_truth_as_detections_scores_ap_exactly_one() {
    for evaluation in [EvalTiming::AfterRun, EvalTiming::Overlap] {
        let mut opts = options(vec![1]);
        opts.evaluation = evaluation;
        let (rows, skipped) = run(TestDetector::new(), None, &opts);
        assert!(skipped.is_empty());
        let row = &rows[0].result;
        assert_eq!(row.status, Status::Ok);
        assert_eq!(row.dataset.images, 206);
        assert!(row.failed_images.is_empty());
        let stats = &row.bbox.as_ref().unwrap().stats;
        assert_eq!(stats.len(), 12);
        // AP, AP50, AP75, APs, APm, APl and AR100 are exactly 1 when every detection is a
        // ground-truth box with score 1.
        for i in [0, 1, 2, 3, 4, 5, 8] {
            assert_eq!(stats[i], 1.0, "stat {i} ({evaluation:?}): {stats:?}");
        }
        let latency = row.latency.as_ref().unwrap();
        assert_eq!(latency.timed_images, 206);
        assert_eq!(latency.end_to_end_samples_ms.len(), 206);
        assert!(!latency.includes_decode);
        let dpi = row.detections_per_image.as_ref().unwrap();
        let non_crowd = rows[0].detections.len();
        assert!((dpi.mean * 206.0 - non_crowd as f64).abs() < 1e-6);
        assert!(!row.bbox.as_ref().unwrap().per_class.is_empty());
    }
}

#[test]
fn stage_times_come_from_the_pipeline_clock() {
    let mut detector = TestDetector::new();
    detector.sleep = [
        Duration::from_millis(2),
        Duration::from_millis(6),
        Duration::from_millis(1),
    ];
    let (rows, _) = run(detector, Some(12), &options(vec![1]));
    let latency = rows[0].result.latency.clone().unwrap();
    let stage = |name: &str| {
        latency
            .stages
            .iter()
            .find(|s| s.stage.as_str() == name)
            .unwrap()
            .summary
            .clone()
    };
    // Sleeps last at least as long as asked; allow scheduling slack above.
    for (name, ms) in [
        ("preprocess", 2.0),
        ("inference", 6.0),
        ("postprocess", 1.0),
    ] {
        let s = stage(name);
        assert!(s.min >= ms && s.median < ms + 5.0, "{name}: {s:?}");
    }
    assert!(latency.end_to_end.min >= 9.0, "{:?}", latency.end_to_end);
    // Scored on the 12 images of the run only: the ground truth as detections is still AP 1.
    assert_eq!(rows[0].result.bbox.as_ref().unwrap().stats[0], 1.0);
    assert!(stage("decode").min > 0.0);
    // 12 calls < 100: flagged.
    assert!(!latency.valid);
    assert!(latency.validity_notes[0].contains("only 12 timed calls"));
    assert_eq!(latency.warmup_iterations, 2);
}

#[test]
fn a_failing_image_is_listed_and_the_run_goes_on() {
    let mut detector = TestDetector::new();
    // The 3rd image of the subset by id (after the two warm-up images).
    detector.fail_on = Some(5001);
    let (rows, _) = run(detector, Some(8), &options(vec![1]));
    let row = &rows[0].result;
    assert_eq!(row.status, Status::Ok);
    assert_eq!(row.failed_images.len(), 1, "{:?}", row.failed_images);
    assert_eq!(row.failed_images[0].file, "000000005001.jpg");
    assert!(
        row.failed_images[0]
            .reason
            .contains("pipeline failed: cannot handle image 5001")
    );
    let latency = row.latency.as_ref().unwrap();
    assert_eq!(latency.timed_images, 7);
    assert!(
        latency
            .validity_notes
            .iter()
            .any(|n| n.contains("1 calls failed during timing"))
    );
    // The failed image's objects count as misses, so AP drops below 1.
    assert!(row.bbox.as_ref().unwrap().stats[0] < 1.0);
}

#[test]
fn models_that_cannot_open_or_panic_get_failed_rows() {
    let source = DatasetOptions {
        limit: Some(3),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut cache = DatasetCache::new(source);
    let (rows, _) = run_model(
        &spec(),
        || Err("model file /nowhere/x.onnx not found".into()),
        &mut cache,
        &image_decoder(),
        &options(vec![1, 2]),
        &Quiet,
    );
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(
            row.result.status.to_string(),
            "failed: model file /nowhere/x.onnx not found"
        );
        assert!(row.result.bbox.is_none() && row.result.latency.is_none());
        assert_eq!(row.result.dataset.images, 3);
    }

    // A panic on one image fails that image, like an error, and the run goes on: the other
    // images keep their results. (Image 139 is the first: one of the two warm-up calls fails
    // too.)
    let mut detector = TestDetector::new();
    detector.panic_on = Some(139);
    let (rows, _) = run(detector, Some(3), &options(vec![1]));
    let row = &rows[0].result;
    assert_eq!(row.status, Status::Ok);
    assert_eq!(row.failed_images.len(), 1);
    assert_eq!(row.failed_images[0].file, "000000000139.jpg");
    assert_eq!(
        row.failed_images[0].reason,
        "pipeline failed: the pipeline panicked: bug on image 139"
    );
    let latency = row.latency.as_ref().unwrap();
    assert_eq!(latency.timed_images, 2);
    assert!(
        latency
            .validity_notes
            .iter()
            .any(|n| n == "1 of 2 warm-up calls failed"),
        "{:?}",
        latency.validity_notes
    );
    assert!(row.bbox.is_some());

    // A pipeline that panics on every image gets a failed row naming the panic.
    let mut detector = TestDetector::new();
    detector.panic_on = Some(139);
    let (rows, _) = run(detector, Some(1), &options(vec![1]));
    assert_eq!(
        rows[0].result.status,
        Status::Failed(
            "every warm-up call failed: the pipeline panicked: bug on image 139".to_owned()
        )
    );
    assert!(rows[0].result.bbox.is_none());
}

#[test]
fn fixed_batch_models_skip_other_batch_sizes_and_batches_cover_every_image() {
    let mut detector = TestDetector::new();
    detector.batch = BatchSupport::Fixed(1);
    let (rows, skipped) = run(detector, Some(5), &options(vec![1, 4]));
    assert_eq!(rows.len(), 1);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].batch_size, 4);
    assert_eq!(
        skipped[0].reason,
        "model's batch is fixed at 1; skipping batch 4"
    );

    // Dynamic batch 4 over 10 images: calls of 4, 4 and 2.
    let (rows, _) = run(TestDetector::new(), Some(10), &options(vec![4]));
    let latency = rows[0].result.latency.as_ref().unwrap();
    assert_eq!(rows[0].result.batch_size, 4);
    assert_eq!(latency.end_to_end_samples_ms.len(), 3);
    assert_eq!(latency.timed_images, 10);
    // Every image went through the model exactly once: AP 1 on the 10 images.
    assert_eq!(rows[0].result.bbox.as_ref().unwrap().stats[0], 1.0);
}

/// A dataset of the first `count` subset images (by id) whose ground-truth copy names, for the
/// image positions in `missing`, files that do not exist (`gone_<position>.jpg`).
fn dataset_with_missing_files(
    count: usize,
    missing: &[usize],
) -> (tempfile::TempDir, DatasetCache) {
    let tmp = tempfile::tempdir().unwrap();
    let gt_path = detbench_assets::shared::instances_subset().unwrap();
    let mut gt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gt_path).unwrap()).unwrap();
    let mut images: Vec<serde_json::Value> = gt["images"].as_array().unwrap().clone();
    images.sort_by_key(|i| i["id"].as_u64().unwrap());
    images.truncate(count);
    for &position in missing {
        images[position]["file_name"] = format!("gone_{position}.jpg").into();
    }
    gt["images"] = serde_json::Value::Array(images);
    let ann = tmp.path().join("gt.json");
    std::fs::write(&ann, serde_json::to_vec(&gt).unwrap()).unwrap();
    let source = DatasetOptions {
        images_dir: Some(detbench_assets::shared::coco_images().unwrap()),
        annotations: Some(ann),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    (tmp, DatasetCache::new(source))
}

#[test]
fn missing_image_files_are_failed_images() {
    // The first 4 subset images, the third of which names a file that does not exist.
    let (_tmp, mut cache) = dataset_with_missing_files(4, &[2]);
    assert_eq!(
        cache
            .dataset(GroundTruthKind::Instances)
            .unwrap()
            .missing_files()
            .len(),
        1
    );
    let (rows, _) = run_on(TestDetector::new(), &mut cache, &options(vec![1]));
    let row = &rows[0].result;
    assert_eq!(row.status, Status::Ok);
    assert_eq!(row.failed_images.len(), 1);
    assert_eq!(row.failed_images[0].file, "gone_2.jpg");
    assert!(row.failed_images[0].reason.contains("gone_2.jpg"));
    assert_eq!(row.latency.as_ref().unwrap().timed_images, 3);
}

#[test]
fn warm_up_runs_when_the_first_images_cannot_be_decoded() {
    // The first three of six images name files that do not exist: the warm-up must still make
    // its calls (on the first image that decodes), not leave the model cold for the timed pass.
    let (_tmp, mut cache) = dataset_with_missing_files(6, &[0, 1, 2]);
    let detector = TestDetector::new();
    let calls = detector.calls.clone();
    let (rows, _) = run_on(detector, &mut cache, &options(vec![1]));
    let row = &rows[0].result;
    assert_eq!(row.status, Status::Ok);
    assert_eq!(row.failed_images.len(), 3);
    let latency = row.latency.as_ref().unwrap();
    assert_eq!(latency.timed_images, 3);
    assert_eq!(latency.warmup_iterations, 2);
    // 2 warm-up calls + 3 timed calls.
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert!(
        !latency.validity_notes.iter().any(|n| n.contains("warm-up")),
        "{:?}",
        latency.validity_notes
    );
}

#[test]
fn speed_only_folder_runs_have_no_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let shared_images = detbench_assets::shared::coco_images().unwrap();
    for name in ["000000000139.jpg", "000000000802.jpg"] {
        std::fs::copy(shared_images.join(name), tmp.path().join(name)).unwrap();
    }
    let source = DatasetOptions {
        images_only: Some(tmp.path().to_path_buf()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut cache = DatasetCache::new(source);
    let (rows, _) = run_model(
        &spec(),
        || Ok(Box::new(TestDetector::new()) as Box<dyn Detector>),
        &mut cache,
        &image_decoder(),
        &options(vec![1]),
        &Quiet,
    );
    let row = &rows[0].result;
    assert_eq!(row.status, Status::Ok);
    assert!(row.bbox.is_none());
    assert!(row.dataset.annotation_file.is_none());
    assert_eq!(row.latency.as_ref().unwrap().timed_images, 2);
}

#[test]
fn chunked_decoding_covers_every_image_and_keeps_its_pauses_out_of_the_total() {
    let mut detector = TestDetector::new();
    detector.sleep = [Duration::ZERO, Duration::from_millis(2), Duration::ZERO];
    let mut opts = options(vec![1]);
    opts.decode = DecodeMode::Chunked {
        threads: 2,
        chunk: 5,
    };
    let (rows, _) = run(detector, Some(12), &opts);
    let row = &rows[0].result;
    assert_eq!(row.bbox.as_ref().unwrap().stats[0], 1.0);
    let latency = row.latency.as_ref().unwrap();
    assert_eq!(latency.timed_images, 12);
    let harness = &row.provenance["harness"];
    assert_eq!(harness["decode"]["mode"], "chunked");
    assert_eq!(harness["decode"]["chunk"], 5);
    // Two chunks were decoded during the pass (the first one before it, with the warm-up):
    // the model waited for them, and that wait is not in the total.
    let paused = harness["decode_wait_seconds"].as_f64().unwrap();
    assert!(paused > 0.0);
    let calls: f64 = latency.end_to_end_samples_ms.iter().sum::<f64>() / 1e3;
    assert!(
        latency.total_seconds >= calls,
        "{} < {calls}",
        latency.total_seconds
    );
    assert!(
        latency.total_seconds < calls + 0.05,
        "total {} vs calls {calls} (paused {paused})",
        latency.total_seconds
    );
}
