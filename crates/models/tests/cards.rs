//! The card files in `crates/models/cards/` are the built-in zoo: every one parses, is embedded
//! (`src/zoo/builtin.rs`) and is named as its file; a user's cards join the zoo (replacing a
//! built-in card of the same name, a broken one reported with its file and line); a model file
//! without a card gets one from what it says about itself; and each card configures its
//! pipeline over what the file says.
//!
//! (When the zoo became these cards, `detbench zoo --json` of the build before and after was
//! compared entry by entry: equal, the five new shipped models added.)

use std::path::PathBuf;

use detbench_backends::BackendConfig;
use detbench_models::card::{self, Card};
use detbench_models::zoo::{CardOrigin, Zoo, builtin_card_text};
use detbench_models::{Family, catalogue, model_file_entry};

fn cards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cards")
}

fn card_files() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cards_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

fn all_cards() -> Vec<Card> {
    card_files()
        .iter()
        .map(|p| card::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn every_card_file_is_embedded_and_named_as_its_file() {
    let files = card_files();
    assert_eq!(
        files.len(),
        catalogue().len(),
        "a card file not in zoo/builtin.rs"
    );
    for path in &files {
        let card = card::load(path).unwrap();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(card.name, stem, "{}", path.display());
        assert_eq!(
            builtin_card_text(stem),
            Some(std::fs::read_to_string(path).unwrap().as_str()),
            "{stem}: the embedded text is the file's"
        );
    }
    let mut names: Vec<&str> = catalogue().iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), catalogue().len(), "names are unique");
    for name in [
        "yolov8n_int8_640",
        "yolo11n_int8_320",
        "yolov8n-seg_int8_320",
        "deimv2_hgnetv2_atto_coco",
        "deimv2_hgnetv2_femto_coco",
    ] {
        let entry = catalogue().iter().find(|e| e.name == name).unwrap();
        assert!(entry.shipped, "{name} ships");
    }
}

#[test]
fn built_in_entries_read_their_cards() {
    let entry = detbench_models::entry("yolox_nano").unwrap();
    assert_eq!(entry.family, Family::Yolox);
    assert_eq!(entry.family.to_string(), "Yolox", "the name results record");
    assert_eq!(entry.input_size, Some((416, 416)));
    assert_eq!(entry.upstream_accuracy, vec![("box AP".to_owned(), 25.8)]);
    let deim = detbench_models::entry("deimv2_hgnetv2_atto_coco").unwrap();
    assert_eq!(deim.family.to_string(), "DETR");
    assert_eq!(deim.input_label(), "320x320");
    let d2go = detbench_models::entry("d2go_fasterrcnn_fbnetv3a_int8").unwrap();
    assert_eq!(d2go.default_engine().name(), "libtorch");
    assert!(
        d2go.input_label()
            .starts_with("list of one CHW float BGR image")
    );
}

/// A user's folder: a new card joins, a card named as a built-in one replaces it, a broken one
/// is reported with its file, line and field while the others still join, and a card's file is
/// looked up beside it.
#[test]
fn user_cards_join_the_zoo() {
    let dir = tempfile::tempdir().unwrap();
    let yolox = builtin_card_text("yolox_nano").unwrap();
    let mine = yolox
        .replace("name = \"yolox_nano\"", "name = \"my_yolox\"")
        .replace("score_threshold = 0.01", "score_threshold = 0.3");
    std::fs::write(dir.path().join("my_yolox.toml"), &mine).unwrap();
    let tighter = yolox.replace("nms_iou = 0.65", "nms_iou = 0.5");
    std::fs::write(dir.path().join("override.toml"), &tighter).unwrap();
    let broken = yolox.replace("size = [416, 416]", "size = \"416\"");
    std::fs::write(dir.path().join("broken.toml"), broken).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a card").unwrap();

    let (zoo, problems) = Zoo::with_user_cards(&[dir.path().to_path_buf()]);
    assert_eq!(zoo.entries().len(), catalogue().len() + 1);
    let mine = zoo.get("my_yolox").unwrap();
    assert_eq!(mine.card.postprocess.score_threshold, Some(0.3));
    assert!(matches!(&mine.origin, CardOrigin::File(p) if p.ends_with("my_yolox.toml")));
    let replaced = zoo.get("yolox_nano").unwrap();
    assert_eq!(replaced.card.postprocess.nms_iou, Some(0.5));
    assert_eq!(problems.len(), 1);
    let shown = problems[0].error.to_string();
    assert!(problems[0].path.ends_with("broken.toml"), "{shown}");
    assert_eq!(problems[0].error.field(), Some("input.size"), "{shown}");
    assert!(shown.contains("line"), "{shown}");
    // The file is looked for beside the card first, then in the model folder.
    let models = detbench_assets::shared::models().unwrap();
    assert_eq!(mine.file_path(&models), models.join("yolox_nano.onnx"));
    std::fs::write(dir.path().join("yolox_nano.onnx"), b"").unwrap();
    assert_eq!(mine.file_path(&models), dir.path().join("yolox_nano.onnx"));
    let err = zoo.get("nope").unwrap_err().to_string();
    assert!(
        err.contains("my_yolox") && err.contains("yolox_nano"),
        "{err}"
    );
}

/// A model file without a card: its card comes from the file (Ultralytics metadata, DETR
/// inputs/outputs), prints as TOML that parses back, and names the file's own classes.
#[test]
fn a_model_file_gets_a_card_from_what_it_says() {
    let models = detbench_assets::shared::models().unwrap();
    let config = BackendConfig::default();
    let entry = model_file_entry(&models.join("yolov8n-seg_int8_320.onnx"), None, &config).unwrap();
    assert_eq!(entry.name, "yolov8n-seg_int8_320");
    assert_eq!(entry.family, Family::Ultralytics);
    assert_eq!(entry.iou_types.len(), 2, "box and mask");
    assert_eq!(entry.input_size, Some((320, 320)));
    assert_eq!(entry.origin, CardOrigin::ModelFile);
    let names = entry.card.classes.names.as_ref().unwrap();
    assert_eq!((names.len(), names[0].as_str()), (80, "person"));
    let text = toml::to_string(&entry.card).unwrap();
    assert_eq!(card::parse(&text, "printed").unwrap(), entry.card, "{text}");

    let deim = model_file_entry(
        &models.join("deimv2_hgnetv2_femto_coco.onnx"),
        None,
        &config,
    )
    .unwrap();
    assert_eq!(deim.family, Family::Detr);
    assert_eq!(deim.input_size, Some((416, 416)));
    // A file that describes nothing: YOLOX's raw output needs a card, and the error lists the
    // inputs and outputs and the card fields to fill.
    let err = model_file_entry(&models.join("yolox_nano.onnx"), None, &config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("images [1, 3, 416, 416]") && err.contains("output [1, 3549, 85]"),
        "{err}"
    );
    assert!(err.contains("[output] layout/task/classes"), "{err}");
    // With a card, the card describes it.
    let card = card::parse(builtin_card_text("yolox_nano").unwrap(), "yolox").unwrap();
    let entry = model_file_entry(&models.join("yolox_nano.onnx"), Some(card), &config).unwrap();
    assert_eq!(entry.family, Family::Yolox);
    assert!(std::path::Path::new(&entry.file_name).is_absolute());
}

#[test]
fn a_card_round_trips_through_toml() {
    for card in all_cards() {
        let text = toml::to_string(&card).unwrap();
        assert_eq!(card::parse(&text, "round trip").unwrap(), card);
    }
}

mod with_files {
    use detbench_backends::BackendConfig;
    use detbench_models::autoconfig::{AutoConfig, AutoConfigError, autoconfigure};
    use detbench_models::card::{self, CardError, DatasetCategory, pipelines};
    use detbench_models::families::ultralytics::{Geometry, MaskMode};

    fn coco_categories() -> Vec<DatasetCategory> {
        detbench_eval::labels::COCO80_TO_91
            .iter()
            .zip(detbench_eval::labels::COCO80_NAMES)
            .map(|(&id, name)| DatasetCategory {
                id,
                name: name.to_owned(),
            })
            .collect()
    }

    fn configure(
        card_file: &str,
        model_file: &str,
        use_auto: bool,
    ) -> Result<AutoConfig, CardError> {
        let card = card::load(&super::cards_dir().join(card_file)).unwrap();
        let path = detbench_assets::shared::models().unwrap().join(model_file);
        let backend = detbench_backends::open(&path, &BackendConfig::default()).unwrap();
        let auto = if use_auto {
            autoconfigure(&path, backend.inputs(), backend.outputs())
        } else {
            Err(AutoConfigError::NotOnnx {
                path: "(left out)".to_owned(),
            })
        };
        let categories = coco_categories();
        pipelines::configure(
            &card,
            auto,
            backend.inputs(),
            backend.outputs(),
            Some(&categories),
        )
    }

    #[test]
    fn a_card_sets_the_thresholds_over_what_the_file_says() {
        let Ok(AutoConfig::Ultralytics { config, .. }) =
            configure("yolov8n_int8_640.toml", "yolov8n_int8_640.onnx", true)
        else {
            panic!()
        };
        assert_eq!(
            (config.nms.conf, config.nms.iou, config.nms.max_det),
            (0.001, 0.7, 300)
        );
        assert_eq!(config.class_map[0], Some(1));
        // The shipped cards reproduce the validator (their thresholds are its mAP settings).
        assert!(config.nms.multi_label);
        assert_eq!(
            (config.geometry, config.masks),
            (Geometry::Validator, MaskMode::Validator)
        );
    }

    #[test]
    fn a_card_alone_describes_a_file_it_names_both_ways() {
        // Without the file's metadata the card's layout, task and classes describe it.
        let Ok(AutoConfig::Ultralytics { config, .. }) = configure(
            "yolov8n-seg_int8_320.toml",
            "yolov8n-seg_int8_320.onnx",
            false,
        ) else {
            panic!()
        };
        assert_eq!(config.output.prototypes.as_deref(), Some("output1"));
        let Ok(AutoConfig::Detr(config)) = configure(
            "deimv2_hgnetv2_femto_coco.toml",
            "deimv2_hgnetv2_femto_coco.onnx",
            false,
        ) else {
            panic!()
        };
        assert_eq!(config.input_size, (416, 416));
    }

    #[test]
    fn a_file_whose_output_contradicts_the_card_names_both_shapes() {
        let err = configure("yolov8n_int8_640.toml", "yolo11n_int8_320.onnx", true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[1, 84, 2100]") && err.contains("[1, 84, 8400]"),
            "{err}"
        );
    }
}
