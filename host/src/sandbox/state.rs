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
    /// When `max_duration` runs out, counted from the first start (ms since
    /// the Unix epoch), and the same as an instant of this process.
    pub deadline_ms: u64,
    pub deadline: Instant,
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

    /// The fault for running out of `max_duration`, now.
    pub(crate) fn duration_fault(&self) -> RunFault {
        RunFault::Budget {
            budget: BudgetKind::MaxDuration,
            limit: self.budget.max_duration.as_millis() as u64,
            used: now_ms().saturating_sub(self.first_start_ms),
        }
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
    let deadline_ms = first_start_ms.saturating_add(budget.max_duration.as_millis() as u64);
    let deadline = Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms()));
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
            deadline_ms,
            deadline,
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
        if Instant::now() >= s.run.deadline {
            return Err(s.effects.fail(s.run.duration_fault()));
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
