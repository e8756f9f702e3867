//! The host's error type, mapped once (in [`HostError::code_and_status`])
//! to a stable code and an HTTP status.

use crate::manifest::ManifestError;
use crate::sandbox::engine::ComponentError;
use crate::store::StoreError;
use crate::triggers::webhook::WebhookError;
use crate::types::RunId;
use axum::http::StatusCode;

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
    #[error("run {0} asked no approval {1:?}")]
    ApprovalNotFound(RunId, String),
    #[error("approval {1:?} of run {0} may not be decided by {2}")]
    ApprovalNotAllowed(RunId, String, String),
    #[error("not a decision for approval {0:?}: {1}")]
    InvalidDecision(String, String),
    #[error("approval {1:?} of run {0} was decided otherwise already")]
    ApprovalDecided(RunId, String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("run {0} cannot be reset to event {1}: {2}")]
    InvalidResetPoint(RunId, u64, String),
    #[error("run {0} has already ended ({1})")]
    RunEnded(RunId, crate::types::RunStatus),
    #[error("run {1} (in the tree of run {0}) has not ended: cancel it or wait for it to end")]
    RunActive(RunId, RunId),
    #[error("the idempotency key names run {0}, which has another input")]
    IdempotencyConflict(RunId),
    #[error("workflow {0:?} has {1} runs that have not ended")]
    WorkflowBusy(String, usize),
    #[error("{depth} runs are waiting to execute; try again in {retry_after} s")]
    QueueFull {
        depth: usize,
        /// Seconds until the queue has drained at its measured rate.
        retry_after: u64,
    },
    /// `deploy --verify`: the new component does not replay the runs.
    #[error(
        "{runs} recorded runs of {slug:?} replay differently on the new component (first: {first}); not deployed"
    )]
    VerifyFailed {
        slug: String,
        runs: usize,
        first: String,
    },
    #[error("workflow {0:?} has no cron trigger {1}")]
    CronNotFound(String, usize),
    #[error("run {0} has no artifact {1:?}")]
    ArtifactNotFound(RunId, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error("host error: {0}")]
    Internal(String),
}

impl HostError {
    /// The one table from an error to its stable, machine-readable code
    /// (the error envelope's `code`, the CLI's message) and the HTTP status
    /// it answers with.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        use StatusCode as S;
        match self {
            Self::Component(ComponentError::TooLarge(_)) => {
                ("COMPONENT_TOO_LARGE", S::PAYLOAD_TOO_LARGE)
            }
            Self::Component(ComponentError::NotWasm) => ("NOT_WASM", S::UNPROCESSABLE_ENTITY),
            Self::Component(ComponentError::CoreModule) => {
                ("NOT_A_COMPONENT", S::UNPROCESSABLE_ENTITY)
            }
            Self::Component(ComponentError::Invalid(_)) => {
                ("INVALID_COMPONENT", S::UNPROCESSABLE_ENTITY)
            }
            Self::Component(ComponentError::WrongWorld(_)) => {
                ("WRONG_WORLD", S::UNPROCESSABLE_ENTITY)
            }
            Self::Manifest(_) => ("INVALID_MANIFEST", S::UNPROCESSABLE_ENTITY),
            Self::WorkflowNotFound(_) | Self::VersionNotFound(..) => {
                ("WORKFLOW_NOT_FOUND", S::NOT_FOUND)
            }
            Self::RunNotFound(_) => ("RUN_NOT_FOUND", S::NOT_FOUND),
            Self::ApprovalNotFound(..) => ("APPROVAL_NOT_FOUND", S::NOT_FOUND),
            Self::ApprovalNotAllowed(..) => ("APPROVAL_NOT_ALLOWED", S::FORBIDDEN),
            Self::InvalidDecision(..) => ("INVALID_DECISION", S::UNPROCESSABLE_ENTITY),
            Self::ApprovalDecided(..) => ("APPROVAL_DECIDED", S::CONFLICT),
            Self::ArtifactNotFound(..) => ("ARTIFACT_NOT_FOUND", S::NOT_FOUND),
            Self::CronNotFound(..) => ("CRON_NOT_FOUND", S::NOT_FOUND),
            Self::VerifyFailed { .. } => ("VERIFY_FAILED", S::CONFLICT),
            Self::InvalidInput(_) => ("INVALID_INPUT", S::UNPROCESSABLE_ENTITY),
            Self::InvalidResetPoint(..) => ("INVALID_RESET_POINT", S::UNPROCESSABLE_ENTITY),
            Self::RunEnded(..) => ("RUN_ENDED", S::CONFLICT),
            Self::RunActive(..) => ("RUN_ACTIVE", S::CONFLICT),
            Self::IdempotencyConflict(_) => ("IDEMPOTENCY_CONFLICT", S::CONFLICT),
            Self::WorkflowBusy(..) => ("WORKFLOW_BUSY", S::CONFLICT),
            Self::QueueFull { .. } => ("QUEUE_FULL", S::TOO_MANY_REQUESTS),
            Self::Webhook(WebhookError::NoHook(_)) => ("NOT_FOUND", S::NOT_FOUND),
            Self::Webhook(WebhookError::NoWaitingRun) => ("NOT_FOUND", S::NOT_FOUND),
            Self::Webhook(WebhookError::KeyMissing) => {
                ("WEBHOOK_KEY_MISSING", S::SERVICE_UNAVAILABLE)
            }
            Self::Webhook(WebhookError::Rejected(_)) => ("WEBHOOK_REJECTED", S::UNAUTHORIZED),
            Self::Webhook(WebhookError::NoCorrelationValue(_)) => {
                ("NO_CORRELATION_VALUE", S::UNPROCESSABLE_ENTITY)
            }
            Self::Webhook(WebhookError::NoInput) => ("NO_INPUT", S::UNPROCESSABLE_ENTITY),
            Self::Store(StoreError::Locked(_)) => ("DATA_DIR_LOCKED", S::SERVICE_UNAVAILABLE),
            Self::Store(StoreError::Missing(_) | StoreError::Damaged(..)) => {
                ("STORE_REFUSED", S::SERVICE_UNAVAILABLE)
            }
            Self::Store(
                StoreError::Unreadable(_)
                | StoreError::Corrupt(_)
                | StoreError::Db(redb::Error::Corrupted(_)),
            ) => ("STORE_DAMAGED", S::INTERNAL_SERVER_ERROR),
            Self::Store(StoreError::NotRedb) => ("NOT_SUPPORTED", S::CONFLICT),
            Self::Store(e) if e.is_unavailable() => ("STORAGE_UNAVAILABLE", S::SERVICE_UNAVAILABLE),
            Self::Store(_) | Self::Io { .. } | Self::Internal(_) => {
                ("INTERNAL", S::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// Seconds a client should wait before trying again, for an error that
    /// passes by itself (a full queue, a store that takes no writes now).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::QueueFull { retry_after, .. }
            | Self::Store(StoreError::Unavailable { retry_after, .. }) => Some(*retry_after),
            Self::Store(e) if e.is_unavailable() => Some(1),
            _ => None,
        }
    }

    /// The stable code (see [`HostError::code_and_status`]).
    pub fn code(&self) -> &'static str {
        self.code_and_status().0
    }

    /// Whether the caller's input is at fault (as opposed to the host).
    pub fn is_client_error(&self) -> bool {
        self.code_and_status().1.is_client_error()
    }
}
