//! The single writer: group commit.
//!
//! Runs send their writes over a channel; one thread drains whatever has
//! arrived, applies it all in one redb transaction and commits once. A batch
//! is fsynced (`Durability::Immediate`) when anyone in it waits for
//! durability; otherwise it commits without fsync and becomes durable with
//! the next durable batch (redb orders commits). Writes from one sender are
//! applied in the order sent, so per-run sequence numbers stay gap-free.

use super::StoreError;
use super::tables::*;
use crate::journal::JournalEntry;
use crate::types::{ArtifactMeta, Event, RunId, RunRecord, WorkflowVersion, now};
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One change to the store.
#[derive(Debug)]
pub enum Write {
    /// Stores the component (if new) and adds the next version of `slug`.
    Deploy {
        slug: String,
        digest: String,
        /// `None` when the caller knows the digest is already stored.
        component: Option<Vec<u8>>,
        manifest_toml: String,
        description: Option<String>,
    },
    /// Inserts or replaces a run, keeping the active-run index in step.
    PutRun(Box<RunRecord>),
    AppendEvents(RunId, Vec<Event>),
    AppendJournal(RunId, Vec<JournalEntry>),
    PutArtifact(Box<ArtifactMeta>),
}

/// What a write produced, in the order the writes were given.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    /// The version a `Deploy` got.
    Version(u32),
}

type Reply = oneshot::Sender<Result<Vec<WriteOutcome>, StoreError>>;

struct Request {
    writes: Vec<Write>,
    reply: Option<Reply>,
}

#[derive(Clone)]
pub(super) struct WriterHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl WriterHandle {
    pub(super) async fn commit(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                writes,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) fn enqueue(&self, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        // A closed writer means the host is shutting down; the run's final
        // durable commit reports the error.
        let _ = self.tx.send(Request {
            writes,
            reply: None,
        });
    }
}

/// Most requests one transaction takes; bounds the latency of a batch.
const MAX_BATCH: usize = 4096;

pub(super) fn spawn(db: Arc<Database>) -> WriterHandle {
    let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
    std::thread::Builder::new()
        .name("runway-store-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(64);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                apply_batch(&db, &mut batch);
            }
        })
        .expect("spawning the store writer thread");
    WriterHandle { tx }
}

fn apply_batch(db: &Database, batch: &mut Vec<Request>) {
    let durable = batch.iter().any(|r| r.reply.is_some());
    let result = (|| -> Result<Vec<Vec<WriteOutcome>>, StoreError> {
        let mut tx = db.begin_write()?;
        if !durable {
            let _ = tx.set_durability(Durability::None);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut tables = Tables::open(&tx)?;
            for req in batch.iter_mut() {
                let mut out = Vec::with_capacity(req.writes.len());
                for w in req.writes.drain(..) {
                    out.push(tables.apply(w)?);
                }
                outcomes.push(out);
            }
        }
        tx.commit()?;
        Ok(outcomes)
    })();
    match result {
        Ok(outcomes) => {
            for (req, out) in batch.drain(..).zip(outcomes) {
                if let Some(reply) = req.reply {
                    let _ = reply.send(Ok(out));
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed");
            let msg = e.to_string();
            for req in batch.drain(..) {
                if let Some(reply) = req.reply {
                    let _ = reply.send(Err(StoreError::CommitFailed(msg.clone())));
                }
            }
        }
    }
}

/// Every table, opened once per transaction.
struct Tables<'t> {
    components: Table<'t, &'static str, &'static [u8]>,
    workflows: Table<'t, &'static str, u32>,
    versions: Table<'t, (&'static str, u32), &'static [u8]>,
    runs: Table<'t, &'static str, &'static [u8]>,
    active: Table<'t, &'static str, u8>,
    events: Table<'t, (&'static str, u64), &'static [u8]>,
    journal: Table<'t, (&'static str, u64), &'static [u8]>,
    artifacts: Table<'t, (&'static str, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            components: tx.open_table(COMPONENTS)?,
            workflows: tx.open_table(WORKFLOWS)?,
            versions: tx.open_table(VERSIONS)?,
            runs: tx.open_table(RUNS)?,
            active: tx.open_table(ACTIVE_RUNS)?,
            events: tx.open_table(EVENTS)?,
            journal: tx.open_table(JOURNAL)?,
            artifacts: tx.open_table(ARTIFACTS)?,
        })
    }

    fn apply(&mut self, w: Write) -> Result<WriteOutcome, StoreError> {
        match w {
            Write::Deploy {
                slug,
                digest,
                component,
                manifest_toml,
                description,
            } => {
                if let Some(bytes) = component
                    && self.components.get(digest.as_str())?.is_none()
                {
                    self.components.insert(digest.as_str(), bytes.as_slice())?;
                }
                let current = self
                    .workflows
                    .get(slug.as_str())?
                    .map(|v| v.value())
                    .unwrap_or(0);
                if current > 0 {
                    // Deploying what is already the newest version is a no-op.
                    if let Some(v) = self.versions.get((slug.as_str(), current))? {
                        let newest: WorkflowVersion = serde_json::from_slice(v.value())?;
                        if newest.digest == digest && newest.manifest_toml == manifest_toml {
                            return Ok(WriteOutcome::Version(current));
                        }
                    }
                }
                let version = current + 1;
                self.workflows.insert(slug.as_str(), version)?;
                let rec = WorkflowVersion {
                    slug: slug.clone(),
                    version,
                    digest,
                    manifest_toml,
                    description,
                    deployed_at: now(),
                };
                self.versions.insert(
                    (slug.as_str(), version),
                    serde_json::to_vec(&rec)?.as_slice(),
                )?;
                Ok(WriteOutcome::Version(version))
            }
            Write::PutRun(run) => {
                let key = run.id.to_string();
                self.runs
                    .insert(key.as_str(), serde_json::to_vec(&run)?.as_slice())?;
                if run.status.is_terminal() {
                    self.active.remove(key.as_str())?;
                } else {
                    self.active.insert(key.as_str(), 0)?;
                }
                Ok(WriteOutcome::Done)
            }
            Write::AppendEvents(run, events) => {
                append(&mut self.events, run, events.iter().map(|e| (e.seq, e)))
            }
            Write::AppendJournal(run, entries) => {
                append(&mut self.journal, run, entries.iter().map(|e| (e.seq, e)))
            }
            Write::PutArtifact(meta) => {
                let key = meta.run_id.to_string();
                self.artifacts.insert(
                    (key.as_str(), meta.name.as_str()),
                    serde_json::to_vec(&meta)?.as_slice(),
                )?;
                Ok(WriteOutcome::Done)
            }
        }
    }
}

/// Inserts `(run, seq) -> item` rows into a per-run log table.
fn append<'a, T: serde::Serialize + 'a>(
    table: &mut Table<'_, (&'static str, u64), &'static [u8]>,
    run: RunId,
    items: impl Iterator<Item = (u64, &'a T)>,
) -> Result<WriteOutcome, StoreError> {
    let key = run.to_string();
    for (seq, item) in items {
        table.insert((key.as_str(), seq), serde_json::to_vec(item)?.as_slice())?;
    }
    Ok(WriteOutcome::Done)
}
