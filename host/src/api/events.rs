//! `/v1/runs/{id}/events`: pages, and a Server-Sent Events stream that
//! resumes from `Last-Event-ID` and ends after the run's terminal event.
//! Both show only durable events (the commit rule): a page first makes
//! what is committed durable; a stream follows the run, which makes the
//! store fsync every batch that appends to it.

use super::AppStateRef;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::runs::run_for;
use crate::config::Scope;
use crate::types::{Event, RunId};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;

/// Events per read while streaming.
const STREAM_CHUNK: usize = 512;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Only events with a larger `seq` (default 0).
    after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// A page of a run's events.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` for the next page.
    pub next_after: u64,
    /// The run has ended and this page reaches its last event.
    pub complete: bool,
}

fn is_terminal(e: &Event) -> bool {
    matches!(e.body.kind(), "completed" | "failed" | "cancelled")
}

/// A page of a run's events, in order.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "events",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = EventPage), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn page(
    state: AppStateRef,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
    who: Caller,
) -> ApiResult<Json<EventPage>> {
    let run = run_for(&state, &who, &id, Scope::Read).await?;
    let id = run.id;
    if !run.status.is_terminal() {
        state.host.flush().await?;
    }
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = state.host.events(id, after, limit)?;
    let next_after = events.last().map_or(after, |e| e.seq);
    let complete =
        events.last().is_some_and(is_terminal) || (events.is_empty() && run.status.is_terminal());
    Ok(Json(EventPage {
        events,
        next_after,
        complete,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StreamQuery {
    /// Start after this `seq` (`Last-Event-ID` wins if both are given).
    after: Option<u64>,
}

/// The run's events as Server-Sent Events: `id` is the event's `seq`,
/// `event` its kind, `data` the event as JSON. Keep-alive comments every
/// 15 s; the stream ends after the terminal event.
#[utoipa::path(get, path = "/v1/runs/{id}/events/stream", tag = "events",
    params(("id" = String, Path), StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this seq")),
    responses((status = 200, content_type = "text/event-stream", description = "the event stream"),
        (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn stream(
    state: AppStateRef,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
    who: Caller,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let id = run_for(&state, &who, &id, Scope::Read).await?.id;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "INVALID_LAST_EVENT_ID",
                        "Last-Event-ID must be an event seq",
                    )
                })?,
        ),
    };
    state.host.run_record(id).await?;
    let after = last_event_id.or(q.after).unwrap_or(0);
    // Follow first, then make everything committed so far durable: from
    // here on, every batch touching this run is fsynced before it is seen.
    let follow = state.host.follow(id);
    state.host.flush().await?;
    let host = state.host.clone();
    let stream = futures_util::stream::unfold(
        Tail {
            host,
            run: id,
            after,
            follow,
            closing: state.closing.clone(),
            done: false,
            ended: false,
        },
        |mut tail| async move {
            let batch = tail.next().await?;
            Some((futures_util::stream::iter(batch), tail))
        },
    );
    let stream = futures_util::StreamExt::flatten(stream);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Where a stream stands.
struct Tail {
    host: crate::Host,
    run: RunId,
    after: u64,
    follow: tokio::sync::watch::Receiver<u64>,
    /// The server is shutting down: the stream ends (clients resume with
    /// `Last-Event-ID` on the next server).
    closing: tokio::sync::watch::Receiver<bool>,
    done: bool,
    /// The run was seen ended once; the next empty read ends the stream.
    ended: bool,
}

impl Tail {
    /// The next events to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Vec<Result<SseEvent, Infallible>>> {
        if self.done || *self.closing.borrow() {
            return None;
        }
        loop {
            self.follow.borrow_and_update();
            let events = match self.host.events(self.run, self.after, STREAM_CHUNK) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(run = %self.run, error = %e, "reading events for a stream");
                    return None;
                }
            };
            if !events.is_empty() {
                let mut out = Vec::with_capacity(events.len());
                for e in &events {
                    self.after = e.seq;
                    if is_terminal(e) {
                        self.done = true;
                    }
                    let data = serde_json::to_string(e).unwrap_or_default();
                    out.push(Ok(SseEvent::default()
                        .id(e.seq.to_string())
                        .event(e.body.kind())
                        .data(data)));
                }
                return Some(out);
            }
            // Nothing new: a run that has ended has nothing more to say —
            // once its last events are read (they may have landed between
            // the two reads, which are separate snapshots).
            match self.host.status(self.run) {
                Ok(Some(s)) if s.is_terminal() => {
                    if std::mem::replace(&mut self.ended, true) {
                        return None;
                    }
                    continue;
                }
                Ok(Some(_)) => {}
                _ => return None,
            }
            // Woken by the next durable append; a timeout re-checks in case
            // the run ended through a path that appends nothing new.
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(5), self.follow.changed()) => {}
                _ = self.closing.changed() => return None,
            }
        }
    }
}
