//! What all runs of one host share: the store, secret values, artifact blobs.

use crate::artifact_store::ArtifactStore;
use crate::secrets::SecretSource;
use crate::store::Store;
use std::sync::Arc;

pub(crate) struct HostServices {
    pub store: Store,
    pub secrets: SecretSource,
    pub artifacts: Arc<ArtifactStore>,
}
