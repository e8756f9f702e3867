//! OAuth 2.1 grants for MCP servers, held by the host.
//!
//! `runway mcp login NAME` runs the authorization-code flow with PKCE once:
//! it prints the authorization URL, takes the code on a loopback redirect,
//! and exchanges it. The grant (access and refresh token) goes to
//! `mcp-grants/NAME.json` in the data directory (mode 0600) and nowhere
//! else. The host signs its MCP requests with it, refreshes the access
//! token before it expires (or once when the server rejects it) and stores
//! each rotated refresh token before using it; a grant the authorization
//! server no longer honours is `MCP_AUTH_REQUIRED` until the next login.
//!
//! The OAuth client is rmcp's (`AuthorizationManager`: metadata discovery,
//! PKCE, token exchange and refresh); this module gives it the grant store
//! and the loopback redirect.

use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, CredentialStore, OAuthClientConfig,
    StoredCredentials,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `oauth = { ... }` of an MCP server.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The client registered with the authorization server.
    pub client_id: String,
    /// A host secret holding the client's secret (a confidential client);
    /// none for a public client (PKCE alone).
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The authorization server's endpoints; discovered from the MCP
    /// server's metadata when left out.
    #[serde(default)]
    pub authorization_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    /// The loopback port `runway mcp login` takes the redirect on (default:
    /// any free one; an authorization server that pins redirect URIs needs
    /// a fixed one).
    #[serde(default)]
    pub redirect_port: Option<u16>,
}

/// Why a grant cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("no grant: run `runway mcp login` for this server")]
    Missing,
    #[error("the grant was refused: {0}")]
    Revoked(String),
    #[error("{0}")]
    Failed(String),
}

impl From<AuthError> for GrantError {
    fn from(e: AuthError) -> GrantError {
        match e {
            AuthError::AuthorizationRequired => GrantError::Missing,
            AuthError::TokenRefreshRejected(m) => GrantError::Revoked(m),
            e => GrantError::Failed(e.to_string()),
        }
    }
}

/// The grant store: one file per server in `DATA_DIR/mcp-grants`.
#[derive(Clone, Debug)]
pub struct Grants {
    dir: PathBuf,
    secrets: crate::host::secrets::SecretSource,
}

impl Grants {
    pub fn new(data_dir: &Path, secrets: crate::host::secrets::SecretSource) -> Grants {
        Grants {
            dir: data_dir.join("mcp-grants"),
            secrets,
        }
    }

    fn path(&self, server: &str) -> PathBuf {
        self.dir.join(format!("{server}.json"))
    }

    /// What is known of server `server`'s grant, without its tokens:
    /// `none`, or when it was made or last refreshed and its scopes.
    pub fn state(&self, server: &str) -> GrantState {
        match std::fs::read(self.path(server)) {
            Err(_) => GrantState::None,
            Ok(bytes) => match serde_json::from_slice::<StoredCredentials>(&bytes) {
                Ok(c) => GrantState::Held {
                    scopes: c.granted_scopes,
                    refreshed_at: c.token_received_at,
                },
                Err(_) => GrantState::Unreadable,
            },
        }
    }

    /// Forgets server `server`'s grant.
    pub fn forget(&self, server: &str) -> std::io::Result<bool> {
        match std::fs::remove_file(self.path(server)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// An OAuth client for server `server` at `url`, over the grant store.
    pub(super) async fn manager(
        &self,
        server: &str,
        url: &str,
        config: &OAuthConfig,
        redirect_uri: &str,
    ) -> Result<AuthorizationManager, GrantError> {
        let mut m = AuthorizationManager::new_allowing_private_addresses(url)
            .await
            .map_err(GrantError::from)?;
        m.set_credential_store(FileStore {
            path: self.path(server),
        });
        match (&config.authorization_url, &config.token_url) {
            (Some(authorize), Some(token)) => {
                let mut metadata = AuthorizationMetadata::default();
                metadata.authorization_endpoint = authorize.clone();
                metadata.token_endpoint = token.clone();
                metadata.code_challenge_methods_supported = Some(vec!["S256".into()]);
                m.set_metadata(metadata);
            }
            _ => {
                let found = m.resolve_metadata().await.map_err(GrantError::from)?;
                m.set_metadata(found.metadata);
            }
        }
        let mut client = OAuthClientConfig::new(config.client_id.clone(), redirect_uri)
            .with_scopes(config.scopes.clone());
        if let Some(name) = &config.client_secret {
            let secret = self.secrets.get(name).ok_or_else(|| {
                GrantError::Failed(format!("the client secret {name:?} has no value"))
            })?;
            client = client.with_client_secret(secret);
        }
        m.configure_client(client).map_err(GrantError::from)?;
        // What a restart finds: the stored grant.
        m.initialize_from_store().await.map_err(GrantError::from)?;
        Ok(m)
    }

    /// `runway mcp login`: the authorization-code flow with PKCE. `show`
    /// gets the URL to open; the code comes back to a loopback listener.
    /// Stores the grant and returns its scopes.
    pub async fn login(
        &self,
        server: &str,
        url: &str,
        config: &OAuthConfig,
        wait: Duration,
        show: impl FnOnce(&str),
    ) -> Result<Vec<String>, GrantError> {
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", config.redirect_port.unwrap_or(0)))
                .await
                .map_err(|e| GrantError::Failed(format!("listening for the redirect: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| GrantError::Failed(e.to_string()))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        std::fs::create_dir_all(&self.dir).map_err(|e| GrantError::Failed(e.to_string()))?;
        let m = self.manager(server, url, config, &redirect_uri).await?;
        let scopes: Vec<&str> = config.scopes.iter().map(String::as_str).collect();
        let authorize = m
            .get_authorization_url(&scopes)
            .await
            .map_err(GrantError::from)?;
        show(&authorize);
        let (code, state) = tokio::time::timeout(wait, redirect(&listener))
            .await
            .map_err(|_| GrantError::Failed(format!("no redirect came within {wait:?}")))??;
        m.exchange_code_for_token(&code, &state)
            .await
            .map_err(GrantError::from)?;
        let granted = m.get_current_scopes().await;
        Ok(granted)
    }
}

/// A grant as `runway mcp list` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "grant", rename_all = "snake_case")]
pub enum GrantState {
    None,
    Held {
        scopes: Vec<String>,
        /// Seconds since the epoch.
        refreshed_at: Option<u64>,
    },
    Unreadable,
}

/// Takes the one redirect the authorization server sends the browser to:
/// its `code` and `state`.
async fn redirect(listener: &tokio::net::TcpListener) -> Result<(String, String), GrantError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut conn, _) = listener
            .accept()
            .await
            .map_err(|e| GrantError::Failed(e.to_string()))?;
        let mut buf = vec![0u8; 8192];
        let n = conn.read(&mut buf).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("");
        let Ok(url) = url::Url::parse(&format!("http://127.0.0.1{target}")) else {
            continue;
        };
        if url.path() != "/callback" {
            let _ = conn
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
            continue;
        }
        let param = |k: &str| {
            url.query_pairs()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.into_owned())
        };
        let (body, outcome) = match (param("code"), param("state"), param("error")) {
            (Some(code), Some(state), None) => (
                "Runway is authorized. You can close this tab.",
                Ok((code, state)),
            ),
            (_, _, error) => (
                "Authorization failed; see the terminal.",
                Err(GrantError::Failed(format!(
                    "the authorization server answered {}",
                    error.unwrap_or_else(|| "without a code".into())
                ))),
            ),
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(response.as_bytes()).await;
        return outcome;
    }
}

/// The grant of one server, as a file only the host's user can read.
struct FileStore {
    path: PathBuf,
}

#[async_trait::async_trait]
impl CredentialStore for FileStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AuthError::CredentialStoreError(format!("the grant file: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AuthError::CredentialStoreError(e.to_string())),
        }
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let bytes = serde_json::to_vec(&credentials)
            .map_err(|e| AuthError::CredentialStoreError(e.to_string()))?;
        let path = self.path.clone();
        // Durable before the new refresh token is used: the old one may
        // already be spent (rotation).
        tokio::task::spawn_blocking(move || write_private(&path, &bytes))
            .await
            .map_err(|e| AuthError::CredentialStoreError(e.to_string()))?
            .map_err(|e| AuthError::CredentialStoreError(e.to_string()))
    }

    async fn clear(&self) -> Result<(), AuthError> {
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AuthError::CredentialStoreError(e.to_string())),
        }
    }
}

/// Writes `bytes` to `path` whole or not at all, readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
