//! One run: its sandbox (a wasmtime `Store`), its budgets, and the mapping of
//! however it ended to a status and a typed error.
//!
//! The store is the unit of abandonment: one per run, dropped after the run
//! whatever happened, so a trapped or timed-out guest can affect nothing else.
//!
//! - `state`: the store's data and how a sandbox is built;
//! - `imports`: the host side of each WIT interface, one file each, over a
//!   narrow view of the state;
//! - `effect`: the one journaled-effect path every import goes through, over
//!   the `journal` and the event `recorder`;
//! - `park`: how a run waits; `fault`: how a run ends.

pub(crate) mod bindings;
mod effect;
pub mod engine;
pub(crate) mod fault;
mod imports;
pub(crate) use imports::approval_signal;
pub(crate) mod attempt;
pub(crate) mod ingress;
pub mod journal;
mod limiter;
pub(crate) mod output;
mod park;
mod recorder;
mod state;

use crate::host::services::HostServices;
use crate::store::{StoreError, Write};
use crate::types::{
    BudgetKind, ErrorCode, EventBody, RunError, RunRecord, RunStatus, Usage, Wait, now, now_ms,
};
use effect::Effects;
use fault::{Ending, RunFault};
pub use state::RunState;
pub(crate) use state::{RunRequest, Sandbox, SandboxSetup, sandbox};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

/// Slack for the wall-clock timeout around the whole run, over the epoch
/// deadline that normally stops it first (the timeout catches host calls).
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);
/// Longest failure code and message a guest's failure is stored with.
const MAX_FAILURE_CODE: usize = 128;
const MAX_FAILURE_MESSAGE: usize = 64 * 1024;
/// How long a run may execute before its `running` status is written.
const STATUS_DELAY: Duration = Duration::from_millis(50);

/// What an execution came to.
pub(crate) enum Executed {
    /// The run ended; the record is durable.
    Finished(RunRecord),
    /// The run parked and its instance was dropped; the record says what
    /// it waits for (its park is durable).
    Parked(RunRecord),
    /// The host is shutting down; the run stopped without ending.
    Suspended,
    /// The host had no capacity for the run: it stopped without ending, to
    /// execute again by replay once the shortage is over.
    Retry {
        record: RunRecord,
        shortage: Shortage,
    },
}

/// What a run that stopped to execute again waits for.
#[derive(Debug)]
pub(crate) enum Shortage {
    /// Memory for runs (`need` bytes), or an instance.
    Memory { need: u64 },
    /// The store or the disk to take reads and writes again.
    Storage(String),
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
        effects,
        fuel_limit,
        setup,
    } = sandbox(engine, &services, &record, setup);
    let run_ctx = store.data().run.clone();
    let live = store.data().live.clone();

    // The `running` status waits for the run's first flush, its end, or
    // STATUS_DELAY, whichever comes first: a short run then costs one
    // transaction, and a long one shows it is running within the delay.
    effects.system_event(EventBody::Running);
    effects
        .deferred
        .lock()
        .push(Write::PutRun(Box::new(record.clone())));
    let weak = Arc::downgrade(&effects);
    tokio::spawn(async move {
        tokio::time::sleep(STATUS_DELAY).await;
        if let Some(effects) = weak.upgrade() {
            effects.flush();
        }
    });

    let input = record.input.to_string();
    let result = match setup {
        Err(e) => Ok(Err(e)),
        Ok(()) => {
            let call = async {
                let workflow = match pre.instantiate_async(&mut store).await {
                    Ok(w) => w,
                    Err(e) => return Err(instantiation_fault(&store, e)),
                };
                workflow.call_run(&mut store, &input).await
            };
            // A watchdog past the epoch check, in case the guest is stuck
            // where no epoch tick reaches; the deadline moves while the run
            // is parked, so it is read again each time it is reached.
            let run = run_ctx.clone();
            let watchdog = async move {
                loop {
                    let at = run.deadline() + TIMEOUT_GRACE;
                    tokio::time::sleep_until(at.into()).await;
                    if std::time::Instant::now() >= run.deadline() + TIMEOUT_GRACE {
                        return;
                    }
                }
            };
            tokio::select! {
                done = call => Ok(done),
                () = watchdog => Err(()),
            }
        }
    };

    let fuel_used = fuel_limit.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.into_data();
    let mut outcome = match result {
        Err(_elapsed) => Ending::Fault(
            state
                .effects
                .recorder
                .lock()
                .fault
                .clone()
                .unwrap_or_else(|| run_ctx.duration_fault()),
        ),
        Ok(Ok(returned)) => returned_outcome(&state, returned),
        Ok(Err(e)) => error_outcome(&state, &e, fuel_limit, fuel_used),
    };
    if let Ending::Fault(RunFault::Parked(wait)) = outcome {
        if !live.cancelled() {
            // The park is durable already (see `park`); what follows it is not
            // needed before the wake, so it rides along.
            record.status = wait.status();
            record.wait = Some(wait);
            record.usage.active_ms = run_ctx.active_ms();
            effects.flush();
            return Ok(Executed::Parked(record));
        }
        outcome = Ending::Fault(live.stop_fault());
    }
    if let Ending::Fault(RunFault::Capacity { need }) = outcome
        && !live.cancelled()
    {
        effects.flush();
        let shortage = Shortage::Memory { need };
        return Ok(Executed::Retry { record, shortage });
    }
    if let Ending::Fault(RunFault::Storage(reason)) = &outcome
        && !live.cancelled()
    {
        effects.flush();
        let shortage = Shortage::Storage(reason.clone());
        return Ok(Executed::Retry { record, shortage });
    }
    if matches!(outcome, Ending::Fault(RunFault::Suspended)) && !live.cancelled() {
        effects.flush();
        return Ok(Executed::Suspended);
    }
    let spent = matches!(&outcome, Ending::Fault(f) if f.budget_event().is_some());
    if live.cancelled() && !spent {
        // Whatever else happened, a run asked to stop ends cancelled (or
        // with the fault it was stopped for); one that ran out of a budget
        // first keeps that failure.
        outcome = Ending::Fault(live.stop_fault());
    }

    if !live.cancelled()
        && let Some(policy) = &run_ctx.manifest.retry
        && record.attempt < policy.max_attempts
        && let Some(error) = outcome.error(|m| effects.recorder.lock().masker.mask(m))
        && let Some(code) = attempt::retried(policy, &error)
    {
        // The failed attempt's record first: its journal decides what the
        // next one keeps.
        effects.submit_recorded(Vec::new()).wait().await?;
        let journal = services.store.journal(record.id)?;
        let kept = attempt::kept(&journal, &error, policy);
        record.attempt += 1;
        let at_ms = now_ms().saturating_add(policy.wait_before(record.attempt).as_millis() as u64);
        tracing::info!(run = %record.id, attempt = record.attempt, code, kept = kept.entries, "run failed; retrying");
        effects.system_event(EventBody::Retrying {
            attempt: record.attempt,
            code: code.to_owned(),
            message: error.message,
            at_ms,
            kept: kept.entries,
        });
        let wait = Wait::Timer { until_ms: at_ms };
        record.status = wait.status();
        record.wait = Some(wait);
        record.usage.active_ms = run_ctx.active_ms();
        let mut writes = vec![Write::TruncateJournal(record.id, kept.entries)];
        if let Some(m) = kept.mark {
            writes.push(Write::Progress(record.id, m.output));
        }
        writes.push(Write::PutRun(Box::new(record.clone())));
        effects.submit_recorded(writes).wait().await?;
        return Ok(Executed::Parked(record));
    }

    let duration = Duration::from_millis(now_ms().saturating_sub(run_ctx.first_start_ms))
        .max(started.elapsed());
    finish(&effects, &mut record, &state, outcome, fuel_used, duration);
    effects
        .submit_recorded(vec![Write::PutRun(Box::new(record.clone()))])
        .wait()
        .await?;
    Ok(Executed::Finished(record))
}

/// Writes the run's end into `record` and its terminal events.
fn finish(
    effects: &Effects,
    record: &mut RunRecord,
    state: &RunState,
    ending: Ending,
    fuel_used: u64,
    duration: Duration,
) {
    let totals = state.host.ledger.totals(record.id);
    if matches!(ending, Ending::Fault(RunFault::Cancelled)) && record.cancel_requested_by.is_none()
    {
        // Asked for while it executed: the store has who asked.
        record.cancel_requested_by = state
            .host
            .store
            .run(record.id)
            .ok()
            .flatten()
            .and_then(|r| r.cancel_requested_by);
    }
    let mut rec = effects.recorder.lock();
    rec.finish_output();
    let (events, output_bytes) = rec.usage();
    record.usage = Usage {
        fuel: fuel_used,
        duration_ms: duration.as_millis() as u64,
        active_ms: state.run.active_ms(),
        peak_memory_bytes: state.limiter.peak,
        events,
        output_bytes,
        artifact_bytes: state.artifacts.bytes,
        model: totals.own,
        model_tree: totals.tree,
    };
    for event in ending.apply(record, |m| rec.masker.mask(m)) {
        rec.system(event);
    }
}

/// An instantiation that failed before any guest code ran out of a limit of
/// the host's (the instance pool, address space) is the host's capacity, not
/// the author's fault: the run waits and executes again. A trap (a start
/// function) or a budget stays the guest's.
fn instantiation_fault(store: &wasmtime::Store<RunState>, e: wasmtime::Error) -> wasmtime::Error {
    let state = store.data();
    if e.downcast_ref::<Trap>().is_some()
        || e.downcast_ref::<RunFault>().is_some()
        || state.limiter.fault.is_some()
    {
        return e;
    }
    tracing::warn!(run = %state.run.id, error = %format!("{e:#}"), "no instance for a run; it waits for capacity");
    state.effects.fail(RunFault::Capacity { need: 0 })
}

/// The panic a Rust guest printed to stderr before it trapped, as one line:
/// `panicked at src/lib.rs:10:5: the message`.
fn panic_headline(stderr: &str) -> Option<String> {
    let at = stderr.rfind("panicked at ")?;
    let rest = &stderr[at + "panicked at ".len()..];
    let (location, after) = rest.split_once(":\n")?;
    let message: Vec<&str> = after
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    let message = message.join(" ");
    let message = message.trim();
    (!message.is_empty()).then(|| format!("panicked at {location}: {message}"))
}

/// The guest returned: a result, or its own failure.
fn returned_outcome(
    state: &RunState,
    returned: Result<String, crate::sandbox::bindings::types::Failure>,
) -> Ending {
    let mut rec = state.effects.recorder.lock();
    if let Some(f) = rec.fault.clone() {
        // E.g. a determinism fault seen by a clock: it stands even though
        // the guest went on to return.
        return Ending::Fault(f);
    }
    if let Err(e) = state.effects.journal().check_complete() {
        return Ending::Fault(e.into());
    }
    match returned {
        Ok(text) => {
            if let Err(f) = rec.charge_output(text.len()) {
                return Ending::Fault(f);
            }
            match ingress::json("the workflow's output", &text, usize::MAX) {
                Ok(v)
                    if let Some(problem) = state
                        .run
                        .manifest
                        .output
                        .as_ref()
                        .and_then(|c| c.check(&v).err()) =>
                {
                    Ending::Failed(RunError {
                        code: ErrorCode::InvalidOutput,
                        message: rec.masker.mask(&format!(
                            "the output does not follow the manifest's [output.schema]: {problem}"
                        )),
                        cause: None,
                    })
                }
                Ok(mut v) => {
                    rec.masker.mask_value(&mut v);
                    Ending::Completed(v)
                }
                Err(e) => Ending::Failed(RunError {
                    code: ErrorCode::ProgramError,
                    message: e.to_string(),
                    cause: None,
                }),
            }
        }
        Err(failure) => {
            // Guest strings like any output: charged, and stored capped.
            if let Err(f) = rec.charge_output(failure.code.len() + failure.message.len()) {
                return Ending::Fault(f);
            }
            let message = rec
                .masker
                .mask(truncated(&failure.message, MAX_FAILURE_MESSAGE));
            Ending::Failed(if failure.code == ErrorCode::InvalidInput.as_str() {
                RunError {
                    code: ErrorCode::InvalidInput,
                    message,
                    cause: None,
                }
            } else {
                let code = rec.masker.mask(truncated(&failure.code, MAX_FAILURE_CODE));
                RunError {
                    code: ErrorCode::ProgramError,
                    message: format!("{code}: {message}"),
                    cause: Some(code),
                }
            })
        }
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The call failed: a host fault, a budget, or a trap.
fn error_outcome(state: &RunState, e: &wasmtime::Error, fuel_limit: u64, fuel_used: u64) -> Ending {
    let rec = state.effects.recorder.lock();
    if let Some(f) = rec.fault.clone().or_else(|| state.limiter.fault.clone()) {
        return Ending::Fault(f);
    }
    if let Some(f) = e.downcast_ref::<RunFault>() {
        return Ending::Fault(f.clone());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            return Ending::Fault(RunFault::Budget {
                budget: BudgetKind::MaxFuel,
                limit: fuel_limit,
                used: fuel_used,
            });
        }
        Some(Trap::Interrupt) if state.live.cancelled() => {
            return Ending::Fault(state.live.stop_fault());
        }
        _ => {}
    }
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Ending::Failed(RunError {
            code: ErrorCode::ProgramError,
            message: format!(
                "the workflow exited with status {} instead of returning a result",
                exit.0
            ),
            cause: None,
        });
    }
    let cause = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => e.root_cause().to_string(),
    };
    let trap = if cause.starts_with("wasm trap") {
        cause
    } else {
        format!("wasm trap: {cause}")
    };
    // A Rust guest's panic says more than the trap it ends in: it heads
    // the message.
    let mut message = match panic_headline(&rec.stderr_tail) {
        Some(headline) => format!("{headline}\n{trap}"),
        None => trap,
    };
    if !rec.stderr_tail.is_empty() {
        message.push_str(&format!("\nguest stderr:\n{}", rec.stderr_tail.trim_end()));
    }
    if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
        message.push_str(&format!("\n{bt}"));
    }
    Ending::Failed(RunError {
        code: ErrorCode::Trap,
        message: rec.masker.mask(&message),
        cause: None,
    })
}
