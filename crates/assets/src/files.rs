//! Atomic file writes, the one implementation every output goes through (results files, tables,
//! charts, annotated images, detections, `detbench eval`'s outputs, training results and trained
//! modules): the content goes to a
//! temporary file in the destination's folder, is flushed to disk, then renamed over the
//! destination, and the folder is flushed too, so a reader (or a crash) never sees a
//! half-written file. Files get the permissions any new file gets (`0666` less the umask), not
//! the `0600` of a temporary file.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: String,
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically, creating the parent folder if needed.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), WriteError> {
    let path = path.as_ref();
    let staged = stage(path, bytes)?;
    commit(path, staged)
}

/// Writes several files as a set: every file's content is written to its temporary file
/// first, and only when all of them are on disk are they renamed into place. A full disk or
/// any other failure while writing leaves every destination as it was (no set of new and old
/// files mixed), and names the file that failed.
pub fn write_atomic_set(files: &[(PathBuf, Vec<u8>)]) -> Result<(), WriteError> {
    let mut staged = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        if path.is_dir() {
            return Err(WriteError {
                path: path.display().to_string(),
                source: std::io::Error::other("a folder is in the way"),
            });
        }
        staged.push((path, stage(path, bytes)?));
    }
    for (path, temp) in staged {
        commit(path, temp)?;
    }
    Ok(())
}

/// The content of `path` in a temporary file beside it, flushed to disk.
fn stage(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, WriteError> {
    let error = |source| WriteError {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(folder_of(path)).map_err(error)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".detbench-")
        .suffix(".tmp")
        .permissions(new_file_permissions())
        .tempfile_in(folder_of(path))
        .map_err(error)?;
    temp.write_all(bytes).map_err(error)?;
    temp.as_file().sync_all().map_err(error)?;
    Ok(temp)
}

/// Renames a staged file over `path` and makes the rename durable.
fn commit(path: &Path, temp: tempfile::NamedTempFile) -> Result<(), WriteError> {
    temp.persist(path).map_err(|e| WriteError {
        path: path.display().to_string(),
        source: e.error,
    })?;
    sync_dir(folder_of(path));
    Ok(())
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// What `File::create` asks for: `0666`, which the kernel reduces by the process's umask.
#[cfg(unix)]
fn new_file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

#[cfg(not(unix))]
fn new_file_permissions() -> std::fs::Permissions {
    std::fs::metadata(".")
        .map(|m| m.permissions())
        .expect("the current folder is readable")
}

/// Makes the rename durable (the folder's entry), where the platform allows opening a folder.
/// The file itself is already on disk, so a failure here loses nothing but the ordering
/// guarantee, and is ignored.
fn sync_dir(dir: &Path) {
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/table.md");
        super::write_atomic(&path, b"first").unwrap();
        super::write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    /// A set is written whole or not at all: a destination that cannot take its file leaves
    /// the others as they were.
    #[test]
    fn a_set_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("results.md");
        let json = dir.path().join("results.json");
        std::fs::write(&md, b"old").unwrap();
        std::fs::create_dir(&json).unwrap();
        let files = vec![
            (md.clone(), b"new".to_vec()),
            (json.clone(), b"{}".to_vec()),
        ];
        let err = super::write_atomic_set(&files).unwrap_err();
        assert!(err.to_string().contains("results.json"), "{err}");
        assert_eq!(std::fs::read(&md).unwrap(), b"old");
        std::fs::remove_dir(&json).unwrap();
        super::write_atomic_set(&files).unwrap();
        assert_eq!(std::fs::read(&md).unwrap(), b"new");
        assert_eq!(std::fs::read(&json).unwrap(), b"{}");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 2);
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let err = super::write_atomic(dir.path().join("file/x.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }

    /// The file gets the permissions of any new file (as `std::fs::write` makes it), not the
    /// temporary file's 0600.
    #[cfg(unix)]
    #[test]
    fn files_get_the_permissions_of_a_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let atomic = dir.path().join("atomic");
        super::write_atomic(&atomic, b"x").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }
}
