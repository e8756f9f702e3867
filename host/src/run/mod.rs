//! One run: its sandbox (a wasmtime `Store`), its budgets, and the mapping of
//! however it ended to a status and a typed error.
//!
//! The store is the unit of abandonment: one per run, dropped after the run
//! whatever happened, so a trapped or timed-out guest can affect nothing else.

pub(crate) mod fault;
mod limiter;
pub(crate) mod output;
mod park;
mod recorder;

use crate::bindings::WorkflowPre;
use crate::budget::{Budget, FuelLimit};
use crate::imports;
use crate::journal::{Call, Journal, JournalEntry};
use crate::manifest::Manifest;
use crate::scheduler::LiveRun;
use crate::services::HostServices;
use crate::store::{Progress, StoreError, Write};
use crate::types::{
    BudgetKind, ErrorCode, EventBody, RunError, RunId, RunRecord, RunStatus, Usage, now, now_ms,
};
use fault::RunFault;
use limiter::MemoryLimiter;
use parking_lot::Mutex;
use recorder::Recorder;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::ResourceTable;
use wasmtime::{Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

/// A busy guest yields to the scheduler after this much fuel (well under a
/// millisecond), so it never holds a tokio worker.
const FUEL_YIELD_INTERVAL: u64 = 100_000;
/// Slack for the wall-clock timeout around the whole run, over the epoch
/// deadline that normally stops it first (the timeout catches host calls).
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);
/// Pending events are handed to the store writer in chunks this size, so a
/// long run's log is visible while it runs.
const FLUSH_EVENTS: usize = 256;
/// How long a run may execute before its `running` status is written.
const STATUS_DELAY: Duration = Duration::from_millis(50);

/// What the host knows about a run while it executes.
pub(crate) struct RunContext {
    pub id: RunId,
    pub slug: String,
    pub version: u32,
    pub parent: Option<RunId>,
    pub depth: u32,
    pub manifest: Arc<Manifest>,
    pub budget: Budget,
    /// When `max_duration` runs out, counted from the first start (ms since
    /// the Unix epoch).
    pub deadline_ms: u64,
    pub first_start_ms: u64,
    /// The runs above this one, root first, with their model budgets.
    pub ancestors: Vec<crate::types::Ancestor>,
}

impl RunContext {
    /// The model budgets a call of this run counts against: every
    /// ancestor's, then its own.
    pub(crate) fn budget_chain(&self) -> Vec<crate::types::Ancestor> {
        let mut chain = self.ancestors.clone();
        chain.push(crate::types::Ancestor {
            run: self.id,
            max_tokens: self.budget.max_tokens,
            max_usd: self.budget.max_usd,
        });
        chain
    }
}

/// State shared between the store data and the WASI pieces that cannot
/// reach it (clocks, stdio): the journal and the event recorder.
pub(crate) struct RunShared {
    pub run: RunId,
    services: Arc<HostServices>,
    pub journal: Mutex<Journal>,
    pub recorder: Mutex<Recorder>,
    /// Writes held back until the next flush (the `running` status: a run
    /// that ends quickly writes it with its end, in one transaction).
    deferred: Mutex<Vec<Write>>,
    /// Serializes flushes from the run and from its status timer, so
    /// writes reach the writer in the order they were recorded.
    pub(crate) flushing: Mutex<()>,
}

impl RunShared {
    /// Everything recorded since the last take: journal entries, then
    /// artifact metadata, then events.
    pub(crate) fn take_writes(&self) -> Vec<Write> {
        let entries = self.journal.lock().take_new();
        let (events, artifacts) = {
            let mut rec = self.recorder.lock();
            (rec.take_pending(), std::mem::take(&mut rec.new_artifacts))
        };
        let mut writes = std::mem::take(&mut *self.deferred.lock());
        writes.reserve(2 + artifacts.len());
        if !entries.is_empty() {
            writes.push(Write::AppendJournal(self.run, entries));
        }
        writes.extend(
            artifacts
                .into_iter()
                .map(|a| Write::PutArtifact(Box::new(a))),
        );
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
    pub(crate) fn submit_recorded(&self, extra: Vec<Write>) -> crate::store::Ticket {
        let _order = self.flushing.lock();
        let mut w = self.take_writes();
        w.extend(extra);
        self.services.store.submit(w)
    }

    /// Flushes once enough events are pending.
    pub(crate) fn maybe_flush(&self) {
        if self.recorder.lock().pending_len() >= FLUSH_EVENTS {
            self.flush();
        }
    }
}

/// The data of a run's wasmtime store: what every host function sees.
pub struct RunState {
    pub(crate) run: Arc<RunContext>,
    pub(crate) host: Arc<HostServices>,
    pub(crate) shared: Arc<RunShared>,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    pub(crate) artifact_bytes: u64,
    /// name -> digest of the artifacts this run wrote.
    pub(crate) artifact_digests: HashMap<String, String>,
    /// Inbox positions of the signals this run has taken.
    pub(crate) consumed_signals: HashSet<u64>,
    /// Child runs started so far (replayed starts included).
    pub(crate) children: u64,
    pub(crate) deadline: Instant,
    pub(crate) live: Arc<LiveRun>,
    /// The run's place among the runs executing at once; given back while
    /// it is parked warm.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl RunState {
    /// Records `fault` as the run's end and returns the trap to raise.
    pub(crate) fn fail(&self, fault: RunFault) -> wasmtime::Error {
        self.shared.recorder.lock().fail(fault)
    }

    /// Journals a call whose effect is recorded on first execution only.
    /// Returns whether this is the first execution (the effect must happen).
    /// The caller records the effect's event and then flushes.
    pub(crate) fn journal_effect<T: serde::Serialize>(
        &self,
        call: Call,
        result: &T,
    ) -> wasmtime::Result<bool> {
        let mut journal = self.shared.journal.lock();
        match journal.replay::<serde::de::IgnoredAny>(&call) {
            Ok(Some(_)) => Ok(false),
            Ok(None) => {
                journal.record(call, result);
                Ok(true)
            }
            Err(e) => {
                drop(journal);
                Err(self.fail(e.into()))
            }
        }
    }

    /// Hands recorded effects to the writer now.
    pub(crate) fn flush_effects(&self) {
        self.shared.flush();
    }
}

/// What a run's sandbox is built from, besides the run record.
pub(crate) struct SandboxSetup {
    pub manifest: Arc<Manifest>,
    pub budget: Budget,
    /// The journal so far (empty for a first execution).
    pub history: Vec<JournalEntry>,
    /// Where the event log stands.
    pub progress: Progress,
    pub live: Arc<LiveRun>,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Everything needed to execute one run.
pub(crate) struct RunRequest {
    pub record: RunRecord,
    pub pre: WorkflowPre<RunState>,
    pub setup: SandboxSetup,
}

/// What an execution came to.
pub(crate) enum Executed {
    /// The run ended; the record is durable.
    Finished(RunRecord),
    /// The run parked and its instance was dropped; the record says what
    /// it waits for (its park is durable).
    Parked(RunRecord),
    /// The host is shutting down; the run stopped without ending.
    Suspended,
}

/// How a run ended, before it is written down.
enum Outcome {
    Completed(serde_json::Value),
    Failed(RunError),
    Fault(RunFault),
}

/// A run's sandbox, ready to instantiate.
pub(crate) struct Sandbox {
    pub store: wasmtime::Store<RunState>,
    pub shared: Arc<RunShared>,
    pub fuel_limit: u64,
    /// Fuel could not be configured (only with a broken engine config).
    pub setup: wasmtime::Result<()>,
}

/// Builds the store for one run: WASI context, budgets, limiter, epoch
/// deadline. No guest code runs yet.
pub(crate) fn sandbox(
    engine: &wasmtime::Engine,
    services: &Arc<HostServices>,
    record: &RunRecord,
    setup: SandboxSetup,
) -> Sandbox {
    let SandboxSetup {
        manifest,
        budget,
        history,
        progress,
        live,
        permit,
    } = setup;
    let first_start_ms = record.first_start_ms();
    let deadline_ms = first_start_ms.saturating_add(budget.max_duration.as_millis() as u64);
    let deadline = Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms()));
    let shared = Arc::new(RunShared {
        run: record.id,
        services: services.clone(),
        journal: Mutex::new(Journal::replaying(history)),
        recorder: Mutex::new(Recorder::new(
            progress,
            budget.max_events,
            budget.max_output_bytes,
        )),
        deferred: Mutex::new(Vec::new()),
        flushing: Mutex::new(()),
    });
    let env: Vec<(String, String)> = manifest
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let state = RunState {
        run: Arc::new(RunContext {
            id: record.id,
            slug: record.workflow.clone(),
            version: record.version,
            parent: record.parent,
            depth: record.depth,
            manifest,
            budget,
            deadline_ms,
            first_start_ms,
            ancestors: record.ancestors.clone(),
        }),
        host: services.clone(),
        wasi: imports::wasi::context(&shared, &env, record.seed),
        shared: shared.clone(),
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(budget.max_memory),
        artifact_bytes: 0,
        artifact_digests: HashMap::new(),
        consumed_signals: HashSet::new(),
        children: 0,
        deadline,
        live,
        permit,
    };

    let fuel_limit = match budget.max_fuel {
        FuelLimit::Limited(n) => n,
        FuelLimit::Unlimited => u64::MAX,
    };
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    let setup = store
        .set_fuel(fuel_limit)
        .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)));
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let s = ctx.data_mut();
        if s.live.cancelled() {
            return Err(s.fail(s.live.stop_fault()));
        }
        if s.live.suspending() {
            return Err(s.fail(RunFault::Suspended));
        }
        if Instant::now() >= s.deadline {
            return Err(s.fail(s.run.duration_fault()));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    Sandbox {
        store,
        shared,
        fuel_limit,
        setup,
    }
}

impl RunContext {
    /// The fault for running out of `max_duration`, now.
    pub(crate) fn duration_fault(&self) -> RunFault {
        RunFault::Budget {
            budget: BudgetKind::MaxDuration,
            limit: self.budget.max_duration.as_millis() as u64,
            used: now_ms().saturating_sub(self.first_start_ms),
        }
    }
}

/// Executes a run — from the start, or by replaying its journal — until it
/// ends (committed durably) or parks with its instance evicted.
pub(crate) async fn execute(
    engine: &wasmtime::Engine,
    services: Arc<HostServices>,
    req: RunRequest,
) -> Result<Executed, StoreError> {
    let RunRequest {
        mut record,
        pre,
        setup,
    } = req;
    let started = Instant::now();
    record.status = RunStatus::Running;
    record.wait = None;
    record.started_at.get_or_insert_with(now);
    let Sandbox {
        mut store,
        shared,
        fuel_limit,
        setup,
    } = sandbox(engine, &services, &record, setup);
    let deadline = store.data().deadline;
    let run_ctx = store.data().run.clone();
    let live = store.data().live.clone();

    // The `running` status waits for the run's first flush, its end, or
    // STATUS_DELAY, whichever comes first: a short run then costs one
    // transaction, and a long one shows it is running within the delay.
    shared.recorder.lock().system(EventBody::Running);
    shared
        .deferred
        .lock()
        .push(Write::PutRun(Box::new(record.clone())));
    let weak = Arc::downgrade(&shared);
    tokio::spawn(async move {
        tokio::time::sleep(STATUS_DELAY).await;
        if let Some(shared) = weak.upgrade() {
            shared.flush();
        }
    });

    let input = record.input.to_string();
    let result = match setup {
        Err(e) => Ok(Err(e)),
        Ok(()) => {
            let call = async {
                let workflow = pre.instantiate_async(&mut store).await?;
                workflow.call_run(&mut store, &input).await
            };
            tokio::time::timeout_at((deadline + TIMEOUT_GRACE).into(), call).await
        }
    };

    let fuel_used = fuel_limit.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.into_data();
    let mut outcome = match result {
        Err(_elapsed) => Outcome::Fault(
            state
                .shared
                .recorder
                .lock()
                .fault
                .clone()
                .unwrap_or_else(|| run_ctx.duration_fault()),
        ),
        Ok(Ok(returned)) => returned_outcome(&state, returned),
        Ok(Err(e)) => error_outcome(&state, &e, fuel_limit, fuel_used),
    };
    if let Outcome::Fault(RunFault::Parked(wait)) = outcome {
        if !live.cancelled() {
            // The park is durable already (see `park`); what follows it is not
            // needed before the wake, so it rides along.
            record.status = wait.status();
            record.wait = Some(wait);
            shared.flush();
            return Ok(Executed::Parked(record));
        }
        outcome = Outcome::Fault(live.stop_fault());
    }
    if matches!(outcome, Outcome::Fault(RunFault::Suspended)) && !live.cancelled() {
        shared.flush();
        return Ok(Executed::Suspended);
    }
    let spent = matches!(&outcome, Outcome::Fault(f) if f.budget_event().is_some());
    if live.cancelled() && !spent {
        // Whatever else happened, a run asked to stop ends cancelled (or
        // with the fault it was stopped for); one that ran out of a budget
        // first keeps that failure.
        outcome = Outcome::Fault(live.stop_fault());
    }

    let duration = Duration::from_millis(now_ms().saturating_sub(run_ctx.first_start_ms))
        .max(started.elapsed());
    finish(&shared, &mut record, &state, outcome, fuel_used, duration);
    let ticket = {
        let _order = shared.flushing.lock();
        let mut w = shared.take_writes();
        w.push(Write::PutRun(Box::new(record.clone())));
        services.store.submit(w)
    };
    ticket.wait().await?;
    Ok(Executed::Finished(record))
}

/// Writes the run's end into `record` and its terminal events.
fn finish(
    shared: &RunShared,
    record: &mut RunRecord,
    state: &RunState,
    outcome: Outcome,
    fuel_used: u64,
    duration: Duration,
) {
    let totals = state.host.ledger.totals(record.id);
    let mut rec = shared.recorder.lock();
    rec.finish_output();
    let (events, output_bytes) = rec.usage();
    record.usage = Usage {
        fuel: fuel_used,
        duration_ms: duration.as_millis() as u64,
        peak_memory_bytes: state.limiter.peak,
        events,
        output_bytes,
        artifact_bytes: state.artifact_bytes,
        model: totals.own,
        model_tree: totals.tree,
    };
    record.finished_at = Some(now());
    match outcome {
        Outcome::Completed(output) => {
            record.status = RunStatus::Completed;
            record.output = Some(output);
            rec.system(EventBody::Completed);
        }
        Outcome::Failed(error) => {
            record.status = RunStatus::Failed;
            rec.system(EventBody::Failed {
                code: error.code,
                message: error.message.clone(),
            });
            record.error = Some(error);
        }
        Outcome::Fault(RunFault::Cancelled) => {
            record.status = RunStatus::Cancelled;
            record.error = Some(RunError {
                code: ErrorCode::Cancelled,
                message: RunFault::Cancelled.to_string(),
            });
            rec.system(EventBody::Cancelled);
        }
        Outcome::Fault(fault) => {
            if let Some(e) = fault.budget_event() {
                rec.system(e);
            }
            let error = RunError {
                code: fault.code(),
                message: rec.masker.mask(&fault.to_string()),
            };
            record.status = RunStatus::Failed;
            rec.system(EventBody::Failed {
                code: error.code,
                message: error.message.clone(),
            });
            record.error = Some(error);
        }
    }
}

/// The guest returned: a result, or its own failure.
fn returned_outcome(
    state: &RunState,
    returned: Result<String, crate::bindings::types::Failure>,
) -> Outcome {
    let mut rec = state.shared.recorder.lock();
    if let Some(f) = rec.fault.clone() {
        // E.g. a determinism fault seen by a clock: it stands even though
        // the guest went on to return.
        return Outcome::Fault(f);
    }
    if let Err(e) = state.shared.journal.lock().check_complete() {
        return Outcome::Fault(e.into());
    }
    match returned {
        Ok(text) => {
            if let Err(f) = rec.charge_output(text.len()) {
                return Outcome::Fault(f);
            }
            match serde_json::from_str(&text) {
                Ok(v) => Outcome::Completed(v),
                Err(e) => Outcome::Failed(RunError {
                    code: ErrorCode::ProgramError,
                    message: format!("the workflow returned output that is not JSON: {e}"),
                }),
            }
        }
        Err(failure) => {
            let message = rec.masker.mask(&failure.message);
            Outcome::Failed(if failure.code == ErrorCode::InvalidInput.as_str() {
                RunError {
                    code: ErrorCode::InvalidInput,
                    message,
                }
            } else {
                RunError {
                    code: ErrorCode::ProgramError,
                    message: format!("{}: {}", rec.masker.mask(&failure.code), message),
                }
            })
        }
    }
}

/// The call failed: a host fault, a budget, or a trap.
fn error_outcome(
    state: &RunState,
    e: &wasmtime::Error,
    fuel_limit: u64,
    fuel_used: u64,
) -> Outcome {
    let rec = state.shared.recorder.lock();
    if let Some(f) = rec.fault.clone().or_else(|| state.limiter.fault.clone()) {
        return Outcome::Fault(f);
    }
    if let Some(f) = e.downcast_ref::<RunFault>() {
        return Outcome::Fault(f.clone());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            return Outcome::Fault(RunFault::Budget {
                budget: BudgetKind::MaxFuel,
                limit: fuel_limit,
                used: fuel_used,
            });
        }
        Some(Trap::Interrupt) if state.live.cancelled() => {
            return Outcome::Fault(state.live.stop_fault());
        }
        _ => {}
    }
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Outcome::Failed(RunError {
            code: ErrorCode::ProgramError,
            message: format!(
                "the workflow exited with status {} instead of returning a result",
                exit.0
            ),
        });
    }
    let cause = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => e.root_cause().to_string(),
    };
    let mut message = if cause.starts_with("wasm trap") {
        cause
    } else {
        format!("wasm trap: {cause}")
    };
    if !rec.stderr_tail.is_empty() {
        message.push_str(&format!("\nguest stderr:\n{}", rec.stderr_tail.trim_end()));
    }
    if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
        message.push_str(&format!("\n{bt}"));
    }
    Outcome::Failed(RunError {
        code: ErrorCode::Trap,
        message: rec.masker.mask(&message),
    })
}
