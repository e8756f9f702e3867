//! `runway verify`: would a new component make the same calls as the runs
//! already recorded? Each run's journal is replayed against the new code in
//! a throwaway sandbox — its own temporary store, no call past the journal
//! made — and the first call that differs is named with both sides.

use super::Host;
use super::scheduler::{LiveRun, Registry};
use super::services::{HostServices, TreeCounts};
use crate::error::HostError;
use crate::sandbox::journal::END_OF_JOURNAL;
use crate::sandbox::{self, Executed, RunRequest, SandboxSetup};
use crate::store::{Progress, Store};
use crate::types::{ErrorCode, RunId, RunRecord, RunStatus, now};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What replaying one run against the new code showed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// The run's status as recorded.
    pub status: RunStatus,
    /// How many calls the journal holds.
    pub calls: usize,
    pub outcome: Outcome,
    /// The first call that differs: position, what the journal has, what
    /// the new code called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
    /// Why the new code failed otherwise (a trap, a budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every recorded call again, in order, and (for an ended run) the
    /// same end.
    Same,
    /// A call differs from the journal, or the new code makes more or
    /// fewer calls.
    Diverges,
    /// The new code fails where the recorded run did not.
    Fails,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Divergence {
    pub seq: u64,
    pub recorded: String,
    pub new: String,
}

impl Host {
    /// Deploys `wasm` as the next version of the manifest's workflow only if
    /// every run [`Host::verify`] replays (`completed` recent completed
    /// ones and every one not ended) makes the same calls on it. A first
    /// version has nothing to replay.
    pub async fn deploy_verified(
        &self,
        wasm: Vec<u8>,
        manifest_toml: &str,
        completed: usize,
    ) -> Result<super::Deployment, HostError> {
        let slug = crate::Manifest::parse(manifest_toml)?.slug;
        if self.store().workflow(&slug, None)?.is_some() {
            let verdicts = self.verify(&slug, wasm.clone(), completed).await?;
            let differ: Vec<&Verdict> = verdicts
                .iter()
                .filter(|v| v.outcome != Outcome::Same)
                .collect();
            if let Some(first) = differ.first() {
                let what = match (&first.divergence, &first.error) {
                    (Some(d), _) => format!(
                        "{} at call #{}: recorded {}, new {}",
                        first.run_id, d.seq, d.recorded, d.new
                    ),
                    (None, Some(e)) => format!("{}: {e}", first.run_id),
                    (None, None) => first.run_id.to_string(),
                };
                return Err(HostError::VerifyFailed {
                    slug,
                    runs: differ.len(),
                    first: what,
                });
            }
        }
        self.deploy(wasm, manifest_toml).await
    }

    /// Replays up to `completed` recent completed runs of `slug`, and every
    /// run of it that has not ended, against the component `wasm`.
    pub async fn verify(
        &self,
        slug: &str,
        wasm: Vec<u8>,
        completed: usize,
    ) -> Result<Vec<Verdict>, HostError> {
        if self.store().workflow(slug, None)?.is_none() {
            return Err(HostError::WorkflowNotFound(slug.to_owned()));
        }
        let digest = hex::encode(Sha256::digest(&wasm));
        let engine = self.inner.engine.clone();
        let pre = {
            let (d, bytes) = (digest.clone(), wasm);
            tokio::task::spawn_blocking(move || {
                engine.check_and_compile(&d, &bytes)?;
                engine
                    .prepare(&d, || Ok(bytes.clone()))
                    .map_err(|e| HostError::Internal(format!("preparing the component: {e:#}")))
            })
            .await
            .map_err(|e| HostError::Internal(e.to_string()))??
        };
        let mut runs: Vec<RunRecord> = self
            .store()
            .active_records()?
            .into_iter()
            .filter(|r| r.workflow == slug)
            .collect();
        runs.extend(
            self.store()
                .runs(Some(RunStatus::Completed), Some(slug), completed)?,
        );
        // A throwaway store beside the real one: what the replays write.
        let dir = self
            .inner
            .config
            .data_dir
            .join(format!("verify-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).map_err(|e| HostError::Io {
            context: "creating the verification directory".into(),
            source: e,
        })?;
        let verdicts = self.replay_all(&dir, &runs, &pre).await;
        let _ = std::fs::remove_dir_all(&dir);
        verdicts
    }

    async fn replay_all(
        &self,
        dir: &std::path::Path,
        runs: &[RunRecord],
        pre: &crate::sandbox::bindings::WorkflowPre<sandbox::RunState>,
    ) -> Result<Vec<Verdict>, HostError> {
        let store = Store::open(dir)?;
        let real = &self.inner.services;
        let (registry, _launches) = Registry::new(0, 1, self.inner.config.max_host_memory);
        let services = Arc::new(HostServices {
            ledger: super::ledger::Ledger::new(store.clone()),
            trees: TreeCounts::new(store.clone()),
            store: store.clone(),
            secrets: real.secrets.clone(),
            artifacts: real.artifacts.clone(),
            registry,
            max_depth: real.max_depth,
            max_queued_runs: real.max_queued_runs,
            models: crate::models::Models::new(&self.inner.config.models)
                .map_err(HostError::Internal)?,
            egress: crate::egress::Egress::new(self.inner.config.egress.clone())
                .map_err(HostError::Internal)?,
            mcp: real.mcp.clone(),
            script: None,
        });
        let mut out = Vec::with_capacity(runs.len());
        for recorded in runs {
            let history = self.store().journal(recorded.id)?;
            let calls = history.len();
            let manifest = self.manifest_of(recorded)?;
            // The run as it first started, now: its budgets count from here.
            let mut record = recorded.clone();
            record.status = RunStatus::Running;
            record.started_at = Some(now());
            record.finished_at = None;
            record.output = None;
            record.error = None;
            record.wait = None;
            let request = RunRequest {
                record,
                pre: pre.clone(),
                setup: SandboxSetup {
                    budget: self.budget(&manifest),
                    manifest,
                    history,
                    progress: Progress {
                        next_seq: 1,
                        output: [0, 0],
                    },
                    live: LiveRun::detached(recorded.id),
                    permit: None,
                    verify: true,
                },
            };
            let executed =
                sandbox::execute(self.inner.engine.wasmtime(), services.clone(), request).await;
            out.push(verdict(recorded, calls, executed));
        }
        let _ = store.close().await;
        Ok(out)
    }
}

fn verdict(
    recorded: &RunRecord,
    calls: usize,
    executed: Result<Executed, crate::store::StoreError>,
) -> Verdict {
    let mut v = Verdict {
        run_id: recorded.id,
        status: recorded.status,
        calls,
        outcome: Outcome::Same,
        divergence: None,
        error: None,
    };
    let ended = match executed {
        Ok(Executed::Finished(r)) => r,
        // Parks only happen past the journal, which a verification never
        // goes: the new code waited where the run waits now.
        Ok(_) => return v,
        Err(e) => {
            v.outcome = Outcome::Fails;
            v.error = Some(e.to_string());
            return v;
        }
    };
    match &ended.error {
        None if ended.status == RunStatus::Completed => {
            if recorded.status.is_terminal() && ended.output != recorded.output {
                v.outcome = Outcome::Diverges;
                v.error = Some("the same calls, but another result".into());
            }
        }
        Some(e) if e.code == ErrorCode::Nondeterminism => match parse_divergence(&e.message) {
            // It reached the run's current point, the same all the way.
            Some(d) if d.recorded == END_OF_JOURNAL && !recorded.status.is_terminal() => {}
            Some(d) => {
                v.outcome = Outcome::Diverges;
                v.divergence = Some(d);
            }
            None => {
                v.outcome = Outcome::Diverges;
                v.error = Some(e.message.clone());
            }
        },
        Some(e) if recorded.error.as_ref().is_some_and(|r| r.code == e.code) => {}
        Some(e) => {
            v.outcome = Outcome::Fails;
            v.error = Some(format!("{}: {}", e.code, e.message));
        }
        None => {
            v.outcome = Outcome::Fails;
            v.error = Some(format!("ended {}", ended.status));
        }
    }
    v
}

/// The parts of a nondeterminism message: `call #N: the journal has X but
/// the guest called Y; …`.
fn parse_divergence(message: &str) -> Option<Divergence> {
    let rest = message.split("call #").nth(1)?;
    let (seq, rest) = rest.split_once(": the journal has ")?;
    let (recorded, rest) = rest.split_once(" but the guest called ")?;
    let new = rest
        .rsplit_once("; the workflow is not deterministic")
        .map_or(rest, |(n, _)| n);
    Some(Divergence {
        seq: seq.parse().ok()?,
        recorded: recorded.to_owned(),
        new: new.to_owned(),
    })
}
