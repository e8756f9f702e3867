//! Plain shared types: ids, statuses, events, failure codes.
//!
//! Everything else (store, engine, CLI, later the HTTP API) depends on this
//! module; it depends on nothing of ours.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// A run's id: a ULID, so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RunId(ulid::Ulid);

impl RunId {
    /// A fresh id, later than every id made before it in this process.
    pub fn generate() -> Self {
        use std::sync::Mutex;
        static LAST: Mutex<Option<ulid::Generator>> = Mutex::new(None);
        let mut gen_guard = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let generator = gen_guard.get_or_insert_with(ulid::Generator::new);
        // Monotonic within a millisecond; on the (2^80 per ms) overflow fall back to random.
        RunId(generator.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run_{}", self.0.to_string().to_lowercase())
    }
}
impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text could not be read as a run id.
#[derive(Debug, thiserror::Error)]
#[error("not a run id: {0:?} (expected run_ followed by 26 characters)")]
pub struct BadRunId(String);

impl FromStr for RunId {
    type Err = BadRunId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .strip_prefix("run_")
            .ok_or_else(|| BadRunId(s.to_owned()))?;
        ulid::Ulid::from_string(body)
            .map(RunId)
            .map_err(|_| BadRunId(s.to_owned()))
    }
}
impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.to_string()
    }
}
impl TryFrom<String> for RunId {
    type Error = BadRunId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Where a run is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Parked on a durable timer.
    Sleeping,
    /// Parked until a signal arrives (or its timeout).
    WaitingSignal,
    /// Parked until a child run ends.
    WaitingChild,
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
            Self::WaitingSignal => "waiting-signal",
            Self::WaitingChild => "waiting-child",
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
            "waiting-signal" => Self::WaitingSignal,
            "waiting-child" => Self::WaitingChild,
            "cancelling" => Self::Cancelling,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => {
                return Err(format!(
                    "unknown status {other:?} (expected queued, running, sleeping, waiting-signal, waiting-child, cancelling, completed, failed or cancelled)"
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
    /// The guest read a secret its manifest does not declare.
    SecretUndeclared,
    /// A declared secret has no value on this host.
    SecretMissing,
    /// Replay saw a different sequence of calls than the journal holds.
    Nondeterminism,
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
            Self::SecretUndeclared => "SECRET_UNDECLARED",
            Self::SecretMissing => "SECRET_MISSING",
            Self::Nondeterminism => "NONDETERMINISM",
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
}

/// A failure a host call returned to the guest (which may handle it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallFailure {
    pub code: String,
    pub message: String,
}

/// The budgets a run is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    MaxFuel,
    MaxDuration,
    MaxMemory,
    MaxEvents,
    MaxOutputBytes,
    MaxArtifactBytes,
    MaxChildren,
    MaxTokens,
    MaxUsd,
}

impl BudgetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxFuel => "max_fuel",
            Self::MaxDuration => "max_duration",
            Self::MaxMemory => "max_memory",
            Self::MaxEvents => "max_events",
            Self::MaxOutputBytes => "max_output_bytes",
            Self::MaxArtifactBytes => "max_artifact_bytes",
            Self::MaxChildren => "max_children",
            Self::MaxTokens => "max_tokens",
            Self::MaxUsd => "max_usd",
        }
    }
    /// `v` in this budget's unit, for people.
    pub fn show(self, v: u64) -> String {
        match self {
            Self::MaxUsd => Usd(v).to_string(),
            _ => format!("{v} {}", self.unit()),
        }
    }

    /// The unit of `limit` and `used` in a budget event.
    pub fn unit(self) -> &'static str {
        match self {
            Self::MaxFuel => "fuel",
            Self::MaxDuration => "ms",
            Self::MaxMemory | Self::MaxOutputBytes | Self::MaxArtifactBytes => "bytes",
            Self::MaxEvents => "events",
            Self::MaxChildren => "children",
            Self::MaxTokens => "tokens",
            Self::MaxUsd => "nano-usd",
        }
    }
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    pub fuel: u64,
    pub duration_ms: u64,
    pub peak_memory_bytes: u64,
    pub events: u64,
    pub output_bytes: u64,
    pub artifact_bytes: u64,
    /// Model calls this run made itself.
    #[serde(default)]
    pub model: ModelUsage,
    /// Model calls of this run and every run below it: what its
    /// `max_tokens` and `max_usd` budgets are held to.
    #[serde(default)]
    pub model_tree: ModelUsage,
}

/// US dollars, kept as whole nano-dollars so sums are exact; shown as a
/// decimal number of dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(pub u64);

impl Usd {
    pub fn from_dollars(d: f64) -> Usd {
        Usd((d * 1e9).round().max(0.0) as u64)
    }
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.6}", self.dollars())
    }
}

impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(Usd::from_dollars)
    }
}

/// Tokens and cost of model calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelUsage {
    pub calls: u64,
    /// All input tokens, cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    #[schema(value_type = f64)]
    pub cost_usd: Usd,
}

impl ModelUsage {
    /// Input plus output tokens: what `max_tokens` counts.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    pub fn add(&mut self, o: &ModelUsage) {
        self.calls += o.calls;
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(o.cached_tokens);
        self.cost_usd = Usd(self.cost_usd.0.saturating_add(o.cost_usd.0));
    }
}

/// A run's model usage: its own calls, and its whole tree's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTotals {
    pub own: ModelUsage,
    pub tree: ModelUsage,
}

/// A run above this one and its model budgets, which this run's calls
/// count against too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ancestor {
    #[schema(value_type = String)]
    pub run: RunId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub max_usd: Option<Usd>,
}

/// Timestamps are UTC, serialized as RFC 3339.
pub type Timestamp = OffsetDateTime;

pub fn now() -> Timestamp {
    OffsetDateTime::now_utc()
}

/// One run, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    #[schema(value_type = String)]
    pub id: RunId,
    pub workflow: String,
    pub version: u32,
    /// sha256 of the component this run is pinned to.
    pub digest: String,
    pub status: RunStatus,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub error: Option<RunError>,
    #[schema(value_type = Option<String>)]
    pub parent: Option<RunId>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    pub usage: Usage,
    /// Seeds the run's WASI random streams; replay reuses it.
    /// Never shown by the API: a guest may derive secrets from its random.
    #[serde(with = "hex::serde")]
    #[schema(ignore)]
    pub seed: [u8; 32],
    /// What a parked run waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
    /// 0 for a run started from outside; a child's is its parent's plus one.
    #[serde(default)]
    pub depth: u32,
    /// The key the run was started under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The runs above this one, root first, with their model budgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<Ancestor>,
}

impl RunRecord {
    /// When the run first started, in ms since the Unix epoch (now if it
    /// has not): `max_duration` counts from here, across restarts.
    pub fn first_start_ms(&self) -> u64 {
        self.started_at
            .map_or_else(now_ms, |t| (t.unix_timestamp_nanos() / 1_000_000) as u64)
    }
}

/// What a parked run waits for. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Wait {
    Timer {
        until_ms: u64,
    },
    Signal {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    Child {
        #[schema(value_type = String)]
        run: RunId,
    },
}

impl Wait {
    /// The status of a run parked on this.
    pub fn status(&self) -> RunStatus {
        match self {
            Wait::Timer { .. } => RunStatus::Sleeping,
            Wait::Signal { .. } => RunStatus::WaitingSignal,
            Wait::Child { .. } => RunStatus::WaitingChild,
        }
    }

    /// When the wait ends by itself, if it does.
    pub fn until_ms(&self) -> Option<u64> {
        match self {
            Wait::Timer { until_ms } => Some(*until_ms),
            Wait::Signal { until_ms, .. } => *until_ms,
            Wait::Child { .. } => None,
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A signal in a run's inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signal {
    /// Arrival order in the run's inbox, from 1.
    pub seq: u64,
    pub name: String,
    /// The sender's id for deduplication, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub payload: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

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
    Cancelled,
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
    /// The run took a signal from its inbox.
    SignalReceived {
        name: String,
        signal_seq: u64,
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
            Self::Cancelled => "cancelled",
            Self::Sleeping { .. } => "sleeping",
            Self::WaitingSignal { .. } => "waiting_signal",
            Self::WaitingChild { .. } => "waiting_child",
            Self::SignalReceived { .. } => "signal_received",
            Self::ChildStarted { .. } => "child_started",
            Self::ModelCall { .. } => "model_call",
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

/// Metadata of an artifact a run wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactMeta {
    #[schema(value_type = String)]
    pub run_id: RunId,
    pub name: String,
    pub content_type: String,
    pub digest: String,
    pub size: u64,
    pub metadata: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// One deployed version of a workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowVersion {
    pub slug: String,
    pub version: u32,
    pub digest: String,
    /// The manifest as deployed (TOML text), so it can be shown as written.
    pub manifest_toml: String,
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub deployed_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_round_trip_and_sort_by_creation() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        let parsed: RunId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
        assert!("nope".parse::<RunId>().is_err());
        assert!("run_xyz".parse::<RunId>().is_err());
    }

    #[test]
    fn events_serialize_flat_with_kind_tag() {
        let e = Event {
            seq: 3,
            at: now(),
            body: EventBody::Failed {
                code: ErrorCode::BudgetExceeded,
                message: "x".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "failed");
        assert_eq!(v["code"], "BUDGET_EXCEEDED");
        assert_eq!(v["seq"], 3);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
