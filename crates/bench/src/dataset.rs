//! Which images a run measures and which ground truth scores them: a COCO image folder with its
//! annotation file (the shipped val2017 subset by default), or a plain folder of images for a
//! speed-only run. Images come in ascending image id, so every run sees the same order.
//!
//! Only the `images` list of an annotation file is read here (file name and id per image); the
//! accuracy layer loads the annotations themselves. Nothing is decoded: images are streamed by
//! [`crate::prefetch`], so the full val2017 (5,000 images) needs no more memory than the subset.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::results::DatasetIdentity;
use crate::shard::Shard;

/// Overrides the default image folder (the shipped `coco/val2017` subset).
pub const DATASET_DIR_ENV: &str = "DETBENCH_DATASET_DIR";
/// Overrides the default instance annotation file (the shipped `instances_val2017_subset.json`).
pub const ANNOTATIONS_ENV: &str = "DETBENCH_ANNOTATIONS";
/// Overrides the default keypoint annotation file (the shipped
/// `person_keypoints_val2017_subset.json`), used for keypoint models.
pub const KEYPOINT_ANNOTATIONS_ENV: &str = "DETBENCH_KEYPOINT_ANNOTATIONS";

/// File extensions a `--images DIR` run picks up (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read annotation file {path}: {source}")]
    ReadAnnotations {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "annotation file {path} is not a COCO annotation file: {reason} (expected a JSON object \
         with an `images` list of {{\"id\": <integer>, \"file_name\": <string>}})"
    )]
    BadAnnotations { path: PathBuf, reason: String },
    #[error("image folder {path} does not exist or is not a folder")]
    NoImageDir { path: PathBuf },
    #[error("cannot list image folder {path}: {source}")]
    ListImages {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image folder {path} holds no {extensions} files")]
    NoImages { path: PathBuf, extensions: String },
    #[error(
        "image folder {dir}: {first} and {second} both give image id {id} (ids come from the \
         numeric file-name stems, as in COCO)"
    )]
    DuplicateStemId {
        dir: PathBuf,
        id: u64,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Assets(#[from] detbench_assets::AssetError),
}

/// One image of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetImage {
    pub id: u64,
    /// As the annotation file names it (or the file name, for a plain folder).
    pub file_name: String,
    pub path: PathBuf,
}

/// The images of a run, in ascending id, with where they and their ground truth came from.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub image_dir: PathBuf,
    /// `None` for a speed-only run on a folder of images.
    pub annotation_file: Option<PathBuf>,
    pub annotation_sha256: Option<String>,
    /// Images listed before `--limit` cut the list.
    pub listed_images: usize,
    /// Images of the run before sharding (after `--limit`); `images.len()` unless `shard`.
    pub run_images: usize,
    /// The shard of the run these images are (`--shard`).
    pub shard: Option<Shard>,
    pub images: Vec<DatasetImage>,
    /// How image ids were assigned, for a plain folder whose file names are not all numeric.
    pub notes: Vec<String>,
}

impl Dataset {
    /// A COCO dataset: the images listed in `annotation_file`, found in `image_dir`, sorted by
    /// id and cut to the first `limit`.
    pub fn coco(
        image_dir: &Path,
        annotation_file: &Path,
        limit: Option<usize>,
    ) -> Result<Dataset, DatasetError> {
        if !image_dir.is_dir() {
            return Err(DatasetError::NoImageDir {
                path: image_dir.to_path_buf(),
            });
        }
        let bytes =
            std::fs::read(annotation_file).map_err(|source| DatasetError::ReadAnnotations {
                path: annotation_file.to_path_buf(),
                source,
            })?;
        let sha256 = detbench_assets::sha256_hex(&bytes);
        let listing: CocoImageListing =
            serde_json::from_slice(&bytes).map_err(|e| DatasetError::BadAnnotations {
                path: annotation_file.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut images: Vec<DatasetImage> = listing
            .images
            .into_iter()
            .map(|entry| DatasetImage {
                id: entry.id,
                path: image_dir.join(&entry.file_name),
                file_name: entry.file_name,
            })
            .collect();
        images.sort_by_key(|image| image.id);
        let notes = keep_last_of_each_id(&mut images, annotation_file);
        let listed_images = images.len();
        images.truncate(limit.unwrap_or(usize::MAX));
        Ok(Dataset {
            run_images: images.len(),
            shard: None,
            image_dir: image_dir.to_path_buf(),
            annotation_file: Some(annotation_file.to_path_buf()),
            annotation_sha256: Some(sha256),
            listed_images,
            images,
            notes,
        })
    }

    /// A folder of images without annotations (speed only). Image ids are the numeric file-name
    /// stems, as in COCO (`000000000139.jpg` is image 139). If any stem is not a number, every
    /// image gets a sequential id instead (1, 2, ... in file-name order) and a note says so.
    pub fn folder(dir: &Path, limit: Option<usize>) -> Result<Dataset, DatasetError> {
        if !dir.is_dir() {
            return Err(DatasetError::NoImageDir {
                path: dir.to_path_buf(),
            });
        }
        let list_error = |source| DatasetError::ListImages {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(list_error)? {
            let path = entry.map_err(list_error)?.path();
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            // Anything named like an image is an image of the run: a folder named `x.jpg` or a
            // broken link then fails to read and is listed among the failed images, not
            // skipped without a word.
            if is_image {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(DatasetError::NoImages {
                path: dir.to_path_buf(),
                extensions: IMAGE_EXTENSIONS.join("/"),
            });
        }
        files.sort();
        let file_name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        let stem_ids: Option<Vec<u64>> = files
            .iter()
            .map(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .collect();
        let mut notes = Vec::new();
        let mut images: Vec<DatasetImage> = match stem_ids {
            Some(ids) => {
                let mut seen: HashMap<u64, &Path> = HashMap::new();
                for (id, path) in ids.iter().zip(&files) {
                    if let Some(first) = seen.insert(*id, path) {
                        return Err(DatasetError::DuplicateStemId {
                            dir: dir.to_path_buf(),
                            id: *id,
                            first: file_name(first),
                            second: file_name(path),
                        });
                    }
                }
                ids.into_iter()
                    .zip(&files)
                    .map(|(id, path)| DatasetImage {
                        id,
                        file_name: file_name(path),
                        path: path.clone(),
                    })
                    .collect()
            }
            None => {
                let example = files
                    .iter()
                    .find(|p| {
                        p.file_stem()
                            .and_then(|s| s.to_str())
                            .is_none_or(|s| s.parse::<u64>().is_err())
                    })
                    .map(|p| file_name(p))
                    .unwrap_or_default();
                notes.push(format!(
                    "file names are not all numeric (e.g. {example}), so images got sequential ids \
                     1..{} in file-name order",
                    files.len()
                ));
                files
                    .iter()
                    .enumerate()
                    .map(|(i, path)| DatasetImage {
                        id: i as u64 + 1,
                        file_name: file_name(path),
                        path: path.clone(),
                    })
                    .collect()
            }
        };
        images.sort_by_key(|image| image.id);
        let listed_images = images.len();
        images.truncate(limit.unwrap_or(usize::MAX));
        Ok(Dataset {
            run_images: images.len(),
            shard: None,
            image_dir: dir.to_path_buf(),
            annotation_file: None,
            annotation_sha256: None,
            listed_images,
            images,
            notes,
        })
    }

    /// This dataset's share of a sharded run: its images taken round-robin in ascending id
    /// ([`Shard::take`]; `crate::shard` says why).
    pub fn into_shard(mut self, shard: Shard) -> Dataset {
        self.images = shard.take(&self.images);
        self.shard = Some(shard);
        self
    }

    /// Images whose file does not exist (they will be counted as failed when the run reaches
    /// them; listing them up front lets the CLI warn before anything is timed).
    pub fn missing_files(&self) -> Vec<&DatasetImage> {
        self.images.iter().filter(|i| !i.path.is_file()).collect()
    }

    /// What results record about this dataset.
    pub fn identity(&self) -> DatasetIdentity {
        DatasetIdentity {
            image_dir: self.image_dir.display().to_string(),
            annotation_file: self
                .annotation_file
                .as_ref()
                .map(|p| p.display().to_string()),
            annotation_sha256: self.annotation_sha256.clone(),
            images: self.images.len(),
        }
    }
}

/// An image id listed more than once keeps its last record, as pycocotools' index does
/// (`imgs[img['id']] = img` in `COCO.createIndex`), and as `detbench eval` scores such a file;
/// the note says so. `images` is sorted by id (stably, so equal ids are in file order).
fn keep_last_of_each_id(images: &mut Vec<DatasetImage>, annotation_file: &Path) -> Vec<String> {
    let listed = images.len();
    let first_repeat = images
        .windows(2)
        .find(|pair| pair[0].id == pair[1].id)
        .map(|pair| {
            (
                pair[0].id,
                pair[0].file_name.clone(),
                pair[1].file_name.clone(),
            )
        });
    images.reverse();
    images.dedup_by_key(|image| image.id);
    images.reverse();
    first_repeat
        .map(|(id, first, last)| {
            format!(
                "warning: annotation file {}: {} image record(s) repeat an image id (first: image \
                 id {id}, {first} and {last}); as in pycocotools, the last record of an id is \
                 used and the image runs once",
                annotation_file.display(),
                listed - images.len()
            )
        })
        .into_iter()
        .collect()
}

/// The part of a COCO annotation file the harness needs; serde skips everything else
/// (annotations, categories, licences) without building it.
#[derive(Deserialize)]
struct CocoImageListing {
    images: Vec<CocoImageEntry>,
}

#[derive(Deserialize)]
struct CocoImageEntry {
    id: u64,
    file_name: String,
}

/// Where the dataset comes from, before defaults are applied.
#[derive(Debug, Clone, Default)]
pub struct DatasetOptions {
    /// `--images-dir`: the COCO image folder.
    pub images_dir: Option<PathBuf>,
    /// `--annotations`: the COCO instance annotation file.
    pub annotations: Option<PathBuf>,
    /// `--keypoint-annotations`: the COCO person-keypoint annotation file for keypoint models.
    pub keypoint_annotations: Option<PathBuf>,
    /// `--images`: a plain folder of images, speed only.
    pub images_only: Option<PathBuf>,
    /// `--limit`: the first N images (by id).
    pub limit: Option<usize>,
    /// `--shard`: this process's share of the run's images.
    pub shard: Option<Shard>,
}

/// Which ground truth a model is scored against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroundTruthKind {
    /// `instances_*.json`: boxes and masks of the 80 categories.
    Instances,
    /// `person_keypoints_*.json`: persons with keypoints (its image list can be a subset).
    Keypoints,
}

/// The dataset source after defaults: option, else environment variable, else the shipped
/// subset in the shared folder.
#[derive(Debug, Clone)]
pub enum DatasetSource {
    Coco {
        images_dir: PathBuf,
        instances: PathBuf,
        keypoints: PathBuf,
        limit: Option<usize>,
        shard: Option<Shard>,
    },
    Folder {
        dir: PathBuf,
        limit: Option<usize>,
        shard: Option<Shard>,
    },
}

impl DatasetOptions {
    /// Applies the defaults: `--images-dir` / `$DETBENCH_DATASET_DIR` / shipped `coco/val2017`,
    /// `--annotations` / `$DETBENCH_ANNOTATIONS` / shipped `instances_val2017_subset.json`,
    /// `--keypoint-annotations` / `$DETBENCH_KEYPOINT_ANNOTATIONS` / shipped
    /// `person_keypoints_val2017_subset.json`.
    pub fn resolve(&self) -> Result<DatasetSource, DatasetError> {
        if let Some(dir) = &self.images_only {
            return Ok(DatasetSource::Folder {
                dir: dir.clone(),
                limit: self.limit,
                shard: self.shard,
            });
        }
        let pick = |given: &Option<PathBuf>,
                    env: &str,
                    shipped: fn() -> Result<PathBuf, detbench_assets::AssetError>|
         -> Result<PathBuf, DatasetError> {
            if let Some(path) = given {
                return Ok(path.clone());
            }
            if let Some(value) = std::env::var_os(env).filter(|v| !v.is_empty()) {
                return Ok(PathBuf::from(value));
            }
            Ok(shipped()?)
        };
        Ok(DatasetSource::Coco {
            images_dir: pick(
                &self.images_dir,
                DATASET_DIR_ENV,
                detbench_assets::shared::coco_images,
            )?,
            instances: pick(
                &self.annotations,
                ANNOTATIONS_ENV,
                detbench_assets::shared::instances_subset,
            )?,
            keypoints: pick(
                &self.keypoint_annotations,
                KEYPOINT_ANNOTATIONS_ENV,
                detbench_assets::shared::keypoints_subset,
            )?,
            limit: self.limit,
            shard: self.shard,
        })
    }
}

impl DatasetSource {
    /// Loads the dataset a model needs: its image list comes from the ground truth it is scored
    /// against (a keypoint file may list fewer images than the instance file, and COCO
    /// evaluation only accepts results for images its ground truth lists).
    pub fn load(&self, kind: GroundTruthKind) -> Result<Dataset, DatasetError> {
        let (dataset, shard) = match self {
            DatasetSource::Folder { dir, limit, shard } => (Dataset::folder(dir, *limit)?, shard),
            DatasetSource::Coco {
                images_dir,
                instances,
                keypoints,
                limit,
                shard,
            } => {
                let annotations = match kind {
                    GroundTruthKind::Instances => instances,
                    GroundTruthKind::Keypoints => keypoints,
                };
                (Dataset::coco(images_dir, annotations, *limit)?, shard)
            }
        };
        Ok(match shard {
            Some(shard) => dataset.into_shard(*shard),
            None => dataset,
        })
    }

    /// Whether results will be scored (false for a plain folder of images).
    pub fn has_ground_truth(&self) -> bool {
        matches!(self, DatasetSource::Coco { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_subset_in_ascending_id_with_its_identity() {
        let dir = detbench_assets::shared::coco_images().unwrap();
        let gt = detbench_assets::shared::instances_subset().unwrap();
        let all = Dataset::coco(&dir, &gt, None).unwrap();
        assert_eq!(all.images.len(), 206);
        assert_eq!(all.listed_images, 206);
        assert!(all.images.windows(2).all(|w| w[0].id < w[1].id));
        assert!(all.missing_files().is_empty());
        assert_eq!(
            all.annotation_sha256.as_deref(),
            Some(detbench_assets::sha256_file(&gt).unwrap().as_str())
        );
        let five = Dataset::coco(&dir, &gt, Some(5)).unwrap();
        assert_eq!(five.images, all.images[..5].to_vec());
        let identity = five.identity();
        assert_eq!(identity.images, 5);
        assert_eq!(identity.annotation_sha256, all.annotation_sha256);

        let kp = Dataset::coco(
            &dir,
            &detbench_assets::shared::keypoints_subset().unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(kp.images.len(), 128);
    }

    #[test]
    fn bad_annotation_files_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("gt.json");
        std::fs::write(&path, r#"{"images": [{"id": "x", "file_name": "a.jpg"}]}"#).unwrap();
        let err = Dataset::coco(tmp.path(), &path, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gt.json") && err.contains("images"), "{err}");

        std::fs::write(
            &path,
            r#"{"images": [{"id": 3, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}]}"#,
        )
        .unwrap();
        // As pycocotools (and `detbench eval`): the last record of an id counts, once.
        let ds = Dataset::coco(tmp.path(), &path, None).unwrap();
        assert_eq!(ds.images.len(), 1);
        assert_eq!(ds.images[0].file_name, "b.jpg");
        assert!(
            ds.notes[0].contains("1 image record(s) repeat an image id (first: image id 3"),
            "{:?}",
            ds.notes
        );

        let err = Dataset::coco(tmp.path(), &tmp.path().join("none.json"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.json"), "{err}");
    }

    #[test]
    fn missing_images_are_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("gt.json");
        std::fs::write(
            &path,
            r#"{"images": [{"id": 2, "file_name": "b.jpg"}, {"id": 1, "file_name": "a.jpg"}]}"#,
        )
        .unwrap();
        std::fs::write(tmp.path().join("a.jpg"), b"not really a jpeg").unwrap();
        let ds = Dataset::coco(tmp.path(), &path, None).unwrap();
        assert_eq!(ds.images[0].id, 1);
        let missing: Vec<u64> = ds.missing_files().iter().map(|i| i.id).collect();
        assert_eq!(missing, vec![2]);
    }

    #[test]
    fn folder_ids_from_numeric_stems_else_sequential() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["000000000785.jpg", "000000000139.jpg", "notes.txt"] {
            std::fs::write(tmp.path().join(name), b"x").unwrap();
        }
        let ds = Dataset::folder(tmp.path(), None).unwrap();
        let ids: Vec<u64> = ds.images.iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![139, 785]);
        assert!(ds.missing_files().is_empty());
        assert!(ds.notes.is_empty());
        assert!(ds.identity().annotation_file.is_none());

        std::fs::write(tmp.path().join("cat.PNG"), b"x").unwrap();
        let ds = Dataset::folder(tmp.path(), Some(2)).unwrap();
        let named: Vec<(u64, &str)> = ds
            .images
            .iter()
            .map(|i| (i.id, i.file_name.as_str()))
            .collect();
        assert_eq!(
            named,
            vec![(1, "000000000139.jpg"), (2, "000000000785.jpg")]
        );
        assert_eq!(ds.listed_images, 3);
        assert!(ds.notes[0].contains("cat.PNG"), "{:?}", ds.notes);

        let dup = tempfile::tempdir().unwrap();
        std::fs::write(dup.path().join("7.jpg"), b"x").unwrap();
        std::fs::write(dup.path().join("007.jpg"), b"x").unwrap();
        let err = Dataset::folder(dup.path(), None).unwrap_err().to_string();
        assert!(err.contains("image id 7"), "{err}");

        // A folder named like an image and a broken link are images that will fail, listed
        // up front.
        let odd = tempfile::tempdir().unwrap();
        std::fs::create_dir(odd.path().join("x.jpg")).unwrap();
        std::os::unix::fs::symlink(odd.path().join("gone.jpg"), odd.path().join("link.jpg"))
            .unwrap();
        let ds = Dataset::folder(odd.path(), None).unwrap();
        let missing: Vec<&str> = ds
            .missing_files()
            .iter()
            .map(|i| i.file_name.as_str())
            .collect();
        assert_eq!(missing, ["link.jpg", "x.jpg"]);

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Dataset::folder(empty.path(), None),
            Err(DatasetError::NoImages { .. })
        ));
    }
}
