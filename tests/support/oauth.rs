//! A loopback OAuth 2.1 authorization server for tests: the
//! authorization-code flow with PKCE (S256 only) and refresh-token
//! rotation, on `127.0.0.1` (random port).
//!
//! - `GET /authorize?response_type=code&client_id&redirect_uri&code_challenge&code_challenge_method=S256&state`
//!   redirects (302) to `redirect_uri?code=…&state=…` at once (the user
//!   said yes).
//! - `POST /token` (form): `grant_type=authorization_code` with `code`,
//!   `code_verifier`, `redirect_uri`, `client_id` (the verifier must hash to
//!   the challenge); `grant_type=refresh_token` with `refresh_token`, which
//!   must be the newest one issued: each refresh issues a new access token
//!   and a new refresh token and spends the old one (`invalid_grant` after).
//! - [`AuthServer::revoke`] spends the grant whole: its access token stops
//!   being valid and its refresh token is refused.
//!
//! Like the other support servers it runs on a thread (and tokio runtime)
//! of its own; it stops when dropped.

#![allow(dead_code)]

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use parking_lot::Mutex;
use serde_json::json;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Shared {
    client_id: String,
    ttl: Duration,
    /// Codes not yet exchanged: (challenge, redirect_uri).
    codes: HashMap<String, (String, String)>,
    access: Option<(String, Instant)>,
    refresh: Option<String>,
    /// Every token issued, access and refresh.
    issued: Vec<String>,
    refreshes: usize,
    refused: usize,
    counter: u32,
}

pub struct AuthServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    shared: Arc<Mutex<Shared>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl AuthServer {
    /// Accepts `client_id`; access tokens live `ttl`.
    pub async fn start(client_id: &str, ttl: Duration) -> AuthServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            client_id: client_id.to_owned(),
            ttl,
            ..Shared::default()
        }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new()
                    .route("/authorize", get(authorize))
                    .route("/token", post(token))
                    .with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let server = tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                let _ = rx.await;
                server.abort();
            });
        });
        AuthServer {
            base: format!("http://{addr}"),
            shared,
            _shutdown: tx,
        }
    }

    /// Whether `token` is the grant's current, unexpired access token.
    pub fn valid(&self, token: &str) -> bool {
        let s = self.shared.lock();
        s.access
            .as_ref()
            .is_some_and(|(t, until)| t == token && Instant::now() < *until)
    }

    /// A check for [`super::mcp::McpOptions::check`].
    pub fn check(&self) -> super::mcp::Check {
        let shared = self.shared.clone();
        Arc::new(move |token: &str| {
            let s = shared.lock();
            s.access
                .as_ref()
                .is_some_and(|(t, until)| t == token && Instant::now() < *until)
        })
    }

    /// Spends the grant: its tokens are no good from now on.
    pub fn revoke(&self) {
        let mut s = self.shared.lock();
        s.access = None;
        s.refresh = None;
    }

    /// Refreshes granted so far.
    pub fn refreshes(&self) -> usize {
        self.shared.lock().refreshes
    }

    /// Refresh attempts refused (a spent or revoked refresh token).
    pub fn refused(&self) -> usize {
        self.shared.lock().refused
    }

    /// Every token issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.shared.lock().issued.clone()
    }

    /// The newest refresh token.
    pub fn refresh_token(&self) -> Option<String> {
        self.shared.lock().refresh.clone()
    }
}

async fn authorize(
    State(shared): State<Arc<Mutex<Shared>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = shared.lock();
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id") == Some(&s.client_id)
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.contains_key("code_challenge")
        && q.contains_key("state");
    let Some(redirect) = q.get("redirect_uri").filter(|_| ok) else {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    };
    s.counter += 1;
    let code = format!("code-{}", s.counter);
    s.codes.insert(
        code.clone(),
        (q["code_challenge"].clone(), redirect.clone()),
    );
    let mut to = url::Url::parse(redirect).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

fn issue(s: &mut Shared) -> Response {
    s.counter += 1;
    let access = format!("at-{}-{}", s.counter, hex::encode(rand_bytes()));
    let refresh = format!("rt-{}-{}", s.counter, hex::encode(rand_bytes()));
    s.access = Some((access.clone(), Instant::now() + s.ttl));
    s.refresh = Some(refresh.clone());
    s.issued.push(access.clone());
    s.issued.push(refresh.clone());
    axum::Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": s.ttl.as_secs(),
        "refresh_token": refresh,
        "scope": "issues",
    }))
    .into_response()
}

fn rand_bytes() -> [u8; 8] {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = sha2::Sha256::digest(n.to_le_bytes());
    d[..8].try_into().unwrap()
}

fn refuse(what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": what, "error_description": "refused" })),
    )
        .into_response()
}

async fn token(
    State(shared): State<Arc<Mutex<Shared>>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut s = shared.lock();
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, redirect)) = f.get("code").and_then(|c| s.codes.remove(c)) else {
                return refuse("invalid_grant");
            };
            let verifier = f.get("code_verifier").map(String::as_str).unwrap_or("");
            let hashed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            if hashed != challenge || f.get("redirect_uri") != Some(&redirect) {
                return refuse("invalid_grant");
            }
            issue(&mut s)
        }
        Some("refresh_token") => {
            if s.refresh.is_none() || f.get("refresh_token") != s.refresh.as_ref() {
                s.refused += 1;
                return refuse("invalid_grant");
            }
            s.refreshes += 1;
            issue(&mut s)
        }
        _ => refuse("unsupported_grant_type"),
    }
}
