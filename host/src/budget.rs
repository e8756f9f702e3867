//! Per-run budgets: the manifest's values over the host's defaults.

use crate::types::Usd;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Fuel may be unlimited (then `max_duration` is what stops a busy guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FuelLimit {
    Limited(u64),
    Unlimited,
}

/// The limits one run is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub max_fuel: FuelLimit,
    /// Time executing: waiting on a timer, a signal, a child or people is
    /// not counted.
    pub max_duration: Duration,
    /// Wall-clock time from the first start, waits included (none: no
    /// limit).
    #[serde(default)]
    pub max_lifetime: Option<Duration>,
    pub max_memory: u64,
    pub max_events: u64,
    pub max_output_bytes: u64,
    pub max_artifact_bytes: u64,
    /// Child runs one run may start.
    pub max_children: u64,
    /// Journal entries one run may record (clock readings, host calls).
    pub max_journal_entries: u64,
    /// Bytes of journal one run may record.
    pub max_journal_bytes: u64,
    /// Runs in a whole tree (the root and every descendant); the root's
    /// figure binds the tree.
    pub max_tree_runs: u64,
    /// Model tokens (input plus output) of the run and every run below it.
    pub max_tokens: Option<u64>,
    /// Model cost of the run and every run below it.
    pub max_usd: Option<Usd>,
    /// Outbound HTTP requests one run may make.
    #[serde(default = "default_http_calls")]
    pub max_http_calls: u64,
    /// Bytes of outbound HTTP bodies one run may send and receive.
    #[serde(default = "default_http_bytes")]
    pub max_http_bytes: u64,
}

fn default_http_calls() -> u64 {
    1_000
}

fn default_http_bytes() -> u64 {
    256 << 20
}

impl Default for Budget {
    /// Generous for real work, small enough that a hostile guest is stopped
    /// before it hurts the host.
    fn default() -> Self {
        Budget {
            max_fuel: FuelLimit::Limited(20_000_000_000),
            max_duration: Duration::from_secs(300),
            max_lifetime: None,
            max_memory: 256 << 20,
            max_events: 10_000,
            max_output_bytes: 1 << 20,
            max_artifact_bytes: 64 << 20,
            max_children: 100,
            max_journal_entries: 100_000,
            max_journal_bytes: 32 << 20,
            max_tree_runs: 1_000,
            max_tokens: None,
            max_usd: None,
            max_http_calls: default_http_calls(),
            max_http_bytes: default_http_bytes(),
        }
    }
}

/// Values a manifest sets; `None` keeps the host default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetOverrides {
    pub max_fuel: Option<FuelLimit>,
    pub max_duration: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub max_memory: Option<u64>,
    pub max_events: Option<u64>,
    pub max_output_bytes: Option<u64>,
    pub max_artifact_bytes: Option<u64>,
    pub max_children: Option<u64>,
    pub max_journal_entries: Option<u64>,
    pub max_journal_bytes: Option<u64>,
    pub max_tree_runs: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_usd: Option<Usd>,
    pub max_http_calls: Option<u64>,
    pub max_http_bytes: Option<u64>,
}

impl Budget {
    /// The defaults with the manifest's overrides applied.
    pub fn with(self, o: BudgetOverrides) -> Budget {
        Budget {
            max_fuel: o.max_fuel.unwrap_or(self.max_fuel),
            max_duration: o.max_duration.unwrap_or(self.max_duration),
            max_lifetime: o.max_lifetime.or(self.max_lifetime),
            max_memory: o.max_memory.unwrap_or(self.max_memory),
            max_events: o.max_events.unwrap_or(self.max_events),
            max_output_bytes: o.max_output_bytes.unwrap_or(self.max_output_bytes),
            max_artifact_bytes: o.max_artifact_bytes.unwrap_or(self.max_artifact_bytes),
            max_children: o.max_children.unwrap_or(self.max_children),
            max_journal_entries: o.max_journal_entries.unwrap_or(self.max_journal_entries),
            max_journal_bytes: o.max_journal_bytes.unwrap_or(self.max_journal_bytes),
            max_tree_runs: o.max_tree_runs.unwrap_or(self.max_tree_runs),
            max_tokens: o.max_tokens.or(self.max_tokens),
            max_usd: o.max_usd.or(self.max_usd),
            max_http_calls: o.max_http_calls.unwrap_or(self.max_http_calls),
            max_http_bytes: o.max_http_bytes.unwrap_or(self.max_http_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_set() {
        let b = Budget::default().with(BudgetOverrides {
            max_events: Some(5),
            max_fuel: Some(FuelLimit::Unlimited),
            ..Default::default()
        });
        assert_eq!(b.max_events, 5);
        assert_eq!(b.max_fuel, FuelLimit::Unlimited);
        assert_eq!(b.max_memory, Budget::default().max_memory);
    }
}
