//! How detbench identifies a file: the lowercase hex sha256 of its bytes (model files, annotation
//! files, imported tables). The one implementation every crate uses.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The sha256 of the file at `path`, lowercase hex, read in 1 MiB chunks (model files can be
/// large). The error is the I/O error of opening or reading it.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_known_input_and_of_a_file() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(super::sha256_hex(b"abc"), abc);
        let dir = std::env::temp_dir().join(format!("detbench-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc.txt");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(super::sha256_file(&path).unwrap(), abc);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(super::sha256_file(&path).is_err());
    }
}
