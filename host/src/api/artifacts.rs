//! `/v1/runs/{id}/artifacts`: list and download.

use super::AppStateRef;
use super::auth::Caller;
use super::error::ApiResult;
use super::runs::run_for;
use crate::config::Scope;
use crate::types::ArtifactMeta;
use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The artifacts a run wrote.
#[utoipa::path(get, path = "/v1/runs/{id}/artifacts", tag = "artifacts", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ArtifactMeta>), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn list(
    state: AppStateRef,
    Path(id): Path<String>,
    who: Caller,
) -> ApiResult<Json<Vec<ArtifactMeta>>> {
    let id = run_for(&state, &who, &id, Scope::Read).await?.id;
    Ok(Json(state.host.artifacts(id)?))
}

/// An artifact's body, with its stored content type, as an attachment.
#[utoipa::path(get, path = "/v1/runs/{id}/artifacts/{name}", tag = "artifacts",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", description = "the body"),
        (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn download(
    state: AppStateRef,
    Path((id, name)): Path<(String, String)>,
    who: Caller,
) -> ApiResult<Response> {
    let id = run_for(&state, &who, &id, Scope::Read).await?.id;
    let (meta, body) = state.host.artifact(id, &name).await?;
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&meta.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A body a workflow wrote is never a page of this origin: opened in a
    // browser, an HTML artifact runs no script and reaches nothing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    // Names are validated at write (no quotes, slashes or controls), but
    // the header is still built defensively.
    let safe: String = meta
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.digest)) {
        h.insert(header::ETAG, v);
    }
    Ok(res)
}
