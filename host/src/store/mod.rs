//! The run store: one redb file in the data directory.
//!
//! Reads open their own read transaction (redb is MVCC: readers never wait
//! for the writer). Every write goes through one writer thread that batches
//! the writes of all runs into one transaction (group commit, see
//! `writer`), so durability costs one fsync per batch, not per event.

mod backup;
pub mod blobs;
mod doctor;
mod health;
mod pg;
mod purge;
mod tables;
mod writer;

pub use backup::Snapshot;
pub use doctor::{Checkup, doctor};
pub use health::Degraded;
pub use pg::is_url as is_postgres_url;
pub use pg::{Copied, Notice, copy_from_redb, ensure_layout};
pub use purge::Ended;
pub use writer::{Ticket, Write, WriteOutcome};

use crate::sandbox::journal::JournalEntry;
use crate::types::{ArtifactMeta, Event, RunId, RunRecord, RunStatus, Signal, WorkflowVersion};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tables::*;

/// Which approvals a listing shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApprovalFilter<'a> {
    /// `pending`, `decided` or `timed_out`.
    pub status: Option<&'a str>,
    pub workflow: Option<&'a str>,
    pub run: Option<RunId>,
    /// Only approvals of runs strictly older than this one (the cursor).
    pub before: Option<RunId>,
}

/// Which runs a listing shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunFilter<'a> {
    pub status: Option<RunStatus>,
    pub workflow: Option<&'a str>,
    /// Only runs strictly older than this one (a page cursor, or the end
    /// of a time range: see [`RunId::first_at`]).
    pub before: Option<RunId>,
    /// Only runs this one or newer (the start of a time range).
    pub since: Option<RunId>,
}

/// Something went wrong reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory is in use by another runway process ({0}): if it is `runway serve`, talk to it with --server URL (or RUNWAY_SERVER); otherwise stop it or use --data-dir"
    )]
    Locked(String),
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    #[error("store: corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("store: commit failed: {0}")]
    CommitFailed(String),
    #[error("store: the writer has stopped")]
    Closed,
    /// The store was written by a newer Runway, in a layout this one does
    /// not know.
    #[error(
        "the store was written by a newer Runway (layout {found}; this one knows up to {known}): run that version, or restore a backup made by this one"
    )]
    Newer { found: u64, known: u64 },
    /// The store file is missing or empty although the data directory
    /// holds data: starting would silently lose every run.
    #[error(
        "{0} is missing or empty, but the data directory holds artifacts or compiled components: restore it from a backup, or set {ALLOW_EMPTY_STORE}=1 to start with an empty store"
    )]
    Missing(String),
    /// The store file cannot be opened.
    #[error(
        "{0} is damaged ({1}): restore it from a backup, or repair it with `runway doctor --repair` (which keeps a copy)"
    )]
    Damaged(String, String),
    /// A part of the store file cannot be read (it is damaged).
    #[error(
        "a part of the store cannot be read ({0}): the file is damaged; check it with `runway doctor`"
    )]
    Unreadable(String),
    /// Another host took the run over (its lease expired here): this host
    /// must stop driving it.
    #[error("the run's lease was taken over by another host")]
    LeaseLost,
    /// Something only a PostgreSQL store has (blobs in the database).
    #[error("this store is a redb file, not PostgreSQL")]
    NotPostgres,
    /// `--store` is not a PostgreSQL URL that can be used.
    #[error("the store URL: {0}")]
    Url(String),
    /// Something only a redb store has (a file backup, a repair).
    #[error(
        "this store is in PostgreSQL: back it up with pg_dump, check it with PostgreSQL's tools"
    )]
    NotRedb,
    /// The store takes no writes now (a full or failing disk); it recovers
    /// by itself once the disk takes writes again.
    #[error("the store takes no writes now: {reason}")]
    Unavailable {
        reason: String,
        /// Seconds until the store checks the disk again.
        retry_after: u64,
    },
}

impl StoreError {
    /// Whether this is the disk's or the storage library's failure (the
    /// store reports itself unavailable and recovers), not the caller's.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. }
                | StoreError::Db(
                    redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
                )
        )
    }
}

/// Set to start an empty store in a data directory that holds data.
pub const ALLOW_EMPTY_STORE: &str = "RUNWAY_ALLOW_EMPTY_STORE";

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Where a run's event log and program output stand, so that a resumed
/// run goes on from there without repeating what is already recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// The next event sequence number.
    pub next_seq: u64,
    /// Bytes of stdout and stderr already recorded as events.
    pub output: [u64; 2],
}

/// redb's page cache. Its default (1 GiB) lets a long-lived server grow
/// with its history; the hot pages (active runs, recent events) fit in far
/// less.
const CACHE_BYTES: usize = 32 << 20;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    health: Arc<health::Health>,
    writer: writer::WriterHandle,
    watchers: writer::Watchers,
    feed: writer::Feed,
}

/// A new all-runs feed (a slow reader skips ahead: see [`Store::feed`]).
fn new_feed() -> writer::Feed {
    tokio::sync::broadcast::channel(1024).0
}

/// Where the store keeps its tables.
#[derive(Clone)]
enum Backend {
    /// `runway.redb` in the data directory (the default).
    Redb(Arc<Db>),
    /// A PostgreSQL database (`--store postgres://…`).
    Postgres(Arc<pg::Pg>),
}

impl Store {
    /// Opens (or creates) `runway.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("runway.redb");
        let empty = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        if empty && std::env::var_os(ALLOW_EMPTY_STORE).is_none() && holds_data(dir) {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        let db = open_file(&path)?;
        let damaged =
            |e: StoreError| StoreError::Damaged(path.display().to_string(), e.to_string());
        tables::create_all(&db).map_err(|e| damaged(e.into()))?;
        tables::migrate(&db).map_err(|e| match e {
            e @ StoreError::Newer { .. } => e,
            e => damaged(e),
        })?;
        let last_batch = writer::last_batch(&db).map_err(damaged)?;
        let db = Arc::new(Db {
            file: parking_lot::RwLock::new(Some(db)),
            path,
            health: Default::default(),
        });
        let watchers = writer::Watchers::default();
        let feed = new_feed();
        let writer = writer::spawn(db.clone(), watchers.clone(), feed.clone(), last_batch);
        Ok(Store {
            health: db.health.clone(),
            backend: Backend::Redb(db),
            writer,
            watchers,
            feed,
        })
    }

    /// Connects to the PostgreSQL database at `url`, creating its tables if
    /// it has none (refusing one written by a newer Runway).
    pub fn open_postgres(url: &str, lease: std::time::Duration) -> Result<Store, StoreError> {
        use writer::Target;
        // The client blocks on a runtime of its own: not on the caller's.
        let owned = url.to_owned();
        let leases = Arc::new(pg::Leases::new(lease));
        let (pg, target, last_batch) = std::thread::spawn(move || {
            let pg = pg::Pg::open(&owned, leases.clone())?;
            let mut target = pg::PgTarget::new(&owned, leases);
            let last_batch = target.last_batch()?;
            Ok::<_, StoreError>((pg, target, last_batch))
        })
        .join()
        .map_err(|p| StoreError::CommitFailed(panic_message(p.as_ref())))??;
        let health = Arc::new(health::Health::default());
        let watchers = writer::Watchers::default();
        let writer = writer::spawn_for(
            Box::new(target),
            health.clone(),
            watchers.clone(),
            None,
            last_batch,
        );
        Ok(Store {
            backend: Backend::Postgres(Arc::new(pg)),
            health,
            writer,
            watchers,
            feed: new_feed(),
        })
    }

    /// Whether the tables are in PostgreSQL (not a redb file).
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Takes the lease of `run` for this host: whether this host may drive
    /// it (on redb, always: one host has the file).
    pub fn claim(&self, run: RunId) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(true),
            Backend::Postgres(pg) => pg.claim(run),
        }
    }

    /// Gives the lease of `run` up.
    pub fn release(&self, run: RunId) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.release(run);
        }
    }

    /// Stores an artifact body in the database (PostgreSQL).
    pub(crate) fn put_blob(&self, digest: &str, body: &[u8]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redb(_) => Err(StoreError::NotPostgres),
            Backend::Postgres(pg) => pg.put_blob(digest, body),
        }
    }

    /// An artifact body from the database (PostgreSQL).
    pub(crate) fn get_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Err(StoreError::NotPostgres),
            Backend::Postgres(pg) => pg.get_blob(digest),
        }
    }

    /// Deletes an artifact body nothing names or pins (PostgreSQL).
    pub(crate) fn reclaim_blob(&self, digest: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Err(StoreError::NotPostgres),
            Backend::Postgres(pg) => pg.reclaim_blob(digest),
        }
    }

    /// Runs nobody drives: not ended, and no live lease (PostgreSQL).
    pub fn orphans(&self) -> Result<Vec<RunId>, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(Vec::new()),
            Backend::Postgres(pg) => pg.orphans(),
        }
    }

    /// Tells the other hosts on the database (PostgreSQL) about a wake or
    /// a cancel for a run this host does not drive.
    pub fn notify(&self, notice: Notice) {
        if let Backend::Postgres(pg) = &self.backend
            && let Err(e) = pg.notify(notice)
        {
            tracing::warn!(error = %e, "could not tell the other hosts");
        }
    }

    /// Registers this host on the database, renews its leases and hands
    /// what other hosts notify to `on_notice` (PostgreSQL; nothing on
    /// redb). Returns how long a lease lasts.
    pub fn start_host(
        &self,
        on_notice: Box<dyn Fn(Notice) + Send + Sync>,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(None),
            Backend::Postgres(pg) => {
                pg.start_host(&pg.url, on_notice)?;
                Ok(Some(pg.leases.ttl))
            }
        }
    }

    /// The redb file, for what only it has (backups, repairs).
    fn redb(&self) -> Result<&Arc<Db>, StoreError> {
        match &self.backend {
            Backend::Redb(db) => Ok(db),
            Backend::Postgres(_) => Err(StoreError::NotRedb),
        }
    }

    /// Makes everything written durable and closes the database file
    /// cleanly, so the next open needs no repair. Every later read or write
    /// answers [`StoreError::Closed`]. A degraded store is closed as it is:
    /// what it could not write was never acknowledged, and its runs replay
    /// on the next start.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.health.close();
        match self.flush().await {
            Ok(()) => {}
            Err(e) if self.health.is_degraded() => {
                tracing::warn!(error = %e, "closing a degraded store");
            }
            Err(e) => return Err(e),
        }
        match &self.backend {
            Backend::Redb(db) => {
                // Waits for the writer's batch in progress, if any.
                let db = db.file.write().take();
                if let Some(db) = db {
                    // A database that failed its writes may panic as it closes.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(db)));
                }
            }
            Backend::Postgres(pg) => {
                pg.stop_host();
                pg.close();
            }
        }
        Ok(())
    }

    /// Reports a storage failure met outside the store (writing an artifact
    /// file, say): the store degrades and recovers as if its own write had
    /// failed, so clients and runs wait for the disk together.
    pub fn report_fault(&self, reason: String) {
        if !self.health.is_degraded() {
            self.writer.report_fault(reason);
        }
    }

    /// Runs `read` in a read transaction. A damaged file can make the
    /// storage library panic as it reads: that is caught and reported as
    /// [`StoreError::Unreadable`], never a panic of the caller.
    fn reading<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.redb()?.read()?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&tx))).unwrap_or_else(
            |panic| {
                let message = panic_message(panic.as_ref());
                tracing::error!(error = %message, "the store file is damaged: a read failed");
                Err(StoreError::Unreadable(message))
            },
        )
    }

    /// Why the store takes no writes now, if it does not.
    pub fn degraded(&self) -> Option<Degraded> {
        self.health.degraded()
    }

    /// Errs with [`StoreError::Unavailable`] while the store takes no
    /// writes: a client's write is refused at once rather than left to
    /// wait for the disk.
    pub fn writable(&self) -> Result<(), StoreError> {
        match self.degraded() {
            None => Ok(()),
            Some(d) => Err(StoreError::Unavailable {
                retry_after: d.retry_after(),
                reason: d.reason,
            }),
        }
    }

    /// Queues `writes` like [`Store::enqueue`]; the ticket says when they
    /// are applied (not when they are durable).
    pub fn submit_applied(&self, writes: Vec<Write>) -> Ticket {
        self.writer.submit(writes, false, false)
    }

    /// Applies `writes` in one transaction of the next batch and waits until
    /// it is durable (fsynced). If the store fails first, waits until it
    /// has recovered and committed them: for a run's writes.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>, StoreError> {
        self.writer.commit(writes, true, false).await
    }

    /// [`Store::commit`] for a client's request: refused with
    /// [`StoreError::Unavailable`], and not applied, if the store takes no
    /// writes now or fails before they are committed.
    pub async fn client_commit(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>, StoreError> {
        self.writable()?;
        self.writer.commit(writes, true, true).await
    }

    /// [`Store::apply`] for a client's request (see [`Store::client_commit`]).
    pub async fn client_apply(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>, StoreError> {
        self.writable()?;
        self.writer.commit(writes, false, true).await
    }

    /// [`Store::flush`] for a client: errs with
    /// [`StoreError::Unavailable`] if the store takes no writes now or
    /// fails first (what was queued becomes durable once it recovers).
    pub async fn client_flush(&self) -> Result<(), StoreError> {
        self.writable()?;
        self.writer.commit(Vec::new(), true, true).await.map(drop)
    }

    /// Queues `writes` for a durable commit now, in order with everything
    /// queued before; the ticket waits for it. For callers that must not
    /// hold a lock across the wait but need the order fixed under it.
    pub fn submit(&self, writes: Vec<Write>) -> Ticket {
        self.writer.submit(writes, true, false)
    }

    /// Applies `writes` in one transaction of the next batch and waits
    /// until it is committed, not until it is durable: for writes whose
    /// outcome is needed now but whose durability can ride along with the
    /// next durable commit (see the commit rule).
    pub async fn apply(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>, StoreError> {
        self.writer.commit(writes, false, false).await
    }

    /// Queues `writes` behind everything queued before; they become durable
    /// with the next durable commit. Never blocks.
    pub fn enqueue(&self, writes: Vec<Write>) {
        self.writer.enqueue(writes);
    }

    /// Waits until the writer has applied everything queued so far, durably.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.writer.commit(Vec::new(), true, false).await.map(drop)
    }

    /// Another host says these runs' events are durable up to these
    /// numbers: their followers here are told.
    pub(crate) fn durable_elsewhere(&self, appended: &[(RunId, u64)]) {
        writer::notify_watchers(&self.watchers, appended);
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(appended.into());
        }
    }

    /// Every run whose events became durable, as they do (on PostgreSQL,
    /// on any host): the source of the all-runs feed. A receiver that
    /// falls more than 1,024 commits behind is told it lagged
    /// (`RecvError::Lagged`) and must read the runs afresh.
    pub fn feed(&self) -> tokio::sync::broadcast::Receiver<Arc<[(RunId, u64)]>> {
        self.feed.subscribe()
    }

    /// Follows a run's event log: the receiver holds the newest event seq
    /// known durable, updated after each commit that appends to the run.
    /// Batches that append to a followed run are fsynced, so what a
    /// follower is told about has reached the disk.
    pub fn follow(&self, run: RunId) -> tokio::sync::watch::Receiver<u64> {
        let mut w = self.watchers.lock();
        w.retain(|_, tx| tx.receiver_count() > 0);
        w.entry(run)
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
    }

    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.run(id);
        }
        self.reading(|tx| {
            let t = tx.open_table(RUNS)?;
            let key = id.to_string();
            Ok(match t.get(key.as_str())? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            })
        })
    }

    /// Runs newest first, optionally filtered by status and workflow.
    pub fn runs(
        &self,
        status: Option<RunStatus>,
        workflow: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let filter = RunFilter {
            status,
            workflow,
            ..RunFilter::default()
        };
        self.runs_page(&filter, limit)
    }

    /// A page of runs, newest first, as `filter` says.
    pub fn runs_page(
        &self,
        filter: &RunFilter<'_>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.runs_page(filter, limit);
        }
        let RunFilter {
            status,
            workflow,
            before,
            since,
        } = *filter;
        // Ids sort as their text does (ULIDs in lower-case base32).
        let lower = since.map(|s| s.to_string());
        self.reading(|tx| {
            let t = tx.open_table(RUNS)?;
            let mut out = Vec::new();
            let upper = before.map(|b| b.to_string());
            let mut rows = match &upper {
                Some(u) => t.range::<&str>(..u.as_str())?,
                None => t.range::<&str>(..)?,
            };
            loop {
                // A damaged page ends the listing (an error, or a panic of
                // the storage library as it walks the tree), not the request.
                let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rows.next_back()));
                let (k, v) = match next {
                    Ok(Some(Ok(row))) => row,
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        tracing::error!(error = %e, "the store file is damaged: a listing stops early");
                        break;
                    }
                    Err(_) => {
                        tracing::error!("the store file is damaged: a listing stops early");
                        break;
                    }
                };
                // A damaged key can panic as it decodes, or make the run
                // unreachable by its id: that row is left out (a run the
                // listing shows can be read), the listing goes on.
                if lower.as_deref().is_some_and(|l| k.value() < l) {
                    break;
                }
                let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let key = k.value();
                    let run = readable(key, v.value())?;
                    matches!(t.get(key), Ok(Some(_))).then_some(run)
                }));
                let Ok(Some(run)) = decoded else {
                    continue;
                };
                if status.is_some_and(|s| s != run.status)
                    || workflow.is_some_and(|w| w != run.workflow)
                {
                    continue;
                }
                out.push(run);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// The approval `name` of `run`, if it asked for one.
    pub fn approval(
        &self,
        run: RunId,
        name: &str,
    ) -> Result<Option<crate::types::Approval>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.approval(run, name);
        }
        self.reading(|tx| {
            let t = tx.open_table(APPROVALS)?;
            let key = run.to_string();
            Ok(match t.get((key.as_str(), name))? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            })
        })
    }

    /// Approvals newest run first, at most `limit` for which `keep` holds:
    /// of one run, or those in `status`, or of `workflow`, older than
    /// `before` (a run id: the page cursor).
    pub fn approvals(
        &self,
        filter: &ApprovalFilter<'_>,
        limit: usize,
        keep: impl Fn(&crate::types::Approval) -> bool,
    ) -> Result<Vec<crate::types::Approval>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.approvals(filter, limit, keep);
        }
        self.reading(|tx| {
            let t = tx.open_table(APPROVALS)?;
            let upper = filter.before.map(|b| b.to_string());
            let mut out = Vec::new();
            let rows = match &upper {
                Some(u) => t.range::<(&str, &str)>(..(u.as_str(), ""))?,
                None => t.range::<(&str, &str)>(..)?,
            };
            for row in rows.rev() {
                let (_, v) = row?;
                let Ok(a) = serde_json::from_slice::<crate::types::Approval>(v.value()) else {
                    continue;
                };
                if filter.status.is_some_and(|s| s != a.status)
                    || filter.workflow.is_some_and(|w| w != a.workflow)
                    || filter.run.is_some_and(|r| r != a.run_id)
                    || !keep(&a)
                {
                    continue;
                }
                out.push(a);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// The audit trail, newest first: at most `limit` entries older than
    /// `before` (a `seq`).
    pub fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<crate::types::AuditEntry>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.audit_page(before, limit);
        }
        self.reading(|tx| {
            let t = tx.open_table(AUDIT)?;
            let rows = match before {
                Some(b) => t.range(..b)?,
                None => t.range(0..)?,
            };
            let mut out = Vec::new();
            for row in rows.rev() {
                let (_, v) = row?;
                if let Ok(e) = serde_json::from_slice(v.value()) {
                    out.push(e);
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// How many runs there are in each status (of `workflow`'s only, if
    /// given). A scan on redb (about 100 ms per 100,000 runs); callers
    /// that ask often cache it.
    pub fn run_counts(&self, workflow: Option<&str>) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.run_counts(workflow);
        }
        /// The two fields counted, read without the rest of the record.
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            status: RunStatus,
            #[serde(borrow)]
            workflow: std::borrow::Cow<'a, str>,
        }
        self.reading(|tx| {
            let t = tx.open_table(RUNS)?;
            let mut counts: std::collections::HashMap<RunStatus, u64> = Default::default();
            for row in t.iter()? {
                let Ok((_, v)) = row else {
                    tracing::error!("the store file is damaged: a count stops early");
                    break;
                };
                let Ok(head) = serde_json::from_slice::<Head<'_>>(v.value()) else {
                    continue;
                };
                if workflow.is_none_or(|w| w == head.workflow) {
                    *counts.entry(head.status).or_default() += 1;
                }
            }
            Ok(counts.into_iter().collect())
        })
    }

    /// Records of the runs that have not ended, oldest first. A record that
    /// cannot be read is logged and left out: it breaks no listing.
    pub fn active_records(&self) -> Result<Vec<RunRecord>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.active_records();
        }
        self.reading(|tx| {
            let active = tx.open_table(ACTIVE_RUNS)?;
            let runs = tx.open_table(RUNS)?;
            let mut out = Vec::new();
            for row in active.iter()? {
                let (k, _) = row?;
                if let Some(v) = runs.get(k.value())?
                    && let Some(r) = readable(k.value(), v.value())
                {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    /// Ids of runs that are not terminal (for recovery).
    pub fn active_runs(&self) -> Result<Vec<RunId>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.active_runs();
        }
        self.reading(|tx| {
            let t = tx.open_table(ACTIVE_RUNS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, _) = row?;
                if let Ok(id) = k.value().parse() {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    /// Events with `seq > after`, in order, at most `limit`.
    pub fn events(&self, run: RunId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.events(run, after, limit);
        }
        self.reading(|tx| {
            let t = tx.open_table(EVENTS)?;
            let key = run.to_string();
            let mut out = Vec::new();
            for row in
                t.range((key.as_str(), after.saturating_add(1))..=(key.as_str(), u64::MAX))?
            {
                let (_, v) = row?;
                out.push(serde_json::from_slice(v.value())?);
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// The run's journal, in call order.
    pub fn journal(&self, run: RunId) -> Result<Vec<JournalEntry>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.journal(run);
        }
        self.run_log(JOURNAL, run)
    }

    /// The run's signals in arrival order (its whole inbox; the journal
    /// says which were taken).
    pub fn signals(&self, run: RunId) -> Result<Vec<Signal>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.signals(run);
        }
        self.run_log(SIGNALS, run)
    }

    /// Every entry of one run in a per-run log table, in order.
    fn run_log<T: serde::de::DeserializeOwned>(
        &self,
        table: redb::TableDefinition<(&str, u64), &[u8]>,
        run: RunId,
    ) -> Result<Vec<T>, StoreError> {
        self.reading(|tx| {
            let t = tx.open_table(table)?;
            let key = run.to_string();
            let mut out = Vec::new();
            for row in t.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))? {
                let (_, v) = row?;
                out.push(serde_json::from_slice(v.value())?);
            }
            Ok(out)
        })
    }

    /// A cron trigger's persisted next fire time.
    pub fn cron_next(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.cron_next(key);
        }
        self.reading(|tx| Ok(tx.open_table(CRON)?.get(key)?.map(|v| v.value())))
    }

    /// A cron trigger's state (default: running, never fired).
    pub fn cron_state(&self, key: &str) -> Result<crate::types::CronState, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.cron_state(key);
        }
        self.reading(|tx| {
            Ok(match tx.open_table(CRON_STATE)?.get(key)? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => Default::default(),
            })
        })
    }

    /// Runs in the tree `root` is the root of, the root included.
    pub fn tree_runs(&self, root: RunId) -> Result<u64, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.tree_runs(root);
        }
        self.reading(|tx| {
            let t = tx.open_table(TREE_RUNS)?;
            Ok(t.get(root.to_string().as_str())?.map_or(1, |v| v.value()))
        })
    }

    /// A run's model usage (zero if it made no model calls).
    pub fn model_totals(&self, run: RunId) -> Result<crate::types::ModelTotals, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.model_totals(run);
        }
        self.reading(|tx| {
            let t = tx.open_table(MODEL_USAGE)?;
            Ok(match t.get(run.to_string().as_str())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => Default::default(),
            })
        })
    }

    /// The run an idempotency key names.
    pub fn run_for_key(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.run_for_key(key);
        }
        self.reading(|tx| {
            let t = tx.open_table(KEYS)?;
            Ok(t.get(key)?.and_then(|v| v.value().parse().ok()))
        })
    }

    /// Runs started under keys that begin with `prefix`, in key order.
    pub fn runs_for_key_prefix(&self, prefix: &str) -> Result<Vec<RunId>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.runs_for_key_prefix(prefix);
        }
        self.reading(|tx| {
            let t = tx.open_table(KEYS)?;
            let mut out = Vec::new();
            for row in t.range(prefix..)? {
                let (k, v) = row?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                if let Ok(id) = v.value().parse() {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    /// Child runs a run started, oldest first.
    pub fn children(&self, parent: RunId) -> Result<Vec<RunId>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.children(parent);
        }
        self.reading(|tx| {
            let t = tx.open_table(CHILDREN)?;
            let key = parent.to_string();
            let mut out = Vec::new();
            for row in t.range((key.as_str(), "")..)? {
                let (k, _) = row?;
                let (p, c) = k.value();
                if p != key {
                    break;
                }
                if let Ok(id) = c.parse() {
                    out.push(id);
                }
            }
            out.sort();
            Ok(out)
        })
    }

    /// Where a run's log stands: the next event number, and how much of its
    /// output is recorded.
    pub fn progress(&self, run: RunId) -> Result<Progress, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.progress(run);
        }
        self.reading(|tx| {
            let key = run.to_string();
            let events = tx.open_table(EVENTS)?;
            let last = events
                .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
                .next_back()
                .transpose()?
                .map_or(0, |(k, _)| k.value().1);
            let output = match tx.open_table(PROGRESS)?.get(key.as_str())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => [0, 0],
            };
            Ok(Progress {
                next_seq: last + 1,
                output,
            })
        })
    }

    /// The newest version of every workflow, by slug.
    pub fn workflows(&self) -> Result<Vec<WorkflowVersion>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.workflows();
        }
        self.reading(|tx| {
            let latest = tx.open_table(WORKFLOWS)?;
            let versions = tx.open_table(VERSIONS)?;
            let mut out = Vec::new();
            for row in latest.iter()? {
                let (slug, v) = row?;
                if let Some(rec) = versions.get((slug.value(), v.value()))? {
                    out.push(serde_json::from_slice(rec.value())?);
                }
            }
            Ok(out)
        })
    }

    /// A workflow's newest version, or a given one.
    pub fn workflow(
        &self,
        slug: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowVersion>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.workflow(slug, version);
        }
        self.reading(|tx| {
            let version = match version {
                Some(v) => v,
                None => match tx.open_table(WORKFLOWS)?.get(slug)? {
                    Some(v) => v.value(),
                    None => return Ok(None),
                },
            };
            let versions = tx.open_table(VERSIONS)?;
            Ok(match versions.get((slug, version))? {
                Some(rec) => Some(serde_json::from_slice(rec.value())?),
                None => None,
            })
        })
    }

    /// A component's `.wasm` bytes by sha256.
    pub fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.component(digest);
        }
        self.reading(|tx| {
            let t = tx.open_table(COMPONENTS)?;
            Ok(t.get(digest)?.map(|v| v.value().to_vec()))
        })
    }

    pub fn artifacts(&self, run: RunId) -> Result<Vec<ArtifactMeta>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.artifacts(run);
        }
        self.reading(|tx| {
            let t = tx.open_table(ARTIFACTS)?;
            let key = run.to_string();
            let mut out = Vec::new();
            for row in t.range((key.as_str(), "")..)? {
                let (k, v) = row?;
                if k.value().0 != key {
                    break;
                }
                out.push(serde_json::from_slice(v.value())?);
            }
            Ok(out)
        })
    }

    pub fn artifact(&self, run: RunId, name: &str) -> Result<Option<ArtifactMeta>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.artifact(run, name);
        }
        self.reading(|tx| {
            let t = tx.open_table(ARTIFACTS)?;
            let key = run.to_string();
            Ok(match t.get((key.as_str(), name))? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            })
        })
    }
}

/// Whether `dir` holds artifacts or compiled components (so a store
/// beside them is expected).
fn holds_data(dir: &Path) -> bool {
    /// A file within `depth` levels of `dir` (empty folders do not count).
    fn any_file(dir: &Path, depth: u32) -> bool {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| match e.file_type() {
                Ok(t) if t.is_dir() => depth > 0 && any_file(&e.path(), depth - 1),
                Ok(_) => true,
                Err(_) => false,
            })
        })
    }
    any_file(&dir.join("artifacts"), 2) || any_file(&dir.join("cache"), 2)
}

/// Opens (or creates) the store file; a file redb refuses or panics on is
/// reported as damaged, never a panic of the host.
fn open_file(path: &Path) -> Result<Database, StoreError> {
    let opened =
        std::panic::catch_unwind(|| Database::builder().set_cache_size(CACHE_BYTES).create(path));
    let name = || path.display().to_string();
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::Locked(name())),
        // The disk's failure (a full disk while reopening a degraded
        // store) passes; a file redb cannot read stays damaged.
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Err(StoreError::Db(redb::Error::Io(e)))
        }
        Ok(Err(e)) => Err(StoreError::Damaged(name(), e.to_string())),
        Err(_) => Err(StoreError::Damaged(
            name(),
            "the store library panicked reading it".into(),
        )),
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// The database and its health, shared by every clone of the store. The
/// file is taken out by [`Store::close`] (redb writes its clean shutdown
/// only when the `Database` is dropped) and swapped by the writer when it
/// reopens a degraded store.
pub(crate) struct Db {
    file: parking_lot::RwLock<Option<Database>>,
    path: PathBuf,
    health: Arc<health::Health>,
}

impl Db {
    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let db = self.file.read();
        match db.as_ref() {
            Some(db) => Ok(db.begin_read()?),
            None if self.health.closing() => Err(StoreError::Closed),
            None => Err(StoreError::Unavailable {
                reason: "the store is being reopened".into(),
                retry_after: 1,
            }),
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Closes the database and opens it again: after a failed write redb
    /// refuses every later one until then. The reopened file holds what the
    /// last durable commit left (redb repairs it on open).
    fn reopen(&self) -> Result<(), StoreError> {
        let mut file = self.file.write();
        if let Some(old) = file.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(old)));
        }
        *file = Some(open_file(&self.path)?);
        Ok(())
    }
}

/// A stored run record, or `None` (logged) if it cannot be read: one bad
/// record is reported for its own run only, never for a whole listing.
fn readable(key: &str, bytes: &[u8]) -> Option<RunRecord> {
    match serde_json::from_slice(bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(run = key, error = %e, "a stored run record cannot be read; it is left out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventBody, now};

    fn event(seq: u64) -> Event {
        Event {
            seq,
            at: now(),
            body: EventBody::Running,
        }
    }

    #[tokio::test]
    async fn events_page_in_order_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = RunId::generate();
        let b = RunId::generate();
        store.enqueue(vec![Write::AppendEvents(a, (1..=5).map(event).collect())]);
        store
            .commit(vec![Write::AppendEvents(b, (1..=2).map(event).collect())])
            .await
            .unwrap();
        let seqs: Vec<u64> = store
            .events(a, 2, 2)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4]);
        assert_eq!(store.events(a, 0, 100).unwrap().len(), 5);
        assert_eq!(store.events(b, 0, 100).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Store::open(dir.path()).unwrap();
        match Store::open(dir.path()) {
            Err(StoreError::Locked(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened twice"),
        }
    }

    #[tokio::test]
    async fn deploys_number_versions_per_slug() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let deploy = |slug: &str, digest: &str| Write::Deploy {
            slug: slug.into(),
            digest: digest.into(),
            component: Some(b"\0asm".to_vec()),
            manifest_toml: String::new(),
            description: None,
        };
        let out = store
            .commit(vec![
                deploy("a", "d1"),
                deploy("a", "d2"),
                deploy("a", "d2"),
                deploy("b", "d1"),
            ])
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![
                WriteOutcome::Version(1),
                WriteOutcome::Version(2),
                WriteOutcome::Version(2),
                WriteOutcome::Version(1)
            ]
        );
        assert_eq!(store.workflow("a", None).unwrap().unwrap().version, 2);
        assert_eq!(store.workflows().unwrap().len(), 2);
    }
}
