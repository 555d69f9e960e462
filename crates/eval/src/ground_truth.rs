//! COCO ground truth, loaded once through hotcoco and shared (behind an `Arc`) by every
//! evaluation that scores against it, with the per-image index the streaming evaluator reads
//! and the warnings a user should see about the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotcoco::COCO;
use hotcoco::types::{Annotation, Dataset, Segmentation};

use crate::error::{EvalError, Result};
use crate::lenient;
use crate::types::IouType;

/// A loaded COCO ground-truth file (instances or person keypoints).
pub struct GroundTruth {
    path: PathBuf,
    coco: Arc<COCO>,
    /// Image id -> position in `coco.dataset.images`.
    image_positions: HashMap<u64, usize>,
    /// Image id -> positions in `coco.dataset.annotations` of its annotations whose category
    /// is one of `categories` (the ones pycocotools evaluates), in file order.
    annotations_by_image: HashMap<u64, Vec<usize>>,
    /// Polygons with fewer than 3 points: (how many, id of the first annotation holding one).
    degenerate_polygons: Option<(usize, u64)>,
    /// Evaluated annotations without a `bbox`: (how many, id of the first).
    missing_boxes: Option<(usize, u64)>,
    /// Evaluated annotations whose `keypoints` are missing or not 17 triples: (how many, id of
    /// the first, its length).
    bad_keypoints: Option<(usize, u64, usize)>,
    /// Evaluated annotations without a `segmentation`: (how many, id of the first).
    missing_masks: Option<(usize, u64)>,
    /// Whether any evaluated annotation has a labelled keypoint (a person-keypoint file).
    has_keypoints: bool,
    warnings: Vec<String>,
}

impl std::fmt::Debug for GroundTruth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroundTruth")
            .field("path", &self.path)
            .field("images", &self.coco.dataset.images.len())
            .field("annotations", &self.coco.dataset.annotations.len())
            .field("categories", &self.coco.dataset.categories.len())
            .finish()
    }
}

impl GroundTruth {
    /// Loads and indexes a COCO ground-truth JSON file.
    ///
    /// Errors name the file: unreadable, malformed JSON (line, column and field), no images or
    /// no categories, an annotation without an `id`. Metadata that pycocotools never reads is
    /// read leniently ([`crate::lenient`]). Oddities that pycocotools accepts become
    /// [`warnings`](Self::warnings).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let loaded = lenient::load(path)?;
        let mut gt = Self::from_coco(loaded.coco, path)?;
        gt.warnings.splice(0..0, loaded.warnings);
        Ok(gt)
    }

    /// Wraps an already loaded hotcoco dataset; `path` is only used to name it in messages.
    pub fn from_coco(coco: COCO, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let invalid = |message: String| EvalError::InvalidFile {
            path: path.clone(),
            message,
        };
        let dataset = &coco.dataset;
        if dataset.images.is_empty() {
            return Err(invalid(
                "no `images`: a COCO ground-truth file lists its images, annotations and categories"
                    .into(),
            ));
        }
        if dataset.categories.is_empty() {
            return Err(invalid(
                "no `categories`: a COCO ground-truth file lists its images, annotations and \
                 categories"
                    .into(),
            ));
        }

        let (image_positions, duplicate_warning) = index_images(dataset, &path);
        let index = index_annotations(&coco, &image_positions);
        let mut warnings: Vec<String> = duplicate_warning.into_iter().collect();
        warnings.extend(load_warnings(
            &path,
            index.zero_ids,
            index.unknown_image,
            index.unknown_category,
        ));
        Ok(Self {
            path,
            coco: Arc::new(coco),
            image_positions,
            annotations_by_image: index.by_image,
            degenerate_polygons: index.degenerate_polygons,
            missing_boxes: index.missing_boxes,
            bad_keypoints: index.bad_keypoints,
            missing_masks: index.missing_masks,
            has_keypoints: index.has_keypoints,
            warnings,
        })
    }

    /// The file this ground truth was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hotcoco dataset, for callers that need what this type does not expose.
    pub fn coco(&self) -> &Arc<COCO> {
        &self.coco
    }

    /// Things a user should know about the file that do not stop evaluation (annotation id 0,
    /// annotations of unknown images or categories).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Image ids, ascending (the order pycocotools evaluates them in).
    pub fn image_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.image_positions.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn contains_image(&self, image_id: u64) -> bool {
        self.image_positions.contains_key(&image_id)
    }

    /// `(height, width)` of an image, as its record gives them.
    pub fn image_size(&self, image_id: u64) -> Option<(u32, u32)> {
        self.image(image_id)
            .map(|image| (image.height, image.width))
    }

    /// `(category id, name)` of every category, by ascending id.
    pub fn categories(&self) -> Vec<(u64, String)> {
        let mut categories: Vec<(u64, String)> = self
            .coco
            .dataset
            .categories
            .iter()
            .map(|c| (c.id, c.name.clone()))
            .collect();
        categories.sort_unstable();
        categories
    }

    pub fn contains_category(&self, category_id: u64) -> bool {
        self.coco.get_cat(category_id).is_some()
    }

    pub fn category_name(&self, category_id: u64) -> Option<&str> {
        self.coco.get_cat(category_id).map(|c| c.name.as_str())
    }

    /// Number of annotations (crowd regions included).
    pub fn num_annotations(&self) -> usize {
        self.coco.dataset.annotations.len()
    }

    pub(crate) fn image(&self, image_id: u64) -> Option<&hotcoco::Image> {
        self.image_positions
            .get(&image_id)
            .map(|&position| &self.coco.dataset.images[position])
    }

    /// The evaluated annotations of one image, in file order.
    pub(crate) fn annotations_of(&self, image_id: u64) -> impl Iterator<Item = &Annotation> {
        self.annotations_by_image
            .get(&image_id)
            .into_iter()
            .flatten()
            .map(|&position| &self.coco.dataset.annotations[position])
    }

    pub(crate) fn has_annotations(&self, image_id: u64) -> bool {
        self.annotations_by_image.contains_key(&image_id)
    }

    /// Warnings about ground-truth annotations that `iou_type` evaluation cannot use as
    /// pycocotools would: boxes missing (bbox), polygons of fewer than 3 points (segm),
    /// keypoints missing or not 17 triples (keypoints). pycocotools fails on the first and
    /// last kind; detbench (hotcoco) evaluates on and says so here.
    pub(crate) fn evaluation_warnings(&self, iou_type: IouType) -> Vec<String> {
        let path = self.path.display();
        match iou_type {
            IouType::Bbox => self
                .missing_boxes
                .map(|(count, ann_id)| {
                    format!(
                        "{path}: {count} ground-truth annotation(s) have no `bbox` (first: \
                         annotation id {ann_id}); no detection can match them, so they count as \
                         missed (pycocotools stops with a KeyError on such a file)"
                    )
                })
                .into_iter()
                .collect(),
            IouType::Segm => self
                .degenerate_polygon_warning()
                .into_iter()
                .chain(self.missing_masks.map(|(count, ann_id)| {
                    format!(
                        "{path}: {count} ground-truth annotation(s) have no `segmentation` (first: \
                         annotation id {ann_id}); no mask can match them, so they count as missed \
                         and segm AP is lower than the detections deserve (pycocotools stops with \
                         a KeyError on such a file)"
                    )
                }))
                .collect(),
            IouType::Keypoints if !self.has_keypoints => vec![format!(
                "{path}: no ground-truth annotation has a labelled keypoint, so every keypoint AP \
                 and AR is -1 (as in pycocotools); is this an instances file rather than a \
                 person-keypoint file (person_keypoints_*.json)?"
            )],
            IouType::Keypoints => self
                .bad_keypoints
                .map(|(count, ann_id, len)| {
                    format!(
                        "{path}: {count} ground-truth annotation(s) have `keypoints` that are not \
                         {COCO_KEYPOINTS} (x, y, v) triples (first: annotation id {ann_id}, \
                         {len} values); detbench (hotcoco) scores them with the values present \
                         (pycocotools fails on such a file)"
                    )
                })
                .into_iter()
                .collect(),
        }
    }

    /// Whether any evaluated annotation has a labelled keypoint: false for an instances file,
    /// on which every keypoint stat is -1.
    pub fn has_keypoints(&self) -> bool {
        self.has_keypoints
    }

    /// The warning segm evaluation adds when ground-truth polygons have fewer than 3 points.
    fn degenerate_polygon_warning(&self) -> Option<String> {
        self.degenerate_polygons.map(|(count, ann_id)| {
            format!(
                "{}: {count} ground-truth polygon(s) have fewer than 3 points (first in annotation \
                 id {ann_id}); detbench (hotcoco) rasterises them as polygons that enclose no area, \
                 so such objects cannot be matched by a mask. pycocotools differs here: it reads \
                 an annotation whose first polygon has exactly 4 values as a box [x, y, w, h] \
                 (`frPyObjects`) and fails on fewer",
                self.path.display()
            )
        })
    }
}

/// COCO's person keypoints; pycocotools' OKS sigmas are for exactly these 17.
const COCO_KEYPOINTS: usize = 17;

/// Polygons of `ann` with fewer than 3 points (6 coordinates).
fn count_degenerate_polygons(ann: &Annotation) -> usize {
    match &ann.segmentation {
        Some(Segmentation::Polygon(polygons)) => polygons.iter().filter(|p| p.len() < 6).count(),
        _ => 0,
    }
}

/// The warnings of loading a ground truth: annotations with id 0 (pycocotools cannot match
/// them), and annotations of images or categories the file does not list (not evaluated), each
/// with a count and the first one.
fn load_warnings(
    path: &Path,
    zero_ids: usize,
    unknown_image: Option<(usize, u64, u64)>,
    unknown_category: Option<(usize, u64, u64)>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if zero_ids > 0 {
        // See ../shared/conformance/NOTES.md: pycocotools' evaluateImg marks "unmatched" with
        // the id 0 in its gtMatches/dtMatches arrays, so a ground truth whose id is 0 can
        // never count as matched there. hotcoco (and so detbench) matches it correctly.
        warnings.push(format!(
            "{}: {zero_ids} annotation(s) have id 0. pycocotools uses 0 to mean \"unmatched\", \
             so it can never match them and reports lower AP/AR than detbench (hotcoco) does \
             on this file; COCO's own files start ids at 1",
            path.display()
        ));
    }
    if let Some((count, ann_id, image_id)) = unknown_image {
        warnings.push(format!(
            "{}: {count} annotation(s) name an image that is not in `images` (first: \
             annotation id {ann_id}, image_id {image_id}); they are not evaluated, as in \
             pycocotools",
            path.display()
        ));
    }
    if let Some((count, ann_id, category_id)) = unknown_category {
        warnings.push(format!(
            "{}: {count} annotation(s) name a category that is not in `categories` (first: \
             annotation id {ann_id}, category_id {category_id}); they are not evaluated, as \
             in pycocotools",
            path.display()
        ));
    }
    warnings
}

/// Image id -> position in `images`, as pycocotools' `createIndex` (`imgs[img['id']] = img`):
/// an id listed twice keeps its last record, and the image is evaluated once. The warning, if
/// any, counts the repeats and names the first.
fn index_images(dataset: &Dataset, path: &Path) -> (HashMap<u64, usize>, Option<String>) {
    let mut image_positions: HashMap<u64, usize> = HashMap::new();
    let mut duplicate_images: Option<(usize, u64, usize, usize)> = None;
    for (position, image) in dataset.images.iter().enumerate() {
        if let Some(earlier) = image_positions.insert(image.id, position) {
            duplicate_images
                .get_or_insert((0, image.id, earlier, position))
                .0 += 1;
        }
    }
    let warning = duplicate_images.map(|(count, id, first, second)| {
        format!(
            "{}: {count} image record(s) repeat an image id listed before (first: image id \
             {id} at images[{first}] and images[{second}]); as in pycocotools, the last \
             record of an id counts and the image is evaluated once",
            path.display()
        )
    });
    (image_positions, warning)
}

/// What one pass over the annotations finds: each image's annotations, and the first of each
/// kind of oddity with its count.
#[derive(Default)]
struct AnnotationIndex {
    by_image: HashMap<u64, Vec<usize>>,
    unknown_image: Option<(usize, u64, u64)>,
    unknown_category: Option<(usize, u64, u64)>,
    zero_ids: usize,
    degenerate_polygons: Option<(usize, u64)>,
    missing_boxes: Option<(usize, u64)>,
    bad_keypoints: Option<(usize, u64, usize)>,
    missing_masks: Option<(usize, u64)>,
    has_keypoints: bool,
}

/// Groups the annotations by image; those naming an unknown image or category are counted and
/// left out, as pycocotools' evaluation never reaches them.
fn index_annotations(coco: &COCO, image_positions: &HashMap<u64, usize>) -> AnnotationIndex {
    let mut index = AnnotationIndex::default();
    for (position, ann) in coco.dataset.annotations.iter().enumerate() {
        if ann.id == 0 {
            index.zero_ids += 1;
        }
        let degenerate = count_degenerate_polygons(ann);
        if degenerate > 0 {
            index.degenerate_polygons.get_or_insert((0, ann.id)).0 += degenerate;
        }
        if !image_positions.contains_key(&ann.image_id) {
            index
                .unknown_image
                .get_or_insert((0, ann.id, ann.image_id))
                .0 += 1;
            continue;
        }
        if coco.get_cat(ann.category_id).is_none() {
            index
                .unknown_category
                .get_or_insert((0, ann.id, ann.category_id))
                .0 += 1;
            continue;
        }
        if ann.bbox.is_none() {
            index.missing_boxes.get_or_insert((0, ann.id)).0 += 1;
        }
        if ann.segmentation.is_none() {
            index.missing_masks.get_or_insert((0, ann.id)).0 += 1;
        }
        index.has_keypoints |= ann.num_visible_keypoints() > 0;
        let keypoint_values = ann.keypoints.as_ref().map_or(0, Vec::len);
        if keypoint_values != 3 * COCO_KEYPOINTS {
            index
                .bad_keypoints
                .get_or_insert((0, ann.id, keypoint_values))
                .0 += 1;
        }
        index
            .by_image
            .entry(ann.image_id)
            .or_default()
            .push(position);
    }
    index
}
