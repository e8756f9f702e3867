//! `POST /hooks/{slug}`: webhook deliveries, verified by the scheme the
//! manifest names (no bearer token: the signature is the authentication).
//! What a delivery does lives with the trigger (`triggers::webhook`); this
//! handler parses and answers.

use super::AppStateRef;
use super::body::{Body, json};
use super::error::ApiResult;
use crate::triggers::webhook::HookReceipt;
use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};

/// Receives a webhook delivery for `slug`.
#[utoipa::path(post, path = "/hooks/{slug}", tag = "webhooks", params(("slug" = String, Path)),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 202, body = HookReceipt), (status = 200, body = HookReceipt, description = "a replayed delivery"),
        (status = 401, body = super::error::ErrorEnvelope, description = "signature rejected; the message says why"),
        (status = 404, body = super::error::ErrorEnvelope)))]
pub async fn receive(
    state: AppStateRef,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<HookReceipt>)> {
    let verified = state.host.verify_webhook(&slug, &headers, &body)?;
    let payload = json(&headers, &body, serde_json::Value::Null)?;
    let receipt = state.host.deliver_webhook(verified, payload).await?;
    let status = if receipt.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(receipt)))
}
