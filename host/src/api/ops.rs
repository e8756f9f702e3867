//! Health, readiness and Prometheus metrics.

use super::AppStateRef;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::config::Scope;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The store answers reads and takes writes: the host can take work. A
/// store that takes no writes now (a full disk) answers 503 with the
/// reason until it recovers by itself.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, body = super::error::ErrorEnvelope)))]
pub async fn readyz(state: AppStateRef) -> ApiResult<Json<Health>> {
    state.host.ready().map_err(|e| {
        let mut refused =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", e.to_string());
        refused.retry_after = e.retry_after();
        refused
    })?;
    Ok(Json(Health { status: "ready" }))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, content_type = "text/plain", description = "Prometheus metrics"),
        (status = 401, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn metrics(state: AppStateRef, who: Caller) -> ApiResult<Response> {
    who.need(Scope::Read)?;
    let host = &state.host;
    crate::metrics::gauges(
        host.warm_instances(),
        host.queue_depth(),
        host.live_runs(),
        host.run_memory().0,
    );
    let text = state
        .prometheus
        .as_ref()
        .map(|p| p.render())
        .unwrap_or_default();
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(res)
}

/// The models this host can call: each alias, then each model configured
/// by name, with what it resolves to (never a key).
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = Vec<crate::models::Listing>),
        (status = 401, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn models(
    state: AppStateRef,
    who: Caller,
) -> ApiResult<Json<Vec<crate::models::Listing>>> {
    who.need(Scope::Read)?;
    Ok(Json(state.host.models()))
}

/// A consistent backup of the store and its artifacts, taken while the
/// server runs: a tar archive of a data directory (`runway backup` unpacks
/// it; restore by starting `runway serve --data-dir` on it). Secrets are
/// not in it.
#[utoipa::path(get, path = "/v1/backup", tag = "ops",
    responses((status = 200, content_type = "application/x-tar", description = "a data directory"),
        (status = 403, body = super::error::ErrorEnvelope),
        (status = 409, body = super::error::ErrorEnvelope, description = "NOT_SUPPORTED: the store is in PostgreSQL (use pg_dump)")),
    security(("bearer" = [])))]
pub async fn backup(state: AppStateRef, who: Caller) -> ApiResult<Response> {
    who.need(Scope::Admin)?;
    let (file, len) = state.host.backup_archive().await?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut res = axum::body::Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"runway-backup.tar\""),
    );
    Ok(res)
}

/// Who a request is, and what the console may offer it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    #[serde(flatten)]
    pub principal: super::auth::Principal,
    /// The principal as runs, events and the audit trail name it.
    pub label: String,
    /// Each scope, whether it is held (on some workflow at least).
    pub can: std::collections::BTreeMap<&'static str, bool>,
    /// The server takes requests without credentials (loopback only).
    pub open: bool,
}

/// Who the request's credentials say it is: its kind, id and scopes.
/// The console shows only the actions the scopes allow.
#[utoipa::path(get, path = "/v1/whoami", tag = "ops",
    responses((status = 200, body = WhoAmI), (status = 401, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn whoami(state: AppStateRef, who: Caller) -> Json<WhoAmI> {
    let can = [Scope::Read, Scope::Execute, Scope::Approve, Scope::Admin]
        .into_iter()
        .map(|s| (s.as_str(), who.scopes.allows_somewhere(s)))
        .collect();
    Json(WhoAmI {
        label: who.label(),
        principal: who.0,
        can,
        open: state.auth.is_open(),
    })
}
