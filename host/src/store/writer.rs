//! The single writer: group commit.
//!
//! Runs send their writes over a channel; one thread drains whatever has
//! arrived, applies it all in one redb transaction and commits once. A batch
//! is fsynced (`Durability::Immediate`) when anyone in it waits for
//! durability; otherwise it commits without fsync and becomes durable with
//! the next durable batch (redb orders commits). Writes from one sender are
//! applied in the order sent, so per-run sequence numbers stay gap-free.

use super::tables::*;
use super::{Db, StoreError, health};
use crate::sandbox::journal::JournalEntry;
use crate::types::{
    ArtifactMeta, Event, ModelTotals, ModelUsage, RunId, RunRecord, RunStatus, Signal, Wait,
    WorkflowVersion, now,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
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
        /// The time the run has executed so far, when it parks.
        active_ms: Option<u64>,
    },
    /// Marks a non-terminal run `cancelling` (and who asked, if known);
    /// outcome `Done` or `Ignored`.
    RequestCancel(RunId, Option<String>),
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
    /// A cron trigger's state: paused, last fire, last run.
    CronState(String, crate::types::CronState),
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
    /// Deletes ended runs with everything stored for them (events,
    /// journal, signals, keys, artifacts, usage); outcome
    /// [`WriteOutcome::Deleted`], or `Ignored` (nothing deleted) if any of
    /// them has not ended.
    DeleteRuns(Vec<RunId>),
    /// Drops the reference count of a blob whose file was reclaimed, if it
    /// is still zero.
    ForgetBlob(String),
    /// Appends to the audit trail (its `seq` is assigned here).
    Audit(Box<crate::types::AuditEntry>),
    /// Stores an approval (asked, decided, timed out).
    PutApproval(Box<crate::types::Approval>),
    /// Drops a run's journal entries after the first `keep` (a retry
    /// makes those calls again).
    TruncateJournal(RunId, u64),
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
    /// Runs were deleted; these artifact blobs are referenced no more
    /// (their files can be reclaimed).
    Deleted {
        blobs: Vec<String>,
    },
    /// The request was refused whole: one of its runs' lease was taken
    /// over by another host (PostgreSQL). Its caller gets
    /// [`StoreError::LeaseLost`].
    Fenced,
}

type Reply = oneshot::Sender<Result<Vec<WriteOutcome>, StoreError>>;

pub(super) struct Request {
    pub(super) writes: Vec<Write>,
    reply: Option<Reply>,
    /// The reply waits for an fsync (otherwise only for the commit).
    durable: bool,
    /// A storage failure seen outside the store (the artifact files): the
    /// writer degrades the store as if its own write had failed.
    fault: Option<String>,
    /// A client's request: if the store fails before it is committed, it
    /// is refused with [`StoreError::Unavailable`] (and not applied) rather
    /// than kept until the store recovers.
    refusable: bool,
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
        refusable: bool,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        self.submit(writes, durable, refusable).wait().await
    }

    /// Queues `writes` now (in order with everything queued before) and
    /// returns a ticket to wait for their commit with.
    pub(super) fn submit(&self, writes: Vec<Write>, durable: bool, refusable: bool) -> Ticket {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Request {
            writes,
            reply: Some(reply),
            durable,
            fault: None,
            refusable,
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
            fault: None,
            refusable: false,
        });
    }

    pub(super) fn report_fault(&self, reason: String) {
        let _ = self.tx.send(Request {
            writes: Vec::new(),
            reply: None,
            durable: true,
            fault: Some(reason),
            refusable: false,
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

/// Most batches committed without fsync in a row: they are kept until the
/// next durable commit (a fault loses them, see [`Writer::recover`]), so
/// this bounds what is kept.
const MAX_UNSYNCED: usize = 64;

/// Longest pause between two probes of a degraded store.
const MAX_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Bytes a probe writes: the disk must take at least this much again.
const PROBE_BYTES: usize = 1 << 20;

/// Runs someone follows, each with the newest event seq known durable.
pub(super) type Watchers = Arc<parking_lot::Mutex<HashMap<RunId, watch::Sender<u64>>>>;

/// The all-runs feed: for each durable commit, the runs it (and the
/// commits since the last durable one) appended events to, with their
/// newest seq.
pub(super) type Feed = tokio::sync::broadcast::Sender<Arc<[(RunId, u64)]>>;

/// Where the writer commits: the redb file or a PostgreSQL database.
pub(super) trait Target: Send + 'static {
    /// Applies `batches` in order in one transaction and commits it
    /// (durably if `durable`, or if someone follows a run it appends to).
    fn transact(
        &mut self,
        batches: &[&Batch],
        durable: bool,
        watchers: &Watchers,
    ) -> Result<Committed, Failure>;
    /// After a fault: whether the storage takes writes again, reopened.
    fn reopen(&mut self) -> Result<(), String>;
    /// The number of the newest batch the storage holds.
    fn last_batch(&mut self) -> Result<u64, StoreError>;
}

/// The redb file as the writer's target.
struct RedbTarget(Arc<Db>);

impl Target for RedbTarget {
    fn transact(
        &mut self,
        batches: &[&Batch],
        durable: bool,
        watchers: &Watchers,
    ) -> Result<Committed, Failure> {
        let open = self.0.file.read();
        let Some(db) = open.as_ref() else {
            return Err(Failure::Closed);
        };
        transact(db, batches, durable, watchers)
    }

    fn reopen(&mut self) -> Result<(), String> {
        health::probe(self.0.dir(), PROBE_BYTES)
            .map_err(|e| format!("the disk refuses writes: {e}"))?;
        self.0.reopen().map_err(|e| e.to_string())
    }

    fn last_batch(&mut self) -> Result<u64, StoreError> {
        let open = self.0.file.read();
        match open.as_ref() {
            Some(db) => last_batch(db),
            None => Err(StoreError::Closed),
        }
    }
}

pub(super) fn spawn(db: Arc<Db>, watchers: Watchers, feed: Feed, last_batch: u64) -> WriterHandle {
    let health = db.health.clone();
    spawn_for(
        Box::new(RedbTarget(db)),
        health,
        watchers,
        Some(feed),
        last_batch,
    )
}

/// Starts the writer thread on `target`.
pub(super) fn spawn_for(
    target: Box<dyn Target>,
    health: Arc<super::health::Health>,
    watchers: Watchers,
    feed: Option<Feed>,
    last_batch: u64,
) -> WriterHandle {
    let (tx, rx) = mpsc::unbounded_channel::<Request>();
    let writer = Writer {
        target,
        health,
        watchers,
        feed,
        untold: HashMap::new(),
        rx,
        next_no: last_batch + 1,
        backlog: Vec::new(),
        unsynced: Vec::new(),
        dirty: false,
    };
    std::thread::Builder::new()
        .name("runway-store-writer".into())
        .spawn(move || writer.run())
        .expect("spawning the store writer thread");
    WriterHandle { tx }
}

/// Requests committed in one transaction, numbered in commit order (the
/// number is stored with it, see `META`).
pub(super) struct Batch {
    pub(super) no: u64,
    pub(super) requests: Vec<Request>,
}

impl Batch {
    fn reply(self, outcomes: Vec<Vec<WriteOutcome>>) {
        for (req, out) in self.requests.into_iter().zip(outcomes) {
            if let Some(reply) = req.reply {
                let _ = reply.send(answer(out));
            }
        }
    }

    fn fail(self, e: impl Fn() -> StoreError) {
        for req in self.requests {
            if let Some(reply) = req.reply {
                let _ = reply.send(Err(e()));
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.requests.iter().all(|r| r.writes.is_empty())
    }
}

/// Why a transaction did not commit.
pub(super) enum Failure {
    /// The store is closed.
    Closed,
    /// The disk or the storage library failed: nothing in the batch is at
    /// fault, and it is applied again once the store recovers.
    Fault(String),
    /// The batch itself cannot be applied (a stored record that does not
    /// parse): its requests get the error.
    Rejected(StoreError),
}

/// What a committed transaction produced.
pub(super) struct Committed {
    /// Per batch, per request.
    pub(super) outcomes: Vec<Vec<Vec<WriteOutcome>>>,
    /// (run, newest seq) of the events it appended.
    pub(super) appended: Vec<(RunId, u64)>,
    pub(super) durable: bool,
}

struct Writer {
    target: Box<dyn Target>,
    health: Arc<super::health::Health>,
    watchers: Watchers,
    /// Told of appends once durable (on PostgreSQL, every host's listener
    /// tells it instead).
    feed: Option<Feed>,
    /// Appends of commits since the last durable one, for the feed.
    untold: HashMap<RunId, u64>,
    rx: mpsc::UnboundedReceiver<Request>,
    /// The number of the next batch.
    next_no: u64,
    /// Requests that arrived while the store was degraded, kept in order
    /// for the first batch after it recovers.
    backlog: Vec<Request>,
    /// Batches committed without fsync since the last durable commit. A
    /// fault means a reopen, which goes back to the last durable commit
    /// and so loses them although their writers were answered: they are
    /// applied again first.
    unsynced: Vec<Batch>,
    /// A commit since the last fsync that was not fsynced.
    dirty: bool,
}

impl Writer {
    fn run(mut self) {
        let mut requests = Vec::with_capacity(64);
        loop {
            if self.backlog.is_empty() {
                match self.rx.blocking_recv() {
                    Some(first) => requests.push(first),
                    None => return,
                }
            } else {
                requests.append(&mut self.backlog);
            }
            while requests.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            let batch = Batch {
                no: self.next_no,
                requests: std::mem::replace(&mut requests, Vec::with_capacity(64)),
            };
            self.next_no += 1;
            self.commit(batch);
        }
    }

    fn commit(&mut self, mut batch: Batch) {
        if let Some(reason) = batch.requests.iter_mut().find_map(|r| r.fault.take()) {
            return self.recover(batch, reason);
        }
        if !self.dirty && batch.is_empty() {
            // Everything is on disk already: a flush costs no fsync.
            let outcomes = batch.requests.iter().map(|_| Vec::new()).collect();
            return batch.reply(outcomes);
        }
        let durable =
            batch.requests.iter().any(|r| r.durable) || self.unsynced.len() >= MAX_UNSYNCED;
        let result = self.target.transact(&[&batch], durable, &self.watchers);
        match result {
            Err(Failure::Closed) => batch.fail(|| StoreError::Closed),
            Ok(mut done) => {
                self.dirty = !done.durable;
                self.notify(&done.appended, done.durable);
                let mut outcomes = done.outcomes.pop().unwrap_or_default();
                if done.durable {
                    self.unsynced.clear();
                    batch.reply(outcomes);
                } else {
                    let mut kept = Batch {
                        no: batch.no,
                        requests: Vec::with_capacity(batch.requests.len()),
                    };
                    for (mut req, out) in batch.requests.into_iter().zip(outcomes.drain(..)) {
                        if let Some(reply) = req.reply.take() {
                            let _ = reply.send(answer(out));
                        }
                        kept.requests.push(req);
                    }
                    self.unsynced.push(kept);
                }
            }
            Err(Failure::Rejected(e)) => {
                tracing::error!(error = %e, "store commit failed");
                let msg = e.to_string();
                batch.fail(|| StoreError::CommitFailed(msg.clone()));
            }
            Err(Failure::Fault(reason)) => self.recover(batch, reason),
        }
    }

    /// The store failed to commit `pending`: degrades it, then probes the
    /// disk with backoff until it takes writes, reopens the database and
    /// commits what it lost (`unsynced`) and `pending` durably. The
    /// requests of `pending` are answered then; until then their runs wait.
    fn recover(&mut self, mut pending: Batch, reason: String) {
        let health = self.health.clone();
        let mut backoff = Duration::from_millis(50);
        health.degrade(reason.clone(), backoff);
        // Clients are told now, and their writes are not applied; runs wait.
        let (refused, kept): (Vec<_>, Vec<_>) =
            pending.requests.drain(..).partition(|r| r.refusable);
        pending.requests = kept;
        refuse(refused, &reason);
        loop {
            let arrived: Vec<Request> = std::iter::from_fn(|| self.rx.try_recv().ok()).collect();
            let (refused, kept): (Vec<_>, Vec<_>) = arrived.into_iter().partition(|r| r.refusable);
            refuse(refused, &reason);
            self.backlog.extend(kept);
            if !pause(backoff, &health) {
                pending.fail(|| StoreError::Closed);
                for req in self.backlog.drain(..) {
                    if let Some(reply) = req.reply {
                        let _ = reply.send(Err(StoreError::Closed));
                    }
                }
                for b in self.unsynced.drain(..) {
                    b.fail(|| StoreError::Closed);
                }
                return;
            }
            backoff = (backoff * 2).min(MAX_PROBE_INTERVAL);
            if let Err(reason) = self.target.reopen() {
                health.degrade(reason, backoff);
                continue;
            }
            let stored = match self.target.last_batch() {
                Ok(n) => n,
                Err(e) => {
                    health.degrade(e.to_string(), backoff);
                    continue;
                }
            };
            if self.unsynced.first().is_some_and(|b| b.no > stored + 1) {
                tracing::error!(
                    stored,
                    "the reopened store lacks a batch it acknowledged as durable"
                );
            }
            let lost: Vec<&Batch> = self
                .unsynced
                .iter()
                .chain(std::iter::once(&pending))
                .filter(|b| b.no > stored)
                .collect();
            let result = self.target.transact(&lost, true, &self.watchers);
            match result {
                Err(Failure::Closed) => continue,
                Ok(mut done) => {
                    self.dirty = false;
                    self.unsynced.clear();
                    self.notify(&done.appended, true);
                    health.recover();
                    let outcomes = if pending.no > stored {
                        done.outcomes.pop().unwrap_or_default()
                    } else {
                        // The disk took `pending` although its commit
                        // failed: its outcomes are those of a replay.
                        pending.requests.iter().map(|_| Vec::new()).collect()
                    };
                    return pending.reply(outcomes);
                }
                Err(Failure::Fault(reason)) => health.degrade(reason, backoff),
                Err(Failure::Rejected(e)) => {
                    tracing::error!(error = %e, "store commit failed");
                    let msg = e.to_string();
                    let no = pending.no;
                    std::mem::replace(
                        &mut pending,
                        Batch {
                            no,
                            requests: Vec::new(),
                        },
                    )
                    .fail(|| StoreError::CommitFailed(msg.clone()));
                }
            }
        }
    }

    /// Tells followers of the runs that got events that they are durable,
    /// and the feed (if anyone listens) what is durable now.
    fn notify(&mut self, appended: &[(RunId, u64)], durable: bool) {
        notify_watchers(&self.watchers, appended);
        let Some(feed) = &self.feed else {
            return;
        };
        if feed.receiver_count() == 0 {
            self.untold.clear();
            return;
        }
        for (run, seq) in appended {
            let s = self.untold.entry(*run).or_default();
            *s = (*s).max(*seq);
        }
        if durable && !self.untold.is_empty() {
            let told: Arc<[(RunId, u64)]> = self.untold.drain().collect();
            let _ = feed.send(told);
        }
    }
}

/// Tells `watchers` of runs in `appended` that their events are durable up
/// to the numbers given.
pub(super) fn notify_watchers(watchers: &Watchers, appended: &[(RunId, u64)]) {
    if appended.is_empty() {
        return;
    }
    let mut w = watchers.lock();
    if w.is_empty() {
        return;
    }
    for (run, seq) in appended {
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

/// A request's answer: its outcomes, or the lease it lost.
fn answer(out: Vec<WriteOutcome>) -> Result<Vec<WriteOutcome>, StoreError> {
    match out.first() {
        Some(WriteOutcome::Fenced) => Err(StoreError::LeaseLost),
        _ => Ok(out),
    }
}

/// Answers clients' requests that the store could not commit.
fn refuse(requests: Vec<Request>, reason: &str) {
    for req in requests {
        if let Some(reply) = req.reply {
            let _ = reply.send(Err(StoreError::Unavailable {
                reason: reason.to_owned(),
                retry_after: 1,
            }));
        }
    }
}

/// Sleeps `d` in short steps; `false` once the store is closing.
fn pause(d: Duration, health: &super::health::Health) -> bool {
    let until = std::time::Instant::now() + d;
    loop {
        if health.closing() {
            return false;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// The number of the newest batch the store holds.
pub(super) fn last_batch(db: &Database) -> Result<u64, StoreError> {
    let tx = db.begin_read()?;
    Ok(tx.open_table(META)?.get(BATCH_NO)?.map_or(0, |v| v.value()))
}

/// Applies `batches` in order in one transaction and commits it (fsynced if
/// `durable`, or if someone follows a run it appends to). A panic inside
/// the storage library is a fault like an I/O error.
fn transact(
    db: &Database,
    batches: &[&Batch],
    mut durable: bool,
    watchers: &Watchers,
) -> Result<Committed, Failure> {
    let attempt = || -> Result<Committed, StoreError> {
        let mut tx = db.begin_write()?;
        let mut outcomes = Vec::with_capacity(batches.len());
        let appended;
        {
            let mut tables = Tables::open(&tx)?;
            for batch in batches {
                let mut per_request = Vec::with_capacity(batch.requests.len());
                for req in &batch.requests {
                    let mut out = Vec::with_capacity(req.writes.len());
                    for w in &req.writes {
                        out.push(tables.apply(w)?);
                    }
                    per_request.push(out);
                }
                outcomes.push(per_request);
            }
            if let Some(last) = batches.last() {
                tables.meta.insert(BATCH_NO, last.no)?;
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
        Ok(Committed {
            outcomes,
            appended,
            durable,
        })
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)) {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e @ StoreError::Corrupt(_))) => Err(Failure::Rejected(e)),
        Ok(Err(e)) => Err(Failure::Fault(e.to_string())),
        Err(panic) => Err(Failure::Fault(format!(
            "the storage library panicked: {}",
            super::panic_message(panic.as_ref())
        ))),
    }
}

/// Every table, opened once per transaction.
pub(super) struct Tables<'t> {
    pub(super) components: Table<'t, &'static str, &'static [u8]>,
    pub(super) workflows: Table<'t, &'static str, u32>,
    pub(super) versions: Table<'t, (&'static str, u32), &'static [u8]>,
    pub(super) runs: Table<'t, &'static str, &'static [u8]>,
    pub(super) active: Table<'t, &'static str, u8>,
    pub(super) events: Table<'t, (&'static str, u64), &'static [u8]>,
    pub(super) journal: Table<'t, (&'static str, u64), &'static [u8]>,
    pub(super) artifacts: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(super) signals: Table<'t, (&'static str, u64), &'static [u8]>,
    pub(super) signal_ids: Table<'t, (&'static str, &'static str), u64>,
    pub(super) keys: Table<'t, &'static str, &'static str>,
    pub(super) children: Table<'t, (&'static str, &'static str), u8>,
    pub(super) progress: Table<'t, &'static str, &'static [u8]>,
    pub(super) cron: Table<'t, &'static str, u64>,
    pub(super) cron_state: Table<'t, &'static str, &'static [u8]>,
    pub(super) model_usage: Table<'t, &'static str, &'static [u8]>,
    pub(super) tree_runs: Table<'t, &'static str, u64>,
    pub(super) run_keys: Table<'t, (&'static str, &'static str), u8>,
    pub(super) blob_refs: Table<'t, &'static str, u64>,
    pub(super) audit: Table<'t, u64, &'static [u8]>,
    /// The next audit seq, once looked up in this transaction.
    audit_next: Option<u64>,
    pub(super) approvals: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(super) meta: Table<'t, &'static str, u64>,
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
            cron_state: tx.open_table(CRON_STATE)?,
            model_usage: tx.open_table(MODEL_USAGE)?,
            tree_runs: tx.open_table(TREE_RUNS)?,
            run_keys: tx.open_table(RUN_KEYS)?,
            blob_refs: tx.open_table(BLOB_REFS)?,
            audit: tx.open_table(AUDIT)?,
            audit_next: None,
            approvals: tx.open_table(APPROVALS)?,
            meta: tx.open_table(META)?,
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
        slug: &str,
        digest: &str,
        component: Option<&[u8]>,
        manifest_toml: &str,
        description: Option<&str>,
    ) -> Result<WriteOutcome, StoreError> {
        if let Some(bytes) = component
            && self.components.get(digest)?.is_none()
        {
            self.components.insert(digest, bytes)?;
        }
        let current = self.workflows.get(slug)?.map(|v| v.value()).unwrap_or(0);
        // A deleted slug keeps its old versions (finished runs name
        // them); numbering goes on after the last.
        let last = self
            .versions
            .range((slug, 0)..=(slug, u32::MAX))?
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| k.value().1);
        if current > 0 {
            // Deploying what is already the newest version is a no-op.
            if let Some(v) = self.versions.get((slug, current))? {
                let newest: WorkflowVersion = serde_json::from_slice(v.value())?;
                if newest.digest == digest && newest.manifest_toml == manifest_toml {
                    return Ok(WriteOutcome::Version(current));
                }
            }
        }
        let version = last.max(current) + 1;
        self.workflows.insert(slug, version)?;
        let rec = WorkflowVersion {
            slug: slug.to_owned(),
            version,
            digest: digest.to_owned(),
            manifest_toml: manifest_toml.to_owned(),
            description: description.map(str::to_owned),
            deployed_at: now(),
        };
        self.versions
            .insert((slug, version), serde_json::to_vec(&rec)?.as_slice())?;
        Ok(WriteOutcome::Version(version))
    }

    /// Appends a signal to a run's inbox, unless its id was seen.
    fn signal(&mut self, run: RunId, signal: &Signal) -> Result<WriteOutcome, StoreError> {
        let mut signal = signal.clone();
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
        ancestors: &[RunId],
        usage: &ModelUsage,
    ) -> Result<WriteOutcome, StoreError> {
        let runs = std::iter::once((run, true)).chain(ancestors.iter().map(|a| (*a, false)));
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

    /// Applies one write. Takes it by reference: the writer keeps the
    /// writes of a batch committed without fsync, to apply again after a
    /// fault (see `Writer::recover`), so applying must be a function of the
    /// store and the write alone.
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
                // A cancel asked for while the run executed stands until the
                // run ends (the active index marks it, cheaper than a read
                // of the record).
                if !run.status.is_terminal()
                    && self
                        .active
                        .get(run.id.to_string().as_str())?
                        .is_some_and(|v| v.value() == CANCEL_REQUESTED)
                {
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
                    if let Some(id) = self.keys.get(k.as_str())?
                        && let Ok(id) = id.value().parse()
                    {
                        return Ok(WriteOutcome::Existing(id));
                    }
                    self.put_key(k, record.id)?;
                }
                append(
                    &mut self.events,
                    record.id,
                    std::iter::once((queued.seq, queued)),
                )?;
                self.put_run(record)?;
                Ok(WriteOutcome::Done)
            }
            Write::CronNext(key, at) => {
                self.cron.insert(key.as_str(), *at)?;
                Ok(WriteOutcome::Done)
            }
            Write::CronState(key, state) => {
                self.cron_state
                    .insert(key.as_str(), serde_json::to_vec(state)?.as_slice())?;
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
                self.children
                    .insert((parent.to_string().as_str(), child.to_string().as_str()), 0)?;
                let root = root.to_string();
                let runs = self.tree_runs.get(root.as_str())?.map_or(1, |v| v.value());
                self.tree_runs.insert(root.as_str(), runs + 1)?;
                Ok(WriteOutcome::Done)
            }
            Write::Progress(run, p) => {
                self.progress
                    .insert(run.to_string().as_str(), serde_json::to_vec(p)?.as_slice())?;
                Ok(WriteOutcome::Done)
            }
            Write::AppendEvents(run, events) => {
                if let Some(last) = events.last() {
                    self.appended.push((*run, last.seq));
                }
                append(&mut self.events, *run, events.iter().map(|e| (e.seq, e)))
            }
            Write::AppendJournal(run, entries) => {
                append(&mut self.journal, *run, entries.iter().map(|e| (e.seq, e)))
            }
            Write::PutArtifact(meta) => self.put_artifact(meta),
            Write::DeleteRuns(runs) => self.delete_runs(runs),
            Write::ForgetBlob(digest) => self.forget_blob(digest),
            Write::TruncateJournal(run, keep) => {
                let key = run.to_string();
                let first = keep.saturating_add(1);
                self.journal
                    .retain_in((key.as_str(), first)..=(key.as_str(), u64::MAX), |_, _| {
                        false
                    })?;
                Ok(WriteOutcome::Done)
            }
            Write::PutApproval(a) => {
                let run = a.run_id.to_string();
                self.approvals.insert(
                    (run.as_str(), a.name.as_str()),
                    serde_json::to_vec(&**a)?.as_slice(),
                )?;
                Ok(WriteOutcome::Done)
            }
            Write::Audit(entry) => {
                let seq = match self.audit_next {
                    Some(n) => n,
                    None => self.audit.last()?.map_or(0, |(k, _)| k.value()) + 1,
                };
                self.audit_next = Some(seq + 1);
                let mut entry = (**entry).clone();
                entry.seq = seq;
                self.audit
                    .insert(seq, serde_json::to_vec(&entry)?.as_slice())?;
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
