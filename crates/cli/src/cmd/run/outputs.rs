//! Where a run's results go, checked before anything is timed: the output folder can be
//! written and holds no earlier results (unless `--overwrite`), every detections file can be
//! written and is neither an input of the run (its annotation files, its model files) nor
//! another of its outputs, and the results store opens. A run that could not write its
//! results is refused at once instead of after the timed pass.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The files `detbench run` writes into its output folder.
pub const RESULTS_FILES: [&str; 3] = ["results.md", "results.csv", "results.json"];

/// Everything a run will write, resolved.
pub struct OutputPaths<'a> {
    pub out_dir: &'a Path,
    pub overwrite: bool,
    /// Every detections file the run may write (one per model and batch size).
    pub detection_files: Vec<PathBuf>,
    pub store: Option<&'a Path>,
    /// Files the run reads: annotation files, model files.
    pub inputs: Vec<PathBuf>,
}

/// The detections file of one row: `base` itself when the run has a single row, else
/// `<stem>.<model>[.b<batch>].<ext>` beside it.
pub fn detections_file(base: &Path, name: &str, batch: usize, single_row: bool) -> PathBuf {
    if single_row {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = base
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or("json".into());
    let batch = if batch == 1 {
        String::new()
    } else {
        format!(".b{batch}")
    };
    base.with_file_name(format!("{stem}.{name}{batch}.{ext}"))
}

impl OutputPaths<'_> {
    /// Refuses the run when any output cannot be written or would overwrite what it must not.
    pub fn check(&self) -> anyhow::Result<()> {
        self.check_out_dir()?;
        let results: Vec<PathBuf> = RESULTS_FILES
            .iter()
            .map(|name| self.out_dir.join(name))
            .collect();
        let mut store_files = Vec::new();
        if let Some(store) = self.store {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = store.as_os_str().to_owned();
                name.push(suffix);
                store_files.push(PathBuf::from(name));
            }
        }
        for target in &self.detection_files {
            let clash = |paths: &[PathBuf]| paths.iter().find(|p| same_path(p, target)).cloned();
            if let Some(input) = clash(&self.inputs) {
                bail!(
                    "--save-detections {} would overwrite {}, an input of this run; choose \
                     another file",
                    target.display(),
                    input.display()
                );
            }
            if let Some(output) = clash(&results).or_else(|| clash(&store_files)) {
                bail!(
                    "--save-detections {} would overwrite {}, which this run writes too; choose \
                     another file",
                    target.display(),
                    output.display()
                );
            }
            if target.is_dir() {
                bail!("--save-detections {} is a folder", target.display());
            }
            writable(target.parent().unwrap_or(Path::new(".")))
                .with_context(|| format!("--save-detections {}", target.display()))?;
        }
        if let Some(store) = self.store {
            detbench_report::Store::open(store)
                .with_context(|| format!("opening the results store {}", store.display()))?;
        }
        Ok(())
    }

    fn check_out_dir(&self) -> anyhow::Result<()> {
        let dir = self.out_dir;
        if dir.exists() && !dir.is_dir() {
            bail!("--out {}: exists and is not a folder", dir.display());
        }
        let held: Vec<&str> = RESULTS_FILES
            .iter()
            .copied()
            .filter(|name| dir.join(name).exists())
            .collect();
        if !held.is_empty() && !self.overwrite {
            bail!(
                "--out {} already holds results ({}); pass --overwrite to replace them, or \
                 choose another folder",
                dir.display(),
                held.join(", ")
            );
        }
        writable(dir).with_context(|| format!("--out {}", dir.display()))
    }
}

/// Checks that files can be created in `dir`, or in the nearest folder above it that exists
/// (the missing ones are created when the results are written): an unnamed temporary file is
/// made there (and is gone when closed).
fn writable(dir: &Path) -> anyhow::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let existing = dir
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        bail!(
            "cannot create the folder: {} is not a folder",
            existing.display()
        );
    }
    tempfile::tempfile_in(existing)
        .map(drop)
        .with_context(|| format!("cannot write in {}", existing.display()))
}

/// Whether two paths name the same file, whether or not it exists yet (the folder part is
/// resolved through links when it exists).
fn same_path(a: &Path, b: &Path) -> bool {
    normalized(a) == normalized(b)
}

fn normalized(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .unwrap_or_else(|_| parent.to_path_buf())
            .join(name),
        _ => absolute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detections_files_are_named_by_row() {
        let base = Path::new("out/dets.json");
        assert_eq!(detections_file(base, "m", 1, true), base);
        assert_eq!(
            detections_file(base, "m", 1, false),
            Path::new("out/dets.m.json")
        );
        assert_eq!(
            detections_file(base, "m", 4, false),
            Path::new("out/dets.m.b4.json")
        );
    }

    #[test]
    fn same_file_by_another_spelling() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("gt.json");
        std::fs::write(&file, b"{}").unwrap();
        assert!(same_path(&file, &tmp.path().join(".").join("gt.json")));
        assert!(!same_path(&file, &tmp.path().join("other.json")));
        assert!(writable(&tmp.path().join("new/deeper")).is_ok());
        assert!(writable(&file.join("x")).is_err());
    }
}
