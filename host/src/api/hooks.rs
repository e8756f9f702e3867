//! `POST /hooks/{slug}`: webhook deliveries, verified by the scheme the
//! manifest names (no bearer token: the signature is the authentication).
//! A verified delivery starts a run, or signals the run whose input holds
//! the delivery's correlation value. Delivery ids deduplicate replays.
//! Neither the body nor the key is ever logged.

use super::AppStateRef;
use super::body::{Body, json};
use super::error::{ApiError, ApiResult};
use crate::store::Write;
use crate::types::RunId;
use crate::webhook::{self, extract};
use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

/// What a delivery did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HookReceipt {
    /// The run started, or the run signalled.
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// `started` or `signalled`.
    pub action: &'static str,
    /// This delivery id was seen before; nothing new happened.
    pub duplicate: bool,
}

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
    let no_hook = || ApiError::not_found(format!("workflow {slug:?} takes no webhooks"));
    let wf = state
        .host
        .store()
        .workflow(&slug, None)?
        .ok_or_else(no_hook)?;
    let manifest = state.host.manifest(&wf)?;
    let trigger = manifest.triggers.webhook.clone().ok_or_else(no_hook)?;
    let Some(key) = state.host.host_secret(&trigger.secret) else {
        tracing::error!(workflow = %slug, secret = %trigger.secret, "webhook key is not set on this host");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "WEBHOOK_KEY_MISSING",
            "this host has no key for the workflow's webhook",
        ));
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verified = match webhook::verify(&trigger, key.as_bytes(), &headers, &body, now) {
        Ok(v) => v,
        Err(r) => {
            crate::metrics::webhook(&slug, r.reason());
            tracing::info!(workflow = %slug, reason = r.reason(), "webhook rejected");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "WEBHOOK_REJECTED",
                format!("{}: {r}", r.reason()),
            ));
        }
    };
    crate::metrics::webhook(&slug, "verified");
    let payload = json(&headers, &body, serde_json::Value::Null)?;

    if let Some(route) = &trigger.signal {
        let wanted = extract(&payload, Some(&route.correlation_pointer)).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "NO_CORRELATION_VALUE",
                format!("the payload has nothing at {}", route.correlation_pointer),
            )
        })?;
        // A replayed delivery is answered from its key: the run it signalled
        // may have ended since, and must not turn the replay into a 404.
        let key = verified
            .delivery_id
            .as_ref()
            .map(|d| format!("hook:{slug}:{d}"));
        if let Some(run) = key
            .as_deref()
            .map(|k| state.host.store().run_for_key(k))
            .transpose()?
            .flatten()
        {
            return Ok((
                StatusCode::OK,
                Json(HookReceipt {
                    run_id: run,
                    action: "signalled",
                    duplicate: true,
                }),
            ));
        }
        let run = find_correlated(&state, &slug, &route.input_pointer, &wanted)?
            .ok_or_else(|| ApiError::not_found("no run of this workflow waits for that value"))?;
        let data = extract(&payload, trigger.input_pointer.as_deref()).unwrap_or_default();
        let receipt = state
            .host
            .signal(run, &route.name, data, verified.delivery_id)
            .await?;
        if let Some(key) = key {
            state
                .host
                .store()
                .commit(vec![Write::PutKey(key, run)])
                .await?;
        }
        let status = if receipt.duplicate {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return Ok((
            status,
            Json(HookReceipt {
                run_id: run,
                action: "signalled",
                duplicate: receipt.duplicate,
            }),
        ));
    }

    let input = extract(&payload, trigger.input_pointer.as_deref()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "NO_INPUT",
            "the payload has nothing at the manifest's input_pointer",
        )
    })?;
    let key = verified.delivery_id.map(|d| format!("hook:{slug}:{d}"));
    let started = state.host.start_with_key(&slug, None, input, key).await?;
    // The answer acknowledges the delivery: it must survive a crash.
    state.host.flush().await?;
    let status = if started.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(HookReceipt {
            run_id: started.id,
            action: "started",
            duplicate: !started.created,
        }),
    ))
}

/// The oldest run of `slug` that has not ended and whose input holds
/// `wanted` at `pointer`.
fn find_correlated(
    state: &AppStateRef,
    slug: &str,
    pointer: &str,
    wanted: &serde_json::Value,
) -> ApiResult<Option<RunId>> {
    let store = state.host.store();
    let mut ids = store.active_runs()?;
    ids.sort();
    for id in ids {
        if let Some(r) = store.run(id)?
            && r.workflow == slug
            && r.input.pointer(pointer) == Some(wanted)
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}
