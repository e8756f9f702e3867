//! `/v1/workflows/{slug}/cron`: a workflow's cron triggers — when each
//! fires next and fired last — and pause, resume and fire now.

use super::AppStateRef;
use super::auth::Caller;
use super::error::ApiResult;
use crate::config::Scope;
use crate::triggers::cron::CronView;
use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The cron triggers of the newest version of a workflow.
#[utoipa::path(get, path = "/v1/workflows/{slug}/cron", tag = "workflows",
    params(("slug" = String, Path)),
    responses((status = 200, body = Vec<CronView>), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn list(
    state: AppStateRef,
    Path(slug): Path<String>,
    who: Caller,
) -> ApiResult<Json<Vec<CronView>>> {
    who.need_for(Scope::Read, &slug)?;
    Ok(Json(state.host.cron_triggers(&slug)?))
}

/// Pauses a trigger: the instants due while it is paused start no run.
#[utoipa::path(post, path = "/v1/workflows/{slug}/cron/{index}/pause", tag = "workflows",
    params(("slug" = String, Path), ("index" = usize, Path)),
    responses((status = 200, body = CronView), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn pause(
    state: AppStateRef,
    Path((slug, index)): Path<(String, usize)>,
    who: Caller,
) -> ApiResult<Json<CronView>> {
    who.need_for(Scope::Execute, &slug)?;
    Ok(Json(state.host.pause_cron(&slug, index, true).await?))
}

/// Resumes a paused trigger from its next instant (missed ones do not fire).
#[utoipa::path(post, path = "/v1/workflows/{slug}/cron/{index}/resume", tag = "workflows",
    params(("slug" = String, Path), ("index" = usize, Path)),
    responses((status = 200, body = CronView), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn resume(
    state: AppStateRef,
    Path((slug, index)): Path<(String, usize)>,
    who: Caller,
) -> ApiResult<Json<CronView>> {
    who.need_for(Scope::Execute, &slug)?;
    Ok(Json(state.host.pause_cron(&slug, index, false).await?))
}

/// A run a trigger fired by hand.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Fired {
    #[schema(value_type = String)]
    pub run_id: crate::types::RunId,
}

/// Fires a trigger now (paused or not) with its input; 202 with the run's
/// `Location`, or 429 past the queue bound.
#[utoipa::path(post, path = "/v1/workflows/{slug}/cron/{index}/fire", tag = "workflows",
    params(("slug" = String, Path), ("index" = usize, Path)),
    responses((status = 202, body = Fired), (status = 404, body = super::error::ErrorEnvelope),
        (status = 429, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn fire(
    state: AppStateRef,
    Path((slug, index)): Path<(String, usize)>,
    who: Caller,
) -> ApiResult<Response> {
    who.need_for(Scope::Execute, &slug)?;
    let started = state.host.fire_cron(&slug, index).await?;
    let mut res = (StatusCode::ACCEPTED, Json(Fired { run_id: started.id })).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/runs/{}", started.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}
