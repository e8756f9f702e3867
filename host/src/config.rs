//! Host configuration: `runway-host.toml`, every key optional.
//!
//! ```toml
//! max_concurrent_runs = 256
//! max_warm_instances = 64    # parked runs kept in memory; others are evicted
//! max_child_depth = 8
//! max_host_memory = "12 GiB" # all runs in memory together; default: half the RAM
//! [server]                   # `runway serve`
//! listen = "127.0.0.1:8686"
//! body_limit = "1 MiB"
//! [[server.tokens]]
//! name = "ci"
//! sha256 = "<sha256 of the token, hex>"
//! scope = "execute"          # read < execute < admin
//! [engine]
//! allocator = "pooling"      # or "on-demand"
//! [budget]                   # defaults for runs whose manifest is silent
//! max_duration = "5m"
//! max_memory = "256 MiB"
//! [models.aliases]           # see `models` for every key
//! default = "openai/gpt-4o-mini"
//! [models.providers.openai]
//! kind = "openai"
//! key_secret = "OPENAI_API_KEY"
//! [egress]                   # outbound HTTP; nothing is reachable by default
//! allow = ["api.github.com", "*.slack.com"]
//! allow_private = ["127.0.0.0/8"]   # restricted ranges allowed all the same
//! [retention]                # ended runs `runway serve` deletes; none by default
//! max_age = "30d"            # since they ended
//! keep_per_workflow = 10000  # the newest N ended runs of each workflow
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4318"  # traces over OTLP/HTTP; off by default
//! [store]                    # the tables in PostgreSQL instead of runway.redb
//! url = "postgres://runway@db.internal:5432/runway"   # or --store / RUNWAY_STORE
//! lease = "10s"              # a stopped host's runs are taken over after this
//! ```

use crate::budget::Budget;
use crate::manifest::BudgetSection;
use crate::sandbox::engine::{Allocator, EngineOptions};
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
    /// Linear memory of all runs held in memory together (executing or
    /// parked warm); default half the machine's memory.
    pub max_host_memory: u64,
    /// `runway serve` settings.
    pub server: ServerSettings,
    /// `[models]`: aliases and providers.
    pub models: crate::models::ModelsConfig,
    /// `[egress]`: what workflows' HTTP requests may reach (nothing by
    /// default).
    pub egress: crate::egress::EgressConfig,
    /// `[retention]`: which ended runs `runway serve` deletes (none by
    /// default).
    pub retention: crate::host::RetentionConfig,
    /// `[telemetry] otlp_endpoint`: where `runway serve` sends traces
    /// (OTLP/HTTP; off when unset).
    pub otlp_endpoint: Option<String>,
    /// Where compiled components are cached (default: `cache/` in the data
    /// directory).
    pub cache_dir: Option<PathBuf>,
    /// `[store] url` / `--store`: a PostgreSQL database for the tables
    /// instead of `runway.redb` in the data directory.
    pub store_url: Option<String>,
    /// `[store] lease`: how long a host's claim on a run lasts unless its
    /// heartbeat renews it (PostgreSQL): a host that stopped is taken over
    /// after this.
    pub lease: std::time::Duration,
    /// The scripted world of a test harness (`runway test-runner`): models,
    /// HTTP, children and secrets answer from it, and time skips.
    pub(crate) script: Option<std::sync::Arc<crate::testing::Script>>,
}

/// Access a bearer token grants; each scope includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Execute,
    Admin,
}

/// An API token, stored as the sha256 of its value.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs, never the token).
    pub name: String,
    /// Lower-case hex sha256 of the token.
    pub sha256: String,
    pub scope: Scope,
}

/// The HTTP server's settings (`[server]`).
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub listen: std::net::SocketAddr,
    /// Largest request body, except deploys.
    pub body_limit: u64,
    /// Largest deploy request (component + manifest).
    pub deploy_limit: u64,
    /// Runs waiting for an execution slot before triggers get 429.
    pub max_queued_runs: usize,
    pub tokens: Vec<TokenConfig>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8686)),
            body_limit: 1 << 20,
            deploy_limit: (crate::sandbox::engine::MAX_COMPONENT_BYTES as u64) + (1 << 20),
            max_queued_runs: 10_000,
            tokens: Vec::new(),
        }
    }
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
            max_host_memory: crate::host::memory::default_limit(),
            server: ServerSettings::default(),
            models: Default::default(),
            egress: Default::default(),
            retention: Default::default(),
            otlp_endpoint: None,
            cache_dir: None,
            store_url: None,
            lease: std::time::Duration::from_secs(10),
            script: None,
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
        if let Some(v) = &file.max_host_memory {
            let n = v.parse::<bytesize::ByteSize>().map_err(|e| ConfigError {
                path: path.display().to_string(),
                message: format!("max_host_memory: {e}"),
            })?;
            self.max_host_memory = n.as_u64().max(16 << 20);
        }
        let srv = file.server;
        if let Some(l) = srv.listen {
            self.server.listen = l;
        }
        let size = |key: &str, v: &str| {
            v.parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| ConfigError {
                    path: path.display().to_string(),
                    message: format!("server.{key}: {v:?} is not a size ({e})"),
                })
        };
        if let Some(v) = &srv.body_limit {
            self.server.body_limit = size("body_limit", v)?;
        }
        if let Some(v) = &srv.deploy_limit {
            self.server.deploy_limit = size("deploy_limit", v)?;
        }
        if let Some(n) = srv.max_queued_runs {
            self.server.max_queued_runs = n;
        }
        for t in &srv.tokens {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    message: format!(
                        "server.tokens ({}): sha256 must be 64 hex digits (the sha256 of the token, not the token)",
                        t.name
                    ),
                });
            }
        }
        self.server.tokens.extend(srv.tokens);
        crate::models::Models::new(&file.models).map_err(|message| ConfigError {
            path: path.display().to_string(),
            message,
        })?;
        self.models = file.models;
        crate::egress::Egress::new(file.egress.clone()).map_err(|message| ConfigError {
            path: path.display().to_string(),
            message,
        })?;
        self.egress = file.egress;
        if let Some(age) = &file.retention.max_age {
            let age = humantime::parse_duration(age).map_err(|e| ConfigError {
                path: path.display().to_string(),
                message: format!("retention.max_age: {age:?} is not a duration ({e})"),
            })?;
            self.retention.max_age = Some(age);
        }
        if let Some(n) = file.retention.keep_per_workflow {
            self.retention.keep_per_workflow = Some(n);
        }
        if let Some(e) = file.telemetry.otlp_endpoint {
            self.otlp_endpoint = Some(e);
        }
        if let Some(url) = file.store.url {
            if !crate::store::is_postgres_url(&url) {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    message: "store.url: expected postgres://USER@HOST:PORT/DATABASE".into(),
                });
            }
            self.store_url = Some(url);
        }
        if let Some(lease) = &file.store.lease {
            let d = humantime::parse_duration(lease).map_err(|e| ConfigError {
                path: path.display().to_string(),
                message: format!("store.lease: {lease:?} is not a duration ({e})"),
            })?;
            if d < std::time::Duration::from_millis(300) {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    message: "store.lease: at least 300ms".into(),
                });
            }
            self.lease = d;
        }
        Ok(self)
    }
}

/// Parses `RUNWAY_API_TOKENS`: comma-separated `name:scope:sha256` triples.
pub fn tokens_from_env(list: &str) -> Result<Vec<TokenConfig>, ConfigError> {
    let err = |message: String| ConfigError {
        path: "RUNWAY_API_TOKENS".into(),
        message,
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut parts = item.splitn(3, ':');
        let (Some(name), Some(scope), Some(sha256)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err(format!("{item:?} is not name:scope:sha256")));
        };
        let scope = match scope {
            "read" => Scope::Read,
            "execute" => Scope::Execute,
            "admin" => Scope::Admin,
            s => return Err(err(format!("scope {s:?} is not read, execute or admin"))),
        };
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(format!("{name}: sha256 must be 64 hex digits")));
        }
        out.push(TokenConfig {
            name: name.to_owned(),
            sha256: sha256.to_ascii_lowercase(),
            scope,
        });
    }
    Ok(out)
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
    max_host_memory: Option<String>,
    #[serde(default)]
    engine: EngineSection,
    #[serde(default)]
    budget: BudgetSection,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    models: crate::models::ModelsConfig,
    #[serde(default)]
    egress: crate::egress::EgressConfig,
    #[serde(default)]
    retention: RetentionSection,
    #[serde(default)]
    telemetry: TelemetrySection,
    #[serde(default)]
    store: StoreSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    lease: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TelemetrySection {
    #[serde(default)]
    otlp_endpoint: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    #[serde(default)]
    max_age: Option<String>,
    #[serde(default)]
    keep_per_workflow: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default)]
    listen: Option<std::net::SocketAddr>,
    #[serde(default)]
    body_limit: Option<String>,
    #[serde(default)]
    deploy_limit: Option<String>,
    #[serde(default)]
    max_queued_runs: Option<usize>,
    #[serde(default)]
    tokens: Vec<TokenConfig>,
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
