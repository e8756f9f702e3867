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
use crate::sandbox::journal::JournalEntry;
use crate::types::{
    ArtifactMeta, Event, ModelTotals, ModelUsage, RunId, RunRecord, RunStatus, Signal, Wait,
    WorkflowVersion, now,
};
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

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
    /// Moves a run between running and parked. Never touches a terminal
    /// run, and a run being cancelled stays `cancelling`.
    SetStatus {
        run: RunId,
        status: RunStatus,
        wait: Option<Wait>,
    },
    /// Marks a non-terminal run `cancelling`; outcome `Done` or `Ignored`.
    RequestCancel(RunId),
    /// Appends a signal to a run's inbox; outcome `Signal`.
    Signal(RunId, Box<Signal>),
    /// Records an idempotency key for a run.
    PutKey(String, RunId),
    /// Queues a new run (record and `queued` event) unless `key` already
    /// names a run; outcome `Done` or `Existing`.
    StartRun {
        record: Box<RunRecord>,
        queued: Event,
        key: Option<String>,
    },
    /// A cron trigger's next fire time.
    CronNext(String, u64),
    /// Charges one model call to a run (its own and its tree's usage) and
    /// to the tree usage of each of its ancestors.
    ChargeModel {
        run: RunId,
        ancestors: Vec<RunId>,
        usage: ModelUsage,
    },
    /// Removes a workflow from the list of deployed ones (its versions stay
    /// for the runs that name them).
    DeleteWorkflow(String),
    /// Records that `child` was started by `parent`, in `root`'s tree.
    PutChild {
        parent: RunId,
        child: RunId,
        root: RunId,
    },
    /// Bytes of stdout and stderr recorded as events so far, so a resumed
    /// run does not print them again.
    Progress(RunId, [u64; 2]),
}

/// What a write produced, in the order the writes were given.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    /// The version a `Deploy` got.
    Version(u32),
    /// The write did not apply (e.g. cancelling a run that has ended).
    Ignored,
    /// Where a signal landed in the inbox, and whether its id was seen before.
    Signal {
        seq: u64,
        duplicate: bool,
    },
    /// The idempotency key already names this run.
    Existing(RunId),
}

type Reply = oneshot::Sender<Result<Vec<WriteOutcome>, StoreError>>;

struct Request {
    writes: Vec<Write>,
    reply: Option<Reply>,
    /// The reply waits for an fsync (otherwise only for the commit).
    durable: bool,
}

#[derive(Clone)]
pub(super) struct WriterHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl WriterHandle {
    pub(super) async fn commit(
        &self,
        writes: Vec<Write>,
        durable: bool,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        self.submit(writes, durable).wait().await
    }

    /// Queues `writes` now (in order with everything queued before) and
    /// returns a ticket to wait for their commit with.
    pub(super) fn submit(&self, writes: Vec<Write>, durable: bool) -> Ticket {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Request {
            writes,
            reply: Some(reply),
            durable,
        });
        Ticket(sent.ok().map(|()| rx))
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
            durable: false,
        });
    }
}

/// A submitted commit.
pub struct Ticket(Option<oneshot::Receiver<Result<Vec<WriteOutcome>, StoreError>>>);

impl Ticket {
    /// Waits until the writes are committed (durably, if asked).
    pub async fn wait(self) -> Result<Vec<WriteOutcome>, StoreError> {
        match self.0 {
            Some(rx) => rx.await.map_err(|_| StoreError::Closed)?,
            None => Err(StoreError::Closed),
        }
    }
}

/// Most requests one transaction takes; bounds the latency of a batch.
const MAX_BATCH: usize = 4096;

/// Runs someone follows, each with the newest event seq known durable.
pub(super) type Watchers = Arc<parking_lot::Mutex<HashMap<RunId, watch::Sender<u64>>>>;

pub(super) fn spawn(db: Arc<super::Db>, watchers: Watchers) -> WriterHandle {
    let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
    std::thread::Builder::new()
        .name("runway-store-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(64);
            // A commit since the last fsync that was not fsynced.
            let mut dirty = false;
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                let open = db.0.read();
                match open.as_ref() {
                    Some(db) => apply_batch(db, &mut batch, &watchers, &mut dirty),
                    None => {
                        for req in batch.drain(..) {
                            if let Some(reply) = req.reply {
                                let _ = reply.send(Err(StoreError::Closed));
                            }
                        }
                    }
                }
            }
        })
        .expect("spawning the store writer thread");
    WriterHandle { tx }
}

fn apply_batch(db: &Database, batch: &mut Vec<Request>, watchers: &Watchers, dirty: &mut bool) {
    let mut durable = batch.iter().any(|r| r.durable);
    if !*dirty && batch.iter().all(|r| r.writes.is_empty()) {
        // Everything is on disk already: a flush costs no fsync.
        for req in batch.drain(..) {
            if let Some(reply) = req.reply {
                let _ = reply.send(Ok(Vec::new()));
            }
        }
        return;
    }
    let mut appended = Vec::new();
    let result = (|| -> Result<Vec<Vec<WriteOutcome>>, StoreError> {
        let mut tx = db.begin_write()?;
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
            appended = std::mem::take(&mut tables.appended);
        }
        // Someone follows a run in this batch: its events are shown only
        // once durable (the commit rule), so this batch is fsynced.
        if !durable && !appended.is_empty() {
            let w = watchers.lock();
            durable = !w.is_empty() && appended.iter().any(|(run, _)| w.contains_key(run));
        }
        if !durable {
            let _ = tx.set_durability(Durability::None);
        }
        tx.commit()?;
        *dirty = !durable;
        Ok(outcomes)
    })();
    if result.is_ok() && !appended.is_empty() {
        let mut w = watchers.lock();
        if !w.is_empty() {
            for (run, seq) in &appended {
                if let Some(tx) = w.get(run) {
                    if tx.receiver_count() == 0 {
                        w.remove(run);
                    } else {
                        tx.send_if_modified(|s| {
                            let newer = *seq > *s;
                            *s = (*s).max(*seq);
                            newer
                        });
                    }
                }
            }
        }
    }
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
    signals: Table<'t, (&'static str, u64), &'static [u8]>,
    signal_ids: Table<'t, (&'static str, &'static str), u64>,
    keys: Table<'t, &'static str, &'static str>,
    children: Table<'t, (&'static str, &'static str), u8>,
    progress: Table<'t, &'static str, &'static [u8]>,
    cron: Table<'t, &'static str, u64>,
    model_usage: Table<'t, &'static str, &'static [u8]>,
    tree_runs: Table<'t, &'static str, u64>,
    /// (run, newest seq) of every event append in this transaction.
    appended: Vec<(RunId, u64)>,
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
            signals: tx.open_table(SIGNALS)?,
            signal_ids: tx.open_table(SIGNAL_IDS)?,
            keys: tx.open_table(KEYS)?,
            children: tx.open_table(CHILDREN)?,
            progress: tx.open_table(PROGRESS)?,
            cron: tx.open_table(CRON)?,
            model_usage: tx.open_table(MODEL_USAGE)?,
            tree_runs: tx.open_table(TREE_RUNS)?,
            appended: Vec::new(),
        })
    }

    fn get_run(&self, key: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(match self.runs.get(key)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    fn put_run(&mut self, run: &RunRecord) -> Result<(), StoreError> {
        let key = run.id.to_string();
        self.runs
            .insert(key.as_str(), serde_json::to_vec(run)?.as_slice())?;
        if run.status.is_terminal() {
            self.active.remove(key.as_str())?;
            self.progress.remove(key.as_str())?;
        } else {
            let flag = if run.status == RunStatus::Cancelling {
                CANCEL_REQUESTED
            } else {
                0
            };
            self.active.insert(key.as_str(), flag)?;
        }
        Ok(())
    }

    /// The next version of `slug` (or the newest, if it is the same).
    fn deploy(
        &mut self,
        slug: String,
        digest: String,
        component: Option<Vec<u8>>,
        manifest_toml: String,
        description: Option<String>,
    ) -> Result<WriteOutcome, StoreError> {
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
        // A deleted slug keeps its old versions (finished runs name
        // them); numbering goes on after the last.
        let last = self
            .versions
            .range((slug.as_str(), 0)..=(slug.as_str(), u32::MAX))?
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| k.value().1);
        if current > 0 {
            // Deploying what is already the newest version is a no-op.
            if let Some(v) = self.versions.get((slug.as_str(), current))? {
                let newest: WorkflowVersion = serde_json::from_slice(v.value())?;
                if newest.digest == digest && newest.manifest_toml == manifest_toml {
                    return Ok(WriteOutcome::Version(current));
                }
            }
        }
        let version = last.max(current) + 1;
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

    /// Appends a signal to a run's inbox, unless its id was seen.
    fn signal(&mut self, run: RunId, mut signal: Signal) -> Result<WriteOutcome, StoreError> {
        let key = run.to_string();
        if let Some(id) = &signal.id
            && let Some(seq) = self.signal_ids.get((key.as_str(), id.as_str()))?
        {
            return Ok(WriteOutcome::Signal {
                seq: seq.value(),
                duplicate: true,
            });
        }
        let last = self
            .signals
            .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| k.value().1);
        signal.seq = last + 1;
        if let Some(id) = &signal.id {
            self.signal_ids
                .insert((key.as_str(), id.as_str()), signal.seq)?;
        }
        self.signals.insert(
            (key.as_str(), signal.seq),
            serde_json::to_vec(&signal)?.as_slice(),
        )?;
        Ok(WriteOutcome::Signal {
            seq: signal.seq,
            duplicate: false,
        })
    }

    /// Charges a model call to the run and (in its tree figure) to each ancestor.
    fn charge_model(
        &mut self,
        run: RunId,
        ancestors: Vec<RunId>,
        usage: &ModelUsage,
    ) -> Result<WriteOutcome, StoreError> {
        let runs = std::iter::once((run, true)).chain(ancestors.into_iter().map(|a| (a, false)));
        for (id, own) in runs {
            let key = id.to_string();
            let mut totals: ModelTotals = match self.model_usage.get(key.as_str())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => ModelTotals::default(),
            };
            if own {
                totals.own.add(usage);
            }
            totals.tree.add(usage);
            self.model_usage
                .insert(key.as_str(), serde_json::to_vec(&totals)?.as_slice())?;
        }
        Ok(WriteOutcome::Done)
    }

    fn apply(&mut self, w: Write) -> Result<WriteOutcome, StoreError> {
        match w {
            Write::Deploy {
                slug,
                digest,
                component,
                manifest_toml,
                description,
            } => self.deploy(slug, digest, component, manifest_toml, description),
            Write::PutRun(mut run) => {
                // A cancel asked for while the run executed stands until the
                // run ends (the active index marks it, cheaper than a read
                // of the record).
                if !run.status.is_terminal()
                    && self
                        .active
                        .get(run.id.to_string().as_str())?
                        .is_some_and(|v| v.value() == CANCEL_REQUESTED)
                {
                    run.status = RunStatus::Cancelling;
                }
                self.put_run(&run)?;
                Ok(WriteOutcome::Done)
            }
            Write::SetStatus { run, status, wait } => {
                let Some(mut rec) = self.get_run(&run.to_string())? else {
                    return Ok(WriteOutcome::Ignored);
                };
                if rec.status.is_terminal() {
                    return Ok(WriteOutcome::Ignored);
                }
                if rec.status != RunStatus::Cancelling {
                    rec.status = status;
                }
                rec.wait = wait;
                self.put_run(&rec)?;
                Ok(WriteOutcome::Done)
            }
            Write::RequestCancel(run) => {
                let Some(mut rec) = self.get_run(&run.to_string())? else {
                    return Ok(WriteOutcome::Ignored);
                };
                if rec.status.is_terminal() {
                    return Ok(WriteOutcome::Ignored);
                }
                rec.status = RunStatus::Cancelling;
                self.put_run(&rec)?;
                Ok(WriteOutcome::Done)
            }
            Write::Signal(run, signal) => self.signal(run, *signal),
            Write::StartRun {
                record,
                queued,
                key,
            } => {
                if let Some(k) = &key {
                    if let Some(id) = self.keys.get(k.as_str())?
                        && let Ok(id) = id.value().parse()
                    {
                        return Ok(WriteOutcome::Existing(id));
                    }
                    self.keys
                        .insert(k.as_str(), record.id.to_string().as_str())?;
                }
                append(
                    &mut self.events,
                    record.id,
                    std::iter::once((queued.seq, &queued)),
                )?;
                self.put_run(&record)?;
                Ok(WriteOutcome::Done)
            }
            Write::CronNext(key, at) => {
                self.cron.insert(key.as_str(), at)?;
                Ok(WriteOutcome::Done)
            }
            Write::DeleteWorkflow(slug) => Ok(match self.workflows.remove(slug.as_str())? {
                Some(_) => WriteOutcome::Done,
                None => WriteOutcome::Ignored,
            }),
            Write::ChargeModel {
                run,
                ancestors,
                usage,
            } => self.charge_model(run, ancestors, &usage),
            Write::PutKey(k, run) => {
                self.keys.insert(k.as_str(), run.to_string().as_str())?;
                Ok(WriteOutcome::Done)
            }
            Write::PutChild {
                parent,
                child,
                root,
            } => {
                self.children
                    .insert((parent.to_string().as_str(), child.to_string().as_str()), 0)?;
                let root = root.to_string();
                let runs = self.tree_runs.get(root.as_str())?.map_or(1, |v| v.value());
                self.tree_runs.insert(root.as_str(), runs + 1)?;
                Ok(WriteOutcome::Done)
            }
            Write::Progress(run, p) => {
                self.progress
                    .insert(run.to_string().as_str(), serde_json::to_vec(&p)?.as_slice())?;
                Ok(WriteOutcome::Done)
            }
            Write::AppendEvents(run, events) => {
                if let Some(last) = events.last() {
                    self.appended.push((run, last.seq));
                }
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
