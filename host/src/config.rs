//! Host configuration: `runway-host.toml`, every key optional.
//!
//! ```toml
//! max_concurrent_runs = 256
//! max_warm_instances = 64    # parked runs kept in memory; others are evicted
//! max_child_depth = 8
//! [engine]
//! allocator = "pooling"      # or "on-demand"
//! [budget]                   # defaults for runs whose manifest is silent
//! max_duration = "5m"
//! max_memory = "256 MiB"
//! ```

use crate::budget::Budget;
use crate::engine::{Allocator, EngineOptions};
use crate::manifest::BudgetSection;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Everything a host needs to open.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub data_dir: PathBuf,
    /// Defaults for budgets a manifest does not set.
    pub budget: Budget,
    pub engine: EngineOptions,
    /// Runs executing at once; more wait in the queue.
    pub max_concurrent_runs: usize,
    /// Parked runs that keep their instance in memory; beyond this a parked
    /// run is evicted and rebuilt by replay when it wakes. 0 evicts always.
    pub max_warm_instances: usize,
    /// Deepest chain of parent and child runs.
    pub max_child_depth: u32,
}

impl HostConfig {
    /// Defaults, on `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> HostConfig {
        HostConfig {
            data_dir: data_dir.into(),
            budget: Budget::default(),
            engine: EngineOptions::default(),
            max_concurrent_runs: 256,
            max_warm_instances: 64,
            max_child_depth: 8,
        }
    }

    /// Applies a `runway-host.toml`.
    pub fn apply_file(mut self, path: &Path) -> Result<HostConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let file = parse(&text).map_err(|message| ConfigError {
            path: path.display().to_string(),
            message,
        })?;
        self.budget = self.budget.with(file.budget.overrides());
        if let Some(a) = file.engine.allocator {
            self.engine.allocator = a;
        }
        if let Some(n) = file.max_concurrent_runs {
            self.max_concurrent_runs = n.max(1);
        }
        if let Some(n) = file.max_warm_instances {
            self.max_warm_instances = n;
        }
        if let Some(n) = file.max_child_depth {
            self.max_child_depth = n;
        }
        Ok(self)
    }
}

/// The host config file was rejected.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    path: String,
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    max_concurrent_runs: Option<usize>,
    #[serde(default)]
    max_warm_instances: Option<usize>,
    #[serde(default)]
    max_child_depth: Option<u32>,
    #[serde(default)]
    engine: EngineSection,
    #[serde(default)]
    budget: BudgetSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    #[serde(default)]
    allocator: Option<Allocator>,
}

fn parse(text: &str) -> Result<ConfigFile, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_overrides_defaults_and_rejects_typos() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runway-host.toml");
        std::fs::write(
            &p,
            "max_concurrent_runs = 8\n[engine]\nallocator = \"on-demand\"\n[budget]\nmax_events = 7\n",
        )
        .unwrap();
        let c = HostConfig::new(dir.path()).apply_file(&p).unwrap();
        assert_eq!(c.max_concurrent_runs, 8);
        assert_eq!(c.engine.allocator, Allocator::OnDemand);
        assert_eq!(c.budget.max_events, 7);
        std::fs::write(&p, "[budget]\nmax_event = 7\n").unwrap();
        let e = HostConfig::new(dir.path()).apply_file(&p).unwrap_err();
        assert!(e.to_string().contains("max_event"), "{e}");
    }
}
