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
    /// `[mcp]`: MCP servers workflows may be granted.
    pub mcp: crate::mcp::McpConfig,
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

/// What a route needs, or a grant gives: `read < execute < admin`, and
/// `approve` (deciding approvals) beside `execute`: `admin` includes every
/// scope, `execute` and `approve` include `read`, and neither includes the
/// other (who starts a run need not be who approves it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Execute,
    Approve,
    Admin,
}

impl Scope {
    /// Whether holding `self` gives `need`.
    pub fn implies(self, need: Scope) -> bool {
        self == need
            || self == Scope::Admin
            || (need == Scope::Read && matches!(self, Scope::Execute | Scope::Approve))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Execute => "execute",
            Scope::Approve => "approve",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "read" => Scope::Read,
            "execute" => Scope::Execute,
            "approve" => Scope::Approve,
            "admin" => Scope::Admin,
            other => {
                return Err(format!(
                    "scope {other:?} is not read, execute, approve or admin"
                ));
            }
        })
    }
}

/// One scope, on every workflow or on one (`execute:pr-review`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    pub scope: Scope,
    /// The workflow it is limited to, if any.
    pub workflow: Option<String>,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.workflow {
            Some(w) => write!(f, "{}:{w}", self.scope.as_str()),
            None => f.write_str(self.scope.as_str()),
        }
    }
}

/// What a caller may do: scopes, each on every workflow or on one.
///
/// Written as `SCOPE[:WORKFLOW]` items separated by spaces, commas or `+`:
/// `"admin"`, `"read execute:pr-review approve:pr-review"`. A scope bound
/// to a workflow counts only on routes about that workflow (its runs, its
/// approvals, starting it); server-wide routes (listing every run,
/// deploying, backups) need it unbound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants(pub Vec<Grant>);

impl Grants {
    /// Whether these grants give `need`, on `workflow` (`None`: the route
    /// is about no single workflow).
    pub fn allows(&self, need: Scope, workflow: Option<&str>) -> bool {
        self.0.iter().any(|g| {
            g.scope.implies(need)
                && match (&g.workflow, workflow) {
                    (None, _) => true,
                    (Some(bound), Some(w)) => bound == w,
                    (Some(_), None) => false,
                }
        })
    }

    /// Whether any grant gives `need` on some workflow (what the console
    /// shows controls for; the server still checks each route).
    pub fn allows_somewhere(&self, need: Scope) -> bool {
        self.0.iter().any(|g| g.scope.implies(need))
    }

    /// The items, as written.
    pub fn items(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl From<Scope> for Grants {
    fn from(scope: Scope) -> Grants {
        Grants(vec![Grant {
            scope,
            workflow: None,
        }])
    }
}

impl std::str::FromStr for Grants {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::new();
        for item in s
            .split(|c: char| c.is_whitespace() || c == ',' || c == '+')
            .filter(|i| !i.is_empty())
        {
            let (scope, workflow) = match item.split_once(':') {
                Some((s, w)) => (s, Some(w)),
                None => (item, None),
            };
            let scope: Scope = scope.parse()?;
            if let Some(w) = workflow
                && (w.is_empty()
                    || w.len() > 64
                    || !w.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    }))
            {
                return Err(format!(
                    "{item:?}: a workflow is a slug (a-z, 0-9, - and _)"
                ));
            }
            out.push(Grant {
                scope,
                workflow: workflow.map(str::to_owned),
            });
        }
        Ok(Grants(out))
    }
}

impl<'de> Deserialize<'de> for Grants {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(String),
            Many(Vec<String>),
        }
        let text = match Written::deserialize(d)? {
            Written::One(s) => s,
            Written::Many(v) => v.join(" "),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An API token, stored as the sha256 of its value.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: the principal its requests are attributed to (never
    /// the token itself).
    pub name: String,
    /// Lower-case hex sha256 of the token.
    pub sha256: String,
    /// What it may do (see [`Grants`]).
    pub scope: Grants,
}

/// JWT bearer tokens (`[server.jwt]`): signed by the identity provider
/// with HS256 (a host secret) or RS256/ES256 (keys from a JWKS file or
/// URL), checked for `iss`, `aud`, `exp` and `nbf`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` every token must carry.
    pub issuer: Option<String>,
    /// The `aud` every token must carry (one of).
    pub audience: Option<String>,
    /// The name of the host secret holding the HS256 key.
    pub hs256_secret: Option<String>,
    /// A JWKS file with the RS256/ES256 public keys.
    pub jwks_file: Option<std::path::PathBuf>,
    /// A JWKS URL (fetched at start, then every `jwks_refresh`, and on an
    /// unknown `kid` at most every 30 s).
    pub jwks_url: Option<String>,
    /// How often the JWKS URL is fetched again (default 5m).
    pub jwks_refresh: Option<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 60s).
    pub leeway: Option<String>,
    /// The claim naming the principal (default `sub`).
    pub subject_claim: Option<String>,
    /// The claim carrying scopes: a space-separated string or an array
    /// (default `scope`).
    pub scopes_claim: Option<String>,
    /// Claim values mapped to Runway scopes (`"idp-admins" = "admin"`);
    /// a value not in the map is read as a Runway scope itself.
    #[serde(default)]
    pub scope_map: std::collections::BTreeMap<String, String>,
}

/// A trusted proxy in front (`[server.proxy]`): the principal comes from
/// its headers, accepted only from these source addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Source addresses (CIDR, e.g. `10.0.0.0/8`, or one address).
    pub trusted: Vec<String>,
    /// The header naming the user (default `X-Forwarded-User`).
    pub user_header: Option<String>,
    /// The header with the user's scopes (default `X-Forwarded-Scopes`).
    pub scopes_header: Option<String>,
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
    pub jwt: Option<JwtConfig>,
    pub proxy: Option<ProxyConfig>,
}

impl ServerSettings {
    /// Whether any way to authenticate is configured (without one, the
    /// server takes every request and listens on loopback only).
    pub fn has_auth(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some() || self.proxy.is_some()
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8686)),
            body_limit: 1 << 20,
            deploy_limit: (crate::sandbox::engine::MAX_COMPONENT_BYTES as u64) + (1 << 20),
            max_queued_runs: 10_000,
            tokens: Vec::new(),
            jwt: None,
            proxy: None,
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
            mcp: Default::default(),
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
        if let Some(j) = srv.jwt {
            if j.hs256_secret.is_none() && j.jwks_file.is_none() && j.jwks_url.is_none() {
                return Err(ConfigError {
                    path: path.display().to_string(),
                    message: "server.jwt: set hs256_secret, jwks_file or jwks_url".into(),
                });
            }
            self.server.jwt = Some(j);
        }
        if let Some(p) = srv.proxy {
            self.server.proxy = Some(p);
        }
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
        file.mcp.validate().map_err(|message| ConfigError {
            path: path.display().to_string(),
            message,
        })?;
        self.mcp = file.mcp;
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

/// Parses `RUNWAY_API_TOKENS`: comma-separated `name:scopes:sha256`
/// triples, several scopes joined by `+` (`bot:execute:pr-review+approve:…`).
pub fn tokens_from_env(list: &str) -> Result<Vec<TokenConfig>, ConfigError> {
    let err = |message: String| ConfigError {
        path: "RUNWAY_API_TOKENS".into(),
        message,
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parts = item
            .split_once(':')
            .and_then(|(name, rest)| rest.rsplit_once(':').map(|(s, sha)| (name, s, sha)));
        let Some((name, scope, sha256)) = parts else {
            return Err(err(format!("{item:?} is not name:scope:sha256")));
        };
        let scope: Grants = scope.parse().map_err(err)?;
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
    mcp: crate::mcp::McpConfig,
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
    #[serde(default)]
    jwt: Option<JwtConfig>,
    #[serde(default)]
    proxy: Option<ProxyConfig>,
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

    #[test]
    fn grants_follow_their_grammar() {
        let g: Grants = "read execute:pr-review,approve:pr-review".parse().unwrap();
        assert!(g.allows(Scope::Read, None));
        assert!(g.allows(Scope::Read, Some("hello")));
        assert!(g.allows(Scope::Execute, Some("pr-review")));
        assert!(!g.allows(Scope::Execute, Some("hello")));
        // A bound scope never counts on a server-wide route.
        assert!(!g.allows(Scope::Execute, None));
        assert!(g.allows(Scope::Approve, Some("pr-review")));
        assert!(!g.allows(Scope::Admin, Some("pr-review")));
        // execute and approve each include read, not each other.
        let exec = Grants::from(Scope::Execute);
        assert!(!exec.allows(Scope::Approve, Some("x")));
        assert!(!Grants::from(Scope::Approve).allows(Scope::Execute, Some("x")));
        assert!(Grants::from(Scope::Admin).allows(Scope::Approve, None));
        assert_eq!(
            g.items(),
            ["read", "execute:pr-review", "approve:pr-review"]
        );
        assert!("write".parse::<Grants>().is_err());
        assert!("read:Bad Slug".parse::<Grants>().is_err());
        let env = tokens_from_env(&format!(
            "bot:execute:pr-review+approve:{}",
            "ab".repeat(32)
        ))
        .unwrap();
        assert_eq!(env[0].name, "bot");
        assert_eq!(env[0].scope.items(), ["execute:pr-review", "approve"]);
    }
}
