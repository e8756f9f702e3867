//! Budgets and what a run consumed.

use super::RunId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The budgets a run is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    MaxFuel,
    /// Time executing (parks not counted).
    MaxDuration,
    /// Wall-clock time since the first start, parks included.
    MaxLifetime,
    MaxMemory,
    MaxEvents,
    MaxOutputBytes,
    MaxArtifactBytes,
    MaxChildren,
    MaxJournalEntries,
    MaxJournalBytes,
    MaxTreeRuns,
    MaxTokens,
    MaxUsd,
    MaxHttpCalls,
    MaxHttpBytes,
}

impl BudgetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxFuel => "max_fuel",
            Self::MaxDuration => "max_duration",
            Self::MaxLifetime => "max_lifetime",
            Self::MaxMemory => "max_memory",
            Self::MaxEvents => "max_events",
            Self::MaxOutputBytes => "max_output_bytes",
            Self::MaxArtifactBytes => "max_artifact_bytes",
            Self::MaxChildren => "max_children",
            Self::MaxJournalEntries => "max_journal_entries",
            Self::MaxJournalBytes => "max_journal_bytes",
            Self::MaxTreeRuns => "max_tree_runs",
            Self::MaxTokens => "max_tokens",
            Self::MaxUsd => "max_usd",
            Self::MaxHttpCalls => "max_http_calls",
            Self::MaxHttpBytes => "max_http_bytes",
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
            Self::MaxDuration | Self::MaxLifetime => "ms",
            Self::MaxMemory
            | Self::MaxOutputBytes
            | Self::MaxArtifactBytes
            | Self::MaxJournalBytes
            | Self::MaxHttpBytes => "bytes",
            Self::MaxHttpCalls => "calls",
            Self::MaxJournalEntries => "entries",
            Self::MaxTreeRuns => "runs",
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
    /// Wall-clock time from the first start to the end (or now).
    pub duration_ms: u64,
    /// Time spent executing, waits (timers, signals, children, approvals)
    /// not counted: what `max_duration` holds.
    #[serde(default)]
    pub active_ms: u64,
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
    /// Runs the tree may hold (the root's figure binds the tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tree_runs: Option<u64>,
}
