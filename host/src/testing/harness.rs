//! [`Harness`]: runs a workflow crate's component on the real engine, one
//! fresh host (a temporary data directory) per scenario, in a world the
//! scenario scripts.

use super::scenario::{Outcome, OutcomeArtifact, OutcomeChild, Rates, Scenario};
use super::script::Script;
use crate::host::Host;
use crate::manifest::Manifest;
use crate::models::ModelsConfig;
use crate::sandbox::engine::Allocator;
use crate::types::{RunId, RunRecord, Wait, skipped_ms};
use crate::{HostConfig, HostError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Real time a scenario's run may take unless it says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A workflow's component and manifest, ready to run scenarios.
pub struct Harness {
    wasm: Vec<u8>,
    manifest_toml: String,
    manifest: Manifest,
    /// Where each scenario's data directory is made.
    work: PathBuf,
    /// Compiled components, kept across scenarios and test runs.
    cache: PathBuf,
}

impl Harness {
    /// Checks the manifest; the component is checked by the first deploy.
    pub fn new(
        wasm: Vec<u8>,
        manifest_toml: String,
        work: PathBuf,
        cache: PathBuf,
    ) -> Result<Harness, String> {
        let manifest =
            Manifest::parse(&manifest_toml).map_err(|e| format!("runway.toml: {}", e.0))?;
        Ok(Harness {
            wasm,
            manifest_toml,
            manifest,
            work,
            cache,
        })
    }

    /// Runs a scenario given as JSON; the outcome as JSON. An `Err` is a
    /// scenario that could not be run (a bad scenario, an input the
    /// workflow refuses), for people.
    pub async fn run_json(&self, scenario: &str) -> Result<String, String> {
        let scenario: Scenario = serde_json::from_str(scenario)
            .map_err(|e| format!("the scenario is not what runway test-runner reads: {e}"))?;
        let outcome = self.run(scenario).await?;
        serde_json::to_string(&outcome).map_err(|e| e.to_string())
    }

    /// Runs the workflow once in `scenario`'s world until it ends or waits
    /// for something the scenario does not provide.
    pub async fn run(&self, scenario: Scenario) -> Result<Outcome, String> {
        std::fs::create_dir_all(&self.work).map_err(|e| e.to_string())?;
        let dir = tempfile::TempDir::new_in(&self.work).map_err(|e| e.to_string())?;
        let script = Arc::new(Script::new(&scenario));
        let mut config = HostConfig::new(dir.path());
        config.engine.allocator = Allocator::OnDemand;
        config.max_concurrent_runs = 16;
        config.max_warm_instances = 1024;
        config.models = models_config(&self.manifest, scenario.rates)?;
        config.egress.allow = vec!["http://*:*".into(), "https://*:*".into()];
        config.egress.allow_private = vec!["0.0.0.0/0".into(), "::/0".into()];
        config.cache_dir = Some(self.cache.clone());
        config.script = Some(script.clone());
        let host = Host::open(config).await.map_err(|e| e.to_string())?;
        let outcome = self.drive(&host, &script, &scenario).await;
        if let Err(e) = host.shutdown().await {
            tracing::warn!(error = %e, "closing a test host");
        }
        outcome.map_err(|e| e.to_string())
    }

    async fn drive(
        &self,
        host: &Host,
        script: &Script,
        scenario: &Scenario,
    ) -> Result<Outcome, HostError> {
        host.deploy(self.wasm.clone(), &self.manifest_toml).await?;
        // Scripted children need a workflow to start; they never run it.
        for slug in script.child_workflows() {
            if slug != self.manifest.slug {
                let manifest = format!("slug = {}\n", toml::Value::String(slug.to_owned()));
                host.deploy(self.wasm.clone(), &manifest).await?;
            }
        }
        let skipped = skipped_ms();
        // Queued, given its signals, then driven: the inbox is full before
        // the run's first instruction.
        let id = host
            .enqueue(&self.manifest.slug, None, scenario.input.clone())
            .await?;
        for s in &scenario.signals {
            host.signal(id, &s.name, s.data.clone(), None).await?;
        }
        host.resume(id);
        let timeout = scenario
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let settled = tokio::select! {
            r = host.wait(id) => r.map(|_| true)?,
            () = host.idle() => true,
            () = tokio::time::sleep(timeout) => false,
        };
        if !settled {
            host.cancel(id).await?;
            host.wait(id).await?;
            return Err(HostError::Internal(format!(
                "the run did not end or settle within {timeout:?} of real time (set World::timeout)"
            )));
        }
        host.flush().await?;
        let record = host.run_record(id).await?;
        let waiting_for = waiting_for(host, &record)?;
        let mut artifacts = Vec::new();
        for meta in host.artifacts(id)? {
            let (meta, body) = host.artifact(id, &meta.name).await?;
            artifacts.push(OutcomeArtifact {
                name: meta.name,
                content_type: meta.content_type,
                size: meta.size,
                metadata: meta.metadata,
                text: String::from_utf8(body).ok(),
            });
        }
        let mut children = Vec::new();
        for child in host.children(id)? {
            let c = host.run_record(child).await?;
            children.push(OutcomeChild {
                run_id: c.id.to_string(),
                workflow: c.workflow,
                input: c.input,
                status: c.status,
                output: c.output,
            });
        }
        Ok(Outcome {
            run_id: id.to_string(),
            events: host.events(id, 0, usize::MAX)?,
            status: record.status,
            output: record.output,
            error: record.error,
            waiting_for,
            artifacts,
            children,
            usage: record.usage,
            skipped_ms: skipped_ms() - skipped,
            unscripted: script.unscripted(),
        })
    }
}

/// What a run that has not ended waits for, following waits for children
/// down to the run that waits for a signal.
fn waiting_for(host: &Host, record: &RunRecord) -> Result<Option<String>, HostError> {
    let mut wait = record.wait.clone();
    let mut depth = 0;
    while let Some(Wait::Child { run }) = &wait {
        depth += 1;
        if depth > 64 {
            break;
        }
        wait = host
            .store()
            .run(*run)?
            .and_then(|r: RunRecord| r.wait.clone());
    }
    Ok(wait.map(|w| match w {
        Wait::Signal { name, .. } => format!("signal {name:?}"),
        Wait::Timer { .. } => "a timer".to_owned(),
        Wait::Child { run } => format!("child run {}", RunId::to_string(&run)),
        Wait::Approval { name, .. } => format!("approval {name:?}"),
    }))
}

/// Providers for the models the manifest allows: an alias `NAME` is
/// `scripted/NAME`; a `provider/model` gets its provider. All answer from
/// the script.
fn models_config(manifest: &Manifest, rates: Option<Rates>) -> Result<ModelsConfig, String> {
    let rates = rates.unwrap_or_default();
    let mut providers = toml::Table::new();
    let mut aliases = toml::Table::new();
    let mut provider = |name: &str| {
        let mut p = toml::Table::new();
        p.insert("kind".into(), "openai".into());
        p.insert("input_per_million".into(), rates.input_per_million.into());
        p.insert("output_per_million".into(), rates.output_per_million.into());
        providers.insert(name.to_owned(), toml::Value::Table(p));
    };
    provider("scripted");
    for m in &manifest.models {
        match m.split_once('/') {
            Some((p, _)) => provider(p),
            None => {
                aliases.insert(m.clone(), toml::Value::String(format!("scripted/{m}")));
            }
        }
    }
    let mut config = toml::Table::new();
    config.insert("providers".into(), toml::Value::Table(providers));
    config.insert("aliases".into(), toml::Value::Table(aliases));
    toml::Value::Table(config)
        .try_into()
        .map_err(|e| format!("runway.toml models: {e}"))
}
