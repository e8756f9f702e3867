//! Artifact bodies: content-addressed files under one `cap-std` directory.
//!
//! Artifact *names* never reach the filesystem: a body is stored as its
//! sha256 (`ab/abcdef...`), names live in the run store. The directory
//! handle is a capability, so no path can escape it either way.

use cap_std::fs::{Dir, OpenOptions};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

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

/// Where artifact bodies are kept.
enum Blobs {
    /// Files in the data directory (`artifacts/ab/abcd…`).
    Files(Dir),
    /// The PostgreSQL database, shared by every host on it.
    Database(super::Store),
}

/// Artifact bodies by content: files in the data directory, or rows of the
/// PostgreSQL store (so that every host reads what any host wrote).
pub struct ArtifactStore {
    blobs: Blobs,
    /// Blobs being written whose records are not committed yet: a blob at
    /// zero references is reclaimed only if no write holds it (a write of
    /// the same content may have found the file and counts on it).
    pinned: Arc<Mutex<HashMap<String, usize>>>,
    /// Backups in progress: no blob is reclaimed while one copies them.
    holds: Arc<std::sync::atomic::AtomicUsize>,
}

/// Stops reclamation while it lives (a backup copying blobs).
pub struct Hold(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Holds a blob against reclamation until its record is committed.
#[must_use = "the blob may be reclaimed as soon as the pin is dropped"]
pub struct Pin {
    pinned: Arc<Mutex<HashMap<String, usize>>>,
    digest: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pinned = self.pinned.lock();
        if let Some(n) = pinned.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                pinned.remove(&self.digest);
            }
        }
    }
}

impl ArtifactStore {
    /// Opens (creating) `path` as the artifact directory.
    pub fn open(path: &Path) -> std::io::Result<ArtifactStore> {
        std::fs::create_dir_all(path)?;
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(ArtifactStore {
            blobs: Blobs::Files(dir),
            pinned: Default::default(),
            holds: Default::default(),
        })
    }

    /// Keeps the bodies in the PostgreSQL `store`.
    pub fn in_database(store: super::Store) -> ArtifactStore {
        ArtifactStore {
            blobs: Blobs::Database(store),
            pinned: Default::default(),
            holds: Default::default(),
        }
    }

    fn rel(digest: &str) -> String {
        format!("{}/{}", &digest[..2], digest)
    }

    /// Stores `body` durably; returns its sha256 (lower-case hex) and a
    /// pin that keeps the file until the caller has committed a record
    /// naming it.
    pub fn put(&self, body: &[u8]) -> std::io::Result<(String, Pin)> {
        let digest = hex::encode(Sha256::digest(body));
        *self.pinned.lock().entry(digest.clone()).or_default() += 1;
        let pin = Pin {
            pinned: self.pinned.clone(),
            digest: digest.clone(),
        };
        self.write(&digest, body).map(|()| (digest, pin))
    }

    /// Deletes the file of a blob no record names, unless a write holds it.
    /// `unreferenced` is asked under the same lock as the pins, so no write
    /// can come to count on the file between the check and the deletion.
    /// Returns whether the blob is gone.
    pub fn reclaim(
        &self,
        digest: &str,
        unreferenced: impl FnOnce() -> bool,
    ) -> std::io::Result<bool> {
        if !is_digest(digest) {
            return Err(not_a_digest());
        }
        let pinned = self.pinned.lock();
        let held = self.holds.load(std::sync::atomic::Ordering::SeqCst) > 0;
        if held || pinned.contains_key(digest) || !unreferenced() {
            return Ok(false);
        }
        let dir = match &self.blobs {
            Blobs::Files(dir) => dir,
            Blobs::Database(store) => return store.reclaim_blob(digest).map_err(io_error),
        };
        match dir.remove_file(Self::rel(digest)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Keeps every blob (none is reclaimed) until the hold is dropped.
    pub fn hold(&self) -> Hold {
        // Taken under the pins' lock, so no reclamation is half done.
        let _pinned = self.pinned.lock();
        self.holds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Hold(self.holds.clone())
    }

    /// Copies the blob `digest` into `dest` (an artifact directory of
    /// another data directory), laid out as here. Returns its size.
    pub fn copy_to(&self, digest: &str, dest: &Path) -> std::io::Result<u64> {
        if !is_digest(digest) {
            return Err(not_a_digest());
        }
        let body = self.get(digest)?;
        let folder = dest.join(&digest[..2]);
        std::fs::create_dir_all(&folder)?;
        let mut f = std::fs::File::create(folder.join(digest))?;
        f.write_all(&body)?;
        f.sync_all()?;
        Ok(body.len() as u64)
    }

    fn write(&self, digest: &str, body: &[u8]) -> std::io::Result<()> {
        let dir = match &self.blobs {
            Blobs::Files(dir) => dir,
            // Stored, or pinned for every host, before its record commits.
            Blobs::Database(store) => return store.put_blob(digest, body).map_err(io_error),
        };
        let rel = Self::rel(digest);
        if dir.exists(&rel) {
            return Ok(());
        }
        dir.create_dir_all(&digest[..2])?;
        let tmp = format!("{}/.tmp-{}", &digest[..2], ulid::Ulid::new());
        let written = (|| {
            let mut f = dir.open_with(&tmp, OpenOptions::new().write(true).create_new(true))?;
            f.write_all(body)?;
            f.sync_all()?;
            drop(f);
            dir.rename(&tmp, dir, &rel)
        })();
        if written.is_err() {
            // A full disk leaves no half-written files behind.
            let _ = dir.remove_file(&tmp);
        }
        written
    }

    /// The body stored under `digest`.
    pub fn get(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        if !is_digest(digest) {
            return Err(not_a_digest());
        }
        match &self.blobs {
            Blobs::Files(dir) => dir.read(Self::rel(digest)),
            Blobs::Database(store) => store
                .get_blob(digest)
                .map_err(io_error)?
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such blob")),
        }
    }
}

/// A database failure as the I/O error the callers of blobs handle.
fn io_error(e: super::StoreError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn is_digest(digest: &str) -> bool {
    digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

fn not_a_digest() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a sha256 digest")
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
        let (d1, _) = store.put(b"hello").unwrap();
        let (d2, _) = store.put(b"hello").unwrap();
        assert_eq!(d1, d2);
        assert_eq!(store.get(&d1).unwrap(), b"hello");
        assert!(store.get("../../etc/passwd").is_err());
    }

    #[test]
    fn a_pinned_blob_is_not_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let (digest, pin) = store.put(b"shared").unwrap();
        // A second write of the same content found the file: both pinned.
        let (_, pin2) = store.put(b"shared").unwrap();
        assert!(!store.reclaim(&digest, || true).unwrap());
        drop(pin);
        assert!(!store.reclaim(&digest, || true).unwrap());
        drop(pin2);
        assert!(
            !store.reclaim(&digest, || false).unwrap(),
            "still referenced"
        );
        assert!(store.get(&digest).is_ok());
        assert!(store.reclaim(&digest, || true).unwrap());
        assert!(store.get(&digest).is_err());
        // Gone already: reclaiming again is fine.
        assert!(store.reclaim(&digest, || true).unwrap());
        assert!(store.reclaim("../x", || true).is_err());
    }
}
