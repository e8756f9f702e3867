//! Every read of the store, in SQL: what `Store`'s methods answer on
//! PostgreSQL (the redb versions are beside them in `store/mod.rs`).

use super::{Pg, pg_error};
use crate::sandbox::journal::JournalEntry;
use crate::store::{Ended, Progress, RunFilter, StoreError};
use crate::types::{
    ArtifactMeta, CronState, Event, ModelTotals, RunId, RunRecord, RunStatus, Signal,
    WorkflowVersion,
};
use serde::de::DeserializeOwned;

/// A stored run record, or `None` (logged) if it cannot be read, as on redb.
fn record(id: &str, value: serde_json::Value) -> Option<RunRecord> {
    match serde_json::from_value(value) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(run = id, error = %e, "a stored run record cannot be read");
            None
        }
    }
}

fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, StoreError> {
    Ok(serde_json::from_value(value)?)
}

impl Pg {
    pub(in crate::store) fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.read(move |c| {
            let row = c
                .query_opt("SELECT record FROM runs WHERE id = $1", &[&id.to_string()])
                .map_err(pg_error)?;
            row.map(|r| decode(r.get::<_, serde_json::Value>(0)))
                .transpose()
        })
    }

    pub(in crate::store) fn runs_page(
        &self,
        filter: &RunFilter<'_>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let status = filter.status.map(|s| s.as_str().to_owned());
        let workflow = filter.workflow.map(str::to_owned);
        let before = filter.before.map(|b| b.to_string());
        let since = filter.since.map(|b| b.to_string());
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |c| {
            let rows = c
                .query(
                    "SELECT id, record FROM runs
                     WHERE ($1::text IS NULL OR status = $1)
                       AND ($2::text IS NULL OR workflow = $2)
                       AND ($3::text IS NULL OR id < $3)
                       AND ($5::text IS NULL OR id >= $5)
                     ORDER BY id DESC LIMIT $4",
                    &[&status, &workflow, &before, &limit, &since],
                )
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .filter_map(|r| record(r.get(0), r.get(1)))
                .collect())
        })
    }

    pub(in crate::store) fn approval(
        &self,
        run: RunId,
        name: &str,
    ) -> Result<Option<crate::types::Approval>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            c.query_opt(
                "SELECT record FROM approvals WHERE run = $1 AND name = $2",
                &[&run.to_string(), &name],
            )
            .map_err(pg_error)?
            .map(|r| decode(r.get::<_, serde_json::Value>(0)))
            .transpose()
        })
    }

    pub(in crate::store) fn approvals(
        &self,
        filter: &crate::store::ApprovalFilter<'_>,
        limit: usize,
        keep: impl Fn(&crate::types::Approval) -> bool,
    ) -> Result<Vec<crate::types::Approval>, StoreError> {
        let status = filter.status.map(str::to_owned);
        let workflow = filter.workflow.map(str::to_owned);
        let run = filter.run.map(|r| r.to_string());
        let before = filter.before.map(|b| b.to_string());
        let mut out = Vec::new();
        let mut cursor = before;
        // Pages of candidates, filtered here by `keep`, until enough.
        loop {
            let (status, workflow, run, after) = (
                status.clone(),
                workflow.clone(),
                run.clone(),
                cursor.clone(),
            );
            let rows: Vec<(String, serde_json::Value)> = self.read(move |c| {
                Ok(c.query(
                    "SELECT run, record FROM approvals
                     WHERE ($1::text IS NULL OR status = $1)
                       AND ($2::text IS NULL OR workflow = $2)
                       AND ($3::text IS NULL OR run = $3)
                       AND ($4::text IS NULL OR run < $4)
                     ORDER BY run DESC, name DESC LIMIT 500",
                    &[&status, &workflow, &run, &after],
                )
                .map_err(pg_error)?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
            })?;
            let last = rows.last().map(|(r, _)| r.clone());
            let full = rows.len() == 500;
            for (_, v) in rows {
                if let Ok(a) = serde_json::from_value::<crate::types::Approval>(v)
                    && keep(&a)
                {
                    out.push(a);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if !full {
                return Ok(out);
            }
            cursor = last;
        }
    }

    pub(in crate::store) fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<crate::types::AuditEntry>, StoreError> {
        let before = before.map(|b| b as i64);
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |c| {
            let rows = c
                .query(
                    "SELECT seq, entry FROM audit WHERE ($1::bigint IS NULL OR seq < $1)
                     ORDER BY seq DESC LIMIT $2",
                    &[&before, &limit],
                )
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let mut e: crate::types::AuditEntry =
                        serde_json::from_value(r.get::<_, serde_json::Value>(1)).ok()?;
                    e.seq = r.get::<_, i64>(0) as u64;
                    Some(e)
                })
                .collect())
        })
    }

    pub(in crate::store) fn run_counts(
        &self,
        workflow: Option<&str>,
    ) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let workflow = workflow.map(str::to_owned);
        self.read(move |c| {
            let rows = c
                .query(
                    "SELECT status, count(*) FROM runs
                     WHERE ($1::text IS NULL OR workflow = $1) GROUP BY status",
                    &[&workflow],
                )
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let status = r.get::<_, &str>(0).parse().ok()?;
                    Some((status, r.get::<_, i64>(1) as u64))
                })
                .collect())
        })
    }

    pub(in crate::store) fn active_records(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.read(|c| {
            let rows = c
                .query(
                    "SELECT r.id, r.record FROM active_runs a JOIN runs r ON r.id = a.id ORDER BY a.id",
                    &[],
                )
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .filter_map(|r| record(r.get(0), r.get(1)))
                .collect())
        })
    }

    pub(in crate::store) fn active_runs(&self) -> Result<Vec<RunId>, StoreError> {
        self.read(|c| {
            let rows = c
                .query("SELECT id FROM active_runs ORDER BY id", &[])
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .filter_map(|r| r.get::<_, &str>(0).parse().ok())
                .collect())
        })
    }

    pub(in crate::store) fn events(
        &self,
        run: RunId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let after = after.min(i64::MAX as u64) as i64;
        self.read(move |c| {
            c.query(
                "SELECT event FROM events WHERE run = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&run.to_string(), &after, &limit],
            )
            .map_err(pg_error)?
            .into_iter()
            .map(|r| decode(r.get(0)))
            .collect()
        })
    }

    pub(in crate::store) fn journal(&self, run: RunId) -> Result<Vec<JournalEntry>, StoreError> {
        self.log("SELECT entry FROM journal WHERE run = $1 ORDER BY seq", run)
    }

    pub(in crate::store) fn signals(&self, run: RunId) -> Result<Vec<Signal>, StoreError> {
        self.log(
            "SELECT signal FROM signals WHERE run = $1 ORDER BY seq",
            run,
        )
    }

    fn log<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        run: RunId,
    ) -> Result<Vec<T>, StoreError> {
        self.read(move |c| {
            c.query(sql, &[&run.to_string()])
                .map_err(pg_error)?
                .into_iter()
                .map(|r| decode(r.get(0)))
                .collect()
        })
    }

    pub(in crate::store) fn cron_next(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            Ok(
                c.query_opt("SELECT next_ms FROM cron WHERE key = $1", &[&key])
                    .map_err(pg_error)?
                    .map(|r| r.get::<_, i64>(0) as u64),
            )
        })
    }

    pub(in crate::store) fn cron_state(&self, key: &str) -> Result<CronState, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            match c
                .query_opt("SELECT state FROM cron_state WHERE key = $1", &[&key])
                .map_err(pg_error)?
            {
                Some(r) => decode(r.get(0)),
                None => Ok(CronState::default()),
            }
        })
    }

    pub(in crate::store) fn tree_runs(&self, root: RunId) -> Result<u64, StoreError> {
        self.read(move |c| {
            Ok(c.query_opt(
                "SELECT runs FROM tree_runs WHERE root = $1",
                &[&root.to_string()],
            )
            .map_err(pg_error)?
            .map_or(1, |r| r.get::<_, i64>(0) as u64))
        })
    }

    pub(in crate::store) fn model_totals(&self, run: RunId) -> Result<ModelTotals, StoreError> {
        self.read(move |c| {
            match c
                .query_opt(
                    "SELECT totals FROM model_usage WHERE run = $1",
                    &[&run.to_string()],
                )
                .map_err(pg_error)?
            {
                Some(r) => decode(r.get(0)),
                None => Ok(ModelTotals::default()),
            }
        })
    }

    pub(in crate::store) fn run_for_key(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            Ok(
                c.query_opt("SELECT run FROM idempotency_keys WHERE key = $1", &[&key])
                    .map_err(pg_error)?
                    .and_then(|r| r.get::<_, &str>(0).parse().ok()),
            )
        })
    }

    pub(in crate::store) fn runs_for_key_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<RunId>, StoreError> {
        // LIKE's wildcards in the prefix match themselves.
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        self.read(move |c| {
            Ok(c.query(
                "SELECT run FROM idempotency_keys WHERE key LIKE $1 ORDER BY key",
                &[&pattern],
            )
            .map_err(pg_error)?
            .into_iter()
            .filter_map(|r| r.get::<_, &str>(0).parse().ok())
            .collect())
        })
    }

    pub(in crate::store) fn children(&self, parent: RunId) -> Result<Vec<RunId>, StoreError> {
        self.read(move |c| {
            Ok(c.query(
                "SELECT child FROM children WHERE parent = $1 ORDER BY child",
                &[&parent.to_string()],
            )
            .map_err(pg_error)?
            .into_iter()
            .filter_map(|r| r.get::<_, &str>(0).parse().ok())
            .collect())
        })
    }

    pub(in crate::store) fn progress(&self, run: RunId) -> Result<Progress, StoreError> {
        self.read(move |c| {
            let key = run.to_string();
            let last: Option<i64> = c
                .query_one("SELECT max(seq) FROM events WHERE run = $1", &[&key])
                .map_err(pg_error)?
                .get(0);
            let output = match c
                .query_opt("SELECT output FROM progress WHERE run = $1", &[&key])
                .map_err(pg_error)?
            {
                Some(r) => decode(r.get(0))?,
                None => [0, 0],
            };
            Ok(Progress {
                next_seq: last.unwrap_or(0) as u64 + 1,
                output,
            })
        })
    }

    pub(in crate::store) fn workflows(&self) -> Result<Vec<WorkflowVersion>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT v.record FROM workflows w
                 JOIN workflow_versions v ON v.slug = w.slug AND v.version = w.latest
                 ORDER BY w.slug",
                &[],
            )
            .map_err(pg_error)?
            .into_iter()
            .map(|r| decode(r.get(0)))
            .collect()
        })
    }

    pub(in crate::store) fn workflow(
        &self,
        slug: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowVersion>, StoreError> {
        let slug = slug.to_owned();
        let version = version.map(|v| v as i32);
        self.read(move |c| {
            let row = c
                .query_opt(
                    "SELECT v.record FROM workflow_versions v
                     WHERE v.slug = $1 AND v.version =
                       COALESCE($2::integer, (SELECT latest FROM workflows WHERE slug = $1))",
                    &[&slug, &version],
                )
                .map_err(pg_error)?;
            row.map(|r| decode(r.get(0))).transpose()
        })
    }

    pub(in crate::store) fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let digest = digest.to_owned();
        self.read(move |c| {
            Ok(
                c.query_opt("SELECT wasm FROM components WHERE digest = $1", &[&digest])
                    .map_err(pg_error)?
                    .map(|r| r.get(0)),
            )
        })
    }

    pub(in crate::store) fn artifacts(&self, run: RunId) -> Result<Vec<ArtifactMeta>, StoreError> {
        self.read(move |c| {
            c.query(
                "SELECT meta FROM artifacts WHERE run = $1 ORDER BY name",
                &[&run.to_string()],
            )
            .map_err(pg_error)?
            .into_iter()
            .map(|r| decode(r.get(0)))
            .collect()
        })
    }

    pub(in crate::store) fn artifact(
        &self,
        run: RunId,
        name: &str,
    ) -> Result<Option<ArtifactMeta>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            c.query_opt(
                "SELECT meta FROM artifacts WHERE run = $1 AND name = $2",
                &[&run.to_string(), &name],
            )
            .map_err(pg_error)?
            .map(|r| decode(r.get(0)))
            .transpose()
        })
    }

    pub(in crate::store) fn ended_roots_before(
        &self,
        before_ms: u64,
        after: Option<RunId>,
        limit: usize,
    ) -> Result<Vec<Ended>, StoreError> {
        let upper = RunId::first_at(before_ms).to_string();
        let after = after.map(|a| a.to_string());
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |c| {
            let rows = c
                .query(
                    "SELECT record FROM runs
                     WHERE parent IS NULL AND id < $1 AND ($2::text IS NULL OR id > $2)
                       AND status IN ('completed', 'failed', 'cancelled')
                     ORDER BY id LIMIT $3",
                    &[&upper, &after, &limit],
                )
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .filter_map(|r| ended(r.get(0)))
                .filter(|e| e.ended_ms < before_ms)
                .collect())
        })
    }

    pub(in crate::store) fn ended_roots(&self) -> Result<Vec<Ended>, StoreError> {
        self.read(|c| {
            let rows = c
                .query(
                    "SELECT record FROM runs
                     WHERE parent IS NULL AND status IN ('completed', 'failed', 'cancelled')
                     ORDER BY id DESC",
                    &[],
                )
                .map_err(pg_error)?;
            Ok(rows.into_iter().filter_map(|r| ended(r.get(0))).collect())
        })
    }

    pub(in crate::store) fn blob_refs(&self, digest: &str) -> Result<u64, StoreError> {
        let digest = digest.to_owned();
        self.read(move |c| {
            Ok(
                c.query_opt("SELECT refs FROM blob_refs WHERE digest = $1", &[&digest])
                    .map_err(pg_error)?
                    .map_or(0, |r| r.get::<_, i64>(0) as u64),
            )
        })
    }

    pub(in crate::store) fn unreferenced_blobs(
        &self,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |c| {
            Ok(c.query(
                "SELECT digest FROM blob_refs WHERE refs = 0 ORDER BY digest LIMIT $1",
                &[&limit],
            )
            .map_err(pg_error)?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
        })
    }
}

/// The ended root run a record is, as retention sees it.
fn ended(value: serde_json::Value) -> Option<Ended> {
    let bytes = serde_json::to_vec(&value).ok()?;
    crate::store::purge::ended_root(&bytes)
}

/// How long a write's pin on a blob lasts in the database: far longer
/// than any write takes to commit the record that names it.
const PIN_SECS: f64 = 600.0;

impl Pg {
    /// Stores a blob (or pins the one stored) for every host.
    pub(in crate::store) fn put_blob(&self, digest: &str, body: &[u8]) -> Result<(), StoreError> {
        let (digest, body) = (digest.to_owned(), body.to_vec());
        self.read(move |c| {
            c.execute(
                "INSERT INTO blobs (digest, bytes, pinned_until)
                 VALUES ($1, $2, now() + $3 * interval '1 second')
                 ON CONFLICT (digest) DO UPDATE SET pinned_until = excluded.pinned_until",
                &[&digest, &body, &PIN_SECS],
            )
            .map(drop)
            .map_err(pg_error)
        })
    }

    pub(in crate::store) fn get_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let digest = digest.to_owned();
        self.read(move |c| {
            Ok(
                c.query_opt("SELECT bytes FROM blobs WHERE digest = $1", &[&digest])
                    .map_err(pg_error)?
                    .map(|r| r.get(0)),
            )
        })
    }

    /// Deletes a blob no artifact names and no write pins; whether it is
    /// gone.
    pub(in crate::store) fn reclaim_blob(&self, digest: &str) -> Result<bool, StoreError> {
        let digest = digest.to_owned();
        self.read(move |c| {
            c.execute(
                "DELETE FROM blobs b WHERE b.digest = $1 AND b.pinned_until < now()
                   AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.digest = b.digest AND r.refs > 0)",
                &[&digest],
            )
            .map_err(pg_error)?;
            Ok(c.query_opt("SELECT 1 FROM blobs WHERE digest = $1", &[&digest])
                .map_err(pg_error)?
                .is_none())
        })
    }
}
