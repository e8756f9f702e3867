//! A consistent copy of the store while it is in use: every table is
//! copied from one read transaction (a snapshot; the writer goes on) into
//! a fresh store file.

use super::tables::{self, ARTIFACTS, RUNS};
use super::{Store, StoreError};
use redb::{Database, ReadableTable, ReadableTableMetadata};
use std::collections::BTreeSet;
use std::path::Path;

/// What a backup of the store holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Runs in it.
    pub runs: u64,
    /// Digests of the artifact blobs it names (their files are copied by
    /// the caller).
    pub blobs: BTreeSet<String>,
}

impl Store {
    /// Writes a copy of the store as it is now to `path` (a new file).
    pub fn backup(&self, path: &Path) -> Result<Snapshot, StoreError> {
        let dest = Database::create(path).map_err(|e| StoreError::Db(e.into()))?;
        self.reading(|from| {
            let to = dest.begin_write()?;
            tables::copy_all(from, &to)?;
            to.commit()?;
            let mut blobs = BTreeSet::new();
            for row in from.open_table(ARTIFACTS)?.iter()? {
                let (_, v) = row?;
                if let Ok(m) = serde_json::from_slice::<crate::types::ArtifactMeta>(v.value()) {
                    blobs.insert(m.digest);
                }
            }
            Ok(Snapshot {
                runs: from.open_table(RUNS)?.len()?,
                blobs,
            })
        })
    }
}
