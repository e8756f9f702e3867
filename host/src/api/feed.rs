//! `GET /v1/runs/stream`: every run's lifecycle changes as they become
//! durable, over SSE — what the console's runs list follows.
//!
//! One hub per server reads each changed run once (from the store's feed of
//! durable commits, which on PostgreSQL covers every host) and hands the
//! same serialized change to every subscriber, which filters it. The hub
//! keeps the newest changes so that a client that reconnects with
//! `Last-Event-ID` misses nothing; one that was away too long (or fell
//! behind) is sent `reset` and reads the list afresh.

use super::AppStateRef;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::Host;
use crate::config::Scope;
use crate::types::{RunId, RunRecord, RunStatus, Timestamp, Wait};
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Changes kept for clients that reconnect.
const KEPT: usize = 16_384;

/// How often the hub makes what is committed durable while anyone
/// listens: a change reaches consoles within this (plus a commit).
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// A run as the runs list shows it (no input or output: those can be
/// large).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    #[schema(value_type = String)]
    pub id: RunId,
    pub workflow: String,
    pub version: u32,
    pub status: RunStatus,
    /// The status the feed last showed for it (absent for a run it had
    /// not shown): a client filtering by status sees runs leave too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<RunStatus>,
    #[schema(value_type = Option<String>)]
    pub parent: Option<RunId>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The error code of a failed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub wait: Option<Wait>,
}

impl RunSummary {
    pub fn of(run: &RunRecord) -> RunSummary {
        RunSummary {
            id: run.id,
            workflow: run.workflow.clone(),
            version: run.version,
            status: run.status,
            previous: None,
            parent: run.parent,
            created_at: run.created_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            error_code: run.error.as_ref().map(|e| e.code.as_str().to_owned()),
            wait: run.wait.clone(),
        }
    }
}

/// One change, serialized once for every subscriber.
#[derive(Debug)]
struct Change {
    /// Its place in this server's feed.
    cursor: u64,
    workflow: String,
    status: RunStatus,
    previous: Option<RunStatus>,
    json: String,
}

/// What a subscriber is sent.
#[derive(Clone, Debug)]
enum Item {
    Change(Arc<Change>),
    /// Changes were missed: read the list afresh.
    Reset,
}

/// The feed's hub (one per server, started by the first subscriber).
pub struct RunFeed {
    /// Names this process's cursors: a cursor from another process (a
    /// restart, another host) cannot be resumed.
    epoch: String,
    tx: broadcast::Sender<Item>,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    started: bool,
    next_cursor: u64,
    kept: VecDeque<Arc<Change>>,
}

impl Default for RunFeed {
    fn default() -> Self {
        RunFeed {
            epoch: ulid::Ulid::new().to_string().to_lowercase(),
            tx: broadcast::channel(4096).0,
            state: Mutex::new(HubState {
                next_cursor: 1,
                ..HubState::default()
            }),
        }
    }
}

impl RunFeed {
    /// Subscribes; starts the hub on `host` the first time.
    fn subscribe(self: &Arc<Self>, host: &Host) -> broadcast::Receiver<Item> {
        let rx = self.tx.subscribe();
        let mut state = self.state.lock();
        if !std::mem::replace(&mut state.started, true) {
            let hub = self.clone();
            let host = host.clone();
            tokio::spawn(async move { hub.run(host).await });
        }
        rx
    }

    /// Moves on with every change the feed publishes: what was computed
    /// from the runs at one version is stale at another.
    pub fn version(&self) -> u64 {
        self.state.lock().next_cursor
    }

    /// Changes after `cursor` still kept, or `None` if some are gone.
    fn since(&self, cursor: u64) -> Option<Vec<Arc<Change>>> {
        let state = self.state.lock();
        let oldest = state.kept.front().map_or(state.next_cursor, |c| c.cursor);
        if cursor + 1 < oldest || cursor >= state.next_cursor {
            return None;
        }
        Some(
            state
                .kept
                .iter()
                .filter(|c| c.cursor > cursor)
                .cloned()
                .collect(),
        )
    }

    /// Reads each run the store says changed, and publishes those whose
    /// status the feed has not shown yet.
    async fn run(self: Arc<Self>, host: Host) {
        let mut source = host.store().feed();
        // The status last shown of each run not ended.
        let mut shown: HashMap<RunId, RunStatus> = HashMap::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let runs: Vec<RunId> = tokio::select! {
                got = source.recv() => match got {
                    Ok(appended) => appended.iter().map(|(run, _)| *run).collect(),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        shown.clear();
                        let _ = self.tx.send(Item::Reset);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if self.tx.receiver_count() > 0 {
                        // Commits that did not need an fsync become durable
                        // (and so shown) now; a clean store costs nothing.
                        let _ = host.flush().await;
                    }
                    continue;
                }
            };
            for run in runs {
                let record = match host.store().run(run) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(%run, error = %e, "the runs feed could not read a run");
                        continue;
                    }
                };
                let previous = if record.status.is_terminal() {
                    shown.remove(&run)
                } else {
                    shown.insert(run, record.status)
                };
                if previous == Some(record.status) {
                    continue;
                }
                self.publish(&record, previous);
            }
        }
    }

    fn publish(&self, record: &RunRecord, previous: Option<RunStatus>) {
        let mut summary = RunSummary::of(record);
        summary.previous = previous;
        let Ok(json) = serde_json::to_string(&summary) else {
            return;
        };
        let mut state = self.state.lock();
        let change = Arc::new(Change {
            cursor: state.next_cursor,
            workflow: summary.workflow,
            status: summary.status,
            previous,
            json,
        });
        state.next_cursor += 1;
        if state.kept.len() == KEPT {
            state.kept.pop_front();
        }
        state.kept.push_back(change.clone());
        // Sent under the lock, so a subscriber that read `kept` sees every
        // later change on its receiver, in order.
        let _ = self.tx.send(Item::Change(change));
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct FeedQuery {
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only changes into or out of these statuses (comma-separated).
    status: Option<String>,
}

/// Which changes a subscriber wants.
struct Filter {
    workflow: Option<String>,
    statuses: Vec<RunStatus>,
}

impl Filter {
    fn wants(&self, c: &Change) -> bool {
        self.workflow.as_ref().is_none_or(|w| *w == c.workflow)
            && (self.statuses.is_empty()
                || self.statuses.contains(&c.status)
                || c.previous.is_some_and(|p| self.statuses.contains(&p)))
    }
}

/// Every run's status changes as they become durable: `event: run` with a
/// run summary (`previous` says the status it left), `id` a cursor to
/// resume from with `Last-Event-ID`; `event: reset` when changes were
/// missed (the client reads `/v1/runs` again). The runs list's live feed.
#[utoipa::path(get, path = "/v1/runs/stream", tag = "runs", params(FeedQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this change")),
    responses((status = 200, content_type = "text/event-stream", description = "`run` events carrying a RunSummary; `reset`"),
        (status = 400, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn stream(
    state: AppStateRef,
    Query(q): Query<FeedQuery>,
    who: Caller,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    super::runs::need_on(&who, Scope::Read, q.workflow.as_deref())?;
    let statuses = q
        .status
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<RunStatus>()
                .map_err(|e| ApiError::bad_request("INVALID_STATUS", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let filter = Filter {
        workflow: q.workflow.filter(|w| !w.is_empty()),
        statuses,
    };
    let feed = state.feed.clone();
    let mut rx = feed.subscribe(&state.host);
    // Resume: the changes kept since the client's cursor, or a reset.
    let mut first: Vec<Item> = Vec::new();
    let mut after = 0;
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        let resumed = last
            .split_once('.')
            .filter(|(epoch, _)| *epoch == feed.epoch)
            .and_then(|(_, c)| c.parse::<u64>().ok())
            .and_then(|c| feed.since(c).map(|kept| (c, kept)));
        match resumed {
            Some((c, kept)) => {
                after = c;
                first.extend(kept.into_iter().map(Item::Change));
            }
            None => first.push(Item::Reset),
        }
    }
    let epoch = feed.epoch.clone();
    let mut closing = state.closing.clone();
    let stream = async_stream(move |emit| async move {
        let send = |item: &Item, after: &mut u64| -> Option<SseEvent> {
            match item {
                Item::Reset => Some(SseEvent::default().event("reset").data("{}")),
                Item::Change(c) if c.cursor > *after => {
                    *after = c.cursor;
                    filter.wants(c).then(|| {
                        SseEvent::default()
                            .event("run")
                            .id(format!("{epoch}.{}", c.cursor))
                            .data(c.json.clone())
                    })
                }
                Item::Change(_) => None,
            }
        };
        for item in &first {
            if let Some(e) = send(item, &mut after)
                && emit.send(e).await.is_err()
            {
                return;
            }
        }
        loop {
            let item = tokio::select! {
                got = rx.recv() => match got {
                    Ok(item) => item,
                    Err(broadcast::error::RecvError::Lagged(_)) => Item::Reset,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = closing.wait_for(|c| *c) => return,
                // The client went away while nothing changed.
                _ = emit.closed() => return,
            };
            if let Some(e) = send(&item, &mut after)
                && emit.send(e).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A stream fed by `body` through a small channel: the body ends when the
/// client goes away (its sends fail).
fn async_stream<F, Fut>(body: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<SseEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(body(tx));
    futures_util::StreamExt::map(tokio_stream_of(rx), Ok)
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        cursor: u64,
        workflow: &str,
        status: RunStatus,
        previous: Option<RunStatus>,
    ) -> Change {
        Change {
            cursor,
            workflow: workflow.into(),
            status,
            previous,
            json: String::new(),
        }
    }

    #[test]
    fn a_status_filter_sees_runs_enter_and_leave() {
        let f = Filter {
            workflow: Some("steps".into()),
            statuses: vec![RunStatus::Running],
        };
        assert!(f.wants(&change(
            1,
            "steps",
            RunStatus::Running,
            Some(RunStatus::Queued)
        )));
        assert!(f.wants(&change(
            2,
            "steps",
            RunStatus::Completed,
            Some(RunStatus::Running)
        )));
        assert!(!f.wants(&change(
            3,
            "steps",
            RunStatus::Completed,
            Some(RunStatus::Queued)
        )));
        assert!(!f.wants(&change(4, "hello", RunStatus::Running, None)));
    }

    #[test]
    fn only_kept_changes_resume() {
        let feed = RunFeed::default();
        {
            let mut s = feed.state.lock();
            for c in 1..=3 {
                s.kept
                    .push_back(Arc::new(change(c, "w", RunStatus::Running, None)));
            }
            s.next_cursor = 4;
        }
        let cursors =
            |v: Option<Vec<Arc<Change>>>| v.map(|v| v.iter().map(|c| c.cursor).collect::<Vec<_>>());
        assert_eq!(cursors(feed.since(1)), Some(vec![2, 3]));
        assert_eq!(cursors(feed.since(0)), Some(vec![1, 2, 3]));
        assert_eq!(cursors(feed.since(3)), Some(vec![]));
        // From the future (another process's cursor): not resumable.
        assert_eq!(cursors(feed.since(9)), None);
        feed.state.lock().kept.pop_front();
        // Change 1 is gone: a client that saw none cannot resume.
        assert_eq!(cursors(feed.since(0)), None);
    }
}
