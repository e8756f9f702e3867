//! Deleting ended runs: `[retention]` in the background, `runway purge`,
//! and `DELETE /v1/runs/{id}`.
//!
//! A run is deleted with its whole tree (its children, theirs, ...), and
//! only once every run in it has ended, so no listing ever shows a parent
//! whose children are gone or a child without its parent. Retention and
//! purge pick root runs (started from outside); a child goes with its root.
//! Deleting drops the idempotency keys that name the runs: a key can start
//! a new run once the run it named is deleted.

use super::Host;
use crate::error::HostError;
use crate::store::{Ended, Write, WriteOutcome};
use crate::types::{RunId, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// `[retention]`: which ended runs the server deletes by itself. Both
/// limits may be set; a run goes when either says so. Off when empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Ended runs older than this (since they ended) are deleted.
    pub max_age: Option<Duration>,
    /// Only the newest N ended root runs of each workflow are kept.
    pub keep_per_workflow: Option<usize>,
}

impl RetentionConfig {
    /// Whether retention deletes anything.
    pub fn is_on(&self) -> bool {
        self.max_age.is_some() || self.keep_per_workflow.is_some()
    }

    /// How often the server looks for runs to delete: a tenth of the age
    /// limit, between 1 s and a minute.
    fn interval(&self) -> Duration {
        self.max_age
            .map_or(Duration::from_secs(60), |a| a / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}

/// What to purge: ended root runs matching every given condition.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Runs that ended longer ago than this (e.g. `"30d"`, `"12h"`).
    #[serde(default)]
    pub older_than: Option<String>,
    /// Keep the newest N ended runs of each workflow, delete the rest.
    #[serde(default)]
    pub keep_per_workflow: Option<usize>,
    /// Only runs of this workflow.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Count what would be deleted; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a purge deleted (or, dry, would delete).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurgeReport {
    /// Root runs deleted (each with its whole tree).
    pub runs: u64,
    /// Runs deleted in all, children included (not counted when dry).
    pub runs_with_children: u64,
    /// Artifact blobs reclaimed (no remaining run names them).
    pub blobs: u64,
    pub dry_run: bool,
}

/// Roots looked at per store read, and deleted per write.
const CHUNK: usize = 256;

impl Host {
    /// Deletes an ended run with its whole tree of children. Refused with
    /// `RUN_ACTIVE` while the run or any descendant has not ended.
    pub async fn delete_run(&self, id: RunId) -> Result<u64, HostError> {
        if self.store().run(id)?.is_none() {
            return Err(HostError::RunNotFound(id));
        }
        self.store().writable()?;
        let tree = self.tree_of(id)?;
        if let Some(active) = tree.active {
            return Err(HostError::RunActive(id, active));
        }
        let runs = tree.runs.len() as u64;
        match self.delete(tree.runs).await? {
            Some(_) => Ok(runs),
            // A run of the tree was started or resumed in the meantime.
            None => Err(HostError::RunActive(id, id)),
        }
    }

    /// Deletes the ended root runs `request` names (see [`PurgeRequest`]).
    pub async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReport, HostError> {
        let older_than = match &request.older_than {
            Some(text) => Some(humantime::parse_duration(text).map_err(|e| {
                HostError::InvalidInput(format!("older_than: {text:?} is not a duration ({e})"))
            })?),
            None => None,
        };
        if older_than.is_none() && request.keep_per_workflow.is_none() {
            return Err(HostError::InvalidInput(
                "say which runs to purge: older_than and/or keep_per_workflow".into(),
            ));
        }
        if !request.dry_run {
            self.store().writable()?;
        }
        let retention = RetentionConfig {
            max_age: older_than,
            keep_per_workflow: request.keep_per_workflow,
        };
        self.apply_retention(&retention, request.workflow.as_deref(), request.dry_run)
            .await
    }

    /// Deletes what `retention` says to, in chunks; with `dry_run`, only
    /// counts it.
    async fn apply_retention(
        &self,
        retention: &RetentionConfig,
        workflow: Option<&str>,
        dry_run: bool,
    ) -> Result<PurgeReport, HostError> {
        let mut report = PurgeReport {
            dry_run,
            ..Default::default()
        };
        let mut doomed: Vec<RunId> = Vec::new();
        // What a dry run counted, so a run both limits name counts once.
        let mut counted = std::collections::HashSet::new();
        if let Some(max_age) = retention.max_age {
            let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
            // A cursor: roots left in place (a tree still running, another
            // workflow) are not read again.
            let mut after = None;
            loop {
                let batch = self.store().ended_roots_before(cutoff, after, CHUNK)?;
                let Some(last) = batch.last() else {
                    break;
                };
                after = Some(last.id);
                let picked: Vec<RunId> = batch
                    .iter()
                    .filter(|e| workflow.is_none_or(|w| w == e.workflow))
                    .map(|e| e.id)
                    .collect();
                if dry_run {
                    counted.extend(picked);
                } else {
                    self.delete_roots(&picked, &mut report).await?;
                }
            }
        }
        if let Some(keep) = retention.keep_per_workflow {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for Ended {
                id, workflow: w, ..
            } in self.store().ended_roots()?
            {
                let n = seen.entry(w.clone()).or_default();
                *n += 1;
                if *n > keep && workflow.is_none_or(|f| f == w) {
                    doomed.push(id);
                }
            }
        }
        if dry_run {
            counted.extend(doomed);
            report.runs = counted.len() as u64;
            return Ok(report);
        }
        for chunk in doomed.chunks(CHUNK) {
            self.delete_roots(chunk, &mut report).await?;
        }
        report.blobs += self.reclaim_unreferenced().await?;
        Ok(report)
    }

    /// Deletes each root's tree whose runs have all ended, all in one
    /// durable commit, then reclaims the blobs only they named.
    async fn delete_roots(
        &self,
        roots: &[RunId],
        report: &mut PurgeReport,
    ) -> Result<(), HostError> {
        let mut writes = Vec::with_capacity(roots.len());
        let mut sizes = Vec::with_capacity(roots.len());
        for root in roots {
            let tree = self.tree_of(*root)?;
            if tree.active.is_none() {
                sizes.push(tree.runs.len() as u64);
                writes.push(Write::DeleteRuns(tree.runs));
            }
        }
        let outcomes = self.store().client_commit(writes).await?;
        let mut freed = Vec::new();
        for (outcome, runs) in outcomes.into_iter().zip(sizes) {
            if let WriteOutcome::Deleted { blobs } = outcome {
                report.runs += 1;
                report.runs_with_children += runs;
                freed.extend(blobs);
            }
        }
        report.blobs += self.reclaim(&freed).await?;
        Ok(())
    }

    /// Deletes `runs` in one write, then reclaims the blobs only they
    /// named. `None` if the store refused (a run had not ended).
    async fn delete(&self, runs: Vec<RunId>) -> Result<Option<u64>, HostError> {
        let outcome = self
            .store()
            .client_commit(vec![Write::DeleteRuns(runs)])
            .await?;
        let Some(WriteOutcome::Deleted { blobs }) = outcome.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(self.reclaim(&blobs).await?))
    }

    /// Reclaims every blob left at zero references (by an earlier deletion
    /// interrupted by a crash, or held by a write then).
    async fn reclaim_unreferenced(&self) -> Result<u64, HostError> {
        let zero = self.store().unreferenced_blobs(10_000)?;
        self.reclaim(&zero).await
    }

    /// Deletes the files of the blobs in `digests` that nothing names,
    /// then their counts (in one write). Returns how many went.
    async fn reclaim(&self, digests: &[String]) -> Result<u64, HostError> {
        let store = self.store();
        if digests.is_empty() || store.degraded().is_some() {
            return Ok(0);
        }
        let blobs = &self.inner.services.artifacts;
        let mut forget = Vec::new();
        for digest in digests {
            let gone = blobs
                .reclaim(digest, || store.blob_refs(digest).is_ok_and(|n| n == 0))
                .map_err(|source| HostError::Io {
                    context: format!("reclaiming artifact blob {digest}"),
                    source,
                })?;
            if gone {
                forget.push(Write::ForgetBlob(digest.clone()));
            }
        }
        let reclaimed = forget.len() as u64;
        if !forget.is_empty() {
            store.client_apply(forget).await?;
        }
        Ok(reclaimed)
    }

    /// `root` and every run below it, children before their parents, and
    /// the first that has not ended, if any.
    fn tree_of(&self, root: RunId) -> Result<Tree, HostError> {
        let mut runs = Vec::new();
        let mut active = None;
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if active.is_none()
                && self
                    .store()
                    .run(id)?
                    .is_some_and(|r| !r.status.is_terminal())
            {
                active = Some(id);
            }
            stack.extend(self.store().children(id)?);
            runs.push(id);
        }
        runs.reverse();
        Ok(Tree { runs, active })
    }

    /// Applies `[retention]` until `stop` is set (a no-op when it is off).
    pub async fn run_retention(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let retention = self.config().retention.clone();
        if !retention.is_on() {
            return;
        }
        let interval = retention.interval();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            match self.apply_retention(&retention, None, false).await {
                Ok(r) if r.runs > 0 || r.blobs > 0 => {
                    crate::metrics::runs_purged(r.runs_with_children);
                    tracing::info!(
                        runs = r.runs,
                        runs_with_children = r.runs_with_children,
                        blobs = r.blobs,
                        "retention deleted ended runs"
                    );
                }
                Ok(_) => {}
                Err(e) if e.retry_after().is_some() => {
                    tracing::debug!(error = %e, "retention waits for the store");
                }
                Err(e) => tracing::warn!(error = %e, "retention failed; trying again later"),
            }
        }
    }
}

struct Tree {
    runs: Vec<RunId>,
    active: Option<RunId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_looks_often_enough_for_its_age_limit() {
        let r = |age: u64| RetentionConfig {
            max_age: Some(Duration::from_secs(age)),
            keep_per_workflow: None,
        };
        assert_eq!(r(60).interval(), Duration::from_secs(6));
        assert_eq!(r(1).interval(), Duration::from_secs(1));
        assert_eq!(r(86_400).interval(), Duration::from_secs(60));
        assert!(!RetentionConfig::default().is_on());
    }
}
