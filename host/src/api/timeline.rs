//! `GET /v1/runs/{id}/timeline`: a run's life as spans (queued, running,
//! sleeping, waiting) with its host calls as marks, computed here from the
//! event log so that the console draws it without replaying events.

use super::AppStateRef;
use super::auth::Caller;
use super::error::ApiResult;
use super::runs::run_for;
use crate::config::Scope;
use crate::types::{Event, EventBody, LogLevel, RunStatus, Timestamp};
use axum::Json;
use axum::extract::Path;
use serde::Serialize;

/// Most marks a timeline carries; the rest are counted in `more_marks`.
const MAX_MARKS: usize = 2_000;

/// Events read per page while building a timeline.
const PAGE: usize = 1_000;

/// What a run was doing from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Span {
    /// `queued`, `running`, `sleeping`, `waiting_signal`, `waiting_child`
    /// or `waiting_approval`.
    pub state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    /// Absent while the span goes on.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// What it waited for (a signal's name, a child run, a timer's end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A host call or another moment worth marking on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Mark {
    /// The event it comes from.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The event's kind (`model_call`, `http_call`, `artifact_written`,
    /// `signal_received`, `child_started`, `budget_exceeded`, `log`,
    /// `custom`, `failed`).
    pub kind: &'static str,
    /// One line saying what happened.
    pub label: String,
    /// The call failed (or the log line is an error).
    pub error: bool,
}

/// A run's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub status: RunStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// When the run ended; absent while it goes on.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end: Option<Timestamp>,
    /// The server's clock: where a live timeline ends now.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub now: Timestamp,
    pub spans: Vec<Span>,
    pub marks: Vec<Mark>,
    /// Marks left out past the first 2,000.
    pub more_marks: u64,
    /// The newest event the timeline covers.
    pub last_seq: u64,
}

/// Builds a timeline from events in order.
#[derive(Default)]
struct Builder {
    spans: Vec<Span>,
    marks: Vec<Mark>,
    more_marks: u64,
    last_seq: u64,
    end: Option<Timestamp>,
}

impl Builder {
    fn enter(&mut self, state: &'static str, at: Timestamp, detail: Option<String>) {
        if let Some(open) = self.spans.last_mut().filter(|s| s.to.is_none()) {
            if open.state == state && detail.is_none() {
                return;
            }
            open.to = Some(at);
        }
        self.spans.push(Span {
            state,
            from: at,
            to: None,
            detail,
        });
    }

    fn mark(&mut self, e: &Event, label: String, error: bool) {
        if self.marks.len() >= MAX_MARKS {
            self.more_marks += 1;
            return;
        }
        self.marks.push(Mark {
            seq: e.seq,
            at: e.at,
            kind: e.body.kind(),
            label,
            error,
        });
    }

    fn add(&mut self, e: &Event) {
        self.last_seq = e.seq;
        let parked = self
            .spans
            .last()
            .is_some_and(|s| s.to.is_none() && s.state != "running");
        match &e.body {
            EventBody::Queued { .. } => self.enter("queued", e.at, None),
            EventBody::Running => self.enter("running", e.at, None),
            EventBody::Sleeping { until_ms } => {
                let until = Timestamp::from_unix_timestamp_nanos(*until_ms as i128 * 1_000_000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    });
                self.enter("sleeping", e.at, until.map(|u| format!("until {u}")));
            }
            EventBody::Retrying { attempt, code, .. } => {
                // The failed attempt is a mark; the wait for the next one a
                // span of its own.
                self.mark(e, format!("attempt {} failed: {code}", attempt - 1), true);
                self.enter("retrying", e.at, Some(format!("attempt {attempt}")));
            }
            EventBody::WaitingSignal { name, .. } => {
                self.enter("waiting_signal", e.at, Some(format!("signal {name}")));
            }
            EventBody::WaitingChild { run } => {
                self.enter("waiting_child", e.at, Some(run.to_string()));
            }
            EventBody::WaitingApproval { name, .. } => {
                self.enter("waiting_approval", e.at, Some(format!("approval {name}")));
            }
            EventBody::Completed | EventBody::Cancelled { .. } | EventBody::Failed { .. } => {
                if let Some(open) = self.spans.last_mut().filter(|s| s.to.is_none()) {
                    open.to = Some(e.at);
                }
                self.end = Some(e.at);
                if let EventBody::Failed { code, message } = &e.body {
                    let headline = message.lines().next().unwrap_or("");
                    self.mark(e, format!("{} {headline}", code.as_str()), true);
                }
            }
            body => {
                // Only a running run calls the host: a call after a park
                // means it runs again (older logs have no `running` then).
                if parked {
                    self.enter("running", e.at, None);
                }
                if let Some((label, error)) = label(body) {
                    self.mark(e, label, error);
                }
            }
        }
    }
}

/// The mark an event makes, if any.
fn label(body: &EventBody) -> Option<(String, bool)> {
    Some(match body {
        EventBody::ModelCall {
            model,
            input_tokens,
            output_tokens,
            cost_usd,
            latency_ms,
            error,
            tool_calls,
            ..
        } => (
            format!(
                "{model}: {input_tokens} in / {output_tokens} out tokens, ${cost_usd}, {latency_ms} ms{}{}",
                error
                    .as_ref()
                    .map_or(String::new(), |f| format!(" ({})", f.code)),
                if tool_calls.is_empty() {
                    String::new()
                } else {
                    format!(" → calls {}", tool_calls.join(", "))
                }
            ),
            error.is_some(),
        ),
        EventBody::HttpCall {
            method,
            url,
            status,
            duration_ms,
            error,
            ..
        } => (
            format!(
                "{method} {url} → {}, {duration_ms} ms",
                match (status, error) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(f)) => f.code.clone(),
                    (None, None) => "refused".into(),
                }
            ),
            error.is_some() || status.is_none_or(|s| s >= 400),
        ),
        EventBody::ToolCall {
            server,
            tool,
            duration_ms,
            outcome,
            ..
        } => (
            format!("{server}/{tool} → {outcome}, {duration_ms} ms"),
            outcome != "ok",
        ),
        EventBody::ArtifactWritten {
            name,
            size,
            content_type,
            ..
        } => (format!("{name} ({content_type}, {size} bytes)"), false),
        EventBody::SignalReceived { name, .. } => (format!("signal {name}"), false),
        EventBody::ApprovalRequested { name, prompt, .. } => {
            (format!("approval {name} asked: {prompt}"), false)
        }
        EventBody::ApprovalDecided { name, decision } => (
            match &decision.by {
                Some(by) => format!("approval {name} decided by {by}"),
                None => format!("approval {name} timed out"),
            },
            false,
        ),
        EventBody::ChildStarted { run, workflow } => (format!("{workflow} {run}"), false),
        EventBody::BudgetExceeded {
            budget,
            limit,
            unit,
            ..
        } => (
            format!("{budget:?} budget of {limit} {unit} exceeded"),
            true,
        ),
        EventBody::Log { level, message } if matches!(level, LogLevel::Warn | LogLevel::Error) => {
            let line: String = message.chars().take(200).collect();
            (line, *level == LogLevel::Error)
        }
        EventBody::Custom { name, .. } => (name.clone(), false),
        _ => return None,
    })
}

/// A run's life as spans and marks, live while it goes on (ask again after
/// each event the run's stream brings).
#[utoipa::path(get, path = "/v1/runs/{id}/timeline", tag = "events", params(("id" = String, Path)),
    responses((status = 200, body = Timeline), (status = 404, body = super::error::ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn get(
    state: AppStateRef,
    Path(id): Path<String>,
    who: Caller,
) -> ApiResult<Json<Timeline>> {
    let run = run_for(&state, &who, &id, Scope::Read).await?;
    let id = run.id;
    if !run.status.is_terminal() {
        // Only durable events are shown.
        state.host.flush().await?;
    }
    let mut b = Builder::default();
    loop {
        let events = state.host.events(id, b.last_seq, PAGE)?;
        for e in &events {
            b.add(e);
        }
        if events.len() < PAGE {
            break;
        }
    }
    Ok(Json(Timeline {
        status: run.status,
        start: run.created_at,
        end: b
            .end
            .or(run.finished_at.filter(|_| run.status.is_terminal())),
        now: crate::types::now(),
        spans: b.spans,
        marks: b.marks,
        more_marks: b.more_marks,
        last_seq: b.last_seq,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{RunId, now};

    fn at(ms: i64) -> Timestamp {
        now().replace_nanosecond(0).unwrap() + time::Duration::milliseconds(ms)
    }

    fn event(seq: u64, ms: i64, body: EventBody) -> Event {
        Event {
            seq,
            at: at(ms),
            body,
        }
    }

    #[test]
    fn parks_and_calls_make_spans_and_marks() {
        let child = RunId::generate();
        let events = [
            event(
                1,
                0,
                EventBody::Queued {
                    workflow: "w".into(),
                    version: 1,
                },
            ),
            event(2, 10, EventBody::Running),
            event(
                3,
                20,
                EventBody::ChildStarted {
                    run: child,
                    workflow: "hello".into(),
                },
            ),
            event(4, 30, EventBody::WaitingChild { run: child }),
            // A resumed run from before `running` was written on resume.
            event(
                5,
                90,
                EventBody::Log {
                    level: LogLevel::Error,
                    message: "oops".into(),
                },
            ),
            event(
                6,
                95,
                EventBody::Log {
                    level: LogLevel::Info,
                    message: "fine".into(),
                },
            ),
            event(7, 100, EventBody::Completed),
        ];
        let mut b = Builder::default();
        for e in &events {
            b.add(e);
        }
        let states: Vec<_> = b.spans.iter().map(|s| (s.state, s.from, s.to)).collect();
        assert_eq!(
            states,
            vec![
                ("queued", at(0), Some(at(10))),
                ("running", at(10), Some(at(30))),
                ("waiting_child", at(30), Some(at(90))),
                ("running", at(90), Some(at(100))),
            ]
        );
        assert_eq!(b.spans[2].detail, Some(child.to_string()));
        let marks: Vec<_> = b.marks.iter().map(|m| (m.seq, m.kind, m.error)).collect();
        assert_eq!(marks, vec![(3, "child_started", false), (5, "log", true)]);
        assert_eq!(b.end, Some(at(100)));
        assert_eq!(b.last_seq, 7);
    }

    #[test]
    fn marks_past_the_cap_are_counted() {
        let mut b = Builder::default();
        for seq in 1..=(MAX_MARKS as u64 + 5) {
            b.add(&event(
                seq,
                0,
                EventBody::SignalReceived {
                    name: "x".into(),
                    signal_seq: seq,
                    by: None,
                },
            ));
        }
        assert_eq!(b.marks.len(), MAX_MARKS);
        assert_eq!(b.more_marks, 5);
    }
}
