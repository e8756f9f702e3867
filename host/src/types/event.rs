//! A run's event log.

use super::{BudgetKind, CallFailure, ErrorCode, RunId, Timestamp, Usd, Wait};
use serde::{Deserialize, Serialize};

/// A log level, as the guest passes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Which output stream program output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What happened, in one entry of a run's event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Queued {
        workflow: String,
        version: u32,
    },
    Running,
    Log {
        level: LogLevel,
        message: String,
    },
    /// A custom event the guest emitted.
    Custom {
        name: String,
        payload: serde_json::Value,
    },
    ProgramOutput {
        stream: OutputStream,
        text: String,
    },
    /// A secret was read; its value is never recorded.
    SecretRead {
        name: String,
    },
    ArtifactWritten {
        name: String,
        digest: String,
        size: u64,
        content_type: String,
    },
    BudgetExceeded {
        budget: BudgetKind,
        limit: u64,
        used: u64,
        unit: String,
    },
    Completed,
    Failed {
        code: ErrorCode,
        message: String,
    },
    Cancelled {
        /// Who asked for the cancel, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The run parked on a durable timer.
    Sleeping {
        until_ms: u64,
    },
    /// The run parked until a signal arrives.
    WaitingSignal {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    /// The run parked until a child run ends.
    WaitingChild {
        #[schema(value_type = String)]
        run: RunId,
    },
    /// The run asked people to decide (it parks until they do).
    ApprovalRequested {
        name: String,
        approval: super::ApprovalKind,
        prompt: String,
    },
    /// The run parked until its approval `name` is decided.
    WaitingApproval {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    /// The run took the decision (a person's, or its timeout's default).
    ApprovalDecided {
        name: String,
        decision: super::Decision,
    },
    /// A call of an MCP server's tool (`arguments_digest`: the first 16
    /// bytes of the sha256 of server, tool and arguments; the arguments
    /// themselves are not kept).
    ToolCall {
        server: String,
        tool: String,
        arguments_digest: String,
        duration_ms: u64,
        /// `ok`, or the failure's code.
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<CallFailure>,
    },
    /// An attempt failed and the manifest's `[retry]` tries the run again:
    /// attempt `attempt` begins at `at_ms`, replaying the journal's first
    /// `kept` calls (0: from the top).
    Retrying {
        attempt: u32,
        code: String,
        message: String,
        at_ms: u64,
        kept: u64,
    },
    /// The run took a signal from its inbox.
    SignalReceived {
        name: String,
        signal_seq: u64,
        /// Who sent it, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The run started a child run.
    ChildStarted {
        #[schema(value_type = String)]
        run: RunId,
        workflow: String,
    },
    /// The host called a model for the run (or tried to).
    ModelCall {
        /// The reference the workflow asked for (an alias or provider/model).
        model: String,
        provider: String,
        /// The model id sent to the provider.
        provider_model: String,
        input_tokens: u64,
        output_tokens: u64,
        cached_tokens: u64,
        #[schema(value_type = f64)]
        cost_usd: Usd,
        /// From the first attempt to the answer, retries included.
        latency_ms: u64,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<String>,
        /// Why the call failed, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<CallFailure>,
        /// The tools the model asked to call, by name, in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<String>,
    },
    /// An outbound HTTP request, and what the egress policy decided.
    HttpCall {
        method: String,
        /// Secret values masked.
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        bytes_sent: u64,
        bytes_received: u64,
        duration_ms: u64,
        /// Attempts made (0 when the policy refused the request).
        attempts: u32,
        #[schema(value_type = Object)]
        egress: crate::egress::policy::Decision,
        /// Why the request got no response, if it did not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<CallFailure>,
    },
}

impl EventBody {
    /// The `kind` tag, for tables and filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Running => "running",
            Self::Log { .. } => "log",
            Self::Custom { .. } => "custom",
            Self::ProgramOutput { .. } => "program_output",
            Self::SecretRead { .. } => "secret_read",
            Self::ArtifactWritten { .. } => "artifact_written",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::Completed => "completed",
            Self::Failed { .. } => "failed",
            Self::Cancelled { .. } => "cancelled",
            Self::Sleeping { .. } => "sleeping",
            Self::WaitingSignal { .. } => "waiting_signal",
            Self::WaitingChild { .. } => "waiting_child",
            Self::ApprovalRequested { .. } => "approval_requested",
            Self::WaitingApproval { .. } => "waiting_approval",
            Self::ApprovalDecided { .. } => "approval_decided",
            Self::SignalReceived { .. } => "signal_received",
            Self::Retrying { .. } => "retrying",
            Self::ToolCall { .. } => "tool_call",
            Self::ChildStarted { .. } => "child_started",
            Self::ModelCall { .. } => "model_call",
            Self::HttpCall { .. } => "http_call",
        }
    }

    /// The event a run parked on `wait` writes.
    pub fn parked(wait: &Wait) -> EventBody {
        match wait {
            Wait::Timer { until_ms } => EventBody::Sleeping {
                until_ms: *until_ms,
            },
            Wait::Signal { name, until_ms } => EventBody::WaitingSignal {
                name: name.clone(),
                until_ms: *until_ms,
            },
            Wait::Child { run } => EventBody::WaitingChild { run: *run },
            Wait::Approval { name, until_ms } => EventBody::WaitingApproval {
                name: name.clone(),
                until_ms: *until_ms,
            },
        }
    }
}

/// One entry of a run's append-only event log. `seq` starts at 1, gap-free.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[serde(flatten)]
    pub body: EventBody,
}
