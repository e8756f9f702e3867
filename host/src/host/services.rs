//! What all runs of one host share: the store, secret values, artifact
//! blobs and the registry of live runs.

use crate::host::scheduler::Registry;
use crate::host::secrets::SecretSource;
use crate::store::Store;
use crate::store::blobs::ArtifactStore;
use std::sync::Arc;

pub(crate) struct HostServices {
    pub store: Store,
    pub secrets: SecretSource,
    pub artifacts: Arc<ArtifactStore>,
    pub registry: Registry,
    /// Deepest chain of parent and child runs.
    pub max_depth: u32,
    pub models: crate::models::Models,
    pub ledger: crate::host::ledger::Ledger,
}
