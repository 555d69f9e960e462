//! The detection types every detbench crate exchanges: one COCO result per [`Detection`], in
//! original-image pixels, with its optional instance mask and keypoints.

use serde::{Deserialize, Serialize};

/// Which COCO evaluation a set of detections can be scored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IouType {
    Bbox,
    Segm,
    Keypoints,
}

impl IouType {
    /// The name pycocotools uses (`iouType=`).
    pub fn as_str(self) -> &'static str {
        match self {
            IouType::Bbox => "bbox",
            IouType::Segm => "segm",
            IouType::Keypoints => "keypoints",
        }
    }
}

impl std::fmt::Display for IouType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no IoU type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown IoU type `{0}`: expected bbox, segm or keypoints")]
pub struct UnknownIouType(pub String);

impl std::str::FromStr for IouType {
    type Err = UnknownIouType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bbox" => Ok(IouType::Bbox),
            "segm" => Ok(IouType::Segm),
            "keypoints" => Ok(IouType::Keypoints),
            other => Err(UnknownIouType(other.to_owned())),
        }
    }
}

/// A binary mask at image size, run-length encoded the COCO way: column-major (Fortran order),
/// alternating runs of 0s and 1s starting with 0s, uncompressed counts. The counts add up to
/// `height * width`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rle {
    pub height: u32,
    pub width: u32,
    pub counts: Vec<u32>,
}

/// One detection in COCO results form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub image_id: u64,
    /// COCO category id (1..90 with gaps for COCO itself), never a contiguous class index.
    pub category_id: u64,
    /// COCO box `[x, y, width, height]` in original-image pixels.
    pub bbox: [f64; 4],
    pub score: f64,
    /// Instance mask at the original image size, when the model predicts masks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Rle>,
    /// Keypoints as `[x1, y1, v1, x2, y2, v2, ...]` in original-image pixels, when the model
    /// predicts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Vec<f64>>,
}

/// One detection as a COCO results file holds it (`pycocotools.COCO.loadRes`): the mask as
/// compressed RLE (`{"size": [h, w], "counts": "..."}`). Lossless both ways: boxes, scores and
/// keypoints are written as the shortest text that reads back to the same `f64`, and compressed
/// RLE encodes the counts exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoResult {
    pub image_id: u64,
    pub category_id: u64,
    pub bbox: [f64; 4],
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<CompressedRle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Vec<f64>>,
}

/// A mask in COCO's compressed RLE form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedRle {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: String,
}

impl From<&Detection> for CocoResult {
    fn from(d: &Detection) -> Self {
        CocoResult {
            image_id: d.image_id,
            category_id: d.category_id,
            bbox: d.bbox,
            score: d.score,
            segmentation: d.mask.as_ref().map(|mask| CompressedRle {
                size: [mask.height, mask.width],
                counts: hotcoco::mask::rle_to_string(&hotcoco::types::Rle {
                    h: mask.height,
                    w: mask.width,
                    counts: mask.counts.clone(),
                }),
            }),
            keypoints: d.keypoints.clone(),
        }
    }
}

impl TryFrom<&CocoResult> for Detection {
    type Error = crate::EvalError;
    /// Fails on a compressed RLE string that does not decode to a `size`d mask.
    fn try_from(r: &CocoResult) -> Result<Self, Self::Error> {
        let mask = match &r.segmentation {
            None => None,
            Some(rle) => {
                let [height, width] = rle.size;
                let decoded = hotcoco::mask::rle_from_string(&rle.counts, height, width).map_err(
                    |source| crate::EvalError::Hotcoco {
                        context: format!("image {}: decoding a compressed RLE mask", r.image_id),
                        source,
                    },
                )?;
                Some(Rle {
                    height,
                    width,
                    counts: decoded.counts,
                })
            }
        };
        Ok(Detection {
            image_id: r.image_id,
            category_id: r.category_id,
            bbox: r.bbox,
            score: r.score,
            mask,
            keypoints: r.keypoints.clone(),
        })
    }
}
