//! Reads: every view of runs, events, workflows and artifacts that the API
//! and the CLI show goes through here, so they agree (a run's live model
//! usage, say, is the same in a listing and in its detail).

use super::Host;
use crate::error::HostError;
use crate::store::RunFilter;
use crate::types::{ArtifactMeta, Event, RunId, RunRecord, RunStatus, WorkflowVersion};

impl Host {
    /// A run as stored, with its live model usage. A run started a moment
    /// ago may still be on its way to the store (starts do not wait for
    /// the writer): on a miss, wait for what is queued to be applied and
    /// look again.
    pub async fn run_record(&self, id: RunId) -> Result<RunRecord, HostError> {
        let mut r = match self.store().run(id)? {
            Some(r) => r,
            None => {
                self.store().client_apply(Vec::new()).await?;
                self.store().run(id)?.ok_or(HostError::RunNotFound(id))?
            }
        };
        self.with_live_usage(&mut r);
        Ok(r)
    }

    /// Runs, newest first, at most `limit`, each with its live model usage.
    pub fn runs(&self, filter: &RunFilter<'_>, limit: usize) -> Result<Vec<RunRecord>, HostError> {
        let mut runs = self.store().runs_page(filter, limit)?;
        for r in &mut runs {
            self.with_live_usage(r);
        }
        Ok(runs)
    }

    /// Runs that have not ended, oldest first.
    pub fn active_runs(&self) -> Result<Vec<RunRecord>, HostError> {
        let mut runs = self.store().active_records()?;
        for r in &mut runs {
            self.with_live_usage(r);
        }
        Ok(runs)
    }

    /// The run an idempotency key names, if any.
    pub fn run_for_key(&self, key: &str) -> Result<Option<RunId>, HostError> {
        Ok(self.store().run_for_key(key)?)
    }

    /// The runs `id` started, oldest first.
    pub fn children(&self, id: RunId) -> Result<Vec<RunId>, HostError> {
        Ok(self.store().children(id)?)
    }

    /// Up to `limit` events of run `id` after sequence number `after`
    /// (none for an unknown run).
    pub fn events(&self, id: RunId, after: u64, limit: usize) -> Result<Vec<Event>, HostError> {
        Ok(self.store().events(id, after, limit)?)
    }

    /// A receiver that changes whenever run `id` gets new durable events.
    pub fn follow(&self, id: RunId) -> tokio::sync::watch::Receiver<u64> {
        self.store().follow(id)
    }

    /// A run's status as stored now (no wait for queued writes).
    pub fn status(&self, id: RunId) -> Result<Option<RunStatus>, HostError> {
        Ok(self.store().run(id)?.map(|r| r.status))
    }

    /// The newest version of each deployed workflow.
    pub fn workflows(&self) -> Result<Vec<WorkflowVersion>, HostError> {
        Ok(self.store().workflows()?)
    }

    /// A workflow's given (or newest) version, if deployed.
    pub fn workflow(
        &self,
        slug: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowVersion>, HostError> {
        Ok(self.store().workflow(slug, version)?)
    }

    /// Every version of a workflow still stored, oldest first.
    pub fn workflow_versions(&self, slug: &str) -> Result<Vec<WorkflowVersion>, HostError> {
        let Some(latest) = self.workflow(slug, None)? else {
            return Err(HostError::WorkflowNotFound(slug.to_owned()));
        };
        let mut versions = Vec::with_capacity(latest.version as usize);
        for v in 1..=latest.version {
            if let Some(w) = self.workflow(slug, Some(v))? {
                versions.push(w);
            }
        }
        Ok(versions)
    }

    /// Metadata of the artifacts run `id` wrote.
    pub fn artifacts(&self, id: RunId) -> Result<Vec<ArtifactMeta>, HostError> {
        Ok(self.store().artifacts(id)?)
    }

    /// Whether the store answers reads.
    pub fn ready(&self) -> Result<(), HostError> {
        self.store().writable()?;
        self.store().workflows()?;
        Ok(())
    }

    /// A run's model usage as of now: a run that has not ended is charged
    /// as it goes, and a tree's figure grows while descendants run.
    fn with_live_usage(&self, r: &mut RunRecord) {
        let totals = self.inner.services.ledger.totals(r.id);
        r.usage.model = totals.own;
        r.usage.model_tree = totals.tree;
    }
}
