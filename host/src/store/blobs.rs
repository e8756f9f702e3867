//! Artifact bodies: content-addressed files under one `cap-std` directory.
//!
//! Artifact *names* never reach the filesystem: a body is stored as its
//! sha256 (`ab/abcdef...`), names live in the run store. The directory
//! handle is a capability, so no path can escape it either way.

use cap_std::fs::{Dir, OpenOptions};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Why an artifact name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid artifact name {name:?}: {reason}")]
pub struct BadArtifactName {
    pub name: String,
    pub reason: &'static str,
}

/// Names are plain file names: non-empty, at most 255 bytes, no `/`, `\`,
/// `..`, NUL or other control characters.
pub fn validate_name(name: &str) -> Result<(), BadArtifactName> {
    let bad = |reason| {
        Err(BadArtifactName {
            name: name.chars().take(300).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("it contains a path separator");
    }
    if name.contains("..") || name == "." {
        return bad("it contains '..' or is '.'");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains NUL or a control character");
    }
    Ok(())
}

/// The blob directory.
pub struct ArtifactStore {
    dir: Dir,
}

impl ArtifactStore {
    /// Opens (creating) `path` as the artifact directory.
    pub fn open(path: &Path) -> std::io::Result<ArtifactStore> {
        std::fs::create_dir_all(path)?;
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(ArtifactStore { dir })
    }

    fn rel(digest: &str) -> String {
        format!("{}/{}", &digest[..2], digest)
    }

    /// Stores `body` durably; returns its sha256 (lower-case hex).
    pub fn put(&self, body: &[u8]) -> std::io::Result<String> {
        let digest = hex::encode(Sha256::digest(body));
        let rel = Self::rel(&digest);
        if self.dir.exists(&rel) {
            return Ok(digest);
        }
        self.dir.create_dir_all(&digest[..2])?;
        let tmp = format!("{}/.tmp-{}", &digest[..2], ulid::Ulid::new());
        let written = (|| {
            let mut f = self
                .dir
                .open_with(&tmp, OpenOptions::new().write(true).create_new(true))?;
            f.write_all(body)?;
            f.sync_all()?;
            drop(f);
            self.dir.rename(&tmp, &self.dir, &rel)
        })();
        if written.is_err() {
            // A full disk leaves no half-written files behind.
            let _ = self.dir.remove_file(&tmp);
        }
        written.map(|()| digest)
    }

    /// The body stored under `digest`.
    pub fn get(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a sha256 digest",
            ));
        }
        self.dir.read(Self::rel(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in ["", "../x", "a/b", "a\\b", "x\0y", "..", ".", "a\nb"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
        for good in ["report.md", "a", "data-2026.json", &"a".repeat(255)] {
            assert!(validate_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn bodies_are_stored_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let d1 = store.put(b"hello").unwrap();
        let d2 = store.put(b"hello").unwrap();
        assert_eq!(d1, d2);
        assert_eq!(store.get(&d1).unwrap(), b"hello");
        assert!(store.get("../../etc/passwd").is_err());
    }
}
