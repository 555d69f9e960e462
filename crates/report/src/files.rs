//! Atomic file writes, the one implementation every output goes through (results files, tables,
//! charts, annotated images, detections, `detbench eval`'s outputs): the content goes to a
//! temporary file in the destination's folder, is flushed to disk, then renamed over the
//! destination, and the folder is flushed too, so a reader (or a crash) never sees a
//! half-written file. Files get the permissions any new file gets (`0666` less the umask), not
//! the `0600` of a temporary file.

use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: String,
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically, creating the parent folder if needed.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), WriteError> {
    let path = path.as_ref();
    let error = |source| WriteError {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".detbench-")
        .suffix(".tmp")
        .permissions(new_file_permissions())
        .tempfile_in(dir)
        .map_err(error)?;
    temp.write_all(bytes).map_err(error)?;
    temp.as_file().sync_all().map_err(error)?;
    temp.persist(path).map_err(|e| error(e.error))?;
    sync_dir(dir);
    Ok(())
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
