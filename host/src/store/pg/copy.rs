//! `runway migrate --from-redb DIR`: a redb data directory's store copied
//! into an empty PostgreSQL database, in one transaction, artifact bodies
//! included.

use super::{LAYOUT, connect, migrate, pg_error};
use crate::store::StoreError;
use crate::store::tables::*;
use postgres::Transaction;
use postgres::types::ToSql;
use redb::{ReadableDatabase, ReadableTable};
use std::path::Path;
use std::time::Duration;

/// What a copy moved.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub workflows: u64,
    pub runs: u64,
    pub events: u64,
    pub artifacts: u64,
    pub blobs: u64,
}

/// The layout the database is at after [`ensure_layout`].
pub fn ensure_layout(url: &str) -> Result<i64, StoreError> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut c = connect(&url, Duration::from_secs(10))?;
        migrate(&mut c)?;
        Ok(LAYOUT)
    })
    .join()
    .map_err(|_| StoreError::CommitFailed("the migration thread panicked".into()))?
}

/// Copies the store of the data directory `dir` (not in use) into the
/// empty database at `url`.
pub fn copy_from_redb(dir: &Path, url: &str) -> Result<Copied, StoreError> {
    let (dir, url) = (dir.to_path_buf(), url.to_owned());
    std::thread::spawn(move || copy(&dir, &url))
        .join()
        .map_err(|_| StoreError::CommitFailed("the copy thread panicked".into()))?
}

fn text(bytes: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(bytes)
        .map_err(|e| StoreError::CommitFailed(format!("a stored record is not UTF-8: {e}")))
}

fn copy(dir: &Path, url: &str) -> Result<Copied, StoreError> {
    let path = dir.join("runway.redb");
    if !path.is_file() {
        return Err(StoreError::Missing(path.display().to_string()));
    }
    let db = redb::Database::open(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.display().to_string()),
        e => StoreError::Damaged(path.display().to_string(), e.to_string()),
    })?;
    let r = db.begin_read()?;
    let mut client = connect(url, Duration::from_secs(30))?;
    migrate(&mut client)?;
    let mut tx = client.transaction().map_err(pg_error)?;
    let empty: bool = tx
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM runs) AND NOT EXISTS (SELECT 1 FROM workflow_versions)",
            &[],
        )
        .map_err(pg_error)?
        .get(0);
    if !empty {
        return Err(StoreError::CommitFailed(
            "the database holds runs or workflows already: copy into an empty one".into(),
        ));
    }
    let mut n = Copied::default();
    let x = |tx: &mut Transaction, sql: &str, p: &[&(dyn ToSql + Sync)]| {
        tx.execute(sql, p).map_err(pg_error)
    };
    for row in r.open_table(COMPONENTS)?.iter()? {
        let (k, v) = row?;
        x(
            &mut tx,
            "INSERT INTO components (digest, wasm) VALUES ($1, $2)",
            &[&k.value(), &v.value()],
        )?;
    }
    for row in r.open_table(WORKFLOWS)?.iter()? {
        let (k, v) = row?;
        x(
            &mut tx,
            "INSERT INTO workflows (slug, latest) VALUES ($1, $2)",
            &[&k.value(), &(v.value() as i32)],
        )?;
    }
    for row in r.open_table(VERSIONS)?.iter()? {
        let (k, v) = row?;
        let (slug, version) = k.value();
        x(
            &mut tx,
            "INSERT INTO workflow_versions (slug, version, record) VALUES ($1, $2, $3::text::json)",
            &[&slug, &(version as i32), &text(v.value())?],
        )?;
        n.workflows += 1;
    }
    for row in r.open_table(RUNS)?.iter()? {
        let (k, v) = row?;
        let head: serde_json::Value = serde_json::from_slice(v.value())?;
        let field = |f: &str| head[f].as_str().map(str::to_owned);
        x(
            &mut tx,
            "INSERT INTO runs (id, workflow, status, parent, record) VALUES ($1, $2, $3, $4, $5::text::json)",
            &[
                &k.value(),
                &field("workflow").unwrap_or_default(),
                &field("status").unwrap_or_default(),
                &field("parent"),
                &text(v.value())?,
            ],
        )?;
        n.runs += 1;
    }
    for row in r.open_table(ACTIVE_RUNS)?.iter()? {
        let (k, v) = row?;
        x(
            &mut tx,
            "INSERT INTO active_runs (id, cancel) VALUES ($1, $2)",
            &[&k.value(), &(v.value() == CANCEL_REQUESTED)],
        )?;
    }
    for (table, sql, count) in [
        (
            EVENTS,
            "INSERT INTO events (run, seq, event) VALUES ($1, $2, $3::text::json)",
            true,
        ),
        (
            JOURNAL,
            "INSERT INTO journal (run, seq, entry) VALUES ($1, $2, $3::text::json)",
            false,
        ),
        (
            SIGNALS,
            "INSERT INTO signals (run, seq, signal) VALUES ($1, $2, $3::text::json)",
            false,
        ),
    ] {
        for row in r.open_table(table)?.iter()? {
            let (k, v) = row?;
            let (run, seq) = k.value();
            x(&mut tx, sql, &[&run, &(seq as i64), &text(v.value())?])?;
            n.events += u64::from(count);
        }
    }
    let mut digests = std::collections::BTreeSet::new();
    for row in r.open_table(ARTIFACTS)?.iter()? {
        let (k, v) = row?;
        let (run, name) = k.value();
        let meta: crate::types::ArtifactMeta = serde_json::from_slice(v.value())?;
        digests.insert(meta.digest);
        x(
            &mut tx,
            "INSERT INTO artifacts (run, name, meta) VALUES ($1, $2, $3::text::json)",
            &[&run, &name, &text(v.value())?],
        )?;
        n.artifacts += 1;
    }
    for digest in digests {
        let file = dir.join("artifacts").join(&digest[..2]).join(&digest);
        let Ok(bytes) = std::fs::read(&file) else {
            tracing::warn!(%digest, "an artifact's body is missing from the data directory");
            continue;
        };
        x(
            &mut tx,
            "INSERT INTO blobs (digest, bytes, pinned_until) VALUES ($1, $2, now())",
            &[&digest, &bytes],
        )?;
        n.blobs += 1;
    }
    for row in r.open_table(SIGNAL_IDS)?.iter()? {
        let (k, v) = row?;
        let (run, id) = k.value();
        x(
            &mut tx,
            "INSERT INTO signal_ids (run, id, seq) VALUES ($1, $2, $3)",
            &[&run, &id, &(v.value() as i64)],
        )?;
    }
    for row in r.open_table(KEYS)?.iter()? {
        let (k, v) = row?;
        x(
            &mut tx,
            "INSERT INTO idempotency_keys (key, run) VALUES ($1, $2)",
            &[&k.value(), &v.value()],
        )?;
    }
    for row in r.open_table(RUN_KEYS)?.iter()? {
        let (k, _) = row?;
        let (run, key) = k.value();
        x(
            &mut tx,
            "INSERT INTO run_keys (run, key) VALUES ($1, $2)",
            &[&run, &key],
        )?;
    }
    for row in r.open_table(CHILDREN)?.iter()? {
        let (k, _) = row?;
        let (parent, child) = k.value();
        x(
            &mut tx,
            "INSERT INTO children (parent, child) VALUES ($1, $2)",
            &[&parent, &child],
        )?;
    }
    for (table, sql) in [
        (
            PROGRESS,
            "INSERT INTO progress (run, output) VALUES ($1, $2::text::json)",
        ),
        (
            MODEL_USAGE,
            "INSERT INTO model_usage (run, totals) VALUES ($1, $2::text::json)",
        ),
        (
            CRON_STATE,
            "INSERT INTO cron_state (key, state) VALUES ($1, $2::text::json)",
        ),
    ] {
        for row in r.open_table(table)?.iter()? {
            let (k, v) = row?;
            x(&mut tx, sql, &[&k.value(), &text(v.value())?])?;
        }
    }
    for (table, sql) in [
        (
            TREE_RUNS,
            "INSERT INTO tree_runs (root, runs) VALUES ($1, $2)",
        ),
        (CRON, "INSERT INTO cron (key, next_ms) VALUES ($1, $2)"),
        (
            BLOB_REFS,
            "INSERT INTO blob_refs (digest, refs) VALUES ($1, $2)",
        ),
    ] {
        for row in r.open_table(table)?.iter()? {
            let (k, v) = row?;
            x(&mut tx, sql, &[&k.value(), &(v.value() as i64)])?;
        }
    }
    tx.commit().map_err(pg_error)?;
    Ok(n)
}
