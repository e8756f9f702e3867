//! `/v1/approvals` and `/v1/runs/{id}/approvals/{name}`: what runs asked
//! people, and deciding it. A decision needs the `approve` scope on the
//! run's workflow and, if the approval names who may decide, to be one of
//! them; it is checked against the approval's kind before anything is
//! stored.

use super::AppStateRef;
use super::auth::{Caller, Principal};
use super::body::{Body, json};
use super::error::ApiResult;
use super::runs::run_for;
use crate::config::{Grants, Scope};
use crate::store::ApprovalFilter;
use crate::types::{Allowed, Approval, Choice, Decision, RunId};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

/// Whether `who` is among those an approval allows (anyone, if it names
/// nobody), on `workflow`.
pub(crate) fn allowed(who: &Principal, workflow: &str, allowed: &Allowed) -> bool {
    if allowed.principals.is_empty() && allowed.scopes.is_empty() {
        return true;
    }
    allowed.principals.iter().any(|p| *p == who.label())
        || allowed.scopes.iter().any(|s| {
            s.parse::<Grants>().is_ok_and(|g| {
                g.0.iter().all(|grant| {
                    who.scopes.allows(
                        grant.scope,
                        Some(grant.workflow.as_deref().unwrap_or(workflow)),
                    )
                })
            })
        })
}

/// Whether `who` may decide `a`.
fn decidable(who: &Principal, a: &Approval) -> bool {
    who.scopes.allows(Scope::Approve, Some(&a.workflow))
        && allowed(who, &a.workflow, &a.spec.allowed)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// `pending`, `decided` or `timed_out`.
    status: Option<String>,
    /// Only approvals of this workflow's runs.
    workflow: Option<String>,
    /// Only this run's approvals.
    run: Option<String>,
    /// `me`: only what the caller may decide.
    decidable: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
    /// `next_before` from the previous page.
    before: Option<String>,
}

/// A page of approvals, newest run first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalPage {
    pub approvals: Vec<Approval>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

/// Approvals runs asked, newest first: `?status=pending` for those waiting
/// on people, `?decidable=me` for those the caller may decide.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ListQuery),
    responses((status = 200, body = ApprovalPage), (status = 400, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn list(
    state: AppStateRef,
    who: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ApprovalPage>> {
    let run = match q.run.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(run_for(&state, &who, r, Scope::Read).await?.id),
        None => {
            match q.workflow.as_deref().filter(|w| !w.is_empty()) {
                Some(w) => who.need_for(Scope::Read, w)?,
                // Listed to any reader: filtered below to the workflows it
                // may read.
                None if !who.scopes.allows_somewhere(Scope::Read) => who.need(Scope::Read)?,
                None => {}
            }
            None
        }
    };
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    if status.is_some_and(|s| !["pending", "decided", "timed_out"].contains(&s)) {
        return Err(super::error::ApiError::bad_request(
            "INVALID_STATUS",
            "status is pending, decided or timed_out",
        ));
    }
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => Some(b.parse::<RunId>().map_err(|_| {
            super::error::ApiError::bad_request("INVALID_CURSOR", "not a cursor from this API")
        })?),
        None => None,
    };
    let mine = q.decidable.as_deref() == Some("me");
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let owned = OwnedFilter {
        status: status.map(str::to_owned),
        workflow: q.workflow.clone().filter(|w| !w.is_empty()),
        run,
        before,
    };
    let principal = who.0.clone();
    let host = state.host.clone();
    let mut approvals = tokio::task::spawn_blocking(move || {
        host.store().approvals(&(&owned).into(), limit + 1, |a| {
            principal.scopes.allows(Scope::Read, Some(&a.workflow))
                && (!mine || decidable(&principal, a))
        })
    })
    .await
    .map_err(|e| {
        super::error::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
    })?
    .map_err(crate::HostError::from)?;
    let next_before = if approvals.len() > limit {
        approvals.truncate(limit);
        approvals.last().map(|a| a.run_id.to_string())
    } else {
        None
    };
    Ok(Json(ApprovalPage {
        approvals,
        next_before,
    }))
}

/// The filter with owned strings, to move to a blocking thread.
struct OwnedFilter {
    status: Option<String>,
    workflow: Option<String>,
    run: Option<RunId>,
    before: Option<RunId>,
}

impl<'a> From<&'a OwnedFilter> for ApprovalFilter<'a> {
    fn from(f: &'a OwnedFilter) -> ApprovalFilter<'a> {
        ApprovalFilter {
            status: f.status.as_deref(),
            workflow: f.workflow.as_deref(),
            run: f.run,
            before: f.before,
        }
    }
}

/// A decision, as posted.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// A gate's answer.
    approved: Option<bool>,
    /// A decision's option.
    option: Option<String>,
    /// A selection's options, or a ranking (all, best first).
    options: Option<Vec<String>>,
    /// Why, for the record.
    comment: Option<String>,
}

/// What deciding did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Decided {
    #[serde(flatten)]
    pub decision: Decision,
    /// This decision was made before (the request was a retry).
    pub duplicate: bool,
}

/// Decides a run's approval: `{"approved": true}` for a gate,
/// `{"option": …}` for a decision, `{"options": […]}` for a selection or a
/// ranking, with an optional `comment`. Checked against the approval (an
/// option outside the set, a ranking that is not a permutation: 422
/// `INVALID_DECISION`; a caller it does not allow: 403
/// `APPROVAL_NOT_ALLOWED`) before anything is recorded. The same decision
/// again is 200 with `duplicate`; another one 409 `APPROVAL_DECIDED`.
#[utoipa::path(post, path = "/v1/runs/{id}/approvals/{name}", tag = "approvals",
    params(("id" = String, Path), ("name" = String, Path)),
    request_body(content = DecisionBody, content_type = "application/json"),
    responses((status = 202, body = Decided), (status = 200, body = Decided, description = "the same decision, again"),
        (status = 403, body = super::error::ErrorEnvelope), (status = 404, body = super::error::ErrorEnvelope),
        (status = 409, body = super::error::ErrorEnvelope), (status = 422, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn decide(
    state: AppStateRef,
    who: Caller,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<Decided>)> {
    let run = run_for(&state, &who, &id, Scope::Approve).await?;
    let posted = json(&headers, &body, serde_json::json!({}))?;
    let posted: DecisionBody = serde_json::from_value(posted)
        .map_err(|e| crate::HostError::InvalidDecision(name.clone(), e.to_string()))?;
    let choice = Choice {
        approved: posted.approved,
        option: posted.option,
        options: posted.options,
    };
    let (decision, duplicate) = state
        .host
        .decide(run.id, &name, choice, posted.comment, &who.label(), |a| {
            allowed(&who, &run.workflow, a)
        })
        .await?;
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(Decided {
            decision,
            duplicate,
        }),
    ))
}
