//! The run driver: takes a run from queued to ended. It executes the run
//! in its sandbox, waits out each park whose instance was evicted, and
//! rebuilds the run by replay on wake; a run that cannot execute (cancelled
//! while parked, a model budget crossed by a descendant, a component that
//! will not load) is ended here without its sandbox.

use super::Host;
use super::scheduler::LiveRun;
use crate::budget::Budget;
use crate::error::HostError;
use crate::manifest::Manifest;
use crate::sandbox::fault::{Ending, RunFault};
use crate::sandbox::{self, Executed, RunRequest, SandboxSetup, Shortage};
use crate::store::{Progress, Write};
use crate::types::{
    BudgetKind, ErrorCode, Event, RunError, RunRecord, RunStatus, Wait, now, now_ms,
};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How often a run waits for host capacity in a row before it ends as
/// `INTERNAL` (about a minute of backoff).
const MAX_CAPACITY_WAITS: u32 = 64;

/// Memory a run is admitted with at least (a small instance's linear
/// memory): a run starts only when this much fits the host's budget.
const ADMISSION: u64 = 2 << 20;

impl Host {
    pub(super) fn budget(&self, manifest: &Manifest) -> Budget {
        Budget::with(self.inner.config.budget, manifest.budget.overrides())
    }

    /// Drives a stored run, registered just now.
    pub(super) fn launch(&self, live: Arc<LiveRun>) {
        let record = match self.store().run(live.id) {
            Ok(Some(r)) if !r.status.is_terminal() => r,
            Ok(_) => return self.registry().finish(&live, None),
            Err(e) if e.is_unavailable() => {
                // The store cannot be read now: the run is driven once it can.
                let host = self.clone();
                tokio::spawn(async move {
                    while host.store().degraded().is_some() && !live.suspending() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    host.launch(live);
                });
                return;
            }
            Err(e) => {
                tracing::error!(run = %live.id, error = %e, "could not load a run to drive it");
                return self.registry().finish(&live, None);
            }
        };
        tokio::spawn(self.clone().drive(live, record));
    }

    /// Drives a run until it ends: executes it, and whenever it parks with
    /// its instance evicted, waits for its wake and executes it again by
    /// replay.
    pub(super) async fn drive(self, live: Arc<LiveRun>, record: RunRecord) {
        // On a database shared by hosts, only the lease holder drives it.
        match self.store().claim(record.id) {
            Ok(true) => {}
            Ok(false) => return self.registry().finish(&live, None),
            Err(e) => {
                tracing::warn!(run = %record.id, error = %e, "could not claim a run; it is picked up later");
                return self.registry().finish(&live, None);
            }
        }
        let id = record.id;
        // The record was read before the claim: another host may have
        // driven the run on (or ended it) and released it in between, so
        // the holder reads it again (driving the stale one would replay
        // the run past its end and end it twice).
        let record = if self.store().is_postgres() {
            match self.store().run(id) {
                Ok(Some(r)) => r,
                // Started here and not committed yet: no other host has
                // seen it.
                Ok(None) => record,
                Err(e) => {
                    tracing::warn!(run = %id, error = %e, "could not read a claimed run; it is picked up later");
                    self.store().release(id);
                    return self.registry().finish(&live, None);
                }
            }
        } else {
            record
        };
        self.clone().drive_claimed(live, record).await;
        self.store().release(id);
    }

    async fn drive_claimed(self, live: Arc<LiveRun>, mut record: RunRecord) {
        // A signal or a child's end may have come while nobody drove the
        // run: the first time, only a timer is waited for without a check.
        let mut first = true;
        let mut capacity_waits = 0u32;
        let mut storage_waits = 0u32;
        let end = loop {
            if record.status.is_terminal() {
                break record;
            }
            if live.cancelled() || record.status == RunStatus::Cancelling {
                break self.end_unexecuted(record, live.stop_fault()).await;
            }
            if let Some(fault) = self.model_budget_crossed(&record) {
                // Crossed by a descendant's call while this run was not
                // driven (before a crash, say).
                break self.end_unexecuted(record, fault).await;
            }
            let check_now =
                std::mem::take(&mut first) && !matches!(record.wait, Some(Wait::Timer { .. }));
            if let Some(wait) = record.wait.clone().filter(|_| !check_now) {
                let span = crate::telemetry::park_span(&wait, Some(&record));
                match self
                    .await_wake(&live, &record, &wait)
                    .instrument(span)
                    .await
                {
                    Ok(()) => {}
                    Err(RunFault::Suspended) => return self.registry().finish(&live, None),
                    Err(fault) => break self.end_unexecuted(record, fault).await,
                }
            }
            if live.suspending() {
                return self.registry().finish(&live, None);
            }
            if record.parent.is_some()
                && let Some(ending) = self.scripted_child(&record.workflow)
            {
                break self.end_without_executing(record, ending).await;
            }
            // Boxed: a parked driver then holds a few hundred bytes, not
            // the whole execution's state machine (10,000 sleeping runs).
            match Box::pin(self.execute_once(&live, record)).await {
                Executed::Finished(r) => break r,
                Executed::Parked(r) => {
                    tracing::info!(workflow = %r.workflow, run = %r.id, status = %r.status.as_str(), "run parked, its instance evicted");
                    record = r;
                    capacity_waits = 0;
                    storage_waits = 0;
                }
                Executed::Suspended => return self.registry().finish(&live, None),
                Executed::Retry {
                    record: r,
                    shortage: Shortage::Memory { need },
                } => {
                    record = r;
                    capacity_waits += 1;
                    if capacity_waits > MAX_CAPACITY_WAITS {
                        // The host's fault, said so: never the author's.
                        let fault = RunFault::Internal(format!(
                            "the host had no capacity for the run after {MAX_CAPACITY_WAITS} tries"
                        ));
                        break self.end_unexecuted(record, fault).await;
                    }
                    self.await_capacity(&live, need, capacity_waits).await;
                }
                Executed::Retry {
                    record: r,
                    shortage: Shortage::Storage(reason),
                } => {
                    record = r;
                    // A degraded store is waited out however long it lasts;
                    // a failure it does not report is tried a bounded
                    // number of times.
                    if self.store().degraded().is_none() {
                        storage_waits += 1;
                    }
                    if storage_waits > MAX_CAPACITY_WAITS {
                        let fault = RunFault::Internal(format!(
                            "the host's storage failed {MAX_CAPACITY_WAITS} times in a row: {reason}"
                        ));
                        break self.end_unexecuted(record, fault).await;
                    }
                    self.await_storage(&live, &reason, storage_waits).await;
                }
            }
        };
        if live.aborted() {
            // Its budget is spent: nothing under it may go on.
            for child in self.store().children(end.id).unwrap_or_default() {
                if let Err(e) = Box::pin(self.cancel(child)).await {
                    tracing::warn!(run = %child, error = %e, "could not cancel a child run");
                }
            }
        }
        self.inner.services.ledger.forget(end.id);
        if end.parent.is_none() {
            self.inner.services.trees.root_ended(end.id);
        }
        if let Some(parent) = end.parent {
            // Before this run stops counting as busy: see `Registry::wake`.
            self.wake(parent);
        }
        crate::metrics::run_finished(&end);
        let duration_ms = match (end.started_at, end.finished_at) {
            (Some(a), Some(b)) => (b - a).whole_milliseconds().max(0) as u64,
            _ => 0,
        };
        tracing::info!(
            workflow = %end.workflow,
            run = %end.id,
            status = %end.status.as_str(),
            code = end.error.as_ref().map(|e| e.code.as_str()),
            duration_ms,
            "run ended"
        );
        self.registry().finish(&live, Some(end));
    }

    /// Waits for a parked, evicted run's wake: its deadline, a signal, a
    /// child's end. Errs with the fault that ends the run instead.
    pub(super) async fn await_wake(
        &self,
        live: &LiveRun,
        record: &RunRecord,
        wait: &Wait,
    ) -> Result<(), RunFault> {
        // A wait is not execution: only `max_lifetime` (wall clock from
        // the first start) bounds it.
        let started = record.first_start_ms();
        let run_deadline = match self.manifest_of(record) {
            Ok(m) => self
                .budget(&m)
                .max_lifetime
                .map_or(u64::MAX, |l| started.saturating_add(l.as_millis() as u64)),
            Err(_) => u64::MAX,
        };
        let until = wait.until_ms();
        loop {
            // Counted before looking: a wake from here on keeps it busy.
            let seen = live.wakes.load(std::sync::atomic::Ordering::Acquire);
            if live.cancelled() {
                return Err(live.stop_fault());
            }
            if live.suspending() {
                return Err(RunFault::Suspended);
            }
            let now = now_ms();
            if now >= run_deadline {
                return Err(RunFault::Budget {
                    budget: BudgetKind::MaxLifetime,
                    limit: run_deadline - started,
                    used: now - started,
                });
            }
            if until.is_some_and(|u| now >= u) {
                break;
            }
            self.registry().rest(live, until.is_some(), seen);
            let wake_at = until.unwrap_or(u64::MAX).min(run_deadline);
            let delay = Duration::from_millis(wake_at.saturating_sub(now));
            tokio::select! {
                () = live.wake.notified() => {
                    // A timer is woken only by its time (or a cancel).
                    if !matches!(wait, Wait::Timer { .. }) {
                        break;
                    }
                }
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.registry().set_busy(live, true);
        Ok(())
    }

    /// Waits for capacity: until `need` bytes of run memory fit the host's
    /// budget (evicting warm parks first), and for a backoff that grows
    /// with each wait (an instance the pool could not give). A cancel or
    /// shutdown ends the wait (the loop then sees it).
    async fn await_capacity(&self, live: &LiveRun, need: u64, waits: u32) {
        let memory = &self.registry().memory;
        tracing::info!(run = %live.id, need, in_use = memory.in_use(), limit = memory.limit(), "the host has no capacity for the run now; it resumes by replay");
        crate::metrics::capacity_wait();
        self.registry().evict_warm();
        let backoff = Duration::from_millis(5u64 << waits.min(8)).min(Duration::from_secs(1));
        tokio::select! {
            () = async {
                memory.wait_for(need).await;
                tokio::time::sleep(backoff).await;
            } => {}
            () = live.wake.notified() => {}
        }
    }

    /// Waits until the store takes writes again, then a backoff that grows
    /// with `waits`.
    async fn await_storage(&self, live: &LiveRun, reason: &str, waits: u32) {
        tracing::warn!(run = %live.id, reason, "the host's storage failed the run; it resumes by replay once the storage recovers");
        crate::metrics::storage_wait();
        while self.store().degraded().is_some() && !live.cancelled() && !live.suspending() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = live.wake.notified() => {}
            }
        }
        let backoff = Duration::from_millis(5u64 << waits.min(8)).min(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = live.wake.notified() => {}
        }
    }

    /// Executes a run once: from the start, or by replaying its journal.
    pub(super) async fn execute_once(&self, live: &Arc<LiveRun>, record: RunRecord) -> Executed {
        let limit = self
            .manifest_of(&record)
            .ok()
            .and_then(|m| m.max_concurrent_runs);
        self.registry().join_queue(live);
        let permit = self
            .registry()
            .execution_slot(&record.workflow, limit)
            .await;
        self.registry().leave_queue(live);
        let Ok(permit) = permit else {
            return Executed::Suspended;
        };
        let memory = &self.registry().memory;
        if !memory.fits(ADMISSION) {
            // Full: make room before starting another instance.
            self.registry().evict_warm();
            memory.wait_for(ADMISSION).await;
        }
        let loaded = (|| -> Result<_, HostError> {
            let manifest = self.manifest_of(&record)?;
            if record.status == RunStatus::Queued && record.started_at.is_none() {
                // Never executed: nothing journaled, only the queued event
                // (the running status is written before any journal entry).
                let progress = Progress {
                    next_seq: 2,
                    output: [0, 0],
                };
                return Ok((manifest, Vec::new(), progress));
            }
            let history = self.store().journal(record.id)?;
            let progress = self.store().progress(record.id)?;
            tracing::info!(workflow = %record.workflow, run = %record.id, calls = history.len(), "run resumed by replay");
            Ok((manifest, history, progress))
        })();
        let (manifest, history, progress) = match loaded {
            Ok(x) => x,
            Err(HostError::Store(e)) if e.is_unavailable() => {
                let shortage = Shortage::Storage(e.to_string());
                return Executed::Retry { record, shortage };
            }
            Err(e) => return Executed::Finished(self.fail_internal(record, e.to_string()).await),
        };
        let pre = match self.prepare(&record.digest).await {
            Ok(pre) => pre,
            Err(e) => return Executed::Finished(self.fail_internal(record, e.to_string()).await),
        };
        let request = RunRequest {
            record: record.clone(),
            pre,
            setup: SandboxSetup {
                budget: self.budget(&manifest),
                manifest,
                history,
                progress,
                live: live.clone(),
                permit: Some(permit),
                verify: false,
            },
        };
        let span = crate::telemetry::run_span(&record);
        match sandbox::execute(
            self.inner.engine.wasmtime(),
            self.inner.services.clone(),
            request,
        )
        .instrument(span)
        .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(run = %record.id, error = %e, "could not record the end of a run");
                let mut r = record;
                r.status = RunStatus::Failed;
                r.error = Some(RunError {
                    code: ErrorCode::Internal,
                    message: e.to_string(),
                    cause: None,
                });
                Executed::Finished(r)
            }
        }
    }

    /// The manifest a run is pinned to.
    pub(super) fn manifest_of(&self, record: &RunRecord) -> Result<Arc<Manifest>, HostError> {
        let key = (record.workflow.clone(), record.version);
        if let Some(m) = self.inner.manifests.lock().get(&key) {
            return Ok(m.clone());
        }
        let wf = self
            .store()
            .workflow(&record.workflow, Some(record.version))?
            .ok_or_else(|| HostError::VersionNotFound(record.workflow.clone(), record.version))?;
        self.manifest(&wf)
    }

    /// The fault for a run whose model budget its tree has crossed.
    pub(super) fn model_budget_crossed(&self, record: &RunRecord) -> Option<RunFault> {
        let budget = self.budget(self.manifest_of(record).ok()?.as_ref());
        if budget.max_tokens.is_none() && budget.max_usd.is_none() {
            return None;
        }
        let link = crate::types::Ancestor {
            run: record.id,
            max_tokens: budget.max_tokens,
            max_usd: budget.max_usd,
            max_tree_runs: None,
        };
        let c = self
            .inner
            .services
            .ledger
            .crossed(&[link])
            .into_iter()
            .next()?;
        Some(RunFault::Budget {
            budget: c.budget,
            limit: c.limit,
            used: c.used,
        })
    }

    /// Ends a run that is not executing (parked, or never resumed) with `fault`.
    pub(super) async fn end_unexecuted(&self, record: RunRecord, fault: RunFault) -> RunRecord {
        self.end_without_executing(record, Ending::Fault(fault))
            .await
    }

    /// How a test harness's scenario says a child run of `workflow` ends.
    fn scripted_child(&self, workflow: &str) -> Option<Ending> {
        self.inner.services.script.as_ref()?.child(workflow)
    }

    /// Ends a run that is not executing, as `ending` says.
    async fn end_without_executing(&self, mut record: RunRecord, ending: Ending) -> RunRecord {
        let mut seq = match self.store().progress(record.id) {
            Ok(p) => p.next_seq,
            Err(e) => {
                tracing::error!(run = %record.id, error = %e, "could not read where a run's log stands");
                return record;
            }
        };
        let totals = self.inner.services.ledger.totals(record.id);
        record.usage.model = totals.own;
        record.usage.model_tree = totals.tree;
        if matches!(ending, Ending::Fault(RunFault::Cancelled))
            && record.cancel_requested_by.is_none()
        {
            record.cancel_requested_by = self
                .store()
                .run(record.id)
                .ok()
                .flatten()
                .and_then(|r| r.cancel_requested_by);
        }
        let events = ending
            .apply(&mut record, str::to_owned)
            .into_iter()
            .map(|body| {
                seq += 1;
                Event {
                    seq: seq - 1,
                    at: now(),
                    body,
                }
            })
            .collect();
        let writes = vec![
            Write::AppendEvents(record.id, events),
            Write::PutRun(Box::new(record.clone())),
        ];
        if let Err(e) = self.store().commit(writes).await {
            tracing::error!(run = %record.id, error = %e, "could not record the end of a run");
        }
        record
    }

    pub(super) async fn prepare(
        &self,
        digest: &str,
    ) -> Result<crate::sandbox::bindings::WorkflowPre<sandbox::RunState>, HostError> {
        let engine = self.inner.engine.clone();
        if engine.is_warm(digest) {
            // Warm entries are never evicted, so nothing needs loading.
            return engine
                .prepare(digest, || anyhow::bail!("component {digest} is not warm"))
                .map_err(|e| HostError::Internal(format!("{e:#}")));
        }
        let store = self.store().clone();
        let digest = digest.to_owned();
        tokio::task::spawn_blocking(move || {
            engine.prepare(&digest, || {
                store
                    .component(&digest)?
                    .ok_or_else(|| anyhow::anyhow!("component {digest} is missing from the store"))
            })
        })
        .await
        .map_err(|e| HostError::Internal(e.to_string()))?
        .map_err(|e| HostError::Internal(format!("preparing the component: {e:#}")))
    }

    /// Ends a run that could not execute as failed with `INTERNAL`.
    pub(super) async fn fail_internal(&self, record: RunRecord, message: String) -> RunRecord {
        tracing::error!(run = %record.id, error = %message, "run could not execute");
        self.end_unexecuted(record, RunFault::Internal(message))
            .await
    }
}
