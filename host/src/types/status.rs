//! Where a run is, and why it failed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a run is in its lifecycle. Spelled in snake_case like event kinds
/// (`waiting_signal`); the dashed spelling of earlier versions
/// (`waiting-signal`) is still read, from stored records and from clients.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Parked on a durable timer.
    Sleeping,
    /// Parked until a signal arrives (or its timeout).
    #[serde(alias = "waiting-signal")]
    WaitingSignal,
    /// Parked until a child run ends.
    #[serde(alias = "waiting-child")]
    WaitingChild,
    /// Parked until someone decides an approval (or its timeout).
    WaitingApproval,
    /// Cancel was asked for; the run stops at its next instruction or wake.
    Cancelling,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Sleeping => "sleeping",
            Self::WaitingSignal => "waiting_signal",
            Self::WaitingChild => "waiting_child",
            Self::WaitingApproval => "waiting_approval",
            Self::Cancelling => "cancelling",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "sleeping" => Self::Sleeping,
            "waiting_signal" | "waiting-signal" => Self::WaitingSignal,
            "waiting_child" | "waiting-child" => Self::WaitingChild,
            "waiting_approval" => Self::WaitingApproval,
            "cancelling" => Self::Cancelling,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => {
                return Err(format!(
                    "unknown status {other:?} (expected queued, running, sleeping, waiting_signal, waiting_child, waiting_approval, cancelling, completed, failed or cancelled)"
                ));
            }
        })
    }
}

/// Why a run failed. Each code says who is to blame (see [`ErrorCode::blame`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The guest returned an error.
    ProgramError,
    /// The guest trapped (panic, stack overflow, ...).
    Trap,
    /// A budget was exceeded.
    BudgetExceeded,
    /// The input was rejected (not JSON, or not what the workflow accepts).
    InvalidInput,
    /// The output does not follow the manifest's `[output.schema]`.
    InvalidOutput,
    /// The guest read a secret its manifest does not declare.
    SecretUndeclared,
    /// A declared secret has no value on this host.
    SecretMissing,
    /// Replay saw a different sequence of calls than the journal holds.
    Nondeterminism,
    /// The guest called the host with arguments past the host's limits
    /// where the call has no failure to return (a signal name too long).
    InvalidCall,
    /// The run was cancelled.
    Cancelled,
    /// The host failed; not the guest's fault.
    Internal,
}

/// Who has to act to fix a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Blame {
    /// The workflow's author (or its input).
    Guest,
    /// The host's operator.
    Host,
    /// Nobody: it was asked for.
    User,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProgramError => "PROGRAM_ERROR",
            Self::Trap => "TRAP",
            Self::BudgetExceeded => "BUDGET_EXCEEDED",
            Self::InvalidInput => "INVALID_INPUT",
            Self::InvalidOutput => "INVALID_OUTPUT",
            Self::SecretUndeclared => "SECRET_UNDECLARED",
            Self::SecretMissing => "SECRET_MISSING",
            Self::Nondeterminism => "NONDETERMINISM",
            Self::InvalidCall => "INVALID_CALL",
            Self::Cancelled => "CANCELLED",
            Self::Internal => "INTERNAL",
        }
    }

    pub fn blame(self) -> Blame {
        match self {
            Self::ProgramError
            | Self::Trap
            | Self::BudgetExceeded
            | Self::InvalidInput
            | Self::InvalidOutput
            | Self::InvalidCall
            | Self::SecretUndeclared
            | Self::Nondeterminism => Blame::Guest,
            Self::SecretMissing | Self::Internal => Blame::Host,
            Self::Cancelled => Blame::User,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed run's error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunError {
    pub code: ErrorCode,
    pub message: String,
    /// `PROGRAM_ERROR`: the code of the failure the workflow returned (a
    /// host call's, like `HTTP_CONNECT`, passed on, or its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl RunError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RunError {
        RunError {
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// The codes a `[retry]` policy matches: the run's, and its cause's.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.code.as_str()).chain(self.cause.as_deref())
    }
}

/// A failure a host call returned to the guest (which may handle it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallFailure {
    pub code: String,
    pub message: String,
}

/// Why a host call refused the guest: a failure the guest sees in
/// `failure.code` and may handle, not the end of the run (that is an
/// [`ErrorCode`]). Every code a host call can return is listed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// `approvals.request`: the name or spec cannot be asked (or the name
    /// was asked before).
    ApprovalInvalid,
    /// `artifacts.write`: the name is empty, too long, or not a plain path.
    ArtifactNameInvalid,
    /// `artifacts.write`: the content type is too long or has control characters.
    ArtifactContentTypeInvalid,
    /// `artifacts.write`: the metadata is not JSON.
    ArtifactMetadataInvalid,
    /// `artifacts.read`: this run wrote no artifact of that name.
    ArtifactNotFound,
    /// `workflows.start`/`call`: the child's input is not JSON, too big or
    /// too deep, or its idempotency key is too long.
    InvalidInput,
    /// `workflows.start`/`call`: runs may not nest deeper (`max_child_depth`).
    ChildDepthExceeded,
    /// `workflows.start`/`call`: the host's run queue is full; try later.
    QueueFull,
    /// `workflows.start`/`call`: no workflow of that slug is deployed.
    WorkflowNotFound,
    /// `workflows.join`: the id names no child of this run.
    NotAChild,
    /// `workflows.join`/`call`: the child was cancelled.
    ChildCancelled,
    /// `workflows.join`/`call`: the child failed (the message says how).
    ChildFailed,
    /// `models`: the manifest does not allow this model.
    ModelNotAllowed,
    /// `models`: no configured model or alias has this name.
    ModelUnknown,
    /// `models.generate`: the provider answered with an error.
    ProviderError,
    /// `models.generate`: the provider did not answer in time.
    ProviderTimeout,
    /// `models.generate`: the provider kept refusing for its rate limit.
    RateLimited,
    /// `models.generate`: the answer was unreadable or not the JSON asked for.
    InvalidResponse,
    /// `models.generate`: the host refuses to send this request.
    InvalidRequest,
    /// `http.send`: the egress policy does not let the request out (the
    /// host's `[egress]`, the manifest's `[http]`, a restricted address, a
    /// redirect to one).
    EgressDenied,
    /// `http.send`: no response within the timeout.
    HttpTimeout,
    /// `http.send`: no connection could be made (after the retries).
    HttpConnect,
    /// `http.send`: the response body is over `max_response_bytes`.
    HttpTooLarge,
    /// `http.send`: the request is malformed (method, URL, header, an
    /// unknown secret placeholder).
    HttpInvalidRequest,
    /// `mcp`: the manifest does not grant the server (or the tool), or the
    /// host has no such server, or its `[egress]` keeps it out.
    McpServerNotAllowed,
    /// `mcp.call-tool`: the tool answered with an error, or the server
    /// refused the call.
    McpToolError,
    /// `mcp`: the server could not be reached, timed out or broke the
    /// protocol.
    McpUnavailable,
    /// `mcp`: the host holds no valid grant for the server (the operator
    /// runs `runway mcp login NAME`).
    McpAuthRequired,
}

impl FailureCode {
    /// The code as the guest sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApprovalInvalid => "APPROVAL_INVALID",
            Self::ArtifactNameInvalid => "ARTIFACT_NAME_INVALID",
            Self::ArtifactContentTypeInvalid => "ARTIFACT_CONTENT_TYPE_INVALID",
            Self::ArtifactMetadataInvalid => "ARTIFACT_METADATA_INVALID",
            Self::ArtifactNotFound => "ARTIFACT_NOT_FOUND",
            Self::InvalidInput => "INVALID_INPUT",
            Self::ChildDepthExceeded => "CHILD_DEPTH_EXCEEDED",
            Self::QueueFull => "QUEUE_FULL",
            Self::WorkflowNotFound => "WORKFLOW_NOT_FOUND",
            Self::NotAChild => "NOT_A_CHILD",
            Self::ChildCancelled => "CHILD_CANCELLED",
            Self::ChildFailed => "CHILD_FAILED",
            Self::ModelNotAllowed => "MODEL_NOT_ALLOWED",
            Self::ModelUnknown => "MODEL_UNKNOWN",
            Self::ProviderError => "PROVIDER_ERROR",
            Self::ProviderTimeout => "PROVIDER_TIMEOUT",
            Self::RateLimited => "RATE_LIMITED",
            Self::InvalidResponse => "INVALID_RESPONSE",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::EgressDenied => "EGRESS_DENIED",
            Self::HttpTimeout => "HTTP_TIMEOUT",
            Self::HttpConnect => "HTTP_CONNECT",
            Self::HttpTooLarge => "HTTP_TOO_LARGE",
            Self::HttpInvalidRequest => "HTTP_INVALID_REQUEST",
            Self::McpServerNotAllowed => "MCP_SERVER_NOT_ALLOWED",
            Self::McpToolError => "MCP_TOOL_ERROR",
            Self::McpUnavailable => "MCP_UNAVAILABLE",
            Self::McpAuthRequired => "MCP_AUTH_REQUIRED",
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
