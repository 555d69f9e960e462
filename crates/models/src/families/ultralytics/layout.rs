//! The output layouts of YOLO exports, and their recognition from the file's declared outputs
//! (and, for Ultralytics exports, its metadata):
//!
//! | layout | main output | extra values per row |
//! |---|---|---|
//! | [`Layout::ChannelsFirst`] (YOLOv8/11/12, YOLOv5u) | `[1, 4 + nc + extra, N]` | 32 mask coefficients (segment), `k * d` keypoint values (pose) |
//! | [`Layout::Objectness`] (YOLOv5/v7) | `[1, N, 5 + nc + extra]` | as above |
//! | [`Layout::EndToEnd`] (`nms=True`, YOLOv10, YOLO26) | `[1, K, 6 + extra]` | as above |
//!
//! Segmentation models have a second output, the prototypes `[1, 32, mh, mw]`
//! (`ultralytics/nn/modules/head.py::Segment`).

use detbench_backends::IoSpec;

use super::metadata::UltralyticsMetadata;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detect,
    Segment,
    Pose,
}

/// How the main output's rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    ChannelsFirst,
    Objectness,
    EndToEnd,
}

impl Layout {
    /// The card's spelling (`[output] layout`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::ChannelsFirst => "channels_first",
            Layout::Objectness => "objectness",
            Layout::EndToEnd => "end_to_end",
        }
    }
}

/// A recognised output: layout, task, class count and the names of the outputs to read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutputSpec {
    pub layout: Layout,
    pub task: Task,
    pub classes: usize,
    /// Keypoints per instance and values per keypoint (pose).
    pub keypoints: Option<(usize, usize)>,
    /// Mask coefficients per row (segment).
    pub mask_coefficients: usize,
    pub output: String,
    pub prototypes: Option<String>,
}

impl OutputSpec {
    /// Values after the box, score(s) and class(es) of a row.
    pub fn extra(&self) -> usize {
        match self.task {
            Task::Detect => 0,
            Task::Segment => self.mask_coefficients,
            Task::Pose => self.keypoints.map_or(0, |(k, d)| k * d),
        }
    }

    /// Values per row (channels first: channels).
    pub fn row_len(&self) -> usize {
        match self.layout {
            Layout::ChannelsFirst => 4 + self.classes + self.extra(),
            Layout::Objectness => 5 + self.classes + self.extra(),
            Layout::EndToEnd => 6 + self.extra(),
        }
    }

    /// The main output shape this spec reads, with `rows` candidates.
    pub fn shape(&self, rows: usize) -> [usize; 3] {
        match self.layout {
            Layout::ChannelsFirst => [1, self.row_len(), rows],
            _ => [1, rows, self.row_len()],
        }
    }
}

/// Why no layout fits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "cannot recognise the output layout: {reason}. The model has inputs [{inputs}] and outputs [{outputs}]. \
     Describe it with a model card: `family = \"ultralytics\"` with `[output] layout = \"channels_first\" | \
     \"objectness\" | \"end_to_end\"`, `task = \"detect\" | \"segment\" | \"pose\"`, `classes`, and for pose \
     `keypoints = [17, 3]` (`detbench zoo --card NAME` prints a card to start from)"
)]
pub struct LayoutError {
    pub reason: String,
    pub inputs: String,
    pub outputs: String,
}

/// `name [d0, d1, ...] dtype` for each spec.
pub fn describe_specs(specs: &[IoSpec]) -> String {
    specs
        .iter()
        .map(|s| {
            let shape = s.shape.as_ref().map_or("?".to_owned(), |dims| {
                let d: Vec<String> = dims
                    .iter()
                    .map(|d| d.map_or("dynamic".to_owned(), |v| v.to_string()))
                    .collect();
                format!("[{}]", d.join(", "))
            });
            let dtype = s
                .dtype
                .map_or(String::new(), |t| format!(" {t:?}").to_lowercase());
            format!("{} {shape}{dtype}", s.name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn fixed_dims(spec: &IoSpec) -> Option<Vec<usize>> {
    spec.shape.as_ref()?.iter().skip(1).copied().collect()
}

/// Recognises the layout from the outputs, using the metadata of an Ultralytics export when
/// there is one (task, class count, keypoint shape, end-to-end flag).
pub fn recognise(
    inputs: &[IoSpec],
    outputs: &[IoSpec],
    metadata: Option<&UltralyticsMetadata>,
) -> Result<OutputSpec, LayoutError> {
    let fail = |reason: String| LayoutError {
        reason,
        inputs: describe_specs(inputs),
        outputs: describe_specs(outputs),
    };
    let main = outputs
        .first()
        .ok_or_else(|| fail("the model has no outputs".into()))?;
    let dims = fixed_dims(main).filter(|d| d.len() == 2).ok_or_else(|| {
        fail(format!(
            "`{}` is not a fixed [batch, a, b] tensor",
            main.name
        ))
    })?;
    let prototypes = outputs
        .get(1)
        .filter(|p| matches!(p.shape.as_deref(), Some([_, Some(_), Some(_), Some(_)])));
    let coefficients = prototypes
        .and_then(|p| p.shape.as_ref()?.get(1).copied().flatten())
        .unwrap_or(0);
    let task = task_of(metadata, prototypes.is_some(), &fail)?;
    let keypoints = metadata.and_then(|m| m.kpt_shape);
    let mut spec = OutputSpec {
        layout: Layout::ChannelsFirst,
        task,
        classes: 0,
        keypoints: if task == Task::Pose { keypoints } else { None },
        mask_coefficients: if task == Task::Segment {
            coefficients
        } else {
            0
        },
        output: main.name.clone(),
        prototypes: (task == Task::Segment)
            .then(|| prototypes.map(|p| p.name.clone()))
            .flatten(),
    };
    let extra = spec.extra();
    let (a, b) = (dims[0], dims[1]);
    let end2end = metadata.map(|m| m.end2end);
    let names = metadata.map(|m| m.names.len());
    if end2end == Some(true) || (end2end.is_none() && b == 6 + extra && a <= 1000 && a > b) {
        if b != 6 + extra {
            return Err(fail(format!(
                "an end-to-end output has 6 + {extra} values per row, not {b}"
            )));
        }
        spec.layout = Layout::EndToEnd;
        spec.classes = names.unwrap_or(0);
        return Ok(spec);
    }
    if a < b {
        let classes = a.checked_sub(4 + extra).filter(|&c| c > 0);
        spec.classes = classes.ok_or_else(|| {
            fail(format!(
                "{a} channels leave no class scores after 4 box values and {extra} extra"
            ))
        })?;
    } else if metadata.is_none_or(|m| m.yolov5) {
        spec.layout = Layout::Objectness;
        spec.classes = b.checked_sub(5 + extra).filter(|&c| c > 0).ok_or_else(|| {
            fail(format!(
                "rows of {b} values leave no class scores after box, objectness and {extra} extra"
            ))
        })?;
    } else {
        return Err(fail(format!(
            "an Ultralytics export with output [1, {a}, {b}] (more channels than candidates)"
        )));
    }
    if let Some(n) = names.filter(|&n| n != spec.classes) {
        return Err(fail(format!(
            "the metadata names {n} classes but the output holds {} class scores",
            spec.classes
        )));
    }
    Ok(spec)
}

/// The task, from the metadata's `task` when there is one, else from the outputs (a second
/// output of prototypes means segmentation); an error says what the task's outputs lack.
fn task_of(
    metadata: Option<&UltralyticsMetadata>,
    has_prototypes: bool,
    fail: &dyn Fn(String) -> LayoutError,
) -> Result<Task, LayoutError> {
    let task = match metadata.map(|m| m.task.as_str()) {
        Some("detect") => Task::Detect,
        Some("segment") => Task::Segment,
        Some("pose") => Task::Pose,
        Some(other) => {
            return Err(fail(format!(
                "task `{other}` is not supported (detect, segment, pose)"
            )));
        }
        None if has_prototypes => Task::Segment,
        None => Task::Detect,
    };
    if task == Task::Segment && !has_prototypes {
        return Err(fail(
            "a segmentation model needs a second output [1, 32, mh, mw] of prototypes".into(),
        ));
    }
    if task == Task::Pose && metadata.and_then(|m| m.kpt_shape).is_none() {
        return Err(fail(
            "a pose model needs `kpt_shape` in its metadata or card".into(),
        ));
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, dims: &[usize]) -> IoSpec {
        IoSpec {
            name: name.into(),
            shape: Some(dims.iter().map(|&d| Some(d)).collect()),
            dtype: None,
        }
    }

    fn meta(task: &str, classes: usize) -> UltralyticsMetadata {
        UltralyticsMetadata {
            task: task.into(),
            names: (0..classes).map(|i| format!("c{i}")).collect(),
            imgsz: Some((640, 640)),
            stride: Some(32),
            batch: Some(1),
            kpt_shape: (task == "pose").then_some((17, 3)),
            end2end: false,
            dynamic: false,
            version: None,
            yolov5: false,
        }
    }

    #[test]
    fn recognises_the_shipped_and_exported_layouts() {
        let images = [spec("images", &[1, 3, 640, 640])];
        let det = recognise(
            &images,
            &[spec("output0", &[1, 84, 8400])],
            Some(&meta("detect", 80)),
        )
        .unwrap();
        assert_eq!(
            (det.layout, det.task, det.classes),
            (Layout::ChannelsFirst, Task::Detect, 80)
        );
        let seg = recognise(
            &images,
            &[
                spec("output0", &[1, 116, 2100]),
                spec("output1", &[1, 32, 80, 80]),
            ],
            Some(&meta("segment", 80)),
        )
        .unwrap();
        assert_eq!(
            (seg.task, seg.classes, seg.extra()),
            (Task::Segment, 80, 32)
        );
        assert_eq!(seg.prototypes.as_deref(), Some("output1"));
        let pose = recognise(
            &images,
            &[spec("output0", &[1, 56, 2100])],
            Some(&meta("pose", 1)),
        )
        .unwrap();
        assert_eq!((pose.task, pose.classes, pose.extra()), (Task::Pose, 1, 51));
        let mut e2e = meta("detect", 80);
        e2e.end2end = true;
        let out = recognise(&images, &[spec("output0", &[1, 300, 6])], Some(&e2e)).unwrap();
        assert_eq!(out.layout, Layout::EndToEnd);
    }

    #[test]
    fn without_metadata_the_shapes_decide() {
        let images = [spec("images", &[1, 3, 640, 640])];
        let v5 = recognise(&images, &[spec("output", &[1, 25200, 85])], None).unwrap();
        assert_eq!((v5.layout, v5.classes), (Layout::Objectness, 80));
        let e2e = recognise(&images, &[spec("output", &[1, 300, 6])], None).unwrap();
        assert_eq!(e2e.layout, Layout::EndToEnd);
        let v8 = recognise(&images, &[spec("output0", &[1, 84, 8400])], None).unwrap();
        assert_eq!((v8.layout, v8.classes), (Layout::ChannelsFirst, 80));
    }

    #[test]
    fn unknown_layouts_list_what_was_found_and_the_card_fields() {
        let images = [spec("images", &[1, 3, 640, 640])];
        let err = recognise(&images, &[spec("logits", &[1, 1000])], None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("images [1, 3, 640, 640]"), "{text}");
        assert!(text.contains("logits [1, 1000]"), "{text}");
        assert!(text.contains("layout ="), "{text}");
        let err = recognise(
            &images,
            &[spec("output0", &[1, 84, 8400])],
            Some(&meta("detect", 3)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("names 3 classes"), "{err}");
    }
}
