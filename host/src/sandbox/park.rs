//! Parking: how a run waits for a timer, a signal or a child.
//!
//! The wait is announced durably first (status, event, and the pending
//! journal entry the caller recorded), so a crash at any later point
//! resumes the same wait. Then the run either keeps its instance and waits
//! in place — if a warm slot is free — or is evicted: it traps out with
//! [`RunFault::Parked`], its store is dropped, and its driver rebuilds it
//! by replay on wake. The caller re-checks its condition after every wake,
//! which makes both paths answer the same.

use super::effect::Effects;
use super::fault::RunFault;
use super::state::RunContext;
use crate::host::scheduler::ExecutionSlot;
use crate::host::scheduler::{LiveRun, Registry};
use crate::store::Write;
use crate::types::{EventBody, RunStatus, Wait, now_ms};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// What a parking import needs of the run: enough to announce a wait, hold
/// or give up its execution slot, and be woken.
pub(crate) struct Parker<'a> {
    pub run: &'a RunContext,
    pub effects: &'a Effects,
    pub registry: &'a Registry,
    pub live: &'a Arc<LiveRun>,
    pub permit: &'a mut Option<ExecutionSlot>,
    /// The run's wake count when it last looked at what it waits for:
    /// before the import's first check, then after each wake.
    pub seen: u64,
}

/// A parked run holding a warm slot.
pub(crate) struct Parked {
    _slot: OwnedSemaphorePermit,
    wait: Wait,
}

impl Parker<'_> {
    /// Parks the run on `wait`: durable announcement, then a warm slot or
    /// eviction (the error, a trap).
    pub(crate) async fn park(&mut self, wait: &Wait) -> wasmtime::Result<Parked> {
        // The guest caused it: counted against `max_events` (and again on
        // replay, see `Effects::step`).
        self.effects.guest_event(EventBody::parked(wait))?;
        let status = Write::SetStatus {
            run: self.run.id,
            status: wait.status(),
            wait: Some(wait.clone()),
            active_ms: Some(self.run.active_ms()),
        };
        if let Err(e) = self.effects.submit_recorded(vec![status]).wait().await {
            return Err(self
                .effects
                .fail(RunFault::from_store("recording a wait", &e)));
        }
        self.registry
            .rest(self.live, wait.until_ms().is_some(), self.seen);
        let slot = match self.registry.warm.clone().try_acquire_owned() {
            // Under memory pressure a parked run gives its instance up.
            Ok(slot) if !self.registry.memory.under_pressure() => slot,
            _ => return Err(self.effects.fail(RunFault::Parked(wait.clone()))),
        };
        // Parked runs do not count against concurrently executing ones.
        *self.permit = None;
        self.live.evict.store(false, Ordering::Relaxed);
        self.live.warm.store(true, Ordering::Relaxed);
        Ok(Parked {
            _slot: slot,
            wait: wait.clone(),
        })
    }

    /// Waits in place until woken or `until_ms` passes. Ends the run if it
    /// is cancelled or runs out of `max_duration` meanwhile; gives the
    /// instance up if the host needs the memory.
    pub(crate) async fn wait_warm(
        &mut self,
        parked: &Parked,
        until_ms: Option<u64>,
    ) -> wasmtime::Result<()> {
        // Waiting again after a wake that changed nothing for it.
        self.registry.rest(self.live, until_ms.is_some(), self.seen);
        // A wait is not execution: only `max_lifetime` bounds it.
        let wake_at = until_ms
            .unwrap_or(u64::MAX)
            .min(self.run.lifetime_deadline_ms.unwrap_or(u64::MAX));
        self.run.park_begins();
        if self.registry.skip_time && until_ms.is_some() {
            // A test harness: what the run could get meanwhile (scripted
            // signals) is in its inbox already, so only time ends this
            // wait, and the time passes at once.
            crate::types::skip_to(wake_at);
        }
        let delay = Duration::from_millis(wake_at.saturating_sub(now_ms()));
        let waited = async {
            tokio::select! {
                () = self.live.wake.notified() => {}
                () = tokio::time::sleep(delay) => {}
            }
        };
        tracing::Instrument::instrument(waited, crate::telemetry::park_span(&parked.wait, None))
            .await;
        self.run.park_ends();
        // The caller looks again now: what any wake so far changed, it sees.
        self.seen = self.live.wakes.load(Ordering::Acquire);
        if self.live.cancelled() {
            return Err(self.effects.fail(self.live.stop_fault()));
        }
        if self.live.suspending() {
            return Err(self.effects.fail(RunFault::Suspended));
        }
        if let Some(f) = self.run.lifetime_fault() {
            return Err(self.effects.fail(f));
        }
        if self.live.evict.swap(false, Ordering::Relaxed) {
            self.live.warm.store(false, Ordering::Relaxed);
            return Err(self.effects.fail(RunFault::Parked(parked.wait.clone())));
        }
        Ok(())
    }

    /// Ends a park: the run executes again.
    pub(crate) async fn unpark(&mut self, parked: Option<Parked>) -> wasmtime::Result<()> {
        let Some(parked) = parked else {
            return Ok(());
        };
        self.registry.set_busy(self.live, true);
        // The execution slot first, then the warm one back: the instance is
        // always counted in one of them, so the instance pool (sized for
        // both) is never exceeded.
        let permit = self
            .registry
            .execution_slot(&self.run.slug, self.run.manifest.max_concurrent_runs)
            .await;
        drop(parked);
        self.live.warm.store(false, Ordering::Relaxed);
        match permit {
            Ok(p) => *self.permit = Some(p),
            Err(_) => {
                return Err(self
                    .effects
                    .fail(RunFault::Internal("the host is closing".into())));
            }
        }
        self.effects.system_event(EventBody::Running);
        self.effects.enqueue_recorded(vec![Write::SetStatus {
            run: self.run.id,
            status: RunStatus::Running,
            wait: None,
            active_ms: None,
        }]);
        Ok(())
    }
}
