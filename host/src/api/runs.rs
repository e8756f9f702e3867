//! `/v1/workflows/{slug}/runs` and `/v1/runs`: start, list, show, cancel,
//! signal.

use super::AppStateRef;
use super::auth::Caller;
use super::body::{Body, json};
use super::error::{ApiError, ApiResult};
use crate::config::Scope;
use crate::host::{CancelOutcome, MAX_INPUT_BYTES};
use crate::types::{RunId, RunRecord, RunStatus};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest `?wait=` honoured.
const MAX_WAIT_SECS: f64 = 300.0;

/// A run, with the runs it started.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunView {
    #[serde(skip)]
    #[schema(ignore)]
    id: RunId,
    #[serde(flatten)]
    #[schema(value_type = RunRecord)]
    pub run: PublicRun,
    #[schema(value_type = Vec<String>)]
    pub children: Vec<RunId>,
    /// Runs started as reruns of this one, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub reruns: Vec<RunId>,
}

/// A run as the API shows it: without its random seed.
#[derive(Serialize)]
#[serde(transparent)]
pub struct PublicRun(serde_json::Value);

impl PublicRun {
    pub fn of(run: &RunRecord) -> PublicRun {
        let mut v = serde_json::to_value(run).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("seed");
        }
        PublicRun(v)
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StartQuery {
    /// Seconds to wait for the run to end (at most 300).
    wait: Option<f64>,
}

/// The run `id` names, if the caller may use `scope` on its workflow: 403
/// for a caller without that scope anywhere, 404 for no such run, then
/// 403 for a run of a workflow the caller's scope does not cover.
pub(super) async fn run_for(
    state: &AppStateRef,
    who: &Caller,
    id: &str,
    scope: Scope,
) -> ApiResult<RunRecord> {
    if !who.scopes.allows_somewhere(scope) {
        who.need(scope)?;
    }
    let run = state.host.run_record(run_id(id)?).await?;
    who.need_for(scope, &run.workflow)?;
    Ok(run)
}

/// Server-wide, or on `workflow` when the request is about one.
pub(super) fn need_on(who: &Caller, scope: Scope, workflow: Option<&str>) -> ApiResult<()> {
    match workflow.filter(|w| !w.is_empty()) {
        Some(w) => who.need_for(scope, w),
        None => who.need(scope),
    }
}

pub(super) fn run_id(s: &str) -> ApiResult<RunId> {
    s.parse()
        .map_err(|e: crate::types::BadRunId| ApiError::not_found(e.to_string()))
}

fn view(state: &AppStateRef, run: RunRecord) -> ApiResult<RunView> {
    let mut v = new_view(state, run)?;
    v.reruns = state.host.reruns(v.id)?;
    Ok(v)
}

/// The view of a run just started: nobody can have rerun it yet (one read
/// fewer on the busiest route).
fn new_view(state: &AppStateRef, run: RunRecord) -> ApiResult<RunView> {
    let children = state.host.children(run.id)?;
    let reruns = Vec::new();
    Ok(RunView {
        id: run.id,
        run: PublicRun::of(&run),
        children,
        reruns,
    })
}

/// Starts a run of the newest version of `slug`. The body is the input
/// (JSON; empty means `{}`).
#[utoipa::path(post, path = "/v1/workflows/{slug}/runs", tag = "runs",
    params(("slug" = String, Path), StartQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "same key and input: the same run (200); another input: 409")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = RunView, description = "the run ended within `wait`, or the key named it"),
        (status = 202, body = RunView, description = "queued or still running; see Location"),
        (status = 404, body = super::error::ErrorEnvelope), (status = 409, body = super::error::ErrorEnvelope),
        (status = 413, body = super::error::ErrorEnvelope), (status = 415, body = super::error::ErrorEnvelope),
        (status = 429, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn start(
    state: AppStateRef,
    Path(slug): Path<String>,
    Query(q): Query<StartQuery>,
    who: Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    who.need_for(Scope::Execute, &slug)?;
    let input = json(&headers, &body, serde_json::json!({}))?;
    if body.len() > MAX_INPUT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "run input is at most 1 MiB",
        ));
    }
    let wait = match q.wait {
        Some(w) if !(0.0..=MAX_WAIT_SECS).contains(&w) || w.is_nan() => {
            return Err(ApiError::bad_request(
                "INVALID_WAIT",
                "wait is a number of seconds from 0 to 300",
            ));
        }
        w => w.map(Duration::from_secs_f64),
    };
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 256);
            let k = k.ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_IDEMPOTENCY_KEY",
                    "Idempotency-Key must be 1 to 256 visible ASCII characters",
                )
            })?;
            Some(format!("api:{slug}:{k}"))
        }
    };
    let started = state
        .host
        .start_admitted(
            &slug,
            input,
            key,
            state.settings.max_queued_runs,
            crate::types::Trigger::new("api", who.label()),
        )
        .await?;
    if let Some(w) = wait.filter(|w| !w.is_zero()) {
        let mut closing = state.closing.clone();
        tokio::select! {
            // Back early when the run ends or waits for a signal.
            _ = tokio::time::timeout(w, state.host.wait_settled(started.id)) => {}
            _ = closing.wait_for(|c| *c) => {}
        }
    }
    let location = HeaderValue::from_str(&format!("/v1/runs/{}", started.id)).ok();
    let mut record = state.host.run_record(started.id).await?;
    if !record.status.is_terminal() {
        // The answer names the run: it must survive a crash from now on.
        if let Err(e) = state.host.flush().await {
            let mut refused = ApiError::from(e);
            if refused.code == "STORAGE_UNAVAILABLE" {
                // Queued, and kept: it is durable once the store recovers.
                refused.message = format!(
                    "run {} is queued but the store cannot make it durable now ({}); it goes on once the store recovers",
                    started.id, refused.message
                );
                refused.location = location;
            }
            return Err(refused);
        }
        record = state.host.run_record(started.id).await?;
    }
    // 200 when the caller waited and the run ended, or when the key named
    // an existing run; otherwise 202 (even if it happens to have ended).
    let done = record.status.is_terminal() && wait.is_some_and(|w| !w.is_zero());
    let status = if done || !started.created {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut res = (status, Json(new_view(&state, record)?)).into_response();
    if let Some(v) = location {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs with this status.
    status: Option<String>,
    /// At most this many (default 50, at most 1000).
    limit: Option<usize>,
    /// `next_cursor` from the previous page.
    cursor: Option<String>,
    /// Only runs created at or after this time (RFC 3339).
    since: Option<String>,
    /// Only runs created before this time (RFC 3339).
    until: Option<String>,
}

/// A time bound of a listing, as the first run id at that millisecond.
fn time_bound(name: &str, value: Option<&str>) -> ApiResult<Option<RunId>> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::bad_request(
                "INVALID_TIME",
                format!("{name} must be an RFC 3339 time, like 2026-11-30T16:00:00Z"),
            )
        })?;
    let ms = (at.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    Ok(Some(RunId::first_at(ms)))
}

/// A page of runs, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunPage {
    #[schema(value_type = Vec<RunRecord>)]
    pub runs: Vec<PublicRun>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Runs, newest first, filtered and paged.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, body = RunPage), (status = 400, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn list(
    state: AppStateRef,
    Query(q): Query<ListQuery>,
    who: Caller,
) -> ApiResult<Json<RunPage>> {
    need_on(&who, Scope::Read, q.workflow.as_deref())?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<RunStatus>()
                .map_err(|e| ApiError::bad_request("INVALID_STATUS", e))?,
        ),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let before =
        match q.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<RunId>().map_err(|_| {
                ApiError::bad_request("INVALID_CURSOR", "not a cursor from this API")
            })?),
        };
    let until = time_bound("until", q.until.as_deref())?;
    let filter = crate::host::RunFilter {
        status,
        workflow: q.workflow.as_deref(),
        // The tighter of the cursor and the end of the range.
        before: match (before, until) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        },
        since: time_bound("since", q.since.as_deref())?,
    };
    let mut runs = state.host.runs(&filter, limit + 1)?;
    let next_cursor = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Json(RunPage {
        runs: runs.iter().map(PublicRun::of).collect(),
        next_cursor,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CountsQuery {
    /// Only runs of this workflow.
    workflow: Option<String>,
}

/// How many runs are in each status.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    /// By status (statuses with no run are left out).
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub counts: std::collections::BTreeMap<RunStatus, u64>,
    pub total: u64,
}

/// Counts a second old at most are answered again while no run changed
/// (as far as the feed saw): the console asks after every burst of
/// changes, and counting 100,000 runs takes a while.
const COUNTS_FRESH: Duration = Duration::from_secs(1);

/// Recent counts, by workflow filter, with when they were counted and the
/// feed's version then (a run that changed since makes them stale).
#[derive(Default)]
pub struct CountsCache(
    parking_lot::Mutex<
        std::collections::HashMap<Option<String>, (std::time::Instant, u64, RunCounts)>,
    >,
);

/// How many runs are in each status (of one workflow's, with `workflow`);
/// up to a second old.
#[utoipa::path(get, path = "/v1/runs/counts", tag = "runs", params(CountsQuery),
    responses((status = 200, body = RunCounts)),
    security(("bearer" = [])))]
pub async fn counts(
    state: AppStateRef,
    Query(q): Query<CountsQuery>,
    who: Caller,
) -> ApiResult<Json<RunCounts>> {
    need_on(&who, Scope::Read, q.workflow.as_deref())?;
    let workflow = q.workflow.filter(|w| !w.is_empty());
    let version = state.feed.version();
    if let Some((at, v, c)) = state.counts.0.lock().get(&workflow)
        && at.elapsed() < COUNTS_FRESH
        && *v == version
    {
        return Ok(Json(c.clone()));
    }
    let host = state.host.clone();
    let wf = workflow.clone();
    let counted = tokio::task::spawn_blocking(move || host.store().run_counts(wf.as_deref()))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?
        .map_err(crate::HostError::from)?;
    let counts: std::collections::BTreeMap<RunStatus, u64> = counted.into_iter().collect();
    let c = RunCounts {
        total: counts.values().sum(),
        counts,
    };
    let mut cache = state.counts.0.lock();
    if cache.len() > 256 {
        cache.clear();
    }
    cache.insert(workflow, (std::time::Instant::now(), version, c.clone()));
    Ok(Json(c))
}

/// A run: status, input, output, error, timestamps, usage, parent, children.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn get(
    state: AppStateRef,
    Path(id): Path<String>,
    who: Caller,
) -> ApiResult<Json<RunView>> {
    let run = run_for(&state, &who, &id, Scope::Read).await?;
    Ok(Json(view(&state, run)?))
}

/// How to rerun a run.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunBody {
    /// Input instead of the stored one.
    #[schema(value_type = Option<Object>)]
    input: Option<serde_json::Value>,
    /// On the workflow's newest version instead of the run's.
    #[serde(default)]
    latest: bool,
}

/// Starts a new run of a run's workflow with its stored input (or
/// `input`), on its version (or the newest, with `latest`); the new run's
/// trigger is `rerun` with `rerun_of`, and the original lists it in
/// `reruns`.
#[utoipa::path(post, path = "/v1/runs/{id}/rerun", tag = "runs", params(("id" = String, Path)),
    request_body(content = RerunBody, content_type = "application/json"),
    responses((status = 202, body = RunView), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn rerun(
    state: AppStateRef,
    who: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let original = run_for(&state, &who, &id, Scope::Execute).await?;
    let asked = json(&headers, &body, serde_json::json!({}))?;
    let asked: RerunBody = serde_json::from_value(asked)
        .map_err(|e| crate::error::HostError::InvalidInput(e.to_string()))?;
    let started = state
        .host
        .rerun(original.id, asked.input, asked.latest, who.label())
        .await?;
    state.host.flush().await?;
    let record = state.host.run_record(started.id).await?;
    let mut res = (StatusCode::ACCEPTED, Json(view(&state, record)?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/runs/{}", started.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// Where to fork a run.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetAt {
    /// The event (its `seq`) to fork after: the new run keeps what the run
    /// did up to it (its last commit at or before it) and does the rest
    /// again, live.
    to: u64,
}

/// Starts a new run that replays a run's journal up to event `to` and goes
/// on live from there, on the same version with the same input: calls
/// before the fork point are answered from the journal (no model call or
/// HTTP request repeated), calls after it are made again. The new run's
/// trigger is `reset` with `rerun_of` and `reset_to` (the event its copy
/// ends at); the original lists it in `reruns`.
#[utoipa::path(post, path = "/v1/runs/{id}/reset", tag = "runs",
    params(("id" = String, Path), ResetAt),
    responses((status = 202, body = RunView), (status = 404, body = super::error::ErrorEnvelope),
        (status = 422, description = "`INVALID_RESET_POINT`: the run has no such event", body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn reset(
    state: AppStateRef,
    who: Caller,
    Path(id): Path<String>,
    Query(at): Query<ResetAt>,
) -> ApiResult<Response> {
    let original = run_for(&state, &who, &id, Scope::Execute).await?;
    let started = state.host.reset(original.id, at.to, who.label()).await?;
    let record = state.host.run_record(started.id).await?;
    let mut res = (StatusCode::ACCEPTED, Json(view(&state, record)?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/runs/{}", started.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// What a cancel did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// `cancelling`, `cancelled`, or `already_ended`.
    pub outcome: String,
    pub status: RunStatus,
}

/// Cancels a run and its children.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Cancelled), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn cancel(
    state: AppStateRef,
    Path(id): Path<String>,
    who: Caller,
) -> ApiResult<Json<Cancelled>> {
    let id = run_for(&state, &who, &id, Scope::Execute).await?.id;
    let outcome = state.host.cancel_as(id, Some(who.label())).await?;
    let (outcome, status) = match outcome {
        CancelOutcome::Cancelling => {
            // An executing run stops at its next epoch tick.
            let r = tokio::time::timeout(Duration::from_secs(1), state.host.wait(id)).await;
            let status = match r {
                Ok(Ok(r)) => r.status,
                _ => RunStatus::Cancelling,
            };
            ("cancelling", status)
        }
        CancelOutcome::Cancelled => ("cancelled", RunStatus::Cancelled),
        CancelOutcome::AlreadyEnded(s) => ("already_ended", s),
    };
    Ok(Json(Cancelled {
        run_id: id,
        outcome: outcome.to_owned(),
        status,
    }))
}

/// Where a signal landed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignalReceipt {
    /// Position in the run's inbox.
    pub seq: u64,
    /// A signal with the same `Signal-Id` was delivered before; this one was dropped.
    pub duplicate: bool,
}

/// Sends a signal to a run. The body is the signal's data (JSON; empty
/// means `null`); `Signal-Id` deduplicates redeliveries.
#[utoipa::path(post, path = "/v1/runs/{id}/signals/{name}", tag = "runs",
    params(("id" = String, Path), ("name" = String, Path),
        ("Signal-Id" = Option<String>, Header, description = "a repeated id is dropped")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 202, body = SignalReceipt), (status = 200, body = SignalReceipt, description = "duplicate"),
        (status = 404, body = super::error::ErrorEnvelope), (status = 409, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn signal(
    state: AppStateRef,
    Path((id, name)): Path<(String, String)>,
    who: Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<SignalReceipt>)> {
    let id = run_for(&state, &who, &id, Scope::Execute).await?.id;
    let data = json(&headers, &body, serde_json::Value::Null)?;
    let signal_id = match headers.get("signal-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("INVALID_SIGNAL_ID", "Signal-Id must be ASCII"))?
                .to_owned(),
        ),
    };
    let receipt = state
        .host
        .signal_as(id, &name, data, signal_id, Some(who.label()))
        .await?;
    let status = if receipt.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(SignalReceipt {
            seq: receipt.seq,
            duplicate: receipt.duplicate,
        }),
    ))
}

/// What a deletion removed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// Runs deleted: this one and every run below it.
    pub runs: u64,
}

/// Deletes an ended run with its children (events, journal, signals,
/// idempotency keys, artifacts). Refused while the run or a descendant
/// has not ended.
#[utoipa::path(delete, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = super::error::ErrorEnvelope),
        (status = 409, description = "RUN_ACTIVE", body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn delete(
    state: AppStateRef,
    Path(id): Path<String>,
    who: Caller,
) -> ApiResult<Json<Deleted>> {
    let id = run_for(&state, &who, &id, Scope::Admin).await?.id;
    let runs = state.host.delete_run(id).await?;
    Ok(Json(Deleted { run_id: id, runs }))
}

/// Deletes ended root runs (each with its children): those that ended
/// longer ago than `older_than`, and/or all but the newest
/// `keep_per_workflow` of each workflow. `dry_run` only counts them.
#[utoipa::path(post, path = "/v1/runs/purge", tag = "runs",
    request_body = crate::host::PurgeRequest,
    responses((status = 200, body = crate::host::PurgeReport),
        (status = 422, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn purge(
    state: AppStateRef,
    who: Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Json<crate::host::PurgeReport>> {
    who.need(Scope::Admin)?;
    let request = json(&headers, &body, serde_json::json!({}))?;
    let request: crate::host::PurgeRequest = serde_json::from_value(request)
        .map_err(|e| crate::error::HostError::InvalidInput(e.to_string()))?;
    Ok(Json(state.host.purge(&request).await?))
}
