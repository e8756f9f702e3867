//! `/v1/workflows`: deploy, list, show, delete.

use super::AppStateRef;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::config::Scope;
use crate::manifest::Manifest;
use crate::types::WorkflowVersion;
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request};
use axum::http::StatusCode;
use serde::Serialize;

/// `?verify=N`: deploy only if the runs not ended and N recent completed
/// runs replay the same on the new component (409 `VERIFY_FAILED` naming
/// the first divergent call otherwise).
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct DeployQuery {
    verify: Option<usize>,
}

/// A deploy's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Deployed {
    pub slug: String,
    pub version: u32,
    /// sha256 of the component.
    pub digest: String,
    /// False when the same component and manifest were already the newest version.
    pub created: bool,
}

/// A workflow with every version.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkflowDetail {
    pub slug: String,
    pub latest: WorkflowVersion,
    /// Oldest first.
    pub versions: Vec<WorkflowVersion>,
    /// The newest version's triggers, as its manifest declares them.
    #[schema(value_type = Object)]
    pub triggers: serde_json::Value,
    /// The JSON Schema the newest version's input must follow, if its
    /// manifest declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<serde_json::Value>,
}

/// Deploys a component (`component` part) with its manifest (`manifest`
/// part, TOML) as the next version of `slug`.
#[utoipa::path(put, path = "/v1/workflows/{slug}", tag = "workflows",
    params(("slug" = String, Path), DeployQuery),
    request_body(content_type = "multipart/form-data", description = "parts `component` (.wasm) and `manifest` (TOML)"),
    responses((status = 201, body = Deployed), (status = 200, body = Deployed, description = "already the newest version"),
        (status = 400, body = super::error::ErrorEnvelope), (status = 413, body = super::error::ErrorEnvelope),
        (status = 409, body = super::error::ErrorEnvelope, description = "VERIFY_FAILED"),
        (status = 415, body = super::error::ErrorEnvelope), (status = 422, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn deploy(
    state: AppStateRef,
    Path(slug): Path<String>,
    Query(q): Query<DeployQuery>,
    who: Caller,
    req: Request,
) -> ApiResult<(StatusCode, Json<Deployed>)> {
    who.need_for(Scope::Admin, &slug)?;
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!(
                "a deploy is multipart/form-data with parts component and manifest: {}",
                e.body_text()
            ),
        )
    })?;
    let (mut component, mut manifest) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("component") => component = Some(field.bytes().await.map_err(multipart_error)?),
            Some("manifest") => {
                manifest = Some(field.text().await.map_err(multipart_error)?);
            }
            _ => {}
        }
    }
    let component = component
        .ok_or_else(|| ApiError::bad_request("MISSING_PART", "the `component` part is missing"))?;
    let manifest = manifest
        .ok_or_else(|| ApiError::bad_request("MISSING_PART", "the `manifest` part is missing"))?;
    let parsed = Manifest::parse(&manifest).map_err(crate::HostError::from)?;
    if parsed.slug != slug {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "SLUG_MISMATCH",
            format!(
                "the manifest's slug is {:?}, the path's {slug:?}",
                parsed.slug
            ),
        ));
    }
    let before = state.host.workflow(&slug, None)?.map(|w| w.version);
    let d = match q.verify {
        Some(runs) => {
            state
                .host
                .deploy_verified(component.to_vec(), &manifest, runs)
                .await?
        }
        None => state.host.deploy(component.to_vec(), &manifest).await?,
    };
    let created = before != Some(d.version);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Deployed {
            slug: d.slug,
            version: d.version,
            digest: d.digest,
            created,
        }),
    ))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "BODY_TOO_LARGE",
            "the deploy is over the server's deploy limit",
        )
    } else {
        ApiError::bad_request("BAD_MULTIPART", e.body_text())
    }
}

/// The newest version of every workflow.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows",
    responses((status = 200, body = Vec<WorkflowVersion>), (status = 401, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn list(state: AppStateRef, who: Caller) -> ApiResult<Json<Vec<WorkflowVersion>>> {
    // A caller with read on some workflows only sees those.
    if !who.scopes.allows_somewhere(Scope::Read) {
        who.need(Scope::Read)?;
    }
    let all = state.host.workflows()?;
    Ok(Json(
        all.into_iter()
            .filter(|w| who.scopes.allows(Scope::Read, Some(&w.slug)))
            .collect(),
    ))
}

/// A workflow: its versions, manifest and triggers.
#[utoipa::path(get, path = "/v1/workflows/{slug}", tag = "workflows",
    params(("slug" = String, Path)),
    responses((status = 200, body = WorkflowDetail), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn get(
    state: AppStateRef,
    Path(slug): Path<String>,
    who: Caller,
) -> ApiResult<Json<WorkflowDetail>> {
    who.need_for(Scope::Read, &slug)?;
    let versions = state.host.workflow_versions(&slug)?;
    let latest = versions
        .last()
        .cloned()
        .ok_or_else(|| crate::HostError::WorkflowNotFound(slug.clone()))?;
    let triggers = toml::from_str::<toml::Table>(&latest.manifest_toml)
        .ok()
        .and_then(|t| t.get("triggers").cloned())
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let input_schema = crate::manifest::Manifest::parse(&latest.manifest_toml)
        .ok()
        .and_then(|m| m.input.map(|c| c.schema));
    Ok(Json(WorkflowDetail {
        slug,
        latest,
        versions,
        triggers,
        input_schema,
    }))
}

/// Removes a workflow; refused (409) while any of its runs has not ended.
#[utoipa::path(delete, path = "/v1/workflows/{slug}", tag = "workflows",
    params(("slug" = String, Path)),
    responses((status = 204), (status = 404, body = super::error::ErrorEnvelope), (status = 409, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn delete(
    state: AppStateRef,
    Path(slug): Path<String>,
    who: Caller,
) -> ApiResult<StatusCode> {
    who.need_for(Scope::Admin, &slug)?;
    state.host.delete_workflow(&slug).await?;
    Ok(StatusCode::NO_CONTENT)
}
