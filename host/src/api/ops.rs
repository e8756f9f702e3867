//! Health, readiness and Prometheus metrics.

use super::AppStateRef;
use super::error::{ApiError, ApiResult};
use crate::config::Scope;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
pub async fn metrics(state: AppStateRef, headers: HeaderMap) -> ApiResult<Response> {
    state.auth.check(&headers, Scope::Read)?;
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
    headers: HeaderMap,
) -> ApiResult<Json<Vec<crate::models::Listing>>> {
    state.auth.check(&headers, Scope::Read)?;
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
pub async fn backup(state: AppStateRef, headers: HeaderMap) -> ApiResult<Response> {
    state.auth.check(&headers, Scope::Admin)?;
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

/// Who the request's token says it is: its scope and name. The console
/// shows only the actions the scope allows.
#[utoipa::path(get, path = "/v1/whoami", tag = "ops",
    responses((status = 200, body = super::auth::Caller), (status = 401, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn whoami(
    state: AppStateRef,
    headers: HeaderMap,
) -> ApiResult<Json<super::auth::Caller>> {
    Ok(Json(state.auth.caller(&headers)?))
}
