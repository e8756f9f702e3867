//! MCP servers the operator configured, reached by the host on workflows'
//! behalf (the `runway:workflow/mcp` interface).
//!
//! ```toml
//! [mcp.servers.tracker]
//! url = "https://mcp.example.com/mcp"   # Streamable HTTP; [egress] must allow it
//! bearer_secret = "TRACKER_TOKEN"       # a host secret, sent as a bearer token
//! timeout = "30s"                       # per call (default 30s)
//!
//! [mcp.servers.files]
//! command = "/usr/local/bin/files-mcp"  # stdio: only the operator names commands
//! args = ["--root", "/srv/files"]
//!
//! [mcp.servers.github]
//! url = "https://api.githubcopilot.com/mcp/"
//! oauth = { client_id = "runway", scopes = ["repo"] }   # `runway mcp login github`
//! ```
//!
//! The host keeps one client session per server, opened on first use and
//! opened again after it breaks. Credentials never reach a workflow, an
//! event, the journal or a log: a bearer comes from the host's secrets, an
//! OAuth grant from the grant store in the data directory (see `oauth`).

pub mod oauth;

use crate::manifest::duration_required;
use rmcp::model::{CallToolRequestParams, ClientConfig, Implementation};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// `[mcp]`: the servers workflows may be granted.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    #[serde(default)]
    pub servers: BTreeMap<String, ServerConfig>,
}

/// `[mcp.servers.NAME]`: where a server is and how the host signs in.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Streamable HTTP endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// A command speaking MCP on stdio (never something a manifest names).
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A host secret holding a bearer token for `url`.
    #[serde(default)]
    pub bearer_secret: Option<String>,
    /// An OAuth 2.1 grant for `url`, made once by `runway mcp login NAME`.
    #[serde(default)]
    pub oauth: Option<oauth::OAuthConfig>,
    /// How long one call may take.
    #[serde(default = "default_timeout", deserialize_with = "duration_required")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl McpConfig {
    /// Checks every server's settings.
    pub fn validate(&self) -> Result<(), String> {
        for (name, s) in &self.servers {
            if !crate::manifest::is_mcp_name(name) {
                return Err(format!(
                    "mcp.servers.{name}: a server name is letters, digits, _ and -, at most 64"
                ));
            }
            match (&s.url, &s.command) {
                (Some(_), Some(_)) => {
                    return Err(format!("mcp.servers.{name}: give url or command, not both"));
                }
                (None, None) => return Err(format!("mcp.servers.{name}: give url or command")),
                (Some(u), None) => {
                    let url =
                        url::Url::parse(u).map_err(|e| format!("mcp.servers.{name}.url: {e}"))?;
                    if !matches!(url.scheme(), "http" | "https") {
                        return Err(format!("mcp.servers.{name}.url: http or https"));
                    }
                }
                (None, Some(_)) => {
                    if s.bearer_secret.is_some() || s.oauth.is_some() {
                        return Err(format!(
                            "mcp.servers.{name}: a command server takes no bearer or oauth (give it its credentials in env)"
                        ));
                    }
                }
            }
            if s.bearer_secret.is_some() && s.oauth.is_some() {
                return Err(format!(
                    "mcp.servers.{name}: give bearer_secret or oauth, not both"
                ));
            }
        }
        Ok(())
    }
}

/// Why a server could not be used; each is a failure code the guest sees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    #[error("no MCP server {0:?} is configured on this host")]
    NotConfigured(String),
    #[error("MCP server {server:?} is unavailable: {message}")]
    Unavailable { server: String, message: String },
    #[error("MCP server {0:?} needs authorization: the operator runs `runway mcp login {0}`")]
    AuthRequired(String),
    #[error("the host's egress policy does not let it reach MCP server {server:?}: {reason}")]
    Denied { server: String, reason: String },
    #[error("MCP server {server:?} refused the call: {message}")]
    Refused { server: String, message: String },
}

impl McpError {
    pub fn code(&self) -> crate::types::FailureCode {
        use crate::types::FailureCode as F;
        match self {
            McpError::NotConfigured(_) | McpError::Denied { .. } => F::McpServerNotAllowed,
            McpError::Unavailable { .. } => F::McpUnavailable,
            McpError::AuthRequired(_) => F::McpAuthRequired,
            McpError::Refused { .. } => F::McpToolError,
        }
    }
}

/// A server's tool, as listed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// What a call came to: MCP's content blocks and structured content, and
/// whether the tool said it failed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
pub struct CallOutcome {
    pub content: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<serde_json::Value>,
    #[serde(default)]
    pub is_error: bool,
}

impl CallOutcome {
    /// The text blocks, joined: what a failed call says.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| c.get("text").and_then(serde_json::Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

type Session = RunningService<RoleClient, ClientConfig>;

struct Server {
    name: String,
    config: ServerConfig,
    session: Mutex<Option<Arc<Session>>>,
}

/// The host's MCP clients, one per configured server.
pub struct Mcp {
    servers: HashMap<String, Arc<Server>>,
    /// A test harness's scripted servers, asked instead of the network.
    pub(crate) script: Option<Arc<crate::testing::Script>>,
    secrets: crate::host::secrets::SecretSource,
    egress: crate::egress::Egress,
    grants: oauth::Grants,
}

impl Mcp {
    pub fn new(
        config: &McpConfig,
        secrets: crate::host::secrets::SecretSource,
        egress: crate::egress::Egress,
        grants: oauth::Grants,
    ) -> Mcp {
        let servers = config
            .servers
            .iter()
            .map(|(name, c)| {
                let server = Server {
                    name: name.clone(),
                    config: c.clone(),
                    session: Mutex::new(None),
                };
                (name.clone(), Arc::new(server))
            })
            .collect();
        Mcp {
            servers,
            script: None,
            secrets,
            egress,
            grants,
        }
    }

    /// The configured servers, by name.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.servers.keys().cloned().collect();
        names.sort();
        names
    }

    /// A configured server's settings.
    pub fn config(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.get(name).map(|s| &s.config)
    }

    /// The grant store (OAuth servers).
    pub fn grants(&self) -> &oauth::Grants {
        &self.grants
    }

    fn server(&self, name: &str) -> Result<&Arc<Server>, McpError> {
        self.servers
            .get(name)
            .ok_or_else(|| McpError::NotConfigured(name.to_owned()))
    }

    /// The server's tools.
    pub async fn list_tools(&self, name: &str) -> Result<Vec<ToolInfo>, McpError> {
        if let Some(script) = &self.script {
            return script
                .mcp_tools(name)
                .ok_or_else(|| McpError::NotConfigured(name.to_owned()));
        }
        let server = self.server(name)?;
        let timeout = server.config.timeout;
        self.with_session(server, |s| async move {
            let tools = tokio::time::timeout(timeout, s.peer().list_all_tools())
                .await
                .map_err(|_| Failed::Timeout(timeout))?
                .map_err(Failed::from_service)?;
            Ok(tools
                .into_iter()
                .map(|t| ToolInfo {
                    name: t.name.to_string(),
                    description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                    input_schema: serde_json::Value::Object((*t.input_schema).clone()),
                })
                .collect())
        })
        .await
    }

    /// Calls `tool` with `arguments` (a JSON object).
    pub async fn call_tool(
        &self,
        name: &str,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CallOutcome, McpError> {
        if let Some(script) = &self.script {
            return script
                .mcp_call(name, tool, &arguments)
                .ok_or_else(|| McpError::Unavailable {
                    server: name.to_owned(),
                    message: format!("unscripted call of {tool}"),
                });
        }
        let server = self.server(name)?;
        let timeout = server.config.timeout;
        self.with_session(server, |s| {
            let params =
                CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments.clone());
            async move {
                let r = tokio::time::timeout(timeout, s.peer().call_tool(params))
                    .await
                    .map_err(|_| Failed::Timeout(timeout))?
                    .map_err(Failed::from_service)?;
                let content = r
                    .content
                    .iter()
                    .map(|c| serde_json::to_value(c).unwrap_or(serde_json::Value::Null))
                    .collect();
                Ok(CallOutcome {
                    content,
                    structured_content: r.structured_content.clone(),
                    is_error: r.is_error.unwrap_or(false),
                })
            }
        })
        .await
    }

    /// Runs `op` on the server's session, opening one if there is none,
    /// and once more on a fresh session if the old one broke.
    async fn with_session<T, F, Fut>(&self, server: &Server, op: F) -> Result<T, McpError>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, Failed>>,
    {
        for attempt in 0..2 {
            let session = self.session(server).await?;
            match op(session).await {
                Ok(v) => return Ok(v),
                Err(Failed::Auth) => {
                    server.session.lock().await.take();
                    return Err(McpError::AuthRequired(server.name.clone()));
                }
                Err(Failed::Broken(message)) if attempt == 0 => {
                    tracing::info!(server = %server.name, error = %message, "MCP session broke; opening another");
                    server.session.lock().await.take();
                }
                Err(Failed::Broken(message)) => {
                    server.session.lock().await.take();
                    return Err(McpError::Unavailable {
                        server: server.name.clone(),
                        message,
                    });
                }
                Err(Failed::Rpc(message)) => {
                    return Err(McpError::Refused {
                        server: server.name.clone(),
                        message,
                    });
                }
                Err(Failed::Timeout(after)) => {
                    return Err(McpError::Unavailable {
                        server: server.name.clone(),
                        message: format!("no answer within {after:?}"),
                    });
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn session(&self, server: &Server) -> Result<Arc<Session>, McpError> {
        let mut slot = server.session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let session = Arc::new(self.connect(server).await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    async fn connect(&self, server: &Server) -> Result<Session, McpError> {
        let name = &server.name;
        let unavailable = |message: String| McpError::Unavailable {
            server: name.clone(),
            message,
        };
        let info = ClientConfig::new(
            Default::default(),
            Implementation::new("runway", env!("CARGO_PKG_VERSION")),
        );
        let c = &server.config;
        let started = match (&c.url, &c.command) {
            (Some(url), _) => {
                let parsed = url::Url::parse(url).map_err(|e| unavailable(e.to_string()))?;
                if let Some(reason) = self.egress.refuses(&parsed).await {
                    return Err(McpError::Denied {
                        server: name.clone(),
                        reason,
                    });
                }
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                let auth_required =
                    |e: &rmcp::service::ClientInitializeError| e.is_authorization_required();
                let opened = if let Some(secret) = &c.bearer_secret {
                    let token = self
                        .secrets
                        .get(secret)
                        .ok_or_else(|| McpError::AuthRequired(name.clone()))?;
                    let transport =
                        StreamableHttpClientTransport::from_config(config.auth_header(token));
                    tokio::time::timeout(c.timeout, info.serve(transport)).await
                } else if let Some(oauth) = &c.oauth {
                    if !matches!(self.grants.state(name), oauth::GrantState::Held { .. }) {
                        return Err(McpError::AuthRequired(name.clone()));
                    }
                    // rmcp's client signs each request with the grant,
                    // refreshing it before expiry or once on a 401.
                    let manager = self
                        .grants
                        .manager(name, url, oauth, "http://127.0.0.1/callback")
                        .await
                        .map_err(|e| match e {
                            oauth::GrantError::Failed(m) => unavailable(m),
                            _ => McpError::AuthRequired(name.clone()),
                        })?;
                    let client =
                        rmcp::transport::auth::AuthClient::new(reqwest013::Client::new(), manager);
                    let transport = StreamableHttpClientTransport::with_client(client, config);
                    tokio::time::timeout(c.timeout, info.serve(transport)).await
                } else {
                    let transport = StreamableHttpClientTransport::from_config(config);
                    tokio::time::timeout(c.timeout, info.serve(transport)).await
                };
                opened
                    .map_err(|_| unavailable(format!("no answer within {:?}", c.timeout)))?
                    .map_err(|e| {
                        if auth_required(&e) {
                            McpError::AuthRequired(name.clone())
                        } else {
                            unavailable(e.to_string())
                        }
                    })?
            }
            (None, Some(command)) => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(&c.args).envs(&c.env).kill_on_drop(true);
                let transport = TokioChildProcess::new(cmd)
                    .map_err(|e| unavailable(format!("starting {command}: {e}")))?;
                tokio::time::timeout(c.timeout, info.serve(transport))
                    .await
                    .map_err(|_| unavailable(format!("no answer within {:?}", c.timeout)))?
                    .map_err(|e| unavailable(e.to_string()))?
            }
            (None, None) => return Err(unavailable("neither url nor command".into())),
        };
        tracing::info!(server = %name, "MCP session opened");
        Ok(started)
    }
}

/// Why one operation on a session failed.
enum Failed {
    Auth,
    /// The server answered with a JSON-RPC error (an unknown tool, bad
    /// arguments): the session is fine.
    Rpc(String),
    Broken(String),
    Timeout(Duration),
}

impl Failed {
    fn from_service(e: rmcp::service::ServiceError) -> Failed {
        match e {
            e if e.is_authorization_required() => Failed::Auth,
            rmcp::service::ServiceError::McpError(data) => Failed::Rpc(data.message.to_string()),
            e => Failed::Broken(e.to_string()),
        }
    }
}
