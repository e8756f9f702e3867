//! A loopback MCP (Model Context Protocol) server for tests: an issue
//! tracker an agent can triage with, built on the official Rust SDK
//! (`rmcp`) and served over Streamable HTTP at `{base}/mcp` on
//! `127.0.0.1` (random port).
//!
//! Tools:
//!
//! - `get_issue {number}`: the text JSON of a fixed issue ([`issue`]);
//! - `search_issues {query}`: the text JSON of two fixed similar issues
//!   ([`similar_issues`]);
//! - `add_label {number, label}`: the text `labelled #N with LABEL`;
//! - `fail_always {}`: a result with `isError: true` and the text
//!   [`READ_ONLY`].
//!
//! With [`McpOptions::bearer`] set, every request to `/mcp` must carry
//! `Authorization: Bearer <token>`, or it gets a 401 with
//! `WWW-Authenticate: Bearer` (before rmcp sees it);
//! [`McpServer::set_bearer`] changes the accepted token at any time (to
//! revoke access, say).
//!
//! Everything is recorded: the tool calls (name and arguments, in arrival
//! order), the `tools/list` requests and the HTTP requests to `/mcp`
//! (rejected ones included).
//!
//! Like the other support servers it runs on a thread (and tokio runtime)
//! of its own, so it answers whatever the test's runtime is doing; it stops
//! when the [`McpServer`] is dropped.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The title of the issue `get_issue` answers.
pub const TITLE: &str = "Crash when saving a file with an emoji name";
/// Its body.
pub const BODY: &str = "Saving 😀.txt panics in the encoder.";
/// The text of `fail_always`'s error result.
pub const READ_ONLY: &str = "the tracker is read-only today";

/// The issue `get_issue {number}` answers (as text JSON).
pub fn issue(number: u64) -> Value {
    json!({ "number": number, "title": TITLE, "body": BODY, "labels": [] })
}

/// The issues `search_issues` answers (as text JSON), whatever the query.
pub fn similar_issues() -> Value {
    json!([
        {
            "number": 12,
            "title": "Panic in the encoder on non-ASCII file names",
            "labels": ["bug"],
            "state": "closed"
        },
        {
            "number": 31,
            "title": "Saving files whose names contain emoji fails",
            "labels": ["bug", "unicode"],
            "state": "open"
        }
    ])
}

/// Decides whether a bearer token is good (an OAuth server's current
/// access token, say).
pub type Check = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How the server behaves.
#[derive(Clone, Default)]
pub struct McpOptions {
    /// When set, requests to `/mcp` need `Authorization: Bearer <this>`.
    pub bearer: Option<String>,
    /// When set, requests to `/mcp` need a bearer this accepts.
    pub check: Option<Check>,
    /// rmcp's stateless mode (no `Mcp-Session-Id`, one request per POST);
    /// otherwise rmcp's default: sessions for clients on protocol versions
    /// that have them.
    pub stateless: bool,
    /// In stateless mode, answer plain `application/json` instead of an SSE
    /// stream where possible.
    pub json_response: bool,
}

#[derive(Default)]
struct Shared {
    bearer: Mutex<Option<String>>,
    check: Option<Check>,
    calls: Mutex<Vec<(String, Value)>>,
    lists: Mutex<usize>,
    requests: Mutex<usize>,
}

/// A running MCP server; dropping it stops the server.
pub struct McpServer {
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub port: u16,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl McpServer {
    pub async fn start(opts: McpOptions) -> McpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the MCP server");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            bearer: Mutex::new(opts.bearer.clone()),
            check: opts.check.clone(),
            ..Shared::default()
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        std::thread::Builder::new()
            .name("test-mcp".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let ct = CancellationToken::new();
                    let config = StreamableHttpServerConfig::default()
                        .with_legacy_session_mode(!opts.stateless)
                        .with_json_response(opts.json_response)
                        .with_sse_keep_alive(None)
                        .with_cancellation_token(ct.child_token());
                    let handler_state = state.clone();
                    let mcp: StreamableHttpService<Tracker, LocalSessionManager> =
                        StreamableHttpService::new(
                            move || Ok(Tracker::new(handler_state.clone())),
                            Default::default(),
                            config,
                        );
                    let app = Router::new()
                        .nest_service("/mcp", mcp)
                        .layer(axum::middleware::from_fn_with_state(state, gate));
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let server = tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    let _ = rx.await;
                    ct.cancel();
                    server.abort();
                });
            })
            .unwrap();
        let base = format!("http://{addr}");
        McpServer {
            url: format!("{base}/mcp"),
            base,
            port: addr.port(),
            shared,
            _shutdown: tx,
        }
    }

    /// Changes the accepted token (`None`: no token needed) for the
    /// requests from now on.
    pub fn set_bearer(&self, bearer: Option<String>) {
        *self.shared.bearer.lock() = bearer;
    }

    /// Every tool call so far (tool name, arguments; `{}` when the call
    /// had none), in arrival order, unknown tools included.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.shared.calls.lock().clone()
    }

    /// How many calls of `tool` so far.
    pub fn count(&self, tool: &str) -> usize {
        self.shared
            .calls
            .lock()
            .iter()
            .filter(|(name, _)| name == tool)
            .count()
    }

    /// How many `tools/list` requests so far.
    pub fn list_calls(&self) -> usize {
        *self.shared.lists.lock()
    }

    /// How many HTTP requests to `/mcp` so far, rejected ones included.
    pub fn requests_seen(&self) -> usize {
        *self.shared.requests.lock()
    }
}

/// Counts the requests to `/mcp` and turns away those without the
/// accepted bearer token.
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/mcp" || path.starts_with("/mcp/") {
        *shared.requests.lock() += 1;
    }
    let expected = shared.bearer.lock().clone();
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let refused = match (&expected, &shared.check) {
        (Some(token), _) => sent.as_deref() != Some(token.as_str()),
        (None, Some(check)) => !sent.as_deref().is_some_and(|t| check(t)),
        (None, None) => false,
    };
    if refused {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token",
        )
            .into_response();
    }
    next.run(req).await
}

/// `get_issue`'s input.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct GetIssue {
    /// The issue's number.
    number: u64,
}

/// `search_issues`'s input.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SearchIssues {
    /// Words to look for in issue titles and bodies.
    query: String,
}

/// `add_label`'s input.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddLabel {
    /// The issue's number.
    number: u64,
    /// The label to add, e.g. `bug`.
    label: String,
}

/// The MCP handler: one per session (stateless: per request), all sharing
/// the server's records.
#[derive(Clone)]
struct Tracker {
    shared: Arc<Shared>,
    tool_router: ToolRouter<Tracker>,
}

impl Tracker {
    fn new(shared: Arc<Shared>) -> Tracker {
        Tracker {
            shared,
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl Tracker {
    #[tool(
        description = "Get one issue of the tracker: its number, title, body and labels, as JSON."
    )]
    fn get_issue(&self, Parameters(GetIssue { number }): Parameters<GetIssue>) -> String {
        issue(number).to_string()
    }

    #[tool(
        description = "Search the tracker's issues; answers the matching issues as a JSON list."
    )]
    fn search_issues(
        &self,
        Parameters(SearchIssues { query: _ }): Parameters<SearchIssues>,
    ) -> String {
        similar_issues().to_string()
    }

    #[tool(description = "Add a label to an issue.")]
    fn add_label(&self, Parameters(AddLabel { number, label }): Parameters<AddLabel>) -> String {
        format!("labelled #{number} with {label}")
    }

    #[tool(description = "Always fails: the tracker is read-only today.")]
    fn fail_always(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(READ_ONLY)])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tracker {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("runway-test-tracker", "0.1.0"))
            .with_instructions("An issue tracker, for triaging issues.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        *self.shared.lists.lock() += 1;
        Ok(ListToolsResult::with_all_items(self.tool_router.list_all()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        self.shared
            .calls
            .lock()
            .push((request.name.to_string(), args));
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }
}
