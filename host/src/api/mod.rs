//! The HTTP API (`runway serve`): axum routes over a [`Host`].
//!
//! One module per resource; each handler checks its scope, validates its
//! input and maps host errors once, through [`error::ApiError`], to the
//! `{"error":{"code","message"}}` envelope.

mod approvals;
mod artifacts;
mod audit;
pub mod auth;
mod body;
pub mod console;
mod cron;
pub mod error;
mod events;
pub mod feed;
mod hooks;
mod openapi;
mod ops;
mod runs;
mod timeline;
mod workflows;

use crate::Host;
use crate::config::ServerSettings;
use auth::Auth;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::serve::ListenerExt;
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub host: Host,
    pub auth: Arc<Auth>,
    pub settings: Arc<ServerSettings>,
    /// Renders `/metrics`; `None` when another recorder is installed.
    pub prometheus: Option<PrometheusHandle>,
    /// Turns true when the server shuts down: streams and long waits end
    /// so that graceful shutdown does not wait on them.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// The all-runs feed's hub.
    pub feed: Arc<feed::RunFeed>,
    /// Recent run counts.
    pub counts: Arc<runs::CountsCache>,
}

/// Every route, with body limits, fallbacks and request metrics.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.body_limit as usize;
    let deploy_limit = state.settings.deploy_limit as usize;
    Router::new()
        .route("/v1/workflows", get(workflows::list))
        .route(
            "/v1/workflows/{slug}",
            put(workflows::deploy)
                .layer(DefaultBodyLimit::max(deploy_limit))
                .get(workflows::get)
                .delete(workflows::delete),
        )
        .route("/v1/workflows/{slug}/runs", post(runs::start))
        .route("/v1/workflows/{slug}/cron", get(cron::list))
        .route("/v1/workflows/{slug}/cron/{index}/pause", post(cron::pause))
        .route(
            "/v1/workflows/{slug}/cron/{index}/resume",
            post(cron::resume),
        )
        .route("/v1/workflows/{slug}/cron/{index}/fire", post(cron::fire))
        .route("/", get(console::page))
        .route("/docs", get(console::page))
        .route("/ui/{file}", get(console::file))
        .route("/v1/whoami", get(ops::whoami))
        .route("/v1/audit", get(audit::page))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/runs/{id}/approvals/{name}", post(approvals::decide))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/stream", get(feed::stream))
        .route("/v1/runs/counts", get(runs::counts))
        .route("/v1/runs/{id}/timeline", get(timeline::get))
        .route("/v1/runs/purge", post(runs::purge))
        .route("/v1/runs/{id}", get(runs::get).delete(runs::delete))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/rerun", post(runs::rerun))
        .route("/v1/runs/{id}/reset", post(runs::reset))
        .route("/v1/runs/{id}/signals/{name}", post(runs::signal))
        .route("/v1/runs/{id}/events", get(events::page))
        .route("/v1/runs/{id}/events/stream", get(events::stream))
        .route("/v1/runs/{id}/artifacts", get(artifacts::list))
        .route("/v1/runs/{id}/artifacts/{name}", get(artifacts::download))
        .route("/hooks/{slug}", post(hooks::receive))
        .route("/v1/models", get(ops::models))
        .route("/v1/backup", get(ops::backup))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(openapi::spec))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::authenticate,
        ))
        .layer(middleware::from_fn(track))
        // A bug that panics in a handler answers 500 with the envelope; it
        // never drops the connection or takes the server down.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        // The access log: one line per request with its id (the client's
        // X-Request-Id, or a new one), method, path (no query, no body,
        // no header), status and latency; the id goes back on the answer.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let span = tracing::info_span!(
                        target: crate::telemetry::TARGET,
                        "request",
                        id,
                        method = %req.method(),
                        path = %req.uri().path(),
                        otel.name = tracing::field::Empty,
                        otel.kind = "server",
                    );
                    crate::telemetry::adopt_request(&span, req);
                    span
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(SetRequestIdLayer::x_request_id(NewRequestId))
        .with_state(state)
}

/// A request id for a request that came without one: a ULID.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        axum::http::HeaderValue::from_str(&ulid::Ulid::new().to_string())
            .ok()
            .map(RequestId::new)
    }
}

fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        "the host failed; see its log",
    )
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not take that method",
    )
}

/// Counts requests by route template and status.
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;
    crate::metrics::http_request(route, &method, res.status().as_u16());
    res
}

/// Serves the API on `listener` until `shutdown` resolves, then stops
/// accepting, lets requests in flight finish, and stops the host's runs
/// where they are (they resume on the next start).
pub async fn serve(
    host: Host,
    settings: ServerSettings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One recorder per process (the `metrics` facade is global).
    static PROMETHEUS: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    let prometheus = PROMETHEUS
        .get_or_init(|| {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(crate::metrics::BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            crate::metrics::describe();
            Some(handle)
        })
        .clone();
    let auth =
        Auth::new(&settings, |name| host.host_secret(name)).map_err(|e| anyhow::anyhow!("{e}"))?;
    auth.warm().await;
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let state = AppState {
        host: host.clone(),
        auth: Arc::new(auth),
        settings: Arc::new(settings),
        prometheus,
        closing,
        feed: Default::default(),
        counts: Default::default(),
    };
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let app = router(state);
    // Keep-alive clients must never wait on delayed ACKs.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer's address: a trusted proxy's headers count only from it.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    host.shutdown().await?;
    Ok(())
}

/// Whether `addr` is reachable only from this machine.
pub fn is_loopback(addr: &std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Extracts the state (handlers name it through this alias).
pub(crate) type AppStateRef = State<AppState>;
