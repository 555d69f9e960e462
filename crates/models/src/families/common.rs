//! Pieces every family pipeline shares: the error type, checked access to output tensors, the
//! conversion of a kept box to a COCO result, and [`SingleModelDetector`], which turns a
//! preprocess/postprocess pair around one [`Backend`] into a timed `Detector` (batching images
//! into one call when the model's batch dimension is dynamic, scoring the evaluations the
//! pipeline's task supports, and raising the "quantized model detects nothing" warning of
//! [`super::watch`] through the `Detector`'s warnings channel).

use detbench_backends::{
    Backend, BackendDescription, BackendError, IoSpec, Outputs, Tensor, TensorData, Value,
};
use detbench_bench::{BatchSupport, Detector, DetectorError, ImageInput, Stage, StageClock};
use detbench_eval::{Detection, IouType};
use detbench_imgproc::BgrImage;

use super::nms::BoxXyxy;
use super::watch::BelowThresholdWatch;

/// What can go wrong inside a family pipeline, after the model is open.
#[derive(Debug, thiserror::Error)]
pub enum FamilyError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("output `{name}`: expected {expected}, got {got}")]
    OutputShape {
        name: String,
        expected: String,
        got: String,
    },
    #[error("model `{model}`: {reason}")]
    Model { model: String, reason: String },
    #[error("image of {width}x{height}: {reason}")]
    Image {
        width: usize,
        height: usize,
        reason: String,
    },
    #[error("model `{model}`: {reason}")]
    Batch { model: String, reason: BatchError },
}

/// Why a batch of inputs could not be stacked, or its outputs split.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot batch inputs of shape {shape:?}: batch dimension is not 1")]
    NotBatchOne { shape: Vec<usize> },
    #[error("cannot batch inputs of shapes {first:?} and {other:?}")]
    ShapesDiffer {
        first: Vec<usize>,
        other: Vec<usize>,
    },
    #[error("only f32 inputs can be batched")]
    NotFloat,
    #[error("output `{name}` is not a tensor; cannot split a batch")]
    NotATensor { name: String },
    #[error("output `{name}` has shape {shape:?}; expected leading dimension {count}")]
    LeadingDimension {
        name: String,
        shape: Vec<usize>,
        count: usize,
    },
}

/// The `f32` elements of output `name`, checked against the shape the pipeline expects.
pub fn output_f32<'a>(
    outputs: &'a Outputs,
    name: &str,
    expected_shape: &[usize],
) -> Result<&'a [f32], FamilyError> {
    let tensor = outputs.tensor(name)?;
    if tensor.shape != expected_shape {
        return Err(FamilyError::OutputShape {
            name: name.to_owned(),
            expected: format!("shape {expected_shape:?}"),
            got: format!("shape {:?}", tensor.shape),
        });
    }
    tensor.as_f32().ok_or_else(|| FamilyError::OutputShape {
        name: name.to_owned(),
        expected: "f32 elements".to_owned(),
        got: tensor.dtype().to_string(),
    })
}

/// One kept detection before conversion: box in original-image pixels, score, COCO category.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeptBox {
    pub bbox: BoxXyxy,
    pub score: f32,
    pub category_id: u64,
}

impl KeptBox {
    /// The COCO result: `[x1, y1, x2 - x1, y2 - y1]` with the subtraction done in `f32`, as the
    /// reference pipelines do (`tools/reference/common.py::to_coco_results`), then widened.
    pub fn to_detection(self, image_id: u64) -> Detection {
        let [x1, y1, x2, y2] = self.bbox;
        Detection {
            image_id,
            category_id: self.category_id,
            bbox: [x1 as f64, y1 as f64, (x2 - x1) as f64, (y2 - y1) as f64],
            score: self.score as f64,
            mask: None,
            keypoints: None,
        }
    }
}

/// The category id of each class index of a model that predicts class indices; `None` drops
/// the class (a dataset without that category), before NMS. Serialised as the list of ids
/// (`null` for a dropped class).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ClassMap(pub Vec<Option<u64>>);

impl ClassMap {
    /// COCO's 80 classes in COCO's order -> COCO's category ids.
    pub fn coco80() -> Self {
        ClassMap(
            detbench_eval::labels::COCO80_TO_91
                .iter()
                .map(|&id| Some(id))
                .collect(),
        )
    }

    /// Whether this is [`ClassMap::coco80`] (the provenance leaves the default map out).
    pub fn is_coco80(&self) -> bool {
        *self == ClassMap::coco80()
    }

    /// The category id of class `class`, `None` when it is dropped or out of range.
    #[inline]
    pub fn get(&self, class: usize) -> Option<u64> {
        self.0.get(class).copied().flatten()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Index of the first maximum of `values` (NaN never wins), as `np.argmax` on finite data.
#[inline]
pub fn argmax(values: &[f32]) -> (usize, f32) {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    (best, best_value)
}

/// Batch support as the model file declares its input: a fixed leading dimension is that batch
/// size; a dynamic one is any batch, provided the other dimensions are fixed (inputs of
/// per-image sizes, such as a whole-image input, cannot be stacked, so those take one image).
pub fn batch_support_of(input: &IoSpec) -> BatchSupport {
    match input.shape.as_deref() {
        Some([Some(n), ..]) => BatchSupport::Fixed(*n),
        Some([None, rest @ ..]) if rest.iter().all(Option::is_some) => {
            BatchSupport::Dynamic { max: None }
        }
        _ => BatchSupport::Fixed(1),
    }
}

/// A family's image-to-tensor and tensor-to-detections steps, around one model.
pub trait Pipeline: Send {
    /// What postprocessing needs to know about the image (sizes, scale, warp matrix).
    type Meta: Send;
    /// The model input for one image, with batch dimension 1.
    fn preprocess(&self, image: &BgrImage) -> Result<(Tensor, Self::Meta), FamilyError>;
    /// The detections of one image from the model outputs of that image (batch dimension 1).
    fn postprocess(
        &self,
        outputs: &Outputs,
        meta: &Self::Meta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError>;
    /// Preprocessing, thresholds and their upstream sources, for the run record.
    fn provenance(&self) -> serde_json::Value;
    /// The model input the preprocessed tensor is fed to.
    fn input_name(&self) -> &str;
    /// Inputs besides the image tensor for a call on images with `metas` (a DETR export's
    /// original image sizes); none by default.
    fn extra_inputs(&self, _metas: &[Self::Meta]) -> Vec<(String, Value)> {
        Vec::new()
    }
    /// The evaluations its detections support (boxes by default; masks and keypoints where the
    /// pipeline's task predicts them).
    fn iou_types(&self) -> Vec<IouType> {
        vec![IouType::Bbox]
    }
}

/// A `Detector` made of one [`Backend`] and one [`Pipeline`].
pub struct SingleModelDetector<P: Pipeline> {
    name: String,
    backend: Box<dyn Backend>,
    input_name: String,
    pipeline: P,
    batch: BatchSupport,
    /// Watches the first images for "no result over the threshold" (quantized models).
    watch: Option<BelowThresholdWatch>,
    /// Warnings raised and not yet taken by the harness.
    warnings: Vec<String>,
}

impl<P: Pipeline> SingleModelDetector<P> {
    /// Wraps `backend`, feeding the pipeline's tensor to its model input
    /// ([`Pipeline::input_name`]).
    pub fn new(name: &str, backend: Box<dyn Backend>, pipeline: P) -> Result<Self, FamilyError> {
        let input_name = pipeline.input_name().to_owned();
        let input_name = input_name.as_str();
        let input = backend
            .inputs()
            .iter()
            .find(|spec| spec.name == input_name)
            .ok_or_else(|| FamilyError::Model {
                model: name.to_owned(),
                reason: format!(
                    "the model has no input `{input_name}` (it has: {})",
                    names(backend.inputs())
                ),
            })?;
        let batch = batch_support_of(input);
        Ok(SingleModelDetector {
            name: name.to_owned(),
            input_name: input_name.to_owned(),
            backend,
            pipeline,
            batch,
            watch: None,
            warnings: Vec::new(),
        })
    }

    /// Watches the first images with `watch` ([`BelowThresholdWatch`]).
    pub fn with_watch(mut self, watch: BelowThresholdWatch) -> Self {
        self.watch = Some(watch);
        self
    }

    pub fn pipeline(&self) -> &P {
        &self.pipeline
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Runs the model on already preprocessed inputs (one per image, with the images' `metas`)
    /// and splits the outputs back per image.
    fn infer(
        &mut self,
        tensors: Vec<Tensor>,
        metas: &[P::Meta],
    ) -> Result<Vec<Outputs>, FamilyError> {
        let count = tensors.len();
        let tensor = if count == 1 {
            tensors.into_iter().next().expect("one tensor")
        } else {
            concat_batch(tensors).map_err(|reason| FamilyError::Batch {
                model: self.name.clone(),
                reason,
            })?
        };
        let mut inputs = vec![(self.input_name.clone(), Value::Tensor(tensor))];
        inputs.extend(self.pipeline.extra_inputs(metas));
        let outputs = self.backend.run(inputs)?;
        if count == 1 {
            return Ok(vec![outputs]);
        }
        split_batch(outputs, count).map_err(|reason| FamilyError::Batch {
            model: self.name.clone(),
            reason,
        })
    }

    /// Shows each image's best score to the watch, keeping the warning it raises.
    fn observe_scores(&mut self, detections: &[Vec<Detection>]) {
        let Some(watch) = &mut self.watch else {
            return;
        };
        for image in detections {
            let best = image.iter().map(|d| d.score as f32).reduce(f32::max);
            self.warnings.extend(watch.observe(best));
        }
    }
}

fn names(specs: &[IoSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stacks batch-1 tensors of one shape into one tensor along dimension 0.
fn concat_batch(tensors: Vec<Tensor>) -> Result<Tensor, BatchError> {
    let first_shape = tensors[0].shape.clone();
    if first_shape.first() != Some(&1) {
        return Err(BatchError::NotBatchOne { shape: first_shape });
    }
    let mut shape = first_shape.clone();
    shape[0] = tensors.len();
    let mut data: Vec<f32> = Vec::with_capacity(shape.iter().product());
    for t in &tensors {
        if t.shape != first_shape {
            return Err(BatchError::ShapesDiffer {
                first: first_shape,
                other: t.shape.clone(),
            });
        }
        match &t.data {
            TensorData::F32(v) => data.extend_from_slice(v),
            _ => return Err(BatchError::NotFloat),
        }
    }
    Ok(Tensor::f32(shape, data))
}

/// Splits every tensor output with leading dimension `count` into `count` batch-1 outputs.
fn split_batch(outputs: Outputs, count: usize) -> Result<Vec<Outputs>, BatchError> {
    let mut per_image: Vec<Outputs> = (0..count).map(|_| Outputs::default()).collect();
    for (name, value) in outputs.0 {
        let Value::Tensor(t) = value else {
            return Err(BatchError::NotATensor { name });
        };
        if t.shape.first() != Some(&count) {
            return Err(BatchError::LeadingDimension {
                name,
                shape: t.shape.clone(),
                count,
            });
        }
        let mut shape = t.shape.clone();
        shape[0] = 1;
        let per = shape.iter().product::<usize>();
        for (k, out) in per_image.iter_mut().enumerate() {
            let data = match &t.data {
                TensorData::F32(v) => TensorData::F32(v[k * per..(k + 1) * per].to_vec()),
                TensorData::I64(v) => TensorData::I64(v[k * per..(k + 1) * per].to_vec()),
                TensorData::U8(v) => TensorData::U8(v[k * per..(k + 1) * per].to_vec()),
            };
            out.0.push((
                name.clone(),
                Value::Tensor(Tensor {
                    shape: shape.clone(),
                    data,
                }),
            ));
        }
    }
    Ok(per_image)
}

impl<P: Pipeline> Detector for SingleModelDetector<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_support(&self) -> BatchSupport {
        self.batch
    }

    fn iou_types(&self) -> Vec<IouType> {
        self.pipeline.iou_types()
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "pipeline": self.pipeline.provenance(),
            "backend": self.backend.describe(),
            "batch": self.batch.to_string(),
        })
    }

    fn backend(&self) -> Option<BackendDescription> {
        Some(self.backend.describe())
    }

    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        if !self.batch.accepts(batch.len()) {
            return Err(format!(
                "{} takes batches of {:?}; got {} images",
                self.name,
                self.batch,
                batch.len()
            )
            .into());
        }
        let mut tensors = Vec::with_capacity(batch.len());
        let mut metas = Vec::with_capacity(batch.len());
        for input in batch {
            let (tensor, meta) = clock
                .time(Stage::Preprocess, || self.pipeline.preprocess(input.image))
                .map_err(|e| format!("{}: image {}: {e}", self.name, input.image_id))?;
            tensors.push(tensor);
            metas.push(meta);
        }
        let outputs = clock.time(Stage::Inference, || self.infer(tensors, &metas))?;
        let detections = clock.time(Stage::Postprocess, || {
            outputs
                .iter()
                .zip(&metas)
                .zip(batch)
                .map(|((out, meta), input)| self.pipeline.postprocess(out, meta, input.image_id))
                .collect::<Result<Vec<_>, _>>()
        })?;
        self.observe_scores(&detections);
        Ok(detections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), (1, 0.7));
    }

    #[test]
    fn coco_box_width_is_computed_in_f32() {
        let kept = KeptBox {
            bbox: [0.1, 0.2, 100.3, 50.7],
            score: 0.5,
            category_id: 1,
        };
        let d = kept.to_detection(7);
        assert_eq!(d.bbox[2], (100.3f32 - 0.1f32) as f64);
        assert_eq!(d.bbox[3], (50.7f32 - 0.2f32) as f64);
    }

    #[test]
    fn batch_support_follows_the_declared_input_shape() {
        let spec = |shape: Vec<Option<usize>>| IoSpec {
            name: "x".into(),
            shape: Some(shape),
            dtype: None,
        };
        let fixed = spec(vec![Some(1), Some(3), Some(416), Some(416)]);
        assert_eq!(batch_support_of(&fixed), BatchSupport::Fixed(1));
        let dynamic = spec(vec![None, Some(3), Some(416), Some(416)]);
        assert_eq!(
            batch_support_of(&dynamic),
            BatchSupport::Dynamic { max: None }
        );
        let whole_image = spec(vec![None, None, None, Some(3)]);
        assert_eq!(batch_support_of(&whole_image), BatchSupport::Fixed(1));
    }

    #[test]
    fn batches_split_back_per_image() {
        let a = Tensor::f32(vec![1, 2], vec![1.0, 2.0]);
        let b = Tensor::f32(vec![1, 2], vec![3.0, 4.0]);
        let both = concat_batch(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(both.shape, vec![2, 2]);
        let split = split_batch(Outputs(vec![("x".into(), Value::Tensor(both))]), 2).unwrap();
        assert_eq!(split[0].tensor("x").unwrap(), &a);
        assert_eq!(split[1].tensor("x").unwrap(), &b);
    }
}
