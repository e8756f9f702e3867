//! `runway doctor`: checks the store file page by page, and repairs it on
//! request (after a backup copy).

use super::tables::RUNS;
use super::{StoreError, open_file, panic_message};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::{Path, PathBuf};

/// What a check found.
#[derive(Debug, serde::Serialize)]
pub struct Checkup {
    pub file: PathBuf,
    /// Every page's checksum matched and every tree could be walked.
    pub intact: bool,
    /// The file was repaired (only with `repair`); what was damaged may
    /// have been dropped.
    pub repaired: bool,
    /// Where the file was copied before the repair.
    pub backup: Option<PathBuf>,
    /// Run records read back, and those that could not be.
    pub runs: u64,
    pub unreadable_runs: u64,
}

/// Checks `dir`'s store file. Without `repair` the file is not touched: a
/// copy is checked (redb's check repairs what it checks). With `repair` the
/// file is first copied to `runway.redb.bak-<time>`, then checked and
/// repaired in place. The store must not be open (no server running).
pub fn doctor(dir: &Path, repair: bool) -> Result<Checkup, StoreError> {
    let file = dir.join("runway.redb");
    let name = file.display().to_string();
    if !file.exists() {
        return Err(StoreError::Missing(name));
    }
    let io = |e: std::io::Error| StoreError::Db(redb::Error::Io(e));
    // Holds the file's lock (redb's own) while copying: no server writes.
    let held = std::fs::File::open(&file).map_err(io)?;
    if held.try_lock().is_err() {
        return Err(StoreError::Locked(name));
    }
    let stamp = crate::types::now().unix_timestamp();
    let (target, backup) = if repair {
        let backup = dir.join(format!("runway.redb.bak-{stamp}"));
        (file.clone(), Some(backup))
    } else {
        (dir.join(format!("runway.redb.check-{stamp}")), None)
    };
    std::fs::copy(&file, backup.as_ref().unwrap_or(&target)).map_err(io)?;
    drop(held);
    let checked = check(&target);
    if !repair {
        let _ = std::fs::remove_file(&target);
    }
    let (intact, runs, unreadable_runs) =
        checked.map_err(|e| StoreError::Damaged(name.clone(), e))?;
    let backup = match backup {
        // Nothing was repaired: the copy is not needed.
        Some(b) if intact => {
            let _ = std::fs::remove_file(&b);
            None
        }
        b => b,
    };
    Ok(Checkup {
        file,
        intact,
        repaired: repair && !intact,
        backup,
        runs,
        unreadable_runs,
    })
}

/// redb's integrity check (which repairs), then a read of every run record.
fn check(path: &Path) -> Result<(bool, u64, u64), String> {
    std::panic::catch_unwind(|| -> Result<(bool, u64, u64), String> {
        let mut db: Database = open_file(path).map_err(|e| e.to_string())?;
        let intact = db.check_integrity().map_err(|e| e.to_string())?;
        let tx = db.begin_read().map_err(|e| e.to_string())?;
        let table = tx.open_table(RUNS).map_err(|e| e.to_string())?;
        let (mut runs, mut unreadable) = (0, 0);
        for row in table.iter().map_err(|e| e.to_string())? {
            let ok = row.is_ok_and(|(_, v)| {
                serde_json::from_slice::<crate::types::RunRecord>(v.value()).is_ok()
            });
            if ok {
                runs += 1;
            } else {
                unreadable += 1;
            }
        }
        Ok((intact && unreadable == 0, runs, unreadable))
    })
    .unwrap_or_else(|panic| Err(panic_message(panic.as_ref())))
}
