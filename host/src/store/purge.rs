//! Deleting ended runs (retention, purge, `DELETE /v1/runs/{id}`) and
//! the bookkeeping that makes it complete: which idempotency keys name a
//! run, and how many artifacts name each blob.
//!
//! A run's rows live in per-run ranges of the tables, so deleting one is
//! a handful of range removals in the writer's transaction. Artifact blobs
//! are shared by content: a deletion drops their reference counts, and a
//! blob at zero is reclaimed by the caller (`ArtifactStore::reclaim`) once
//! the deletion is committed.

use super::tables::*;
use super::writer::{Tables, WriteOutcome};
use super::{Store, StoreError};
use crate::types::{ArtifactMeta, RunId, RunRecord};
use redb::ReadableTable;

impl Tables<'_> {
    /// Records that idempotency key `key` names `run`.
    pub(super) fn put_key(&mut self, key: &str, run: RunId) -> Result<(), StoreError> {
        let run = run.to_string();
        self.keys.insert(key, run.as_str())?;
        self.run_keys.insert((run.as_str(), key), 0)?;
        Ok(())
    }

    /// Stores an artifact's record, moving the blob reference counts along
    /// when it names a new blob (or replaces one).
    pub(super) fn put_artifact(&mut self, meta: &ArtifactMeta) -> Result<WriteOutcome, StoreError> {
        let key = meta.run_id.to_string();
        let old = self
            .artifacts
            .insert(
                (key.as_str(), meta.name.as_str()),
                serde_json::to_vec(meta)?.as_slice(),
            )?
            .and_then(|v| serde_json::from_slice::<ArtifactMeta>(v.value()).ok());
        match old {
            Some(old) if old.digest == meta.digest => {}
            old => {
                self.add_ref(&meta.digest, 1)?;
                if let Some(old) = old {
                    self.add_ref(&old.digest, -1)?;
                }
            }
        }
        Ok(WriteOutcome::Done)
    }

    fn add_ref(&mut self, digest: &str, delta: i64) -> Result<u64, StoreError> {
        let n = self.blob_refs.get(digest)?.map_or(0, |v| v.value());
        let n = n.saturating_add_signed(delta);
        self.blob_refs.insert(digest, n)?;
        Ok(n)
    }

    /// Deletes `runs` if every one has ended (otherwise deletes nothing).
    pub(super) fn delete_runs(&mut self, runs: &[RunId]) -> Result<WriteOutcome, StoreError> {
        let mut records = Vec::with_capacity(runs.len());
        for id in runs {
            let key = id.to_string();
            let Some(v) = self.runs.get(key.as_str())? else {
                continue;
            };
            // A record that cannot be read cannot be shown either: it goes.
            let record = serde_json::from_slice::<RunRecord>(v.value()).ok();
            drop(v);
            if record.as_ref().is_some_and(|r| !r.status.is_terminal())
                || self.active.get(key.as_str())?.is_some()
            {
                return Ok(WriteOutcome::Ignored);
            }
            records.push((key, record.and_then(|r| r.parent)));
        }
        let mut blobs = Vec::new();
        for (key, parent) in &records {
            let k = key.as_str();
            self.runs.remove(k)?;
            self.events
                .retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
            self.journal
                .retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
            self.signals
                .retain_in((k, 0)..=(k, u64::MAX), |_, _| false)?;
            self.signal_ids
                .retain_in((k, "")..(next(k).as_str(), ""), |_, _| false)?;
            self.children
                .retain_in((k, "")..(next(k).as_str(), ""), |_, _| false)?;
            self.approvals
                .retain_in((k, "")..(next(k).as_str(), ""), |_, _| false)?;
            if let Some(parent) = parent {
                self.children.remove((parent.to_string().as_str(), k))?;
            }
            let keys: Vec<String> = self
                .run_keys
                .extract_from_if((k, "")..(next(k).as_str(), ""), |_, _| true)?
                .filter_map(|row| row.ok().map(|(key, _)| key.value().1.to_owned()))
                .collect();
            for idem in keys {
                // A key reused for a later run (after this one ended) stays.
                let names_this = self
                    .keys
                    .get(idem.as_str())?
                    .is_some_and(|v| v.value() == k);
                if names_this {
                    self.keys.remove(idem.as_str())?;
                }
            }
            let digests: Vec<String> = self
                .artifacts
                .extract_from_if((k, "")..(next(k).as_str(), ""), |_, _| true)?
                .filter_map(|row| {
                    let (_, v) = row.ok()?;
                    serde_json::from_slice::<ArtifactMeta>(v.value())
                        .ok()
                        .map(|m| m.digest)
                })
                .collect();
            for digest in digests {
                if self.add_ref(&digest, -1)? == 0 {
                    blobs.push(digest);
                }
            }
            self.progress.remove(k)?;
            self.model_usage.remove(k)?;
            self.tree_runs.remove(k)?;
        }
        if records.is_empty() {
            return Ok(WriteOutcome::Ignored);
        }
        blobs.sort();
        blobs.dedup();
        Ok(WriteOutcome::Deleted { blobs })
    }

    /// Removes a blob's count if it is still zero.
    pub(super) fn forget_blob(&mut self, digest: &str) -> Result<WriteOutcome, StoreError> {
        if self.blob_refs.get(digest)?.is_some_and(|v| v.value() == 0) {
            self.blob_refs.remove(digest)?;
            return Ok(WriteOutcome::Done);
        }
        Ok(WriteOutcome::Ignored)
    }
}

/// The smallest string greater than every string starting with `prefix`
/// followed by anything: the end of `prefix`'s range in a `(prefix, _)`
/// keyed table.
fn next(prefix: &str) -> String {
    format!("{prefix}\u{0}")
}

/// An ended root run retention may delete, with when it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub id: RunId,
    pub workflow: String,
    /// Milliseconds since the Unix epoch.
    pub ended_ms: u64,
}

impl Store {
    /// Root runs (started from outside, not by a parent) that ended
    /// before `before_ms`, oldest first, after the run `after` (a cursor),
    /// at most `limit`. Runs are keyed by creation time, so the scan stops
    /// at the runs created at `before_ms`.
    pub fn ended_roots_before(
        &self,
        before_ms: u64,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<Ended>, StoreError> {
        if let super::Backend::Postgres(pg) = &self.backend {
            return pg.ended_roots_before(before_ms, after, limit);
        }
        use std::ops::Bound;
        let upper = RunId::first_at(before_ms).to_string();
        let after = after.map(|a| a.to_string());
        let lower = match &after {
            Some(a) => Bound::Excluded(a.as_str()),
            None => Bound::Unbounded,
        };
        self.reading(|tx| {
            let t = tx.open_table(RUNS)?;
            let mut out = Vec::new();
            for row in t.range::<&str>((lower, Bound::Excluded(upper.as_str())))? {
                let (_, v) = row?;
                if let Some(e) = ended_root(v.value()).filter(|e| e.ended_ms < before_ms) {
                    out.push(e);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Every ended root run, newest first, for keeping the newest N of
    /// each workflow.
    pub fn ended_roots(&self) -> Result<Vec<Ended>, StoreError> {
        if let super::Backend::Postgres(pg) = &self.backend {
            return pg.ended_roots();
        }
        self.reading(|tx| {
            let t = tx.open_table(RUNS)?;
            let mut out = Vec::new();
            for row in t.iter()?.rev() {
                let (_, v) = row?;
                out.extend(ended_root(v.value()));
            }
            Ok(out)
        })
    }

    /// How many artifacts name the blob `digest`.
    pub fn blob_refs(&self, digest: &str) -> Result<u64, StoreError> {
        if let super::Backend::Postgres(pg) = &self.backend {
            return pg.blob_refs(digest);
        }
        self.reading(|tx| {
            Ok(tx
                .open_table(BLOB_REFS)?
                .get(digest)?
                .map_or(0, |v| v.value()))
        })
    }

    /// Blobs no artifact names any more whose files may still be on disk,
    /// at most `limit`.
    pub fn unreferenced_blobs(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        if let super::Backend::Postgres(pg) = &self.backend {
            return pg.unreferenced_blobs(limit);
        }
        self.reading(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(BLOB_REFS)?.iter()? {
                let (digest, n) = row?;
                if n.value() == 0 {
                    out.push(digest.value().to_owned());
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }
}

/// The fields of a stored run record retention looks at (the rest, input
/// and output among them, is skipped unparsed).
#[derive(serde::Deserialize)]
struct RunHead {
    id: RunId,
    workflow: String,
    status: crate::types::RunStatus,
    #[serde(default)]
    parent: Option<RunId>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: crate::types::Timestamp,
    #[serde(default, with = "time::serde::rfc3339::option")]
    finished_at: Option<crate::types::Timestamp>,
}

/// The run in `bytes` if it is an ended root run.
pub(super) fn ended_root(bytes: &[u8]) -> Option<Ended> {
    let r: RunHead = serde_json::from_slice(bytes).ok()?;
    if r.parent.is_some() || !r.status.is_terminal() {
        return None;
    }
    let ended = r.finished_at.unwrap_or(r.created_at);
    Some(Ended {
        id: r.id,
        workflow: r.workflow,
        ended_ms: (ended.unix_timestamp_nanos() / 1_000_000).max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Write;
    use crate::types::{RunStatus, WorkflowVersion, now, now_ms};

    fn run(status: RunStatus, parent: Option<RunId>) -> RunRecord {
        let wf = WorkflowVersion {
            slug: "wf".into(),
            version: 1,
            digest: "d".into(),
            manifest_toml: String::new(),
            description: None,
            deployed_at: now(),
        };
        let mut r = crate::host::new_record(&wf, serde_json::json!({}));
        r.status = status;
        r.parent = parent;
        r.finished_at = status.is_terminal().then(now);
        r
    }

    fn artifact(run: RunId, name: &str, digest: &str) -> Write {
        Write::PutArtifact(Box::new(ArtifactMeta {
            run_id: run,
            name: name.into(),
            content_type: "text/plain".into(),
            digest: digest.into(),
            size: 1,
            metadata: None,
            created_at: now(),
        }))
    }

    #[tokio::test]
    async fn deleting_runs_removes_their_rows_and_frees_only_unshared_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = run(RunStatus::Completed, None);
        let child = run(RunStatus::Completed, Some(a.id));
        let b = run(RunStatus::Completed, None);
        let live = run(RunStatus::WaitingSignal, None);
        let (ai, ci, bi, li) = (a.id, child.id, b.id, live.id);
        let mut writes = vec![];
        for r in [a, child, b, live] {
            writes.push(Write::PutRun(Box::new(r)));
        }
        writes.extend([
            Write::PutKey("key-a".into(), ai),
            Write::PutChild {
                parent: ai,
                child: ci,
                root: ai,
            },
            artifact(ai, "own.txt", "own"),
            artifact(ai, "shared.txt", "shared"),
            artifact(ci, "child.txt", "childs"),
            artifact(bi, "shared.txt", "shared"),
            // Replacing an artifact moves the count to the new blob.
            artifact(bi, "x.txt", "old"),
            artifact(bi, "x.txt", "new"),
            Write::AppendEvents(ai, vec![]),
        ]);
        store.commit(writes).await.unwrap();
        assert_eq!(store.blob_refs("shared").unwrap(), 2);
        assert_eq!(store.blob_refs("old").unwrap(), 0);
        assert_eq!(store.blob_refs("new").unwrap(), 1);

        // A run that has not ended refuses the whole write.
        let out = store
            .commit(vec![Write::DeleteRuns(vec![bi, li])])
            .await
            .unwrap();
        assert_eq!(out, vec![WriteOutcome::Ignored]);
        assert!(store.run(bi).unwrap().is_some());

        let out = store
            .commit(vec![Write::DeleteRuns(vec![ci, ai])])
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![WriteOutcome::Deleted {
                blobs: vec!["childs".into(), "own".into()]
            }]
        );
        assert!(store.run(ai).unwrap().is_none() && store.run(ci).unwrap().is_none());
        assert!(store.artifacts(ai).unwrap().is_empty());
        assert!(store.children(ai).unwrap().is_empty());
        assert_eq!(store.run_for_key("key-a").unwrap(), None);
        assert_eq!(store.blob_refs("shared").unwrap(), 1);
        assert_eq!(store.artifacts(bi).unwrap().len(), 2);
        let mut zero = store.unreferenced_blobs(10).unwrap();
        zero.sort();
        assert_eq!(zero, ["childs", "old", "own"]);
        store
            .commit(vec![
                Write::ForgetBlob("own".into()),
                Write::ForgetBlob("shared".into()),
            ])
            .await
            .unwrap();
        assert_eq!(store.unreferenced_blobs(10).unwrap(), ["childs", "old"]);
        assert_eq!(
            store.blob_refs("shared").unwrap(),
            1,
            "a referenced blob is not forgotten"
        );

        // Only ended roots are candidates, by when they ended.
        let later = now_ms() + 1000;
        let ended: Vec<RunId> = store
            .ended_roots_before(later, None, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ended, vec![bi]);
        assert!(store.ended_roots_before(0, None, 10).unwrap().is_empty());
        assert!(
            store
                .ended_roots_before(later, Some(bi), 10)
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_older_store_gets_its_indexes_built_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(RunStatus::Completed, None);
        let id = r.id;
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .commit(vec![
                    Write::PutRun(Box::new(r)),
                    Write::PutKey("k".into(), id),
                    artifact(id, "a", "blob"),
                ])
                .await
                .unwrap();
            store.close().await.unwrap();
        }
        // As an older Runway left it: no layout version, no indexes.
        {
            let db = redb::Database::create(dir.path().join("runway.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.delete_table(RUN_KEYS).unwrap();
            tx.delete_table(BLOB_REFS).unwrap();
            tx.open_table(META).unwrap().remove("schema").unwrap();
            tx.commit().unwrap();
        }
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.blob_refs("blob").unwrap(), 1);
            store
                .commit(vec![Write::DeleteRuns(vec![id])])
                .await
                .unwrap();
            assert_eq!(
                store.run_for_key("k").unwrap(),
                None,
                "the key went with its run"
            );
            store.close().await.unwrap();
        }
        {
            let db = redb::Database::create(dir.path().join("runway.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("schema", 99).unwrap();
            tx.commit().unwrap();
        }
        match Store::open(dir.path()) {
            Err(e @ StoreError::Newer { found: 99, .. }) => {
                assert!(e.to_string().contains("newer Runway"), "{e}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a store of a newer layout"),
        }
    }
}
