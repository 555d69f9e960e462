//! Card parsing and its errors.

use super::*;

const GOOD: &str = include_str!("../../cards/yolov8n_int8_640.toml");

#[test]
fn a_shipped_card_parses_into_typed_values() {
    let card = parse(GOOD, "yolov8n_int8_640.toml").unwrap();
    assert_eq!(card.family, Family::Ultralytics);
    assert_eq!(card.input.size, Some([640, 640]));
    assert_eq!(card.batch(), Batch::Fixed(1));
    let pre = card.preprocess.as_ref().unwrap();
    assert_eq!(pre.scale.as_ref().unwrap().divisor().unwrap(), Some(255.0));
    assert_eq!(card.output.layout, Some(OutputLayoutKind::ChannelsFirst));
    assert_eq!(card.output.shape, Some(vec![Some(1), Some(84), Some(8400)]));
    assert_eq!(card.classes.map, Some(ClassMapKind::Coco80));
}

/// `GOOD` with line `line` (1-based) replaced.
fn with_line(line: usize, replacement: &str) -> String {
    GOOD.lines()
        .enumerate()
        .map(|(n, l)| if n + 1 == line { replacement } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_of(prefix: &str) -> usize {
    GOOD.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

#[test]
fn a_missing_field_names_the_field_and_a_line() {
    let text = with_line(line_of("file ="), "");
    let err = parse(&text, "my.toml").unwrap_err();
    assert_eq!(err.field(), Some("file"), "{err}");
    assert!(err.line().is_some());
    let shown = err.to_string();
    assert!(
        shown.contains("my.toml") && shown.contains("missing field `file`"),
        "{shown}"
    );

    // A missing field of a table names the table and its header line.
    let text = with_line(line_of("resize ="), "");
    let err = parse(&text, "my.toml").unwrap_err();
    assert_eq!(err.field(), Some("preprocess.resize"), "{err}");
    assert_eq!(err.line(), Some(line_of("[preprocess]")), "{err}");
}

#[test]
fn a_wrong_type_names_the_field_and_its_line() {
    let line = line_of("size =");
    let text = with_line(line, "size = \"640x640\"");
    let err = parse(&text, "my.toml").unwrap_err();
    assert_eq!(err.field(), Some("input.size"), "{err}");
    assert_eq!(err.line(), Some(line), "{err}");
    let line = line_of("pad =");
    let err = parse(&with_line(line, "pad = 300"), "my.toml").unwrap_err();
    assert_eq!(
        (err.field(), err.line()),
        (Some("preprocess.pad"), Some(line)),
        "{err}"
    );
    let line = line_of("family =");
    let err = parse(&with_line(line, "family = \"yolo\""), "my.toml").unwrap_err();
    assert_eq!(
        (err.field(), err.line()),
        (Some("family"), Some(line)),
        "{err}"
    );
    assert!(
        err.to_string().contains("ultralytics"),
        "the error lists the families: {err}"
    );
}

#[test]
fn an_unknown_field_is_an_error_not_ignored() {
    let line = line_of("pad =");
    let err = parse(&with_line(line, "padding = 114"), "my.toml").unwrap_err();
    assert_eq!(err.line(), Some(line), "{err}");
    assert!(err.to_string().contains("padding"), "{err}");
}

#[test]
fn fields_that_do_not_fit_together_name_the_field_and_line() {
    let line = line_of("layout = \"channels_first\"");
    let err = parse(
        &with_line(line, "layout = \"labels_boxes_scores\""),
        "my.toml",
    )
    .unwrap_err();
    assert_eq!(
        (err.field(), err.line()),
        (Some("output.layout"), Some(line)),
        "{err}"
    );
    let line = line_of("scale =");
    let err = parse(&with_line(line, "scale = \"1/0\""), "my.toml").unwrap_err();
    assert_eq!(
        (err.field(), err.line()),
        (Some("preprocess.scale"), Some(line)),
        "{err}"
    );
    let line = line_of("nms_iou =");
    let err = parse(&with_line(line, "nms_iou = 7"), "my.toml").unwrap_err();
    assert_eq!(err.field(), Some("postprocess.nms_iou"), "{err}");
}

#[test]
fn an_output_shape_contradicting_the_card_names_both_shapes() {
    let card = parse(GOOD, "c").unwrap();
    let declared = [Some(1), Some(84), Some(2100)];
    let err = check_output_shape(&card, "output0", Some(&declared)).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("[1, 84, 2100]") && shown.contains("[1, 84, 8400]"),
        "{shown}"
    );
    let dynamic = [None, Some(84), Some(8400)];
    check_output_shape(&card, "output0", Some(&dynamic)).unwrap();
}

fn categories(pairs: &[(u64, &str)]) -> Vec<DatasetCategory> {
    pairs
        .iter()
        .map(|(id, name)| DatasetCategory {
            id: *id,
            name: name.to_string(),
        })
        .collect()
}

#[test]
fn class_names_match_the_dataset_categories_by_name() {
    let mut spec = Classes {
        map: Some(ClassMapKind::ByName),
        names: Some(vec!["cat".into(), "dog".into(), "person".into()]),
        ..Default::default()
    };
    let dataset = categories(&[(1, "person"), (2, "dog"), (3, "cat")]);
    assert_eq!(
        class_map("m", &spec, 3, None, Some(&dataset)).unwrap(),
        vec![Some(3), Some(2), Some(1)]
    );
    // The first class without a category is named.
    let dataset = categories(&[(1, "person"), (2, "dog")]);
    let err = class_map("m", &spec, 3, None, Some(&dataset)).unwrap_err();
    assert!(
        matches!(&err, ClassMapError::Unmatched { index: 0, name, .. } if name == "cat"),
        "{err}"
    );
    assert!(err.to_string().contains("`cat`"), "{err}");
    // Or dropped when asked.
    spec.unmatched = Some(Unmatched::Drop);
    assert_eq!(
        class_map("m", &spec, 3, None, Some(&dataset)).unwrap(),
        vec![None, Some(2), Some(1)]
    );
}

#[test]
fn coco_ids_must_exist_in_the_dataset_with_their_names() {
    let mut spec = Classes {
        map: Some(ClassMapKind::Coco80),
        ..Default::default()
    };
    let dataset = categories(&[(1, "person"), (3, "car")]);
    let err = class_map("m", &spec, 80, None, Some(&dataset)).unwrap_err();
    assert!(
        matches!(&err, ClassMapError::Unmatched { index: 1, name, .. } if name == "bicycle"),
        "{err}"
    );
    // A renumbered dataset: id 2 exists but is `car`, not COCO's `bicycle`.
    let renumbered = categories(&[(1, "person"), (2, "car"), (3, "dog")]);
    let err = class_map("m", &spec, 80, None, Some(&renumbered)).unwrap_err();
    assert!(
        err.to_string()
            .contains("class 1 (`bicycle`) maps to category 2, which the dataset calls `car`"),
        "{err}"
    );
    spec.unmatched = Some(Unmatched::Drop);
    let kept = class_map("m", &spec, 80, None, Some(&dataset)).unwrap();
    assert_eq!(
        kept.iter().flatten().copied().collect::<Vec<_>>(),
        vec![1, 3]
    );
}

#[test]
fn without_a_map_names_are_matched_by_name_and_without_a_dataset_ids_are_taken() {
    let spec = Classes::default();
    let coco: Vec<String> = detbench_eval::labels::COCO80_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let renumbered = categories(&[(1, "person"), (2, "car"), (3, "dog")]);
    let err = class_map("m", &spec, 80, Some(&coco), Some(&renumbered)).unwrap_err();
    assert!(
        err.to_string()
            .contains("class 1 (`bicycle`) has no category of that name"),
        "{err}"
    );
    let drop = Classes {
        unmatched: Some(Unmatched::Drop),
        ..Default::default()
    };
    let map = class_map("m", &drop, 80, Some(&coco), Some(&renumbered)).unwrap();
    assert_eq!((map[0], map[2], map[16]), (Some(1), Some(2), Some(3)));
    assert_eq!(map.iter().flatten().count(), 3);
    // No dataset: COCO's ids for COCO's names, index + 1 for others, the index for 91.
    assert_eq!(
        class_map("m", &spec, 80, Some(&coco), None).unwrap()[79],
        Some(90)
    );
    let custom = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(
        class_map("m", &spec, 2, Some(&custom), None).unwrap(),
        vec![Some(1), Some(2)]
    );
    assert_eq!(class_map("m", &spec, 91, None, None).unwrap()[7], Some(7));
}
