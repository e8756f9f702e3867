//! [`Host`]: a data directory opened for deploying and running workflows.
//! The CLI's embedded mode and (later) the server are both thin layers over it.

use crate::artifact_store::ArtifactStore;
use crate::budget::Budget;
use crate::config::HostConfig;
use crate::engine::Engine;
use crate::error::HostError;
use crate::manifest::Manifest;
use crate::run::fault::RunFault;
use crate::run::{self, Executed, RunRequest, SandboxSetup};
use crate::scheduler::{LiveRun, Registry};
use crate::secrets::SecretSource;
use crate::services::HostServices;
use crate::store::{Progress, Store, Write, WriteOutcome};
use crate::types::{
    BudgetKind, ErrorCode, Event, EventBody, RunError, RunId, RunRecord, RunStatus, Signal, Usage,
    Wait, WorkflowVersion, now, now_ms,
};
use parking_lot::Mutex;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest input a run accepts.
pub const MAX_INPUT_BYTES: usize = 1 << 20;
/// Largest signal payload.
pub const MAX_SIGNAL_BYTES: usize = 1 << 20;

/// The result of a deploy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Deployment {
    pub slug: String,
    pub version: u32,
    pub digest: String,
}

/// A run started (or found by its idempotency key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    pub id: RunId,
    /// False when the key named an existing run.
    pub created: bool,
}

/// What a cancel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The run is stopping (it ends `cancelled` momentarily).
    Cancelling,
    /// The run was parked or not executing; it is `cancelled` now.
    Cancelled,
    /// The run had already ended with this status.
    AlreadyEnded(RunStatus),
}

/// Where a signal landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SignalReceipt {
    /// Its position in the run's inbox.
    pub seq: u64,
    /// A signal with the same id was delivered before; this one was dropped.
    pub duplicate: bool,
}

/// A host on one data directory. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    config: HostConfig,
    engine: Arc<Engine>,
    services: Arc<HostServices>,
    manifests: Mutex<HashMap<(String, u32), Arc<Manifest>>>,
}

impl Host {
    /// Opens (creating) the data directory.
    pub async fn open(config: HostConfig) -> Result<Host, HostError> {
        let dir = &config.data_dir;
        let io = |context: &str| {
            let context = format!("{context} {}", dir.display());
            move |source| HostError::Io { context, source }
        };
        std::fs::create_dir_all(dir).map_err(io("creating the data directory"))?;
        let store = Store::open(dir)?;
        let secrets = SecretSource::load(dir).map_err(|e| HostError::Internal(e.to_string()))?;
        let artifacts = ArtifactStore::open(&dir.join("artifacts"))
            .map_err(io("opening the artifact directory in"))?;
        let mut engine_options = config.engine.clone();
        // Warm parked runs keep their instance, so the pool holds them too.
        engine_options.pool_size = engine_options
            .pool_size
            .max((config.max_concurrent_runs + config.max_warm_instances) as u32);
        let engine = Engine::new(&engine_options, &dir.join("cache"))
            .map_err(|e| HostError::Internal(format!("starting the engine: {e:#}")))?;
        let models = crate::models::Models::new(&config.models)
            .map_err(|e| HostError::Internal(format!("host config: {e}")))?;
        let (registry, mut launches) =
            Registry::new(config.max_warm_instances, config.max_concurrent_runs);
        let host = Host {
            inner: Arc::new(Inner {
                engine,
                services: Arc::new(HostServices {
                    ledger: crate::ledger::Ledger::new(store.clone()),
                    models,
                    store,
                    secrets,
                    artifacts: Arc::new(artifacts),
                    registry,
                    max_depth: config.max_child_depth,
                }),
                manifests: Mutex::new(HashMap::new()),
                config,
            }),
        };
        // Child runs are queued by their parent's sandbox, which cannot
        // reach the host; they arrive here.
        let weak = Arc::downgrade(&host.inner);
        tokio::spawn(async move {
            while let Some(live) = launches.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                Host { inner }.launch(live);
            }
        });
        Ok(host)
    }

    /// The run store, for reads.
    pub fn store(&self) -> &Store {
        &self.inner.services.store
    }

    /// The engine (benchmarks measure it directly).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Deploys a component with its manifest as the next version of the
    /// manifest's slug. Nothing is stored unless both are valid.
    pub async fn deploy(
        &self,
        wasm: Vec<u8>,
        manifest_toml: &str,
    ) -> Result<Deployment, HostError> {
        let manifest = Manifest::parse(manifest_toml)?;
        if wasm.len() > crate::engine::MAX_COMPONENT_BYTES {
            return Err(crate::engine::ComponentError::TooLarge(wasm.len()).into());
        }
        let digest = hex::encode(Sha256::digest(&wasm));
        let engine = self.inner.engine.clone();
        let stored = self.store().component(&digest)?.is_some();
        let component = if stored && engine.is_warm(&digest) {
            None
        } else {
            let d = digest.clone();
            let wasm = tokio::task::spawn_blocking(move || {
                engine.check_and_compile(&d, &wasm).map(|()| wasm)
            })
            .await
            .map_err(|e| HostError::Internal(e.to_string()))??;
            (!stored).then_some(wasm)
        };
        let out = self
            .store()
            .commit(vec![Write::Deploy {
                slug: manifest.slug.clone(),
                digest: digest.clone(),
                component,
                manifest_toml: manifest_toml.to_owned(),
                description: manifest.description.clone(),
            }])
            .await?;
        let Some(WriteOutcome::Version(version)) = out.first() else {
            return Err(HostError::Internal("deploy produced no version".into()));
        };
        self.inner.manifests.lock().insert(
            (manifest.slug.clone(), *version),
            Arc::new(manifest.clone()),
        );
        Ok(Deployment {
            slug: manifest.slug,
            version: *version,
            digest,
        })
    }

    /// A version's manifest, parsed once per host.
    pub(crate) fn manifest(&self, wf: &WorkflowVersion) -> Result<Arc<Manifest>, HostError> {
        let key = (wf.slug.clone(), wf.version);
        if let Some(m) = self.inner.manifests.lock().get(&key) {
            return Ok(m.clone());
        }
        let m = Arc::new(Manifest::parse(&wf.manifest_toml)?);
        self.inner.manifests.lock().insert(key, m.clone());
        Ok(m)
    }

    /// Starts a run of the newest version of `slug`. Returns once the run is
    /// durably queued; it executes in the background.
    pub async fn start(&self, slug: &str, input: serde_json::Value) -> Result<RunId, HostError> {
        self.start_version(slug, None, input).await
    }

    /// Starts a run of a given version (or the newest). The run is durable
    /// once it ends, or after [`Host::flush`].
    pub async fn start_version(
        &self,
        slug: &str,
        version: Option<u32>,
        input: serde_json::Value,
    ) -> Result<RunId, HostError> {
        Ok(self.start_with_key(slug, version, input, None).await?.id)
    }

    /// Starts a run under an idempotency key: the same key again returns
    /// the run it named (if the input is the same; otherwise it is an
    /// error), without starting another.
    pub async fn start_with_key(
        &self,
        slug: &str,
        version: Option<u32>,
        input: serde_json::Value,
        key: Option<String>,
    ) -> Result<Started, HostError> {
        let (record, created) = self.queue(slug, version, input, key).await?;
        let id = record.id;
        if created && let Some(live) = self.registry().register(id) {
            tokio::spawn(self.clone().drive(live, record));
        }
        Ok(Started { id, created })
    }

    /// Queues a run without starting it; [`Host::recover`] (in this
    /// process or a later one) starts it. Durable after [`Host::flush`].
    pub async fn enqueue(
        &self,
        slug: &str,
        version: Option<u32>,
        input: serde_json::Value,
    ) -> Result<RunId, HostError> {
        let id = self.queue(slug, version, input, None).await?.0.id;
        // Visible to reads (not yet durable) before this returns.
        self.store().apply(Vec::new()).await?;
        Ok(id)
    }

    /// A run as stored. A run started a moment ago may still be on its
    /// way to the store (starts do not wait for the writer): on a miss,
    /// wait for what is queued to be applied and look again.
    pub async fn run_record(&self, id: RunId) -> Result<RunRecord, HostError> {
        let mut r = match self.store().run(id)? {
            Some(r) => r,
            None => {
                self.store().apply(Vec::new()).await?;
                self.store().run(id)?.ok_or(HostError::RunNotFound(id))?
            }
        };
        // A run that has not ended is charged as it goes (and by its
        // descendants after it ends).
        let totals = self.inner.services.ledger.totals(id);
        r.usage.model = totals.own;
        r.usage.model_tree = totals.tree;
        Ok(r)
    }

    /// The configured models: aliases, then models configured by name.
    pub fn models(&self) -> Vec<crate::models::Listing> {
        self.inner.services.models.list()
    }

    async fn queue(
        &self,
        slug: &str,
        version: Option<u32>,
        input: serde_json::Value,
        key: Option<String>,
    ) -> Result<(RunRecord, bool), HostError> {
        let wf = self
            .store()
            .workflow(slug, version)?
            .ok_or_else(|| match version {
                Some(v) => HostError::VersionNotFound(slug.to_owned(), v),
                None => HostError::WorkflowNotFound(slug.to_owned()),
            })?;
        // Loads (and so checks) the manifest before anything is stored.
        self.manifest(&wf)?;
        let mut record = new_record(&wf, input);
        record.idempotency_key = key.clone();
        let queued = Event {
            seq: 1,
            at: record.created_at,
            body: EventBody::Queued {
                workflow: wf.slug.clone(),
                version: wf.version,
            },
        };
        // Not fsynced here: the run's first effect that leaves the host (a
        // child, its end, an answer to a client after `flush`) makes this
        // durable too, so a run that only computes costs one fsync.
        let start = Write::StartRun {
            record: Box::new(record.clone()),
            queued,
            key: key.clone(),
        };
        let out = if key.is_some() {
            // The key's outcome is needed now.
            self.store().apply(vec![start]).await?
        } else {
            self.store().enqueue(vec![start]);
            Vec::new()
        };
        if let Some(WriteOutcome::Existing(id)) = out.first() {
            let existing = self.store().run(*id)?.ok_or(HostError::RunNotFound(*id))?;
            if existing.input != record.input || existing.workflow != record.workflow {
                return Err(HostError::IdempotencyConflict(*id));
            }
            return Ok((existing, false));
        }
        crate::metrics::run_started(&record.workflow);
        Ok((record, true))
    }

    fn registry(&self) -> &Registry {
        &self.inner.services.registry
    }

    fn budget(&self, manifest: &Manifest) -> Budget {
        Budget::with(self.inner.config.budget, manifest.budget.overrides())
    }

    /// Drives a stored run, registered just now.
    fn launch(&self, live: Arc<LiveRun>) {
        let record = match self.store().run(live.id) {
            Ok(Some(r)) if !r.status.is_terminal() => r,
            Ok(_) => return self.registry().finish(&live, None),
            Err(e) => {
                tracing::error!(run = %live.id, error = %e, "could not load a run to drive it");
                return self.registry().finish(&live, None);
            }
        };
        tokio::spawn(self.clone().drive(live, record));
    }

    /// Resumes one run that nobody drives in this process (e.g. after a
    /// signal in embedded mode). Returns whether it was picked up.
    pub fn resume(&self, id: RunId) -> bool {
        match self.registry().register(id) {
            Some(live) => {
                self.launch(live);
                true
            }
            None => false,
        }
    }

    /// Resumes every run that has not ended (after a crash or restart):
    /// executing runs replay, timers are re-armed, interrupted
    /// cancellations finish. Returns how many runs it picked up.
    pub async fn recover(&self) -> Result<usize, HostError> {
        let mut n = 0;
        for id in self.store().active_runs()? {
            n += usize::from(self.resume(id));
        }
        Ok(n)
    }

    /// Waits until no run can make progress by itself: each has ended or
    /// waits for a signal (without a timeout) or for such a run.
    pub async fn idle(&self) {
        self.registry().idle().await
    }

    /// Drives a run until it ends: executes it, and whenever it parks with
    /// its instance evicted, waits for its wake and executes it again by
    /// replay.
    async fn drive(self, live: Arc<LiveRun>, mut record: RunRecord) {
        // A signal or a child's end may have come while nobody drove the
        // run: the first time, only a timer is waited for without a check.
        let mut first = true;
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
                match self.await_wake(&live, &record, &wait).await {
                    Ok(()) => {}
                    Err(RunFault::Suspended) => return self.registry().finish(&live, None),
                    Err(fault) => break self.end_unexecuted(record, fault).await,
                }
            }
            if live.suspending() {
                return self.registry().finish(&live, None);
            }
            // Boxed: a parked driver then holds a few hundred bytes, not
            // the whole execution's state machine (10,000 sleeping runs).
            match Box::pin(self.execute_once(&live, record)).await {
                Executed::Finished(r) => break r,
                Executed::Parked(r) => record = r,
                Executed::Suspended => return self.registry().finish(&live, None),
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
        if let Some(parent) = end.parent {
            // Before this run stops counting as busy: see `Registry::wake`.
            self.registry().wake(parent);
        }
        crate::metrics::run_finished(&end);
        self.registry().finish(&live, Some(end));
    }

    /// Waits for a parked, evicted run's wake: its deadline, a signal, a
    /// child's end. Errs with the fault that ends the run instead.
    async fn await_wake(
        &self,
        live: &LiveRun,
        record: &RunRecord,
        wait: &Wait,
    ) -> Result<(), RunFault> {
        let started = record.first_start_ms();
        let run_deadline = match self.manifest_of(record) {
            Ok(m) => started.saturating_add(self.budget(&m).max_duration.as_millis() as u64),
            Err(_) => u64::MAX,
        };
        let until = wait.until_ms();
        loop {
            if live.cancelled() {
                return Err(live.stop_fault());
            }
            if live.suspending() {
                return Err(RunFault::Suspended);
            }
            let now = now_ms();
            if now >= run_deadline {
                return Err(RunFault::Budget {
                    budget: BudgetKind::MaxDuration,
                    limit: run_deadline - started,
                    used: now - started,
                });
            }
            if until.is_some_and(|u| now >= u) {
                break;
            }
            self.registry().set_busy(live, until.is_some());
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

    /// Executes a run once: from the start, or by replaying its journal.
    async fn execute_once(&self, live: &Arc<LiveRun>, record: RunRecord) -> Executed {
        let permits = self.registry().permits.clone();
        let queued = &self.registry().queued;
        queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let permit = permits.acquire_owned().await;
        queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(permit) = permit else {
            return Executed::Suspended;
        };
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
            Ok((manifest, history, progress))
        })();
        let (manifest, history, progress) = match loaded {
            Ok(x) => x,
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
            },
        };
        match run::execute(
            self.inner.engine.wasmtime(),
            self.inner.services.clone(),
            request,
        )
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
                });
                Executed::Finished(r)
            }
        }
    }

    /// The manifest a run is pinned to.
    fn manifest_of(&self, record: &RunRecord) -> Result<Arc<Manifest>, HostError> {
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
    fn model_budget_crossed(&self, record: &RunRecord) -> Option<RunFault> {
        let budget = self.budget(self.manifest_of(record).ok()?.as_ref());
        if budget.max_tokens.is_none() && budget.max_usd.is_none() {
            return None;
        }
        let link = crate::types::Ancestor {
            run: record.id,
            max_tokens: budget.max_tokens,
            max_usd: budget.max_usd,
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
    async fn end_unexecuted(&self, mut record: RunRecord, fault: RunFault) -> RunRecord {
        let mut seq = match self.store().progress(record.id) {
            Ok(p) => p.next_seq,
            Err(e) => {
                tracing::error!(run = %record.id, error = %e, "could not read where a run's log stands");
                return record;
            }
        };
        let mut events = Vec::new();
        let mut event = |body| {
            events.push(Event {
                seq,
                at: now(),
                body,
            });
            seq += 1;
        };
        record.finished_at = Some(now());
        record.wait = None;
        let totals = self.inner.services.ledger.totals(record.id);
        record.usage.model = totals.own;
        record.usage.model_tree = totals.tree;
        match fault {
            RunFault::Cancelled => {
                record.status = RunStatus::Cancelled;
                record.error = Some(RunError {
                    code: ErrorCode::Cancelled,
                    message: RunFault::Cancelled.to_string(),
                });
                event(EventBody::Cancelled);
            }
            fault => {
                if let Some(e) = fault.budget_event() {
                    event(e);
                }
                record.status = RunStatus::Failed;
                let error = RunError {
                    code: fault.code(),
                    message: fault.to_string(),
                };
                event(EventBody::Failed {
                    code: error.code,
                    message: error.message.clone(),
                });
                record.error = Some(error);
            }
        }
        let writes = vec![
            Write::AppendEvents(record.id, events),
            Write::PutRun(Box::new(record.clone())),
        ];
        if let Err(e) = self.store().commit(writes).await {
            tracing::error!(run = %record.id, error = %e, "could not record the end of a run");
        }
        record
    }

    async fn prepare(
        &self,
        digest: &str,
    ) -> Result<crate::bindings::WorkflowPre<run::RunState>, HostError> {
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
    async fn fail_internal(&self, record: RunRecord, message: String) -> RunRecord {
        tracing::error!(run = %record.id, error = %message, "run could not execute");
        self.end_unexecuted(record, RunFault::Internal(message))
            .await
    }

    /// Waits until run `id` has ended and returns it. A run nobody drives
    /// in this process is returned as stored.
    pub async fn wait(&self, id: RunId) -> Result<RunRecord, HostError> {
        if let Some(mut rx) = self.registry().subscribe(id)
            && let Ok(done) = rx.wait_for(Option::is_some).await
            && let Some(record) = done.clone()
        {
            return Ok(record);
        }
        self.run_record(id).await
    }

    /// Starts a run and waits for its end.
    pub async fn run(&self, slug: &str, input: serde_json::Value) -> Result<RunRecord, HostError> {
        let id = self.start(slug, input).await?;
        self.wait(id).await
    }

    /// Cancels a run and, after it, each of its children that has not
    /// ended. An executing run is interrupted at once; a parked one, or one
    /// nobody drives, is ended directly.
    pub async fn cancel(&self, id: RunId) -> Result<CancelOutcome, HostError> {
        let record = self.run_record(id).await?;
        if record.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyEnded(record.status));
        }
        // Durable first: a crash before the run stops still ends it cancelled.
        let out = self.store().commit(vec![Write::RequestCancel(id)]).await?;
        let outcome = if out.first() == Some(&WriteOutcome::Ignored) {
            // It ended in the meantime.
            let status = self.store().run(id)?.map_or(record.status, |r| r.status);
            return Ok(CancelOutcome::AlreadyEnded(status));
        } else if self.registry().cancel(id) {
            CancelOutcome::Cancelling
        } else {
            match self.store().run(id)? {
                Some(r) if r.status.is_terminal() => {
                    return Ok(CancelOutcome::AlreadyEnded(r.status));
                }
                Some(r) => {
                    self.end_unexecuted(r, RunFault::Cancelled).await;
                    CancelOutcome::Cancelled
                }
                None => return Err(HostError::RunNotFound(id)),
            }
        };
        for child in self.store().children(id)? {
            Box::pin(self.cancel(child)).await?;
        }
        Ok(outcome)
    }

    /// Delivers a signal to a run's inbox and wakes the run. A signal whose
    /// `signal_id` was seen before is dropped (reported as a duplicate).
    pub async fn signal(
        &self,
        id: RunId,
        name: &str,
        payload: serde_json::Value,
        signal_id: Option<String>,
    ) -> Result<SignalReceipt, HostError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(HostError::InvalidInput(
                "a signal name must be 1 to 128 bytes without control characters".into(),
            ));
        }
        if signal_id
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > 256)
        {
            return Err(HostError::InvalidInput(
                "a signal id must be 1 to 256 bytes".into(),
            ));
        }
        if payload.to_string().len() > MAX_SIGNAL_BYTES {
            return Err(HostError::InvalidInput(format!(
                "signal data is over {MAX_SIGNAL_BYTES} bytes"
            )));
        }
        let record = self.run_record(id).await?;
        if record.status.is_terminal() {
            return Err(HostError::RunEnded(id, record.status));
        }
        let signal = Signal {
            seq: 0,
            name: name.to_owned(),
            id: signal_id,
            payload,
            at: now(),
        };
        let out = self
            .store()
            .commit(vec![Write::Signal(id, Box::new(signal))])
            .await?;
        let Some(&WriteOutcome::Signal { seq, duplicate }) = out.first() else {
            return Err(HostError::Internal("a signal was not stored".into()));
        };
        if !duplicate {
            self.registry().wake(id);
        }
        Ok(SignalReceipt { seq, duplicate })
    }

    /// Times building a run's sandbox for the newest `slug` and
    /// instantiating the component: everything before the guest's first
    /// instruction. Nothing is stored. For benchmarks.
    #[doc(hidden)]
    pub async fn time_instantiate(&self, slug: &str) -> Result<std::time::Duration, HostError> {
        let wf = self
            .store()
            .workflow(slug, None)?
            .ok_or_else(|| HostError::WorkflowNotFound(slug.to_owned()))?;
        let manifest = self.manifest(&wf)?;
        let budget = Budget::with(self.inner.config.budget, manifest.budget.overrides());
        let record = new_record(&wf, serde_json::Value::Null);
        let pre = self.prepare(&wf.digest).await?;
        let permit = self.registry().permits.clone().acquire_owned().await.ok();
        let t0 = std::time::Instant::now();
        let mut sandbox = run::sandbox(
            self.inner.engine.wasmtime(),
            &self.inner.services,
            &record,
            SandboxSetup {
                manifest,
                budget,
                history: Vec::new(),
                progress: Progress {
                    next_seq: 2,
                    output: [0, 0],
                },
                live: LiveRun::detached(record.id),
                permit,
            },
        );
        pre.instantiate_async(&mut sandbox.store)
            .await
            .map_err(|e| HostError::Internal(format!("{e:#}")))?;
        Ok(t0.elapsed())
    }

    /// Stops driving runs — executing ones at their next instruction,
    /// parked ones at once, none of them ended — and makes everything
    /// written durable. The runs resume on the next [`Host::recover`].
    pub async fn shutdown(&self) -> Result<(), HostError> {
        self.registry().close().await;
        self.flush().await
    }

    /// A host secret's value (webhook keys); never shown to guests.
    pub(crate) fn host_secret(&self, name: &str) -> Option<String> {
        self.inner.services.secrets.get(name)
    }

    /// Runs waiting for an execution slot.
    pub fn queue_depth(&self) -> usize {
        self.registry()
            .queued
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs this host drives now (executing or parked).
    pub fn live_runs(&self) -> usize {
        self.registry().live()
    }

    /// Parked runs holding a warm instance.
    pub fn warm_instances(&self) -> usize {
        self.inner
            .config
            .max_warm_instances
            .saturating_sub(self.registry().warm.available_permits())
    }

    /// Removes a workflow from the deployed ones. Refused while any of its
    /// runs has not ended; its versions stay readable for finished runs.
    pub async fn delete_workflow(&self, slug: &str) -> Result<(), HostError> {
        if self.store().workflow(slug, None)?.is_none() {
            return Err(HostError::WorkflowNotFound(slug.to_owned()));
        }
        let mut busy = 0;
        for id in self.store().active_runs()? {
            if self.store().run(id)?.is_some_and(|r| r.workflow == slug) {
                busy += 1;
            }
        }
        if busy > 0 {
            return Err(HostError::WorkflowBusy(slug.to_owned(), busy));
        }
        self.store()
            .commit(vec![Write::DeleteWorkflow(slug.to_owned())])
            .await?;
        Ok(())
    }

    /// An artifact's metadata and body.
    pub async fn artifact(
        &self,
        run: RunId,
        name: &str,
    ) -> Result<(crate::types::ArtifactMeta, Vec<u8>), HostError> {
        let meta = self
            .store()
            .artifact(run, name)?
            .ok_or_else(|| HostError::ArtifactNotFound(run, name.to_owned()))?;
        let blobs = self.inner.services.artifacts.clone();
        let digest = meta.digest.clone();
        let body = tokio::task::spawn_blocking(move || blobs.get(&digest))
            .await
            .map_err(|e| HostError::Internal(e.to_string()))?
            .map_err(|e| HostError::Io {
                context: "reading an artifact".into(),
                source: e,
            })?;
        Ok((meta, body))
    }

    /// Waits until everything written so far is durable.
    pub async fn flush(&self) -> Result<(), HostError> {
        Ok(self.store().flush().await?)
    }
}

pub(crate) fn new_record(wf: &WorkflowVersion, input: serde_json::Value) -> RunRecord {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    RunRecord {
        id: RunId::generate(),
        workflow: wf.slug.clone(),
        version: wf.version,
        digest: wf.digest.clone(),
        status: RunStatus::Queued,
        input,
        output: None,
        error: None,
        parent: None,
        created_at: now(),
        started_at: None,
        finished_at: None,
        usage: Usage::default(),
        seed,
        wait: None,
        depth: 0,
        idempotency_key: None,
        ancestors: Vec::new(),
    }
}

/// Parses run input, which must be JSON of at most [`MAX_INPUT_BYTES`].
pub fn parse_input(text: &str) -> Result<serde_json::Value, HostError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(HostError::InvalidInput(format!(
            "input is {} bytes; the limit is {MAX_INPUT_BYTES}",
            text.len()
        )));
    }
    serde_json::from_str(text).map_err(|e| HostError::InvalidInput(format!("not JSON: {e}")))
}
