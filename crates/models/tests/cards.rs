//! The card files in `crates/models/cards/`: every one parses, names are unique, and every
//! entry of the built-in zoo has a card that agrees with it (name, file, format, family, tasks,
//! input size, checksum, URL, licence, source, upstream claims), so that the zoo can become these
//! embedded cards without losing anything.
//!
//! The zoo's cards are generated from the catalogue by the ignored test `write_zoo_cards`
//! (`cargo test -p detbench-models --test cards -- --ignored`), with each family's preprocessing
//! and thresholds as its pipeline's defaults; the cards of the new shipped models are written by
//! hand.

use std::collections::BTreeSet;
use std::path::PathBuf;

use detbench_models::card::{
    self, Align, Batch, BatchWord, Card, Claim, ClassMapKind, Classes, Colour, Engine,
    Family as CardFamily, Format, Input, InputLayout, InputType, Output, Postprocess, Preprocess,
    Resize, Scale,
};
use detbench_models::zoo::{Family, ModelFormat, Sha256, ZooEntry, catalogue};

fn cards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cards")
}

fn all_cards() -> Vec<Card> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cards_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| card::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn family(f: Family) -> CardFamily {
    match f {
        Family::Yolox => CardFamily::Yolox,
        Family::NanoDet => CardFamily::Nanodet,
        Family::FastestDet => CardFamily::Fastestdet,
        Family::SimplePoseTopDown => CardFamily::SimpleposeTopDown,
        Family::D2Go => CardFamily::D2go,
        Family::TorchvisionDetection => CardFamily::Torchvision,
        Family::Tf2ObjectDetection => CardFamily::Tf2,
        Family::Detectron2 => CardFamily::Detectron2,
    }
}

fn format(f: ModelFormat) -> Format {
    match f {
        ModelFormat::Onnx => Format::Onnx,
        ModelFormat::TorchScript => Format::Torchscript,
        ModelFormat::Other(_) => Format::Tf2Savedmodel,
    }
}

fn pre(resize: Resize, colour: Colour, scale: Option<&str>) -> Preprocess {
    Preprocess {
        resize,
        align: None,
        pad: None,
        colour,
        scale: scale.map(|s| Scale::Fraction(s.to_owned())),
        mean: None,
        std: None,
    }
}

fn thresholds(score: f32, iou: f64, max: usize) -> Postprocess {
    Postprocess {
        score_threshold: Some(score),
        nms_iou: Some(iou),
        agnostic: Some(false),
        max_detections: Some(max),
        protocol: None,
    }
}

/// Each family's preprocessing, thresholds and class map, as its pipeline's defaults
/// (src/families/*.rs).
fn family_details(entry: &ZooEntry) -> (Option<Preprocess>, Postprocess, Classes, Option<String>) {
    let coco80 = Classes {
        map: Some(ClassMapKind::Coco80),
        ..Default::default()
    };
    let identity = Classes {
        map: Some(ClassMapKind::Identity),
        ..Default::default()
    };
    match entry.family {
        Family::Yolox => {
            let mut p = pre(Resize::Letterbox, Colour::Bgr, None);
            (p.align, p.pad) = (Some(Align::TopLeft), Some(114));
            (Some(p), thresholds(0.01, 0.65, 100), coco80, None)
        }
        Family::NanoDet => {
            let mut p = pre(Resize::WarpLetterbox, Colour::Bgr, None);
            (p.align, p.pad) = (Some(Align::Centre), Some(0));
            (p.mean, p.std) = (
                Some([103.53, 116.28, 123.675]),
                Some([57.375, 57.12, 58.395]),
            );
            (Some(p), thresholds(0.05, 0.6, 100), coco80, None)
        }
        Family::FastestDet => (
            Some(pre(Resize::Stretch, Colour::Bgr, Some("1/255"))),
            thresholds(0.001, 0.45, 100),
            coco80,
            None,
        ),
        Family::SimplePoseTopDown => {
            let mut p = pre(Resize::AffineCrop, Colour::Rgb, Some("1/255"));
            (p.mean, p.std) = (Some([0.485, 0.456, 0.406]), Some([0.229, 0.224, 0.225]));
            (
                Some(p),
                Postprocess::default(),
                Classes::default(),
                Some("yolox_nano".to_owned()),
            )
        }
        Family::D2Go => (
            Some(pre(Resize::InsideModel, Colour::Bgr, Some("1/255"))),
            Postprocess::default(),
            identity,
            None,
        ),
        Family::TorchvisionDetection => (
            Some(pre(Resize::InsideModel, Colour::Rgb, Some("1/255"))),
            Postprocess::default(),
            identity,
            None,
        ),
        Family::Tf2ObjectDetection => (
            Some(pre(Resize::InsideModel, Colour::Rgb, None)),
            Postprocess::default(),
            identity,
            None,
        ),
        Family::Detectron2 => (
            Some(pre(Resize::InsideModel, Colour::Bgr, None)),
            Postprocess::default(),
            coco80,
            None,
        ),
    }
}

/// The card of a zoo entry.
fn card_for(entry: &ZooEntry) -> Card {
    let (preprocess, postprocess, classes, companion) = family_details(entry);
    let (sha256, sha256_prefix) = match entry.sha256 {
        Sha256::Full(s) => (Some(s.to_owned()), None),
        Sha256::Prefix(s) => (None, Some(s.to_owned())),
        Sha256::Unknown => (None, None),
    };
    let onnx_input = matches!(entry.format, ModelFormat::Onnx) && entry.input_size.is_some();
    let list_input = matches!(
        entry.family,
        Family::TorchvisionDetection | Family::D2Go | Family::Detectron2
    );
    Card {
        name: entry.name.to_owned(),
        description: None,
        file: entry.file_name.to_owned(),
        format: format(entry.format),
        engine: Some(if matches!(entry.format, ModelFormat::TorchScript) {
            Engine::Libtorch
        } else {
            Engine::Onnxruntime
        }),
        family: family(entry.family),
        tasks: entry.iou_types.to_vec(),
        shipped: entry.shipped,
        sha256,
        sha256_prefix,
        url: entry.url.map(str::to_owned),
        source: Some(entry.source.to_owned()),
        how_to_get: Some(entry.how_to_get.to_owned()),
        licence: entry.licence.to_owned(),
        companion,
        input: Input {
            name: None,
            size: entry.input_size.map(|(w, h)| [w, h]),
            layout: Some(if list_input {
                InputLayout::ImageList
            } else if matches!(entry.family, Family::Tf2ObjectDetection) {
                InputLayout::Nhwc
            } else {
                InputLayout::Nchw
            }),
            dtype: Some(if matches!(entry.family, Family::Tf2ObjectDetection) {
                InputType::U8
            } else {
                InputType::F32
            }),
            batch: if onnx_input {
                Some(Batch::Fixed(1))
            } else if list_input {
                Some(Batch::Word(BatchWord::Dynamic))
            } else {
                None
            },
            description: Some(entry.input.to_owned()),
        },
        preprocess,
        output: Output::default(),
        postprocess,
        classes,
        upstream: entry
            .upstream_accuracy
            .iter()
            .map(|(metric, value)| Claim {
                metric: (*metric).to_owned(),
                value: *value,
                note: None,
            })
            .collect(),
    }
}

#[test]
#[ignore = "regenerates crates/models/cards/<zoo entry>.toml from the catalogue"]
fn write_zoo_cards() {
    for entry in catalogue() {
        let text = toml::to_string(&card_for(entry)).unwrap();
        let header = format!(
            "# detbench model card for the built-in zoo entry `{}` (generated from the catalogue by\n# crates/models/tests/cards.rs::write_zoo_cards; edit the catalogue, then regenerate).\n",
            entry.name
        );
        std::fs::write(
            cards_dir().join(format!("{}.toml", entry.name)),
            header + &text,
        )
        .unwrap();
    }
}

#[test]
fn every_card_parses_and_names_are_unique() {
    let cards = all_cards();
    let names: BTreeSet<&str> = cards.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cards.len(), "duplicate card names");
    for name in [
        "yolov8n_int8_640",
        "yolo11n_int8_320",
        "yolov8n-seg_int8_320",
        "deimv2_hgnetv2_atto_coco",
        "deimv2_hgnetv2_femto_coco",
    ] {
        assert!(names.contains(name), "no card for {name}");
    }
}

#[test]
fn every_zoo_entry_has_a_card_that_agrees_with_it() {
    let cards = all_cards();
    for entry in catalogue() {
        let card = cards
            .iter()
            .find(|c| c.name == entry.name)
            .unwrap_or_else(|| panic!("no card for zoo entry {}", entry.name));
        assert_eq!(
            card,
            &card_for(entry),
            "card of {} differs from the catalogue",
            entry.name
        );
    }
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
    use detbench_models::autoconfig::{AutoConfig, autoconfigure};
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
        let auto =
            use_auto.then(|| autoconfigure(&path, backend.inputs(), backend.outputs()).unwrap());
        let classes = card.output.classes.unwrap();
        let map = card::class_map(
            &card.name,
            &card.classes,
            classes,
            &coco_categories(),
            false,
        )
        .unwrap();
        pipelines::configure(&card, auto, backend.inputs(), backend.outputs(), map)
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
