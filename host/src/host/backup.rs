//! `runway backup`: a consistent copy of a data directory while it is in
//! use — the store from one snapshot, and the artifact blobs it names.
//! The copy is a data directory: restore it by starting `runway serve
//! --data-dir` on it (or moving it into place with the server stopped).
//! `secrets.toml`, the host config and the compile cache are not copied
//! (secrets never leave the host through the API; the cache rebuilds).

use super::Host;
use crate::error::HostError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a backup holds; written beside it as `backup.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupReport {
    pub runs: u64,
    /// Artifact blobs copied.
    pub blobs: u64,
    /// Bytes written (the store file and the blobs).
    pub bytes: u64,
    /// When the snapshot was taken (RFC 3339).
    pub taken_at: String,
    /// The Runway version that took it.
    pub runway: String,
}

/// The file in a backup that describes it.
const REPORT: &str = "backup.json";

impl BackupReport {
    /// The report a backup directory holds.
    pub fn read(dir: &Path) -> anyhow::Result<BackupReport> {
        let path = dir.join(REPORT);
        let text =
            std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a backup report: {e}", path.display()))
    }
}

impl Host {
    /// Writes a backup to `dest`, a directory that must not exist or be
    /// empty.
    pub async fn backup(&self, dest: PathBuf) -> Result<BackupReport, HostError> {
        let host = self.clone();
        tokio::task::spawn_blocking(move || host.backup_blocking(&dest))
            .await
            .map_err(|e| HostError::Internal(e.to_string()))?
    }

    /// A backup as a tar archive of its data directory: an open, already
    /// unlinked temporary file, and its length.
    pub async fn backup_archive(&self) -> Result<(std::fs::File, u64), HostError> {
        let host = self.clone();
        tokio::task::spawn_blocking(move || {
            let tmp = host.config().data_dir.join("tmp");
            let name = format!("backup-{}", ulid::Ulid::new());
            let dir = tmp.join(&name);
            let archive = tmp.join(format!("{name}.tar"));
            let built = (|| {
                host.backup_blocking(&dir)?;
                let file = std::fs::File::create(&archive).map_err(io("creating", &archive))?;
                let mut tar = tar::Builder::new(file);
                tar.append_dir_all(".", &dir)
                    .map_err(io("archiving", &dir))?;
                let mut file = tar.into_inner().map_err(io("archiving", &dir))?;
                std::io::Write::flush(&mut file).map_err(io("writing", &archive))?;
                let len = file.metadata().map_err(io("reading", &archive))?.len();
                let file = std::fs::File::open(&archive).map_err(io("reading", &archive))?;
                Ok((file, len))
            })();
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&archive);
            built
        })
        .await
        .map_err(|e| HostError::Internal(e.to_string()))?
    }

    fn backup_blocking(&self, dest: &Path) -> Result<BackupReport, HostError> {
        let empty = std::fs::read_dir(dest).map_or(true, |mut d| d.next().is_none());
        if !empty {
            return Err(HostError::InvalidInput(format!(
                "{} is not empty: back up into a new directory",
                dest.display()
            )));
        }
        std::fs::create_dir_all(dest).map_err(io("creating", dest))?;
        let blobs = &self.inner.services.artifacts;
        // Blobs the snapshot names stay on disk until they are copied.
        let _hold = blobs.hold();
        let file = dest.join("runway.redb");
        let snapshot = self.store().backup(&file)?;
        let mut report = BackupReport {
            runs: snapshot.runs,
            blobs: 0,
            bytes: std::fs::metadata(&file)
                .map_err(io("reading", &file))?
                .len(),
            taken_at: crate::types::now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            runway: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let artifacts = dest.join("artifacts");
        std::fs::create_dir_all(&artifacts).map_err(io("creating", &artifacts))?;
        for digest in &snapshot.blobs {
            report.bytes += blobs
                .copy_to(digest, &artifacts)
                .map_err(io("copying artifact blob", Path::new(digest)))?;
            report.blobs += 1;
        }
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| HostError::Internal(e.to_string()))?;
        let path = dest.join(REPORT);
        std::fs::write(&path, json).map_err(io("writing", &path))?;
        Ok(report)
    }
}

fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HostError {
    let context = format!("{context} {}", path.display());
    move |source| HostError::Io { context, source }
}
