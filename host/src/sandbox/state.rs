//! A run's sandbox: the data of its wasmtime store and how it is built.

use super::bindings::WorkflowPre;
use super::effect::{Effects, JournalLimits};
use super::fault::RunFault;
use super::imports;
use super::journal::{Journal, JournalEntry};
use super::limiter::MemoryLimiter;
use super::park::Parker;
use super::recorder::Recorder;
use crate::budget::{Budget, FuelLimit};
use crate::host::scheduler::{ExecutionSlot, LiveRun};
use crate::host::services::HostServices;
use crate::manifest::Manifest;
use crate::store::Progress;
use crate::types::{Ancestor, BudgetKind, RunId, RunRecord, now_ms};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A busy guest yields to the scheduler after this much fuel (well under a
/// millisecond), so it never holds a tokio worker.
const FUEL_YIELD_INTERVAL: u64 = 100_000;

/// What the host knows about a run while it executes; fixed for one
/// execution.
pub(crate) struct RunContext {
    pub id: RunId,
    pub slug: String,
    pub version: u32,
    pub parent: Option<RunId>,
    pub depth: u32,
    pub manifest: Arc<Manifest>,
    pub budget: Budget,
    /// When this execution started.
    pub started: Instant,
    /// Time the run executed before this execution (earlier ones).
    pub active_before_ms: u64,
    /// Time this execution spent parked with its instance kept: not
    /// executing, so not counted against `max_duration`.
    pub parked_ms: std::sync::atomic::AtomicU64,
    /// When the park going on now began (ms since this execution started,
    /// plus one; 0: not parked).
    pub parked_since: std::sync::atomic::AtomicU64,
    /// When `max_lifetime` runs out (ms since the Unix epoch), if it is set.
    pub lifetime_deadline_ms: Option<u64>,
    pub first_start_ms: u64,
    /// The runs above this one, root first, with their model budgets.
    pub ancestors: Vec<Ancestor>,
}

impl RunContext {
    /// The model budgets a call of this run counts against: every
    /// ancestor's, then its own.
    pub(crate) fn budget_chain(&self) -> Vec<Ancestor> {
        let mut chain = self.ancestors.clone();
        chain.push(Ancestor {
            run: self.id,
            max_tokens: self.budget.max_tokens,
            max_usd: self.budget.max_usd,
            max_tree_runs: Some(self.budget.max_tree_runs),
        });
        chain
    }

    /// Time parked in this execution, the park going on now included.
    fn parked(&self) -> Duration {
        use std::sync::atomic::Ordering::Relaxed;
        let done = Duration::from_millis(self.parked_ms.load(Relaxed));
        match self.parked_since.load(Relaxed) {
            0 => done,
            since => {
                done + self
                    .started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(since - 1))
            }
        }
    }

    /// A park begins: time stops counting against `max_duration`.
    pub(crate) fn park_begins(&self) {
        let since = self.started.elapsed().as_millis() as u64 + 1;
        self.parked_since
            .store(since, std::sync::atomic::Ordering::Relaxed);
    }

    /// When `max_duration` runs out, as this execution goes: its start,
    /// plus what is left of the budget, plus the time it spent parked.
    pub(crate) fn deadline(&self) -> Instant {
        let left = self
            .budget
            .max_duration
            .saturating_sub(Duration::from_millis(self.active_before_ms));
        self.started + left + self.parked()
    }

    /// Time the run has executed, in every execution so far.
    pub(crate) fn active_ms(&self) -> u64 {
        let here = self.started.elapsed().saturating_sub(self.parked());
        self.active_before_ms
            .saturating_add(here.as_millis() as u64)
    }

    /// The park ends: its time is counted as parked (not executing).
    pub(crate) fn park_ends(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let since = self.parked_since.swap(0, Relaxed);
        if since > 0 {
            let d = self
                .started
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1));
            self.parked_ms.fetch_add(d.as_millis() as u64, Relaxed);
        }
    }

    /// The fault for running out of `max_duration`, now.
    pub(crate) fn duration_fault(&self) -> RunFault {
        RunFault::Budget {
            budget: BudgetKind::MaxDuration,
            limit: self.budget.max_duration.as_millis() as u64,
            used: self.active_ms(),
        }
    }

    /// The fault for running out of `max_lifetime`, if it has.
    pub(crate) fn lifetime_fault(&self) -> Option<RunFault> {
        let limit = self.budget.max_lifetime?;
        let used = now_ms().saturating_sub(self.first_start_ms);
        (used >= limit.as_millis() as u64).then_some(RunFault::Budget {
            budget: BudgetKind::MaxLifetime,
            limit: limit.as_millis() as u64,
            used,
        })
    }
}

/// The artifacts a run has written, as its `read` sees them.
#[derive(Default)]
pub(crate) struct WrittenArtifacts {
    /// Body bytes written, against `max_artifact_bytes`.
    pub bytes: u64,
    /// name -> digest.
    pub digests: HashMap<String, String>,
}

/// The data of a run's wasmtime store. Each import sees only its own view
/// of it (`imports/`).
/// A run's outbound HTTP: requests made and body bytes sent and received.
#[derive(Default)]
pub(crate) struct HttpUsage {
    pub calls: u64,
    pub bytes: u64,
}

pub struct RunState {
    pub(crate) run: Arc<RunContext>,
    pub(crate) host: Arc<HostServices>,
    pub(crate) effects: Arc<Effects>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(crate) artifacts: WrittenArtifacts,
    /// Inbox positions of the signals this run has taken.
    pub(crate) consumed_signals: HashSet<u64>,
    /// Child runs started so far (replayed starts included).
    pub(crate) children: u64,
    /// Outbound HTTP so far (replayed calls included), against the budgets.
    pub(crate) http: HttpUsage,
    pub(crate) live: Arc<LiveRun>,
    /// The run's place among the runs executing at once; given back while
    /// it is parked warm.
    pub(crate) permit: Option<ExecutionSlot>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What the parking imports (`runtime`, `workflows`) borrow of a run: a
/// [`Parker`] and, beside it, the rest of their views.
pub(crate) struct Parking<'a> {
    pub run: &'a RunContext,
    pub effects: &'a Effects,
    pub host: &'a Arc<HostServices>,
    pub parker: Parker<'a>,
    pub consumed_signals: &'a mut HashSet<u64>,
    pub children: &'a mut u64,
}

impl RunState {
    pub(crate) fn parking(&mut self) -> Parking<'_> {
        Parking {
            run: &self.run,
            effects: &self.effects,
            host: &self.host,
            parker: Parker {
                run: &self.run,
                effects: &self.effects,
                registry: &self.host.registry,
                live: &self.live,
                permit: &mut self.permit,
                seen: self.live.wakes.load(std::sync::atomic::Ordering::Acquire),
            },
            consumed_signals: &mut self.consumed_signals,
            children: &mut self.children,
        }
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
    pub permit: Option<ExecutionSlot>,
    /// `runway verify`: replay the history and make no call past it.
    pub verify: bool,
}

/// Everything needed to execute one run.
pub(crate) struct RunRequest {
    pub record: RunRecord,
    pub pre: WorkflowPre<RunState>,
    pub setup: SandboxSetup,
}

/// A run's sandbox, ready to instantiate.
pub(crate) struct Sandbox {
    pub store: wasmtime::Store<RunState>,
    pub effects: Arc<Effects>,
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
        verify,
    } = setup;
    let first_start_ms = record.first_start_ms();
    let lifetime_deadline_ms = budget
        .max_lifetime
        .map(|l| first_start_ms.saturating_add(l.as_millis() as u64));
    let limits = JournalLimits {
        entries: budget.max_journal_entries,
        bytes: budget.max_journal_bytes,
    };
    let effects = Arc::new(Effects::new(
        services.clone(),
        record.id,
        limits,
        if verify {
            Journal::verifying(history)
        } else {
            Journal::replaying(history)
        },
        Recorder::new(progress, budget.max_events, budget.max_output_bytes),
    ));
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
            started: Instant::now(),
            active_before_ms: record.usage.active_ms,
            parked_ms: std::sync::atomic::AtomicU64::new(0),
            parked_since: std::sync::atomic::AtomicU64::new(0),
            lifetime_deadline_ms,
            first_start_ms,
            ancestors: record.ancestors.clone(),
        }),
        host: services.clone(),
        wasi: imports::wasi::context(&effects, &env, record.seed),
        effects: effects.clone(),
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(budget.max_memory, services.registry.memory.clone()),
        artifacts: WrittenArtifacts::default(),
        consumed_signals: HashSet::new(),
        children: 0,
        http: HttpUsage::default(),
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
            return Err(s.effects.fail(s.live.stop_fault()));
        }
        if s.live.suspending() {
            return Err(s.effects.fail(RunFault::Suspended));
        }
        if Instant::now() >= s.run.deadline() {
            return Err(s.effects.fail(s.run.duration_fault()));
        }
        if let Some(f) = s.run.lifetime_fault() {
            return Err(s.effects.fail(f));
        }
        if let Some(f) = s.effects.fault() {
            // Recorded where the guest could not be trapped (a clock).
            return Err(s.effects.fail(f));
        }
        if let Some(applied) = s.effects.backpressure() {
            return Ok(UpdateDeadline::YieldCustom(1, Box::pin(applied)));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    Sandbox {
        store,
        effects,
        fuel_limit,
        setup,
    }
}
