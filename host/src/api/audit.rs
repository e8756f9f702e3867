//! Authentication of every request, and the audit trail it feeds: each
//! state-changing request (any method but GET and HEAD) and each refused
//! one (401, 403) is recorded with who made it, what it asked, when, and
//! how it ended. `GET /v1/audit` pages the trail.

use super::AppStateRef;
use super::auth::{Caller, Identity};
use super::error::ApiResult;
use crate::config::Scope;
use crate::store::Write;
use crate::types::AuditEntry;
use axum::Json;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Works out who the request is (left in its extensions for [`Caller`]),
/// runs it, and records it in the audit trail if it changed state or was
/// refused.
pub(super) async fn authenticate(
    State(state): State<super::AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let who = state.auth.identify(req.headers(), peer).await;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let principal = who.as_ref().ok().map(super::auth::Principal::label);
    req.extensions_mut().insert(Identity(who));
    let res = next.run(req).await;
    let status = res.status().as_u16();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let refused = status == 401 || status == 403;
    if changes || refused {
        let outcome = match status {
            401 | 403 => "refused",
            s if s < 400 => "ok",
            _ => "failed",
        };
        // Group-committed with the request's own writes; never waited on.
        state
            .host
            .store()
            .enqueue(vec![Write::Audit(Box::new(AuditEntry {
                seq: 0,
                at: crate::types::now(),
                principal,
                method: method.to_string(),
                path,
                status,
                outcome: outcome.into(),
                request_id,
            }))]);
    }
    res
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// `next_before` from the previous page.
    before: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// A page of the audit trail, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<u64>,
}

/// Every state-changing request and every refused one (401, 403), newest
/// first: who, what, when, and the outcome.
#[utoipa::path(get, path = "/v1/audit", tag = "ops", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn page(
    state: AppStateRef,
    who: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    who.need(Scope::Admin)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // What was just recorded (this request's refusals included) shows.
    state.host.flush().await?;
    let mut entries = state
        .host
        .store()
        .audit_page(q.before, limit + 1)
        .map_err(crate::HostError::from)?;
    let next_before = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}
