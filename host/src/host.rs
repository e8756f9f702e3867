//! [`Host`]: a data directory opened for deploying and running workflows.
//! The CLI's embedded mode and (later) the server are both thin layers over it.

use crate::artifact_store::ArtifactStore;
use crate::budget::Budget;
use crate::config::HostConfig;
use crate::engine::Engine;
use crate::error::HostError;
use crate::manifest::Manifest;
use crate::run::{self, RunRequest, SandboxSetup};
use crate::secrets::SecretSource;
use crate::services::HostServices;
use crate::store::{Store, Write, WriteOutcome};
use crate::types::{
    ErrorCode, Event, EventBody, RunError, RunId, RunRecord, RunStatus, Usage, WorkflowVersion, now,
};
use parking_lot::Mutex;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::{Semaphore, watch};

/// Largest input a run accepts.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// The result of a deploy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Deployment {
    pub slug: String,
    pub version: u32,
    pub digest: String,
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
    permits: Arc<Semaphore>,
    /// Runs executing in this process: completion and cancellation.
    live: Mutex<HashMap<RunId, LiveRun>>,
}

struct LiveRun {
    done: watch::Receiver<Option<RunRecord>>,
    cancel: Arc<AtomicBool>,
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
        let engine = Engine::new(&config.engine, &dir.join("cache"))
            .map_err(|e| HostError::Internal(format!("starting the engine: {e:#}")))?;
        Ok(Host {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.max_concurrent_runs)),
                config,
                engine,
                services: Arc::new(HostServices {
                    store,
                    secrets,
                    artifacts: Arc::new(artifacts),
                }),
                manifests: Mutex::new(HashMap::new()),
                live: Mutex::new(HashMap::new()),
            }),
        })
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

    fn manifest(&self, wf: &WorkflowVersion) -> Result<Arc<Manifest>, HostError> {
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

    /// Starts a run of a given version (or the newest).
    pub async fn start_version(
        &self,
        slug: &str,
        version: Option<u32>,
        input: serde_json::Value,
    ) -> Result<RunId, HostError> {
        let wf = self
            .store()
            .workflow(slug, version)?
            .ok_or_else(|| match version {
                Some(v) => HostError::VersionNotFound(slug.to_owned(), v),
                None => HostError::WorkflowNotFound(slug.to_owned()),
            })?;
        let manifest = self.manifest(&wf)?;
        let record = new_record(&wf, input);
        let queued = Event {
            seq: 1,
            at: record.created_at,
            body: EventBody::Queued {
                workflow: wf.slug.clone(),
                version: wf.version,
            },
        };
        self.store()
            .commit(vec![
                Write::PutRun(Box::new(record.clone())),
                Write::AppendEvents(record.id, vec![queued]),
            ])
            .await?;

        let id = record.id;
        let (tx, rx) = watch::channel(None);
        let cancel = Arc::new(AtomicBool::new(false));
        self.inner.live.lock().insert(
            id,
            LiveRun {
                done: rx,
                cancel: cancel.clone(),
            },
        );
        let host = self.clone();
        let budget = Budget::with(self.inner.config.budget, manifest.budget.overrides());
        tokio::spawn(async move {
            let finished = host.execute(record, manifest, budget, cancel).await;
            host.inner.live.lock().remove(&id);
            let _ = tx.send(Some(finished));
        });
        Ok(id)
    }

    async fn execute(
        &self,
        record: RunRecord,
        manifest: Arc<Manifest>,
        budget: Budget,
        cancel: Arc<AtomicBool>,
    ) -> RunRecord {
        let Ok(_permit) = self.inner.permits.clone().acquire_owned().await else {
            return record;
        };
        let pre = match self.prepare(&record.digest).await {
            Ok(pre) => pre,
            Err(e) => return self.fail_internal(record, 2, e.to_string()).await,
        };
        let request = RunRequest {
            record: record.clone(),
            pre,
            setup: SandboxSetup {
                manifest,
                budget,
                history: Vec::new(),
                next_seq: 2,
                cancel,
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
                r
            }
        }
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

    /// Ends a run that could not start as failed with `INTERNAL`.
    async fn fail_internal(&self, mut record: RunRecord, seq: u64, message: String) -> RunRecord {
        tracing::error!(run = %record.id, error = %message, "run could not start");
        record.status = RunStatus::Failed;
        record.finished_at = Some(now());
        record.error = Some(RunError {
            code: ErrorCode::Internal,
            message: message.clone(),
        });
        let failed = Event {
            seq,
            at: now(),
            body: EventBody::Failed {
                code: ErrorCode::Internal,
                message,
            },
        };
        let writes = vec![
            Write::AppendEvents(record.id, vec![failed]),
            Write::PutRun(Box::new(record.clone())),
        ];
        if let Err(e) = self.store().commit(writes).await {
            tracing::error!(run = %record.id, error = %e, "could not record a failed start");
        }
        record
    }

    /// Waits until run `id` has ended and returns it. A run that is not
    /// executing in this process is returned as stored.
    pub async fn wait(&self, id: RunId) -> Result<RunRecord, HostError> {
        let rx = self.inner.live.lock().get(&id).map(|l| l.done.clone());
        if let Some(mut rx) = rx
            && let Ok(done) = rx.wait_for(Option::is_some).await
            && let Some(record) = done.clone()
        {
            return Ok(record);
        }
        self.store().run(id)?.ok_or(HostError::RunNotFound(id))
    }

    /// Starts a run and waits for its end.
    pub async fn run(&self, slug: &str, input: serde_json::Value) -> Result<RunRecord, HostError> {
        let id = self.start(slug, input).await?;
        self.wait(id).await
    }

    /// Asks a run executing in this process to stop; it ends `cancelled`.
    /// Returns whether the run was executing here.
    pub fn cancel(&self, id: RunId) -> bool {
        match self.inner.live.lock().get(&id) {
            Some(live) => {
                live.cancel
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                true
            }
            None => false,
        }
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
        let _permit = self.inner.permits.acquire().await;
        let t0 = std::time::Instant::now();
        let mut sandbox = run::sandbox(
            self.inner.engine.wasmtime(),
            &self.inner.services,
            &record,
            SandboxSetup {
                manifest,
                budget,
                history: Vec::new(),
                next_seq: 2,
                cancel: Arc::new(AtomicBool::new(false)),
            },
        );
        pre.instantiate_async(&mut sandbox.store)
            .await
            .map_err(|e| HostError::Internal(format!("{e:#}")))?;
        Ok(t0.elapsed())
    }

    /// Waits until everything written so far is durable.
    pub async fn flush(&self) -> Result<(), HostError> {
        Ok(self.store().flush().await?)
    }
}

fn new_record(wf: &WorkflowVersion, input: serde_json::Value) -> RunRecord {
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
