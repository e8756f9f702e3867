//! [`Host`]: a data directory opened for deploying and running workflows.
//! The CLI's embedded mode, the HTTP API and the triggers are thin layers
//! over it. The run driver (`driver`) and every read the API and CLI show
//! (`reads`) live beside it.

use crate::budget::Budget;
use crate::config::HostConfig;
use crate::error::HostError;
use crate::host::scheduler::{LiveRun, Registry};
use crate::host::secrets::SecretSource;
use crate::host::services::HostServices;
use crate::manifest::Manifest;
use crate::sandbox::engine::Engine;
use crate::sandbox::{self, SandboxSetup};
use crate::store::blobs::ArtifactStore;
use crate::store::{Progress, Store, Write, WriteOutcome};
use crate::types::{
    Event, EventBody, RunId, RunRecord, RunStatus, Trigger, Usage, WorkflowVersion, now,
};
use parking_lot::Mutex;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

mod backup;
mod control;
mod driver;
pub(crate) mod ledger;
pub(crate) mod memory;
mod reads;
mod reset;
mod retention;
pub(crate) mod scheduler;
pub mod secrets;
pub(crate) mod services;
mod verify;
pub use verify::{Divergence, Outcome, Verdict};

pub use crate::store::RunFilter;
pub use backup::BackupReport;
pub use retention::{PurgeReport, PurgeRequest, RetentionConfig};

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
        let store = match &config.store_url {
            Some(url) => Store::open_postgres(url, config.lease)?,
            None => Store::open(dir)?,
        };
        // What an interrupted backup left (the store's lock is ours now).
        let _ = std::fs::remove_dir_all(dir.join("tmp"));
        let secrets = match &config.script {
            Some(script) => SecretSource::fixed(script.secrets()),
            None => SecretSource::load(dir).map_err(|e| HostError::Internal(e.to_string()))?,
        };
        let artifacts = if store.is_postgres() {
            ArtifactStore::in_database(store.clone())
        } else {
            ArtifactStore::open(&dir.join("artifacts"))
                .map_err(io("opening the artifact directory in"))?
        };
        let mut engine_options = config.engine.clone();
        // Warm parked runs keep their instance, so the pool holds them too.
        engine_options.pool_size = engine_options
            .pool_size
            .max((config.max_concurrent_runs + config.max_warm_instances) as u32);
        let cache = config
            .cache_dir
            .clone()
            .unwrap_or_else(|| dir.join("cache"));
        let engine = Engine::new(&engine_options, &cache)
            .map_err(|e| HostError::Internal(format!("starting the engine: {e:#}")))?;
        let mut models = crate::models::Models::new(&config.models)
            .map_err(|e| HostError::Internal(format!("host config: {e}")))?;
        let mut egress = crate::egress::Egress::new(config.egress.clone())
            .map_err(|e| HostError::Internal(format!("host config: {e}")))?;
        let mut mcp = crate::mcp::Mcp::new(
            &config.mcp,
            secrets.clone(),
            crate::egress::Egress::new(config.egress.clone())
                .map_err(|e| HostError::Internal(format!("host config: {e}")))?,
            crate::mcp::oauth::Grants::new(dir, secrets.clone()),
        );
        mcp.script = config.script.clone();
        let mcp = Arc::new(mcp);
        let (mut registry, mut launches) = Registry::new(
            config.max_warm_instances,
            config.max_concurrent_runs,
            config.max_host_memory,
        );
        if let Some(script) = &config.script {
            models.script = Some(script.clone());
            egress.script = Some(script.clone());
            registry.skip_time = true;
        }
        let host = Host {
            inner: Arc::new(Inner {
                engine,
                services: Arc::new(HostServices {
                    ledger: crate::host::ledger::Ledger::new(store.clone()),
                    trees: services::TreeCounts::new(store.clone()),
                    max_queued_runs: config.server.max_queued_runs,
                    models,
                    egress,
                    mcp,
                    store,
                    secrets,
                    artifacts: Arc::new(artifacts),
                    registry,
                    max_depth: config.max_child_depth,
                    script: config.script.clone(),
                }),
                manifests: Mutex::new(HashMap::new()),
                config,
            }),
        };
        host.join_hosts()?;
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

    /// On a database shared with other hosts: registers this one, takes
    /// what the others notify (wakes, cancels), and takes over the runs
    /// nobody drives (a host that stopped) every half lease.
    fn join_hosts(&self) -> Result<(), HostError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ttl = self.store().start_host(Box::new(move |n| {
            let _ = tx.send(n);
        }))?;
        let Some(ttl) = ttl else { return Ok(()) };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(notice) = rx.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                let registry = &inner.services.registry;
                match notice {
                    crate::store::Notice::Wake(run) => {
                        registry.wake(run);
                    }
                    crate::store::Notice::Cancel(run) => {
                        registry.cancel(run);
                    }
                    crate::store::Notice::Events(runs) => {
                        inner.services.store.durable_elsewhere(&runs);
                    }
                }
            }
        });
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 2).await;
                let Some(inner) = weak.upgrade() else { break };
                let host = Host { inner };
                if host.registry().is_closing() {
                    break;
                }
                let store = host.store().clone();
                let orphans = tokio::task::spawn_blocking(move || store.orphans()).await;
                if let Ok(Ok(runs)) = orphans {
                    for run in runs {
                        if host.resume(run) {
                            tracing::info!(%run, "took a run over");
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Wakes run `id` here, or on the host that drives it.
    pub(crate) fn wake(&self, id: RunId) {
        if !self.registry().wake(id) {
            self.store().notify(crate::store::Notice::Wake(id));
        }
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
        self.store().writable()?;
        if wasm.len() > crate::sandbox::engine::MAX_COMPONENT_BYTES {
            return Err(crate::sandbox::engine::ComponentError::TooLarge(wasm.len()).into());
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
            .client_commit(vec![Write::Deploy {
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
        tracing::info!(workflow = %manifest.slug, version = *version, %digest, "deployed");
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
        self.start_inner(slug, version, input, key, Trigger::local(), false)
            .await
    }

    /// Starts a run like [`Host::start_with_key`] if fewer than
    /// `max_queued` runs wait for an execution slot (else
    /// [`HostError::QueueFull`]); exact under any number of racing callers.
    /// A key the host knows is answered with its run whatever the queue: a
    /// client re-sending an accepted request learns its run.
    pub async fn start_admitted(
        &self,
        slug: &str,
        input: serde_json::Value,
        key: Option<String>,
        max_queued: usize,
        trigger: Trigger,
    ) -> Result<Started, HostError> {
        if let Some(k) = &key
            && self.run_for_key(k)?.is_some()
        {
            return self
                .start_inner(slug, None, input, key, trigger, false)
                .await;
        }
        if !self.registry().reserve_queue(max_queued) {
            return Err(HostError::QueueFull {
                depth: self.queue_depth(),
                retry_after: self.registry().retry_after(),
            });
        }
        self.start_inner(slug, None, input, key, trigger, true)
            .await
    }

    /// Queues a run and drives it; `reserved`: a place in the queue was
    /// taken for it, which the new run takes over (or which is given back).
    /// Drives a run this host just stored (reset).
    fn launch_started(&self, record: RunRecord) {
        if let Some(live) = self.registry().register(record.id) {
            tokio::spawn(self.clone().drive(live, record));
        }
    }

    async fn start_inner(
        &self,
        slug: &str,
        version: Option<u32>,
        input: serde_json::Value,
        key: Option<String>,
        trigger: Trigger,
        reserved: bool,
    ) -> Result<Started, HostError> {
        let queued = self.queue(slug, version, input, key, trigger).await;
        let mut handed_over = false;
        let started = queued.map(|(record, created)| {
            let id = record.id;
            if created && let Some(live) = self.registry().register(id) {
                if reserved {
                    live.in_queue
                        .store(true, std::sync::atomic::Ordering::Release);
                    handed_over = true;
                }
                tokio::spawn(self.clone().drive(live, record));
            }
            Started { id, created }
        });
        if reserved && !handed_over {
            self.registry().release_queue();
        }
        started
    }

    /// Queues a run without starting it; [`Host::recover`] (in this
    /// process or a later one) starts it. Durable after [`Host::flush`].
    pub async fn enqueue(
        &self,
        slug: &str,
        version: Option<u32>,
        input: serde_json::Value,
    ) -> Result<RunId, HostError> {
        let id = self
            .queue(slug, version, input, None, Trigger::local())
            .await?
            .0
            .id;
        // Visible to reads (not yet durable) before this returns.
        self.store().client_apply(Vec::new()).await?;
        Ok(id)
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
        trigger: Trigger,
    ) -> Result<(RunRecord, bool), HostError> {
        let wf = self
            .store()
            .workflow(slug, version)?
            .ok_or_else(|| match version {
                Some(v) => HostError::VersionNotFound(slug.to_owned(), v),
                None => HostError::WorkflowNotFound(slug.to_owned()),
            })?;
        // Loads (and so checks) the manifest before anything is stored.
        let manifest = self.manifest(&wf)?;
        if let Some(contract) = &manifest.input {
            contract.check(&input).map_err(|e| {
                HostError::InvalidInput(format!("the input does not follow {slug}'s schema {e}"))
            })?;
        }
        let mut record = new_record(&wf, input);
        record.idempotency_key = key.clone();
        record.trigger = Some(trigger);
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
        let existing = |id: RunId| -> Result<(RunRecord, bool), HostError> {
            let existing = self.store().run(id)?.ok_or(HostError::RunNotFound(id))?;
            if existing.input != record.input || existing.workflow != record.workflow {
                return Err(HostError::IdempotencyConflict(id));
            }
            Ok((existing, false))
        };
        // A known key is answered from the store's reads, whatever its
        // writes do.
        if let Some(k) = &key
            && let Some(id) = self.store().run_for_key(k)?
        {
            return existing(id);
        }
        // A client's start is refused while the disk takes no writes, not
        // left waiting for it.
        self.store().writable()?;
        let out = if key.is_some() {
            // The key's outcome is needed now.
            self.store().client_apply(vec![start]).await?
        } else {
            self.store().enqueue(vec![start]);
            Vec::new()
        };
        if let Some(WriteOutcome::Existing(id)) = out.first() {
            return existing(*id);
        }
        crate::metrics::run_started(&record.workflow);
        tracing::debug!(workflow = %record.workflow, version = record.version, run = %record.id, "run queued");
        Ok((record, true))
    }

    fn registry(&self) -> &Registry {
        &self.inner.services.registry
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

    /// Waits until run `id` has ended or waits for a signal or an approval
    /// (which only someone else can send), and returns it as it is then.
    pub async fn wait_settled(&self, id: RunId) -> Result<RunRecord, HostError> {
        let waiting = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                if let Ok(Some(r)) = self.store().run(id)
                    && matches!(
                        r.status,
                        crate::types::RunStatus::WaitingSignal
                            | crate::types::RunStatus::WaitingApproval
                    )
                {
                    return;
                }
            }
        };
        tokio::select! {
            r = self.wait(id) => r,
            () = waiting => self.run_record(id).await,
        }
    }

    /// Starts a run and waits for its end.
    pub async fn run(&self, slug: &str, input: serde_json::Value) -> Result<RunRecord, HostError> {
        let id = self.start(slug, input).await?;
        self.wait(id).await
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
        let permit = self.registry().execution_slot(slug, None).await.ok();
        let t0 = std::time::Instant::now();
        let mut built = sandbox::sandbox(
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
                verify: false,
            },
        );
        pre.instantiate_async(&mut built.store)
            .await
            .map_err(|e| HostError::Internal(format!("{e:#}")))?;
        Ok(t0.elapsed())
    }

    /// Stops driving runs — executing ones at their next instruction,
    /// parked ones at once, none of them ended — makes everything written
    /// durable and closes the store. The runs resume on the next
    /// [`Host::recover`]; this host answers nothing more.
    pub async fn shutdown(&self) -> Result<(), HostError> {
        self.registry().close().await;
        // Closed cleanly, the store opens next time without a repair.
        Ok(self.store().close().await?)
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

    /// Linear memory of the runs in memory now, the most it has been, and
    /// the host's budget for it (`max_host_memory`).
    pub fn run_memory(&self) -> (u64, u64, u64) {
        let m = &self.registry().memory;
        (m.in_use(), m.peak(), m.limit())
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
        let busy = self
            .store()
            .active_records()?
            .iter()
            .filter(|r| r.workflow == slug)
            .count();
        if busy > 0 {
            return Err(HostError::WorkflowBusy(slug.to_owned(), busy));
        }
        self.store().writable()?;
        self.store()
            .client_commit(vec![Write::DeleteWorkflow(slug.to_owned())])
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

    /// Waits until everything written so far is durable. Errs with
    /// `STORAGE_UNAVAILABLE` if the store takes no writes now or fails
    /// first: what was written becomes durable once it recovers.
    pub async fn flush(&self) -> Result<(), HostError> {
        Ok(self.store().client_flush().await?)
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
        trace: crate::telemetry::current_traceparent(),
        trigger: None,
        cancel_requested_by: None,
        attempt: 1,
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
