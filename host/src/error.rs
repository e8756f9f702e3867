//! The host's error type, mapped once to CLI exit codes (and, with the
//! server, to HTTP statuses).

use crate::engine::ComponentError;
use crate::manifest::ManifestError;
use crate::store::StoreError;
use crate::types::RunId;

/// Something the host could not do. Run failures are not errors: they are
/// a run's status.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("no workflow {0:?} is deployed")]
    WorkflowNotFound(String),
    #[error("workflow {0:?} has no version {1}")]
    VersionNotFound(String, u32),
    #[error("no run {0}")]
    RunNotFound(RunId),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("run {0} has already ended ({1})")]
    RunEnded(RunId, crate::types::RunStatus),
    #[error("the idempotency key names run {0}, which has another input")]
    IdempotencyConflict(RunId),
    #[error("workflow {0:?} has {1} runs that have not ended")]
    WorkflowBusy(String, usize),
    #[error("run {0} has no artifact {1:?}")]
    ArtifactNotFound(RunId, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("host error: {0}")]
    Internal(String),
}

impl HostError {
    /// A stable, machine-readable code for the error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Component(ComponentError::TooLarge(_)) => "COMPONENT_TOO_LARGE",
            Self::Component(ComponentError::NotWasm) => "NOT_WASM",
            Self::Component(ComponentError::CoreModule) => "NOT_A_COMPONENT",
            Self::Component(ComponentError::Invalid(_)) => "INVALID_COMPONENT",
            Self::Component(ComponentError::WrongWorld(_)) => "WRONG_WORLD",
            Self::Manifest(_) => "INVALID_MANIFEST",
            Self::WorkflowNotFound(_) | Self::VersionNotFound(..) => "WORKFLOW_NOT_FOUND",
            Self::RunNotFound(_) => "RUN_NOT_FOUND",
            Self::InvalidInput(_) => "INVALID_INPUT",
            Self::RunEnded(..) => "RUN_ENDED",
            Self::IdempotencyConflict(_) => "IDEMPOTENCY_CONFLICT",
            Self::WorkflowBusy(..) => "WORKFLOW_BUSY",
            Self::ArtifactNotFound(..) => "ARTIFACT_NOT_FOUND",
            Self::Store(StoreError::Locked(_)) => "DATA_DIR_LOCKED",
            Self::Store(_) | Self::Io { .. } | Self::Internal(_) => "INTERNAL",
        }
    }

    /// Whether the caller's input is at fault (as opposed to the host).
    pub fn is_client_error(&self) -> bool {
        !matches!(self.code(), "INTERNAL" | "DATA_DIR_LOCKED")
    }
}
