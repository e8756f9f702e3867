//! The journaled-effect path: the one way a call that crosses the sandbox
//! is answered, recorded and made durable.
//!
//! Every side-effecting import goes through [`Effects::effect`]:
//! 1. replay: a call the journal holds is answered from it (a differing
//!    call is a determinism fault) and counted again against the budgets,
//!    but nothing is done or written again;
//! 2. perform: otherwise the import does the effect;
//! 3. record: the result is journaled and the effect's event appended;
//! 4. commit: by the commit rule — a record is durable before anything that
//!    depends on it leaves the host, and rides along with the next commit
//!    when it leaves no trace outside.
//!
//! Calls that park (`sleep`, `wait-signal`, `join`) record in two steps at
//! one position ([`Effects::step`], [`Effects::pending`], [`Effects::settle`]);
//! the parking itself lives in `park`.

use super::fault::RunFault;
use super::journal::{Call, Journal, Step};
use super::recorder::Recorder;
use crate::host::services::HostServices;
use crate::store::{Ticket, Write};
use crate::types::{BudgetKind, EventBody, RunId};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Pending events and journal entries are handed to the store writer in
/// chunks this size: a long run's log is visible while it runs, its
/// journal never piles up in memory, and no single write holds the writer.
const FLUSH_EVENTS: usize = 256;
const FLUSH_ENTRIES: usize = 256;

/// How big a run's journal may grow.
#[derive(Clone, Copy)]
pub(crate) struct JournalLimits {
    pub entries: u64,
    pub bytes: u64,
}

/// A run's journal and event log, shared by its store data and the WASI
/// pieces that cannot reach it (clocks, stdio).
pub(crate) struct Effects {
    pub run: RunId,
    services: Arc<HostServices>,
    limits: JournalLimits,
    journal: Mutex<Journal>,
    pub(super) recorder: Mutex<Recorder>,
    /// Writes held back until the next flush (the `running` status: a run
    /// that ends quickly writes it with its end, in one transaction).
    pub(super) deferred: Mutex<Vec<Write>>,
    /// Writes an effect recorded beside its journal entry (artifact
    /// metadata), committed after the entries.
    recorded: Mutex<Vec<Write>>,
    /// Serializes flushes from the run and from its status timer, so
    /// writes reach the writer in the order they were recorded.
    flushing: Mutex<()>,
    /// Journal chunks handed to the writer and not yet applied. A run that
    /// journals faster than the writer applies waits for them at its next
    /// epoch tick, so it never queues more than a tick's worth of writes
    /// ahead of other runs' commits.
    backlog: Mutex<Vec<Ticket>>,
}

/// When a fresh effect's record must be durable (the commit rule).
pub(crate) enum Commit {
    /// With the run's next commit: the effect left no trace outside the host.
    RideAlong,
    /// Handed to the writer now, so it shows soon; durable with the next
    /// commit.
    Flush,
    /// Submitted now, in order: every later effect that leaves the host
    /// waits behind it, but the guest goes on at once.
    Submit,
    /// Durable before the guest sees the answer.
    Durable,
}

/// The event a fresh effect appends.
pub(crate) enum Recorded {
    None,
    /// Caused by the guest: counted against `max_events`, and its bytes of
    /// guest output against `max_output_bytes`.
    Guest {
        body: EventBody,
        output_bytes: usize,
    },
    /// Written by the host (status, reads); not budgeted.
    System(EventBody),
}

/// How a replayed effect is counted again, so usage and budgets are the
/// same however often a run resumes.
#[derive(Clone, Copy)]
pub(crate) enum OnReplay {
    /// It recorded no guest event.
    Nothing,
    /// It recorded a guest event carrying this many bytes of output.
    GuestEvent { output_bytes: usize },
}

/// What performing a fresh effect came to.
pub(crate) struct Performed<T> {
    /// What the guest sees, and the journal keeps.
    pub result: T,
    pub event: Recorded,
    /// Store writes that belong with the journal entry.
    pub writes: Vec<Write>,
    pub commit: Commit,
    /// Ends the run once the effect is recorded and committed (a budget
    /// the effect itself crossed).
    pub then_fail: Option<RunFault>,
    /// Runs once the record is committed (e.g. a child may start).
    pub after_commit: Option<Box<dyn FnOnce() + Send>>,
}

impl<T> Performed<T> {
    /// An effect with no event and no writes, riding along.
    pub(crate) fn quiet(result: T) -> Performed<T> {
        Performed {
            result,
            event: Recorded::None,
            writes: Vec::new(),
            commit: Commit::RideAlong,
            then_fail: None,
            after_commit: None,
        }
    }

    pub(crate) fn event(mut self, event: Recorded) -> Self {
        self.event = event;
        self
    }

    pub(crate) fn commit(mut self, commit: Commit, writes: Vec<Write>) -> Self {
        self.commit = commit;
        self.writes = writes;
        self
    }
}

impl Effects {
    pub(super) fn new(
        services: Arc<HostServices>,
        run: RunId,
        limits: JournalLimits,
        journal: Journal,
        recorder: Recorder,
    ) -> Effects {
        Effects {
            run,
            services,
            limits,
            journal: Mutex::new(journal),
            recorder: Mutex::new(recorder),
            deferred: Mutex::new(Vec::new()),
            recorded: Mutex::new(Vec::new()),
            flushing: Mutex::new(()),
            backlog: Mutex::new(Vec::new()),
        }
    }

    /// Replays `call`, or performs it and records and commits what it did.
    pub(crate) async fn effect<T, Fut>(
        &self,
        call: Call,
        on_replay: OnReplay,
        perform: impl FnOnce() -> Fut,
    ) -> wasmtime::Result<T>
    where
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = wasmtime::Result<Performed<T>>>,
    {
        let replayed = self.journal.lock().replay::<T>(&call);
        match replayed {
            Ok(Some(v)) => {
                if let OnReplay::GuestEvent { output_bytes } = on_replay {
                    self.recorder.lock().replayed(output_bytes);
                }
                return Ok(v);
            }
            Ok(None) => {}
            Err(e) => return Err(self.fail(e.into())),
        }
        let started = std::time::Instant::now();
        let Performed {
            result,
            event,
            writes,
            commit,
            then_fail,
            after_commit,
        } = tracing::Instrument::instrument(perform(), crate::telemetry::call_span(call.name))
            .await?;
        let name = call.name;
        crate::metrics::host_call_duration(name, started.elapsed());
        let mut fault = then_fail;
        {
            let mut journal = self.journal.lock();
            journal.record(call, &result);
            if let Err(f) = self.within_limits(&journal) {
                fault.get_or_insert(f);
            }
        }
        {
            let mut rec = self.recorder.lock();
            match event {
                Recorded::None => {}
                Recorded::System(body) => rec.system(body),
                Recorded::Guest { body, output_bytes } => {
                    if let Err(f) = rec
                        .charge_output(output_bytes)
                        .and_then(|()| rec.guest(body))
                    {
                        fault.get_or_insert(f);
                    }
                }
            }
        }
        match commit {
            Commit::RideAlong | Commit::Flush => {
                self.recorded.lock().extend(writes);
                if matches!(commit, Commit::Flush) {
                    self.flush();
                } else {
                    self.maybe_flush();
                }
            }
            Commit::Submit => drop(self.submit_recorded(writes)),
            Commit::Durable => {
                if let Err(e) = self.submit_recorded(writes).wait().await {
                    return Err(self.fail(RunFault::from_store(&format!("recording {name}"), &e)));
                }
            }
        }
        if let Some(f) = fault {
            return Err(self.fail(f));
        }
        if let Some(after) = after_commit {
            after();
        }
        Ok(result)
    }

    /// Replays or records a read the host answers synchronously (a clock,
    /// a model's resolution): journaled, no event. A determinism fault is
    /// recorded for the run (so it ends at its next host call or its end,
    /// even where the caller cannot trap) and returned as the trap.
    pub(crate) fn read<T>(&self, call: Call, read: impl FnOnce() -> T) -> wasmtime::Result<T>
    where
        T: Serialize + DeserializeOwned,
    {
        if let Some(f) = self.fault() {
            // Past a budget, nothing more is recorded; the run ends at
            // its next host call or epoch tick.
            return Err(wasmtime::Error::new(f));
        }
        let (answered, over, flush) = {
            let mut journal = self.journal.lock();
            let answered = journal.call(call, read);
            let over = self.within_limits(&journal).err();
            (answered, over, journal.new_len() >= FLUSH_ENTRIES)
        };
        if flush {
            self.flush_chunk();
        }
        match (answered, over) {
            (Err(e), _) => Err(self.fail(e.into())),
            (Ok(_), Some(f)) => Err(self.fail(f)),
            (Ok(v), None) => Ok(v),
        }
    }

    /// The fault that ends the run, once one is recorded.
    pub(crate) fn fault(&self) -> Option<RunFault> {
        self.recorder.lock().fault.clone()
    }

    /// Whether the journal is within the run's journal budget.
    fn within_limits(&self, journal: &Journal) -> Result<(), RunFault> {
        let (entries, bytes) = journal.size();
        if entries > self.limits.entries {
            return Err(RunFault::Budget {
                budget: BudgetKind::MaxJournalEntries,
                limit: self.limits.entries,
                used: entries,
            });
        }
        if bytes > self.limits.bytes {
            return Err(RunFault::Budget {
                budget: BudgetKind::MaxJournalBytes,
                limit: self.limits.bytes,
                used: bytes,
            });
        }
        Ok(())
    }

    /// Makes everything recorded so far durable: before a request leaves
    /// the host, so no crash can make the run not have sent it.
    pub(crate) async fn commit_before_leaving(&self) -> wasmtime::Result<()> {
        self.submit_recorded(Vec::new())
            .wait()
            .await
            .map(drop)
            .map_err(|e| self.fail(RunFault::from_store("recording the run", &e)))
    }

    /// Starts a call that may park: its recorded result, the data of its
    /// pending entry if a wait is being resumed, or fresh.
    /// A call that parked the run (in this execution or an earlier one)
    /// counts its park event again, like any replayed guest event.
    pub(crate) fn step<T: DeserializeOwned>(&self, call: &Call) -> wasmtime::Result<Step<T>> {
        let (step, parked) = {
            let mut journal = self.journal.lock();
            let step = journal.step(call);
            (step, journal.last_parked())
        };
        let step = step.map_err(|e| self.fail(e.into()))?;
        if parked && !matches!(step, Step::Fresh) {
            self.recorder.lock().replayed(0);
        }
        Ok(step)
    }

    /// Records that a fresh call parks, with what its wait needs; returns
    /// its position for [`Effects::settle`].
    pub(crate) fn pending<D: Serialize>(&self, call: Call, data: &D) -> wasmtime::Result<u64> {
        let mut journal = self.journal.lock();
        let seq = journal.record_pending(call, data);
        let within = self.within_limits(&journal);
        drop(journal);
        within.map(|()| seq).map_err(|f| self.fail(f))
    }

    /// Records a parking call's result: in place of its pending entry, or
    /// as a new entry if it never parked.
    pub(crate) fn settle<T: Serialize>(
        &self,
        pending: Option<u64>,
        call: Call,
        result: &T,
    ) -> wasmtime::Result<()> {
        let mut journal = self.journal.lock();
        match pending {
            Some(seq) => journal.resolve(seq, call, result),
            None => journal.record(call, result),
        }
        let within = self.within_limits(&journal);
        let flush = journal.new_len() >= FLUSH_ENTRIES;
        drop(journal);
        within.map_err(|f| self.fail(f))?;
        if flush {
            self.flush_chunk();
        }
        Ok(())
    }

    /// Hands what is recorded to the writer as a tracked chunk (see
    /// `backlog`).
    fn flush_chunk(&self) {
        let _order = self.flushing.lock();
        let ticket = self.services.store.submit_applied(self.take_writes());
        self.backlog.lock().push(ticket);
    }

    /// What the run must wait for before it goes on, if the writer is
    /// behind on its journal chunks (awaited at an epoch tick).
    pub(crate) fn backpressure(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let tickets = std::mem::take(&mut *self.backlog.lock());
        (!tickets.is_empty()).then_some(async move {
            for t in tickets {
                let _ = t.wait().await;
            }
        })
    }

    /// Appends an event the guest caused (a park), against `max_events`.
    pub(crate) fn guest_event(&self, body: EventBody) -> wasmtime::Result<()> {
        let mut rec = self.recorder.lock();
        rec.guest(body).map_err(|f| rec.fail(f))
    }

    /// Appends an event the host writes (not budgeted).
    pub(crate) fn system_event(&self, body: EventBody) {
        self.recorder.lock().system(body);
    }

    /// Masks every secret value the run has read.
    pub(crate) fn mask(&self, text: &str) -> String {
        self.recorder.lock().masker.mask(text)
    }

    /// Masks every string and object key in `value` (after parsing, so no
    /// JSON escape hides a secret value).
    pub(crate) fn mask_value(&self, value: &mut serde_json::Value) {
        self.recorder.lock().masker.mask_value(value);
    }

    /// Ends the run if `n` more bytes of guest output would pass
    /// `max_output_bytes`: checked before anything parses or copies them
    /// (the effect charges them when it records its event).
    pub(crate) fn check_output(&self, n: usize) -> wasmtime::Result<()> {
        let mut rec = self.recorder.lock();
        if rec.output_fits(n) {
            return Ok(());
        }
        let fault = rec.charge_output(n).err();
        let fault = fault.unwrap_or_else(|| RunFault::Internal("output budget".into()));
        Err(rec.fail(fault))
    }

    /// From now on, `value` is masked wherever the run's output is stored.
    pub(crate) fn add_secret(&self, value: &str) {
        self.recorder.lock().masker.add(value);
    }

    /// Calls made so far in this execution (the next call's position - 1).
    pub(crate) fn calls(&self) -> u64 {
        self.journal.lock().calls()
    }

    /// Records `fault` as the run's end (unless one is recorded already)
    /// and returns the trap to raise.
    pub(crate) fn fail(&self, fault: RunFault) -> wasmtime::Error {
        self.recorder.lock().fail(fault)
    }

    /// The journal, for the sandbox's own bookkeeping (clock bases, the
    /// completeness check at the end).
    pub(super) fn journal(&self) -> parking_lot::MutexGuard<'_, Journal> {
        self.journal.lock()
    }

    /// Everything recorded since the last take: held-back writes, journal
    /// entries, the writes recorded beside them, then events.
    pub(super) fn take_writes(&self) -> Vec<Write> {
        // Events first: the journal's mark says where they end.
        let (events, mark) = {
            let mut rec = self.recorder.lock();
            (rec.take_pending(), rec.mark())
        };
        let entries = self.journal.lock().take_new_marked(mark);
        let recorded = std::mem::take(&mut *self.recorded.lock());
        let mut writes = std::mem::take(&mut *self.deferred.lock());
        writes.reserve(2 + recorded.len());
        if !entries.is_empty() {
            writes.push(Write::AppendJournal(self.run, entries));
        }
        writes.extend(recorded);
        if !events.is_empty() {
            writes.push(Write::AppendEvents(self.run, events));
            if let Some(output) = self.recorder.lock().output_progress() {
                writes.push(Write::Progress(self.run, output));
            }
        }
        writes
    }

    /// Hands what is recorded to the writer (ordered, durable with the next
    /// durable commit).
    pub(crate) fn flush(&self) {
        let _order = self.flushing.lock();
        self.services.store.enqueue(self.take_writes());
    }

    /// Submits what is recorded plus `extra` for a durable commit, in
    /// order; wait on the ticket.
    pub(crate) fn submit_recorded(&self, extra: Vec<Write>) -> Ticket {
        let _order = self.flushing.lock();
        let mut w = self.take_writes();
        w.extend(extra);
        self.services.store.submit(w)
    }

    /// Hands what is recorded, plus `extra`, to the writer now (not waited
    /// for).
    pub(crate) fn enqueue_recorded(&self, extra: Vec<Write>) {
        let _order = self.flushing.lock();
        let mut w = self.take_writes();
        w.extend(extra);
        self.services.store.enqueue(w);
    }

    /// Flushes once enough events are pending.
    pub(crate) fn maybe_flush(&self) {
        let events = self.recorder.lock().pending_len();
        if events >= FLUSH_EVENTS || self.journal.lock().new_len() >= FLUSH_ENTRIES {
            self.flush_chunk();
        }
    }
}
