//! The writer's target on PostgreSQL: each batch of writes is one
//! transaction, each [`Write`] the statements that do on these tables what
//! `writer::Tables::apply` does on redb's.

use super::{connect, pg_error};
use crate::store::StoreError;
use crate::store::writer::{Batch, Committed, Failure, Target, Watchers, Write, WriteOutcome};
use crate::types::{
    ArtifactMeta, Event, ModelTotals, ModelUsage, RunId, RunRecord, RunStatus, Signal,
    WorkflowVersion, now,
};
use postgres::types::{Json, ToSql};
use postgres::{Client, Row, Statement, Transaction};
use std::collections::HashMap;

/// The writer's connection, and the statements prepared on it.
pub(in crate::store) struct PgTarget {
    url: String,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
    leases: std::sync::Arc<super::Leases>,
    /// Events committed but not yet durable, by run: told to every host
    /// with the next durable commit.
    untold: HashMap<RunId, u64>,
}

impl PgTarget {
    pub(in crate::store) fn new(url: &str, leases: std::sync::Arc<super::Leases>) -> PgTarget {
        PgTarget {
            url: url.to_owned(),
            client: None,
            statements: HashMap::new(),
            leases,
            untold: HashMap::new(),
        }
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = Some(connect(&self.url, self.leases.ttl)?);
        }
        self.client.as_mut().ok_or(StoreError::Closed)
    }
}

impl Target for PgTarget {
    fn transact(
        &mut self,
        batches: &[&Batch],
        mut durable: bool,
        watchers: &Watchers,
    ) -> Result<Committed, Failure> {
        let mut attempt = || -> Result<Committed, StoreError> {
            self.client()?;
            let (Some(client), statements, untold) =
                (self.client.as_mut(), &mut self.statements, &self.untold)
            else {
                return Err(StoreError::Closed);
            };
            let mut tx = client.transaction().map_err(pg_error)?;
            let mut apply = Apply {
                tx: &mut tx,
                statements,
                appended: Vec::new(),
            };
            let leases = &self.leases;
            let mut outcomes = Vec::with_capacity(batches.len());
            for batch in batches {
                let mut per_request = Vec::with_capacity(batch.requests.len());
                for req in &batch.requests {
                    if let Some(run) = apply.fenced(leases, &req.writes)? {
                        tracing::warn!(%run, "a write of a run whose lease this host lost was refused");
                        per_request.push(vec![WriteOutcome::Fenced]);
                        continue;
                    }
                    let mut out = Vec::with_capacity(req.writes.len());
                    for w in &req.writes {
                        out.push(apply.apply(w)?);
                    }
                    per_request.push(out);
                }
                outcomes.push(per_request);
            }
            if let Some(last) = batches.last() {
                apply.exec(
                    "INSERT INTO runway_meta (key, value) VALUES ('batch', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&(last.no as i64)],
                )?;
            }
            let appended = std::mem::take(&mut apply.appended);
            // As on redb: a followed run's events are shown only once
            // durable, so such a batch commits synchronously.
            if !durable && !appended.is_empty() {
                let w = watchers.lock();
                durable = !w.is_empty() && appended.iter().any(|(run, _)| w.contains_key(run));
            }
            if !durable {
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .map_err(pg_error)?;
            } else {
                // Every host's event streams learn what is durable now
                // (delivered at the commit).
                let mut told: HashMap<RunId, u64> = untold.clone();
                for (run, seq) in &appended {
                    let s = told.entry(*run).or_default();
                    *s = (*s).max(*seq);
                }
                let told: Vec<(RunId, u64)> = told.into_iter().collect();
                for chunk in told.chunks(super::lease::EVENTS_PER_NOTICE) {
                    let payload = super::Notice::Events(chunk.to_vec()).payload();
                    tx.execute(
                        "SELECT pg_notify($1, $2)",
                        &[&super::lease::CHANNEL, &payload],
                    )
                    .map_err(pg_error)?;
                }
            }
            tx.commit().map_err(pg_error)?;
            Ok(Committed {
                outcomes,
                appended,
                durable,
            })
        };
        match attempt() {
            Ok(done) => {
                if done.durable {
                    self.untold.clear();
                } else {
                    for (run, seq) in &done.appended {
                        let s = self.untold.entry(*run).or_default();
                        *s = (*s).max(*seq);
                    }
                }
                Ok(done)
            }
            Err(StoreError::Unavailable { reason, .. }) => {
                // The connection may be gone: open a new one next time.
                self.client = None;
                Err(Failure::Fault(reason))
            }
            Err(StoreError::Closed) => Err(Failure::Closed),
            Err(e) => Err(Failure::Rejected(e)),
        }
    }

    fn reopen(&mut self) -> Result<(), String> {
        self.client = None;
        let client = self.client().map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .map(drop)
            .map_err(|e| pg_error(e).to_string())
    }

    fn last_batch(&mut self) -> Result<u64, StoreError> {
        let row = self
            .client()?
            .query_opt("SELECT value FROM runway_meta WHERE key = 'batch'", &[])
            .map_err(pg_error)?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }
}

/// One transaction's writes.
struct Apply<'a, 't> {
    tx: &'a mut Transaction<'t>,
    statements: &'a mut HashMap<&'static str, Statement>,
    /// (run, newest seq) of every event append in this transaction.
    appended: Vec<(RunId, u64)>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The run a write is one of its own writes of (what its driver writes),
/// if it is: such writes need the run's lease.
fn own_run(w: &Write) -> Option<RunId> {
    match w {
        Write::PutRun(r) => Some(r.id),
        Write::AppendEvents(run, _)
        | Write::AppendJournal(run, _)
        | Write::TruncateJournal(run, _)
        | Write::Progress(run, _)
        | Write::SetStatus { run, .. }
        | Write::ChargeModel { run, .. } => Some(*run),
        Write::PutArtifact(m) => Some(m.run_id),
        Write::PutChild { parent, .. } => Some(*parent),
        _ => None,
    }
}

impl Apply<'_, '_> {
    /// The first run among `writes`' own runs whose lease this host holds
    /// but the database no longer gives it (taken over), or that has
    /// already ended there: the request must not apply. The lease rows checked stay locked until the commit, so
    /// no takeover slips in between.
    fn fenced(
        &mut self,
        leases: &super::Leases,
        writes: &[Write],
    ) -> Result<Option<RunId>, StoreError> {
        let mut checked: Vec<RunId> = Vec::new();
        for run in writes.iter().filter_map(own_run) {
            if checked.contains(&run) {
                continue;
            }
            checked.push(run);
            let Some(token) = leases.token(run) else {
                continue;
            };
            let current = self
                .one(
                    // A run that has ended takes no more of its own
                    // writes either: it ends once, whoever holds it.
                    "SELECT l.token FROM leases l JOIN active_runs a ON a.id = l.run
                     WHERE l.run = $1 AND l.host = $2 FOR SHARE OF l",
                    &[&run.to_string(), &leases.host],
                )?
                .map(|r| r.get::<_, i64>(0));
            if current != Some(token) {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql).map_err(pg_error)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        self.tx.execute(&s, params).map_err(|e| failed(sql, e))
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        self.tx.query(&s, params).map_err(|e| failed(sql, e))
    }

    fn one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn get_run(&mut self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        match self.one("SELECT record FROM runs WHERE id = $1", &[&id])? {
            Some(r) => Ok(Some(serde_json::from_value(r.get(0))?)),
            None => Ok(None),
        }
    }

    fn put_run(&mut self, run: &RunRecord) -> Result<(), StoreError> {
        let id = run.id.to_string();
        let parent = run.parent.map(|p| p.to_string());
        self.exec(
            "INSERT INTO runs (id, workflow, status, parent, record) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record",
            &[
                &id,
                &run.workflow,
                &run.status.as_str(),
                &parent,
                &Json(run),
            ],
        )?;
        if run.status.is_terminal() {
            self.exec("DELETE FROM active_runs WHERE id = $1", &[&id])?;
            self.exec("DELETE FROM progress WHERE run = $1", &[&id])?;
        } else {
            let cancel = run.status == RunStatus::Cancelling;
            self.exec(
                "INSERT INTO active_runs (id, cancel) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET cancel = excluded.cancel",
                &[&id, &cancel],
            )?;
        }
        Ok(())
    }

    fn deploy(
        &mut self,
        slug: &str,
        digest: &str,
        component: Option<&[u8]>,
        manifest_toml: &str,
        description: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        if let Some(bytes) = component {
            self.exec(
                "INSERT INTO components (digest, wasm) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&digest, &bytes],
            )?;
        }
        let current = self
            .one("SELECT latest FROM workflows WHERE slug = $1", &[&slug])?
            .map_or(0, |r| r.get::<_, i32>(0) as u32);
        let last = self
            .one(
                "SELECT max(version) FROM workflow_versions WHERE slug = $1",
                &[&slug],
            )?
            .and_then(|r| r.get::<_, Option<i32>>(0))
            .map_or(0, |v| v as u32);
        if current > 0
            && let Some(row) = self.one(
                "SELECT record FROM workflow_versions WHERE slug = $1 AND version = $2",
                &[&slug, &(current as i32)],
            )?
        {
            let newest: WorkflowVersion = serde_json::from_value(row.get(0))?;
            if newest.digest == digest && newest.manifest_toml == manifest_toml {
                return Ok(WriteOutcome::Version(current));
            }
        }
        let version = last.max(current) + 1;
        self.exec(
            "INSERT INTO workflows (slug, latest) VALUES ($1, $2)
             ON CONFLICT (slug) DO UPDATE SET latest = excluded.latest",
            &[&slug, &(version as i32)],
        )?;
        let rec = WorkflowVersion {
            slug: slug.to_owned(),
            version,
            digest: digest.to_owned(),
            manifest_toml: manifest_toml.to_owned(),
            description: description.map(str::to_owned),
            deployed_at: now(),
        };
        self.exec(
            "INSERT INTO workflow_versions (slug, version, record) VALUES ($1, $2, $3)
             ON CONFLICT (slug, version) DO UPDATE SET record = excluded.record",
            &[&slug, &(version as i32), &Json(&rec)],
        )?;
        Ok(WriteOutcome::Version(version))
    }

    fn signal(&mut self, run: RunId, signal: &Signal) -> Result<WriteOutcome, StoreError> {
        let mut signal = signal.clone();
        let key = run.to_string();
        if let Some(id) = &signal.id
            && let Some(row) = self.one(
                "SELECT seq FROM signal_ids WHERE run = $1 AND id = $2",
                &[&key, id],
            )?
        {
            return Ok(WriteOutcome::Signal {
                seq: row.get::<_, i64>(0) as u64,
                duplicate: true,
            });
        }
        let last: Option<i64> = self
            .one("SELECT max(seq) FROM signals WHERE run = $1", &[&key])?
            .and_then(|r| r.get(0));
        signal.seq = last.unwrap_or(0) as u64 + 1;
        let seq = signal.seq as i64;
        if let Some(id) = &signal.id {
            self.exec(
                "INSERT INTO signal_ids (run, id, seq) VALUES ($1, $2, $3)",
                &[&key, id, &seq],
            )?;
        }
        self.exec(
            "INSERT INTO signals (run, seq, signal) VALUES ($1, $2, $3)",
            &[&key, &seq, &Json(&signal)],
        )?;
        Ok(WriteOutcome::Signal {
            seq: signal.seq,
            duplicate: false,
        })
    }

    fn charge_model(
        &mut self,
        run: RunId,
        ancestors: &[RunId],
        usage: &ModelUsage,
    ) -> Result<WriteOutcome, StoreError> {
        let runs = std::iter::once((run, true)).chain(ancestors.iter().map(|a| (*a, false)));
        for (id, own) in runs {
            let key = id.to_string();
            let mut totals: ModelTotals =
                match self.one("SELECT totals FROM model_usage WHERE run = $1", &[&key])? {
                    Some(r) => serde_json::from_value(r.get(0))?,
                    None => ModelTotals::default(),
                };
            if own {
                totals.own.add(usage);
            }
            totals.tree.add(usage);
            self.exec(
                "INSERT INTO model_usage (run, totals) VALUES ($1, $2)
                 ON CONFLICT (run) DO UPDATE SET totals = excluded.totals",
                &[&key, &Json(&totals)],
            )?;
        }
        Ok(WriteOutcome::Done)
    }

    fn put_key(&mut self, key: &str, run: RunId) -> Result<(), StoreError> {
        let run = run.to_string();
        self.exec(
            "INSERT INTO idempotency_keys (key, run) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET run = excluded.run",
            &[&key, &run],
        )?;
        self.exec(
            "INSERT INTO run_keys (run, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&run, &key],
        )?;
        Ok(())
    }

    fn add_ref(&mut self, digest: &str, delta: i64) -> Result<u64, StoreError> {
        let row = self.one(
            "INSERT INTO blob_refs (digest, refs) VALUES ($1, greatest($2::bigint, 0))
             ON CONFLICT (digest) DO UPDATE SET refs = greatest(blob_refs.refs + $2::bigint, 0)
             RETURNING refs",
            &[&digest, &delta],
        )?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    fn put_artifact(&mut self, meta: &ArtifactMeta) -> Result<WriteOutcome, StoreError> {
        let run = meta.run_id.to_string();
        let old: Option<ArtifactMeta> = self
            .one(
                "SELECT meta FROM artifacts WHERE run = $1 AND name = $2",
                &[&run, &meta.name],
            )?
            .and_then(|r| serde_json::from_value(r.get(0)).ok());
        self.exec(
            "INSERT INTO artifacts (run, name, meta) VALUES ($1, $2, $3)
             ON CONFLICT (run, name) DO UPDATE SET meta = excluded.meta",
            &[&run, &meta.name, &Json(meta)],
        )?;
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

    fn append_events(&mut self, run: RunId, events: &[Event]) -> Result<WriteOutcome, StoreError> {
        let key = run.to_string();
        for e in events {
            self.exec(
                "INSERT INTO events (run, seq, event) VALUES ($1, $2, $3)
                 ON CONFLICT (run, seq) DO UPDATE SET event = excluded.event",
                &[&key, &(e.seq as i64), &Json(e)],
            )?;
        }
        if let Some(last) = events.last() {
            self.appended.push((run, last.seq));
        }
        Ok(WriteOutcome::Done)
    }

    fn delete_runs(&mut self, runs: &[RunId]) -> Result<WriteOutcome, StoreError> {
        let mut found = Vec::with_capacity(runs.len());
        for id in runs {
            let key = id.to_string();
            let Some(row) = self.one("SELECT record FROM runs WHERE id = $1", &[&key])? else {
                continue;
            };
            let record = serde_json::from_value::<RunRecord>(row.get(0)).ok();
            let active = self
                .one("SELECT 1 FROM active_runs WHERE id = $1", &[&key])?
                .is_some();
            if active || record.as_ref().is_some_and(|r| !r.status.is_terminal()) {
                return Ok(WriteOutcome::Ignored);
            }
            found.push((key, record.and_then(|r| r.parent)));
        }
        let mut blobs = Vec::new();
        for (k, parent) in &found {
            for sql in [
                "DELETE FROM runs WHERE id = $1",
                "DELETE FROM events WHERE run = $1",
                "DELETE FROM journal WHERE run = $1",
                "DELETE FROM signals WHERE run = $1",
                "DELETE FROM signal_ids WHERE run = $1",
                "DELETE FROM children WHERE parent = $1",
                "DELETE FROM progress WHERE run = $1",
                "DELETE FROM model_usage WHERE run = $1",
                "DELETE FROM tree_runs WHERE root = $1",
                "DELETE FROM approvals WHERE run = $1",
            ] {
                self.exec(sql, &[k])?;
            }
            if let Some(parent) = parent {
                self.exec(
                    "DELETE FROM children WHERE parent = $1 AND child = $2",
                    &[&parent.to_string(), k],
                )?;
            }
            // A key reused for a later run (after this one ended) stays.
            self.exec(
                "DELETE FROM idempotency_keys WHERE run = $1
                   AND key IN (SELECT key FROM run_keys WHERE run = $1)",
                &[k],
            )?;
            self.exec("DELETE FROM run_keys WHERE run = $1", &[k])?;
            let removed =
                self.query("DELETE FROM artifacts WHERE run = $1 RETURNING meta", &[k])?;
            for row in removed {
                if let Ok(m) = serde_json::from_value::<ArtifactMeta>(row.get(0))
                    && self.add_ref(&m.digest, -1)? == 0
                {
                    blobs.push(m.digest);
                }
            }
        }
        if found.is_empty() {
            return Ok(WriteOutcome::Ignored);
        }
        blobs.sort();
        blobs.dedup();
        Ok(WriteOutcome::Deleted { blobs })
    }

    fn apply(&mut self, w: &Write) -> Result<WriteOutcome, StoreError> {
        match w {
            Write::Deploy {
                slug,
                digest,
                component,
                manifest_toml,
                description,
            } => self.deploy(
                slug,
                digest,
                component.as_deref(),
                manifest_toml,
                description.as_deref(),
            ),
            Write::PutRun(run) => {
                // A cancel asked for while the run executed stands until it ends.
                let cancelling = !run.status.is_terminal()
                    && self
                        .one(
                            "SELECT cancel FROM active_runs WHERE id = $1",
                            &[&run.id.to_string()],
                        )?
                        .is_some_and(|r| r.get::<_, bool>(0));
                if cancelling {
                    let mut run = (**run).clone();
                    run.status = RunStatus::Cancelling;
                    if run.cancel_requested_by.is_none() {
                        run.cancel_requested_by = self
                            .get_run(&run.id.to_string())?
                            .and_then(|r| r.cancel_requested_by);
                    }
                    self.put_run(&run)?;
                } else {
                    self.put_run(run)?;
                }
                Ok(WriteOutcome::Done)
            }
            Write::SetStatus {
                run,
                status,
                wait,
                active_ms,
            } => {
                let Some(mut rec) = self.get_run(&run.to_string())? else {
                    return Ok(WriteOutcome::Ignored);
                };
                if rec.status.is_terminal() {
                    return Ok(WriteOutcome::Ignored);
                }
                if rec.status != RunStatus::Cancelling {
                    rec.status = *status;
                }
                rec.wait = wait.clone();
                if let Some(a) = active_ms {
                    rec.usage.active_ms = rec.usage.active_ms.max(*a);
                }
                self.put_run(&rec)?;
                Ok(WriteOutcome::Done)
            }
            Write::RequestCancel(run, by) => {
                let Some(mut rec) = self.get_run(&run.to_string())? else {
                    return Ok(WriteOutcome::Ignored);
                };
                if rec.status.is_terminal() {
                    return Ok(WriteOutcome::Ignored);
                }
                rec.status = RunStatus::Cancelling;
                rec.cancel_requested_by = rec.cancel_requested_by.or(by.clone());
                self.put_run(&rec)?;
                Ok(WriteOutcome::Done)
            }
            Write::Signal(run, signal) => self.signal(*run, signal),
            Write::StartRun {
                record,
                queued,
                key,
            } => {
                if let Some(k) = key {
                    // Inserted first: another host's start with the same
                    // key (a webhook, a cron instant) waits on this row,
                    // then finds it.
                    let id = record.id.to_string();
                    let inserted = self.exec(
                        "INSERT INTO idempotency_keys (key, run) VALUES ($1, $2)
                         ON CONFLICT (key) DO NOTHING",
                        &[k, &id],
                    )?;
                    if inserted == 0
                        && let Some(row) =
                            self.one("SELECT run FROM idempotency_keys WHERE key = $1", &[k])?
                        && let Ok(existing) = row.get::<_, &str>(0).parse()
                    {
                        return Ok(WriteOutcome::Existing(existing));
                    }
                    self.put_key(k, record.id)?;
                }
                self.append_events(record.id, std::slice::from_ref(queued))?;
                self.put_run(record)?;
                Ok(WriteOutcome::Done)
            }
            Write::CronNext(key, at) => {
                self.exec(
                    "INSERT INTO cron (key, next_ms) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET next_ms = excluded.next_ms",
                    &[key, &(*at as i64)],
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::CronState(key, state) => {
                self.exec(
                    "INSERT INTO cron_state (key, state) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                    &[key, &Json(state)],
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::DeleteWorkflow(slug) => {
                let n = self.exec("DELETE FROM workflows WHERE slug = $1", &[slug])?;
                Ok(if n > 0 {
                    WriteOutcome::Done
                } else {
                    WriteOutcome::Ignored
                })
            }
            Write::ChargeModel {
                run,
                ancestors,
                usage,
            } => self.charge_model(*run, ancestors, usage),
            Write::PutKey(k, run) => {
                self.put_key(k, *run)?;
                Ok(WriteOutcome::Done)
            }
            Write::PutChild {
                parent,
                child,
                root,
            } => {
                self.exec(
                    "INSERT INTO children (parent, child) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&parent.to_string(), &child.to_string()],
                )?;
                self.exec(
                    "INSERT INTO tree_runs (root, runs) VALUES ($1, 2)
                     ON CONFLICT (root) DO UPDATE SET runs = tree_runs.runs + 1",
                    &[&root.to_string()],
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::Progress(run, p) => {
                self.exec(
                    "INSERT INTO progress (run, output) VALUES ($1, $2)
                     ON CONFLICT (run) DO UPDATE SET output = excluded.output",
                    &[&run.to_string(), &Json(p)],
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::AppendEvents(run, events) => self.append_events(*run, events),
            Write::TruncateJournal(run, keep) => {
                self.exec(
                    "DELETE FROM journal WHERE run = $1 AND seq > $2",
                    &[&run.to_string(), &(*keep as i64)],
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::AppendJournal(run, entries) => {
                let key = run.to_string();
                for e in entries {
                    self.exec(
                        "INSERT INTO journal (run, seq, entry) VALUES ($1, $2, $3)
                         ON CONFLICT (run, seq) DO UPDATE SET entry = excluded.entry",
                        &[&key, &(e.seq as i64), &Json(e)],
                    )?;
                }
                Ok(WriteOutcome::Done)
            }
            Write::PutArtifact(meta) => self.put_artifact(meta),
            Write::DeleteRuns(runs) => self.delete_runs(runs),
            Write::PutApproval(a) => {
                self.exec(
                    "INSERT INTO approvals (run, name, workflow, status, record)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (run, name) DO UPDATE
                       SET status = excluded.status, record = excluded.record",
                    &[
                        &a.run_id.to_string(),
                        &a.name,
                        &a.workflow,
                        &a.status,
                        &Json(&**a),
                    ],
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::Audit(entry) => {
                self.exec(
                    "INSERT INTO audit (at, entry) VALUES (now(), $1)",
                    &[&Json(&**entry)],
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::ForgetBlob(digest) => {
                let n = self.exec(
                    "DELETE FROM blob_refs WHERE digest = $1 AND refs = 0",
                    &[digest],
                )?;
                Ok(if n > 0 {
                    WriteOutcome::Done
                } else {
                    WriteOutcome::Ignored
                })
            }
        }
    }
}

/// A statement's error, naming the statement when the server did not
/// fail (the statement itself is wrong: a bug worth a precise report).
fn failed(sql: &str, e: postgres::Error) -> StoreError {
    match pg_error(e) {
        StoreError::CommitFailed(m) => {
            let first = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
            StoreError::CommitFailed(format!("{m} (in {first} ...)"))
        }
        other => other,
    }
}
