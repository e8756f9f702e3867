//! Runs, their waits and signals, artifacts and deployed workflows.

use super::{Ancestor, RunError, RunId, RunStatus, Usage};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Timestamps are UTC, serialized as RFC 3339.
pub type Timestamp = OffsetDateTime;

/// Now, as every record and event of this process dates it (see
/// [`skip_to`]).
pub fn now() -> Timestamp {
    OffsetDateTime::now_utc() + time::Duration::milliseconds(skipped_ms() as i64)
}

/// Time the test harness skipped (`runway test-runner`, where a durable
/// sleep of a day takes no time): added to every clock this process reads.
/// Nothing else moves it, so a host that serves runs always reads 0.
static SKIPPED_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Milliseconds the clocks of this process were moved forward.
pub fn skipped_ms() -> u64 {
    SKIPPED_MS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Moves this process's clocks forward until [`now_ms`] reads at least
/// `ms`. Only the test harness calls it.
pub(crate) fn skip_to(ms: u64) {
    let now = now_ms();
    if ms > now {
        SKIPPED_MS.fetch_add(ms - now, std::sync::atomic::Ordering::Relaxed);
    }
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
    /// The W3C `traceparent` the run's spans descend from (with traces
    /// on): the request that started it, or its parent's start call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// What started the run, on whose behalf (absent on runs stored
    /// before runs were attributed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Who asked for the run to be cancelled, if anyone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_by: Option<String>,
    /// Which attempt this is, from 1 (the manifest's `[retry]` makes more).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

/// What started a run, and who or what for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trigger {
    /// `api`, `webhook`, `cron`, `child`, `cli`, `rerun` or `reset`.
    pub kind: String,
    /// The principal (`token:ci`, `jwt:alice`), the webhook delivery, the
    /// cron trigger and instant, the parent run, or the local user.
    pub by: String,
    /// The run this one reruns (kind `rerun`) or forks (kind `reset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rerun_of: Option<RunId>,
    /// A reset (kind `reset`) forked `rerun_of` after this event: the
    /// run replayed what came up to it and went on live from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_to: Option<u64>,
}

impl Trigger {
    pub fn new(kind: &str, by: impl Into<String>) -> Trigger {
        Trigger {
            kind: kind.to_owned(),
            by: by.into(),
            rerun_of: None,
            reset_to: None,
        }
    }

    /// A run started on this machine through the library or the CLI: the
    /// local user.
    pub fn local() -> Trigger {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Trigger::new("cli", format!("user:{user}"))
    }
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
    /// An approval's decision (delivered as the signal
    /// `approval:<name>`), or its timeout.
    Approval {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
}

impl Wait {
    /// The status of a run parked on this.
    pub fn status(&self) -> RunStatus {
        match self {
            Wait::Timer { .. } => RunStatus::Sleeping,
            Wait::Signal { .. } => RunStatus::WaitingSignal,
            Wait::Child { .. } => RunStatus::WaitingChild,
            Wait::Approval { .. } => RunStatus::WaitingApproval,
        }
    }

    /// When the wait ends by itself, if it does.
    pub fn until_ms(&self) -> Option<u64> {
        match self {
            Wait::Timer { until_ms } => Some(*until_ms),
            Wait::Signal { until_ms, .. } | Wait::Approval { until_ms, .. } => *until_ms,
            Wait::Child { .. } => None,
        }
    }
}

/// Milliseconds since the Unix epoch, now (see [`skip_to`]).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        + skipped_ms()
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
    /// Who sent it (a principal, a webhook), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub payload: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
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

/// What a cron trigger's history holds beside its next fire time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronState {
    /// A paused trigger fires nothing; instants due meanwhile are skipped.
    #[serde(default)]
    pub paused: bool,
    /// When it last fired (ms since the epoch), by schedule or by hand.
    #[serde(default)]
    pub last_fire_ms: Option<u64>,
    /// The run its last fire started.
    #[serde(default)]
    pub last_run: Option<RunId>,
}
