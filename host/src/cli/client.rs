//! A small typed client for Runway's HTTP API (`runway serve`), used by the
//! CLI's `--server URL --token T` mode.
//!
//! Every method is one API call (or a short loop of them: paging, polling,
//! reconnecting a stream). Failures are [`ClientError`]s: the server's
//! `{"error":{"code","message"}}` envelope becomes [`ClientError::Api`];
//! transport failures name the server's `host:port`, never the token.
//!
//! The API never shows a run's random seed, so run records read through
//! this client carry an all-zero [`RunRecord::seed`].

use crate::types::{
    Approval, ArtifactMeta, AuditEntry, Choice, Decision, Event, RunId, RunRecord, RunStatus,
    WorkflowVersion,
};
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Reconnects `follow` makes in a row without receiving a new event.
const FOLLOW_RETRIES: u32 = 5;
/// Pause before each reconnect.
const FOLLOW_BACKOFF: Duration = Duration::from_millis(200);
/// The API's largest page of runs and of events.
const MAX_PAGE: usize = 1000;
/// Longest body excerpt kept in an error that is not an envelope.
const EXCERPT_CHARS: usize = 200;
/// Longest SSE line buffered while waiting for its end.
const MAX_SSE_LINE: usize = 64 << 20;
/// Shortest interval `wait` polls at.
const MIN_POLL: Duration = Duration::from_millis(10);
/// Stands in for the seed the API hides: 32 zero bytes, hex.
const HIDDEN_SEED: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the connection failed. The
    /// message names the server's `host:port` (never the token).
    #[error("{0}")]
    Http(String),
    /// The server answered with an error. `code` and `message` come from
    /// its envelope; a body that is not one gives `HTTP_<status>` and a
    /// short excerpt of the body.
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server's answer was not what this client expects.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// Writing a download failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// A stable code: the API's code for [`ClientError::Api`], otherwise
    /// `HTTP`, `DECODE` or `IO`.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Http(_) => "HTTP",
            ClientError::Api { code, .. } => code,
            ClientError::Decode(_) => "DECODE",
            ClientError::Io(_) => "IO",
        }
    }
}

/// A run as the API's `GET /v1/runs/{id}` answers it.
#[derive(Clone, Debug)]
pub struct RunView {
    /// The answer as sent: the record without its seed, with `children`.
    pub json: serde_json::Value,
    /// The record, with an all-zero seed.
    pub record: RunRecord,
    /// The runs it started, oldest first.
    pub children: Vec<RunId>,
}

/// What deciding an approval did (`POST /v1/runs/{id}/approvals/{name}`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Decided {
    #[serde(flatten)]
    pub decision: Decision,
    /// The approval had been decided this way before: nothing changed.
    #[serde(default)]
    pub duplicate: bool,
}

/// Which approvals [`Client::approvals`] lists.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApprovalQuery<'a> {
    /// `pending`, `decided` or `timed_out`.
    pub status: Option<&'a str>,
    pub workflow: Option<&'a str>,
    pub run: Option<RunId>,
    /// Only those the caller may decide.
    pub mine: bool,
}

/// A connection to one Runway server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    /// Scheme, authority and optional path prefix, without a trailing slash.
    base: String,
    /// `host:port`, for error messages.
    authority: String,
    /// Sent as `Authorization: Bearer <token>`.
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client for the server at `base` (`http://` or `https://`, with an
    /// optional path prefix), authenticating with `token` if given.
    pub fn new(base: &str, token: Option<String>) -> Result<Client, ClientError> {
        let base = base.trim().trim_end_matches('/');
        let lower = base.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(ClientError::Http(format!(
                "the server URL must start with http:// or https://, got {base:?}"
            )));
        }
        let url = reqwest::Url::parse(base)
            .map_err(|e| ClientError::Http(format!("not a server URL: {base:?}: {e}")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ClientError::Http(format!("the server URL has no host: {base:?}")))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ClientError::Http(format!(
                "the server URL may not have a query or fragment: {base:?}"
            )));
        }
        let authority = match url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if let Some(t) = &token
            && !t.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ClientError::Http(
                "the token must be visible ASCII characters".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("runway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http(format!("setting up the HTTP client: {e}")))?;
        Ok(Client {
            base: base.to_owned(),
            authority,
            token,
            http,
        })
    }

    /// Deploys `wasm` with its manifest (TOML) as the next version of
    /// `slug`: `{slug, version, digest, created}`.
    pub async fn deploy(
        &self,
        slug: &str,
        wasm: Vec<u8>,
        manifest_toml: String,
        verify: bool,
    ) -> Result<serde_json::Value, ClientError> {
        let component = reqwest::multipart::Part::bytes(wasm)
            .file_name("component.wasm")
            .mime_str("application/wasm")
            .map_err(|e| self.transport(e))?;
        let manifest = reqwest::multipart::Part::text(manifest_toml)
            .file_name("runway.toml")
            .mime_str("application/toml")
            .map_err(|e| self.transport(e))?;
        let form = reqwest::multipart::Form::new()
            .part("component", component)
            .part("manifest", manifest);
        let path = format!("/v1/workflows/{}", encode_segment(slug));
        let mut rb = self.request(Method::PUT, &path).multipart(form);
        if verify {
            rb = rb.query(&[("verify", "100")]);
        }
        let res = self.send(rb).await?;
        self.decode(res, "a deploy").await
    }

    /// The newest version of every deployed workflow.
    /// Whether the server can take work (`GET /readyz`, within 5 s).
    pub async fn ready(&self) -> Result<(), ClientError> {
        let request = self
            .request(Method::GET, "/readyz")
            .timeout(Duration::from_secs(5));
        let res = self.send(request).await?;
        let _: serde_json::Value = self.decode(res, "the readiness answer").await?;
        Ok(())
    }

    pub async fn workflows(&self) -> Result<Vec<WorkflowVersion>, ClientError> {
        let res = self
            .send(self.request(Method::GET, "/v1/workflows"))
            .await?;
        self.decode(res, "the workflow list").await
    }

    /// A workflow's cron triggers.
    pub async fn cron(
        &self,
        slug: &str,
    ) -> Result<Vec<crate::triggers::cron::CronView>, ClientError> {
        let path = format!("/v1/workflows/{}/cron", encode_segment(slug));
        let res = self.send(self.request(Method::GET, &path)).await?;
        self.decode(res, "the cron triggers").await
    }

    /// `pause`, `resume` or `fire` cron trigger `index` of `slug`.
    pub async fn cron_action(
        &self,
        slug: &str,
        index: usize,
        action: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let path = format!(
            "/v1/workflows/{}/cron/{index}/{action}",
            encode_segment(slug)
        );
        let res = self.send(self.request(Method::POST, &path)).await?;
        self.decode(res, "a cron action").await
    }

    /// The server's configured models.
    pub async fn models(&self) -> Result<Vec<crate::models::Listing>, ClientError> {
        let res = self.send(self.request(Method::GET, "/v1/models")).await?;
        self.decode(res, "the model list").await
    }

    /// Starts a run of the newest version of `slug` with `input`. With
    /// `wait_secs` the server holds the answer until the run ends or that
    /// many seconds (at most 300) pass; `idempotency_key` makes a repeat
    /// start with the same input return the same run.
    pub async fn start(
        &self,
        slug: &str,
        input: &serde_json::Value,
        wait_secs: Option<f64>,
        idempotency_key: Option<&str>,
    ) -> Result<RunRecord, ClientError> {
        let path = format!("/v1/workflows/{}/runs", encode_segment(slug));
        let mut rb = self.json_body(self.request(Method::POST, &path), input)?;
        if let Some(w) = wait_secs {
            rb = rb.query(&[("wait", w.to_string())]);
        }
        if let Some(k) = idempotency_key {
            rb = rb.header("Idempotency-Key", k);
        }
        let res = self.send(rb).await?;
        let value = self.decode(res, "a started run").await?;
        record_from(value)
    }

    /// A run as it is now.
    pub async fn run(&self, id: RunId) -> Result<RunRecord, ClientError> {
        let res = self
            .send(self.request(Method::GET, &format!("/v1/runs/{id}")))
            .await?;
        let value = self.decode(res, "a run").await?;
        record_from(value)
    }

    /// A run as `GET /v1/runs/{id}` shows it: the JSON as sent, and the
    /// record and children's ids read from it.
    pub async fn run_view(&self, id: RunId) -> Result<RunView, ClientError> {
        let res = self
            .send(self.request(Method::GET, &format!("/v1/runs/{id}")))
            .await?;
        let json: serde_json::Value = self.decode(res, "a run").await?;
        let children = match json.get("children") {
            Some(c) => serde_json::from_value(c.clone())
                .map_err(|e| ClientError::Decode(format!("a run's children: {e}")))?,
            None => Vec::new(),
        };
        let record = record_from(json.clone())?;
        Ok(RunView {
            json,
            record,
            children,
        })
    }

    /// Polls the run every `poll` until it has ended or waits for a signal
    /// or an approval (which only someone else can give), and returns it
    /// then.
    pub async fn wait(&self, id: RunId, poll: Duration) -> Result<RunRecord, ClientError> {
        loop {
            let run = self.run(id).await?;
            if run.status.is_terminal()
                || matches!(
                    run.status,
                    RunStatus::WaitingSignal | RunStatus::WaitingApproval
                )
            {
                return Ok(run);
            }
            tokio::time::sleep(poll.max(MIN_POLL)).await;
        }
    }

    /// Up to `limit` runs, newest first, optionally only those with
    /// `status` or of `workflow`; follows the API's pages as needed.
    pub async fn runs(
        &self,
        status: Option<RunStatus>,
        workflow: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Page {
            runs: Vec<serde_json::Value>,
            next_cursor: Option<String>,
        }
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        while out.len() < limit {
            let mut query: Vec<(&str, String)> =
                vec![("limit", (limit - out.len()).min(MAX_PAGE).to_string())];
            if let Some(s) = status {
                query.push(("status", s.as_str().to_owned()));
            }
            if let Some(w) = workflow {
                query.push(("workflow", w.to_owned()));
            }
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let res = self
                .send(self.request(Method::GET, "/v1/runs").query(&query))
                .await?;
            let page: Page = self.decode(res, "a page of runs").await?;
            let empty = page.runs.is_empty();
            for v in page.runs {
                if out.len() == limit {
                    break;
                }
                out.push(record_from(v)?);
            }
            match page.next_cursor {
                Some(c) if !c.is_empty() && !empty => cursor = Some(c),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Every durable event of the run so far, in order.
    pub async fn events(&self, id: RunId) -> Result<Vec<Event>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Page {
            events: Vec<Event>,
            next_after: u64,
            complete: bool,
        }
        let path = format!("/v1/runs/{id}/events");
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let rb = self
                .request(Method::GET, &path)
                .query(&[("after", after), ("limit", MAX_PAGE as u64)]);
            let res = self.send(rb).await?;
            let page: Page = self.decode(res, "a page of events").await?;
            let empty = page.events.is_empty();
            out.extend(page.events);
            if page.complete || empty || page.next_after <= after {
                return Ok(out);
            }
            after = page.next_after;
        }
    }

    /// Streams the run's events after `after` (a `seq`; 0 for all), calling
    /// `on_event` for each in order, until the run's terminal event
    /// (`completed`, `failed` or `cancelled`) or until the server ends the
    /// stream with nothing more to send (the run had already ended). A
    /// connection that drops is resumed from the last event seen, up to
    /// 5 times in a row without progress, 200 ms apart. Note that a server
    /// shutting down also ends the stream: check the run if it matters.
    pub async fn follow(
        &self,
        id: RunId,
        after: u64,
        mut on_event: impl FnMut(&Event),
    ) -> Result<(), ClientError> {
        let mut last = after;
        let mut connected = false;
        let mut retries = 0u32;
        loop {
            let before = last;
            let end = self.follow_once(id, &mut last, &mut on_event).await?;
            if last > before {
                retries = 0;
            }
            let error = match end {
                StreamEnd::Terminal => return Ok(()),
                StreamEnd::Closed if last == before => return Ok(()),
                // Ended cleanly mid-run (e.g. the server is draining): pick up again.
                StreamEnd::Closed => {
                    connected = true;
                    continue;
                }
                StreamEnd::Unreachable(e) if !connected => return Err(e),
                StreamEnd::Unreachable(e) => e,
                StreamEnd::Dropped(e) => {
                    connected = true;
                    e
                }
            };
            if retries >= FOLLOW_RETRIES {
                return Err(error);
            }
            retries += 1;
            tokio::time::sleep(FOLLOW_BACKOFF).await;
        }
    }

    /// One connection of [`Client::follow`]: advances `last` past every
    /// event passed to `on_event`.
    async fn follow_once(
        &self,
        id: RunId,
        last: &mut u64,
        on_event: &mut impl FnMut(&Event),
    ) -> Result<StreamEnd, ClientError> {
        let mut rb = self
            .request(Method::GET, &format!("/v1/runs/{id}/events/stream"))
            .header(ACCEPT, "text/event-stream");
        if *last > 0 {
            rb = rb.header("Last-Event-ID", last.to_string());
        }
        let res = match rb.send().await {
            Ok(res) => res,
            Err(e) => return Ok(StreamEnd::Unreachable(self.transport(e))),
        };
        let res = self.check(res).await?;
        let mut parser = SseParser::default();
        let mut body = res.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Ok(StreamEnd::Dropped(self.transport(e))),
            };
            for data in parser.push(&chunk)? {
                let event: Event = serde_json::from_str(&data)
                    .map_err(|e| ClientError::Decode(format!("an event in the stream: {e}")))?;
                if event.seq <= *last {
                    continue; // already seen before a reconnect
                }
                *last = event.seq;
                on_event(&event);
                if matches!(event.body.kind(), "completed" | "failed" | "cancelled") {
                    return Ok(StreamEnd::Terminal);
                }
            }
        }
        Ok(StreamEnd::Closed)
    }

    /// Reruns run `id` (`POST /v1/runs/{id}/rerun`): the new run.
    pub async fn rerun(
        &self,
        id: RunId,
        input: Option<serde_json::Value>,
        latest: bool,
    ) -> Result<RunRecord, ClientError> {
        let mut body = serde_json::json!({ "latest": latest });
        if let Some(i) = input {
            body["input"] = i;
        }
        let path = format!("/v1/runs/{id}/rerun");
        let res = self
            .send(self.json_body(self.request(Method::POST, &path), &body)?)
            .await?;
        record_from(self.decode(res, "a rerun").await?)
    }

    /// Forks run `id` after event `to` (`POST /v1/runs/{id}/reset`): the
    /// new run.
    pub async fn reset(&self, id: RunId, to: u64) -> Result<RunRecord, ClientError> {
        let path = format!("/v1/runs/{id}/reset");
        let rb = self.request(Method::POST, &path).query(&[("to", to)]);
        let res = self.send(rb).await?;
        record_from(self.decode(res, "a reset").await?)
    }

    /// Asks for the run (and its children) to be cancelled:
    /// `{run_id, outcome, status}`.
    pub async fn cancel(&self, id: RunId) -> Result<serde_json::Value, ClientError> {
        let res = self
            .send(self.request(Method::POST, &format!("/v1/runs/{id}/cancel")))
            .await?;
        self.decode(res, "a cancel").await
    }

    /// Sends signal `name` with `data` to the run; a repeated `signal_id`
    /// is dropped by the server. Answers `{seq, duplicate}`.
    pub async fn signal(
        &self,
        id: RunId,
        name: &str,
        data: &serde_json::Value,
        signal_id: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let path = format!("/v1/runs/{id}/signals/{}", encode_segment(name));
        let mut rb = self.json_body(self.request(Method::POST, &path), data)?;
        if let Some(s) = signal_id {
            rb = rb.header("Signal-Id", s);
        }
        let res = self.send(rb).await?;
        self.decode(res, "a signal receipt").await
    }

    /// Up to `limit` approvals, newest run first, as `query` narrows them;
    /// follows the API's pages as needed.
    pub async fn approvals(
        &self,
        query: &ApprovalQuery<'_>,
        limit: usize,
    ) -> Result<Vec<Approval>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Page {
            approvals: Vec<Approval>,
            next_before: Option<String>,
        }
        let mut out = Vec::new();
        let mut before: Option<String> = None;
        while out.len() < limit {
            let mut q: Vec<(&str, String)> =
                vec![("limit", (limit - out.len()).min(MAX_PAGE).to_string())];
            if let Some(s) = query.status {
                q.push(("status", s.to_owned()));
            }
            if let Some(w) = query.workflow {
                q.push(("workflow", w.to_owned()));
            }
            if let Some(r) = query.run {
                q.push(("run", r.to_string()));
            }
            if query.mine {
                q.push(("decidable", "me".to_owned()));
            }
            if let Some(b) = &before {
                q.push(("before", b.clone()));
            }
            let res = self
                .send(self.request(Method::GET, "/v1/approvals").query(&q))
                .await?;
            let page: Page = self.decode(res, "a page of approvals").await?;
            let empty = page.approvals.is_empty();
            let room = limit - out.len();
            out.extend(page.approvals.into_iter().take(room));
            match page.next_before {
                Some(b) if !b.is_empty() && !empty => before = Some(b),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Decides approval `name` of the run with `choice` (and `comment`).
    /// The same decision again answers with `duplicate`; another one is
    /// refused (`APPROVAL_DECIDED`).
    pub async fn decide(
        &self,
        id: RunId,
        name: &str,
        choice: &Choice,
        comment: Option<&str>,
    ) -> Result<Decided, ClientError> {
        let mut body = serde_json::to_value(choice)
            .map_err(|e| ClientError::Decode(format!("encoding the decision: {e}")))?;
        if let (Some(o), Some(c)) = (body.as_object_mut(), comment) {
            o.insert("comment".into(), c.into());
        }
        let path = format!("/v1/runs/{id}/approvals/{}", encode_segment(name));
        let rb = self.json_body(self.request(Method::POST, &path), &body)?;
        let res = self.send(rb).await?;
        self.decode(res, "a decision").await
    }

    /// Up to `limit` entries of the audit trail, newest first, those before
    /// `before` (a `seq`) if given; follows the API's pages as needed.
    /// Also answers the `before` of the next page, if there is one.
    pub async fn audit(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), ClientError> {
        #[derive(serde::Deserialize)]
        struct Page {
            entries: Vec<AuditEntry>,
            next_before: Option<u64>,
        }
        let mut out = Vec::new();
        let mut before = before;
        while out.len() < limit {
            let mut q: Vec<(&str, String)> =
                vec![("limit", (limit - out.len()).min(MAX_PAGE).to_string())];
            if let Some(b) = before {
                q.push(("before", b.to_string()));
            }
            let res = self
                .send(self.request(Method::GET, "/v1/audit").query(&q))
                .await?;
            let page: Page = self.decode(res, "a page of the audit trail").await?;
            let empty = page.entries.is_empty();
            out.extend(page.entries);
            match page.next_before {
                Some(b) if !empty && before.is_none_or(|old| b < old) => before = Some(b),
                _ => return Ok((out, None)),
            }
        }
        Ok((out, before))
    }

    /// The artifacts the run wrote.
    pub async fn artifacts(&self, id: RunId) -> Result<Vec<ArtifactMeta>, ClientError> {
        let res = self
            .send(self.request(Method::GET, &format!("/v1/runs/{id}/artifacts")))
            .await?;
        self.decode(res, "the artifact list").await
    }

    /// Downloads artifact `name` of the run into `out`; returns the bytes
    /// written.
    pub async fn download(
        &self,
        id: RunId,
        name: &str,
        out: &mut impl std::io::Write,
    ) -> Result<u64, ClientError> {
        let path = format!("/v1/runs/{id}/artifacts/{}", encode_segment(name));
        let res = self.send(self.request(Method::GET, &path)).await?;
        self.stream_to(res, out).await
    }

    /// Writes a response's body to `out` as it arrives.
    async fn stream_to(
        &self,
        res: Response,
        out: &mut impl std::io::Write,
    ) -> Result<u64, ClientError> {
        let mut body = res.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        out.flush()?;
        Ok(written)
    }

    /// Deletes an ended run and its children; answers `{run_id, runs}`.
    pub async fn delete_run(&self, id: RunId) -> Result<serde_json::Value, ClientError> {
        let res = self
            .send(self.request(Method::DELETE, &format!("/v1/runs/{id}")))
            .await?;
        self.decode(res, "a deletion").await
    }

    /// Purges ended runs (see `POST /v1/runs/purge`).
    pub async fn purge(
        &self,
        request: &crate::host::PurgeRequest,
    ) -> Result<crate::host::PurgeReport, ClientError> {
        let rb = self.request(Method::POST, "/v1/runs/purge").json(request);
        let res = self.send(rb).await?;
        self.decode(res, "a purge report").await
    }

    /// Downloads a backup of the server's store (a tar archive of a data
    /// directory) into `out`; returns its length.
    pub async fn backup(&self, out: &mut impl std::io::Write) -> Result<u64, ClientError> {
        let res = self.send(self.request(Method::GET, "/v1/backup")).await?;
        self.stream_to(res, out).await
    }

    /// A request to `path` (which starts with `/`), with the token.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Attaches `value` as a JSON body.
    fn json_body(
        &self,
        rb: RequestBuilder,
        value: &serde_json::Value,
    ) -> Result<RequestBuilder, ClientError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ClientError::Decode(format!("encoding the request body: {e}")))?;
        Ok(rb.header(CONTENT_TYPE, "application/json").body(body))
    }

    /// Sends the request; a non-2xx answer becomes [`ClientError::Api`].
    async fn send(&self, rb: RequestBuilder) -> Result<Response, ClientError> {
        let res = rb.send().await.map_err(|e| self.transport(e))?;
        self.check(res).await
    }

    /// Passes a 2xx answer through; reads any other into [`ClientError::Api`].
    async fn check(&self, res: Response) -> Result<Response, ClientError> {
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let body = res.bytes().await.unwrap_or_default();
        Err(api_error(status, &body))
    }

    /// Reads the whole body as JSON of type `T`; `what` names it in errors.
    async fn decode<T: DeserializeOwned>(
        &self,
        res: Response,
        what: &str,
    ) -> Result<T, ClientError> {
        let bytes = res.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("{what}: {e}")))
    }

    /// A transport error, naming the server but not the URL (or the token).
    fn transport(&self, e: reqwest::Error) -> ClientError {
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        ClientError::Http(format!("{}: {message}", self.authority))
    }
}

/// How one connection of a followed stream ended.
enum StreamEnd {
    /// The run's terminal event arrived.
    Terminal,
    /// The server ended the stream cleanly before a terminal event.
    Closed,
    /// No connection was made.
    Unreachable(ClientError),
    /// The connection broke mid-stream.
    Dropped(ClientError),
}

/// The error for a non-2xx answer: the envelope's code and message, or
/// `HTTP_<status>` and an excerpt of the body.
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        return ClientError::Api {
            status: status.as_u16(),
            code: env.error.code,
            message: env.error.message,
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else if text.chars().count() > EXCERPT_CHARS {
        let cut: String = text.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    };
    ClientError::Api {
        status: status.as_u16(),
        code: format!("HTTP_{}", status.as_u16()),
        message,
    }
}

/// A run record from the API, which leaves out the seed: puts an all-zero
/// one in (and ignores extra fields such as `children`).
fn record_from(mut value: serde_json::Value) -> Result<RunRecord, ClientError> {
    let Some(object) = value.as_object_mut() else {
        return Err(ClientError::Decode("a run: not a JSON object".to_owned()));
    };
    object
        .entry("seed")
        .or_insert_with(|| serde_json::Value::String(HIDDEN_SEED.to_owned()));
    serde_json::from_value(value).map_err(|e| ClientError::Decode(format!("a run: {e}")))
}

/// Percent-encodes one path segment: RFC 3986 unreserved characters pass
/// through, every other byte becomes `%XX`.
fn encode_segment(segment: &str) -> String {
    // The URL standard's path-segment encoding, as `url` does it.
    let mut url = reqwest::Url::parse("http://host/").expect("a constant base URL");
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear().push(segment);
    }
    url.path().trim_start_matches('/').to_owned()
}

/// Splits a Server-Sent Events body into frames' `data`. Lines end in
/// `\n` or `\r\n`; `:` lines are comments; a blank line ends a frame;
/// fields other than `data` (`id`, `event`, `retry`) are not needed here,
/// since each frame's data is a whole [`Event`] carrying its `seq` and kind.
#[derive(Default)]
struct SseParser {
    /// Bytes after the last complete line.
    buf: Vec<u8>,
    /// The current frame's data lines, joined by `\n`.
    data: Option<String>,
}

impl SseParser {
    /// Feeds a chunk; returns the data of every frame it completes.
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, ClientError> {
        self.buf.extend_from_slice(chunk);
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.buf[start..start + pos];
            start += pos + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| ClientError::Decode("the event stream is not UTF-8".to_owned()))?;
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    frames.push(data);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            if field == "data" {
                match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_SSE_LINE {
            return Err(ClientError::Decode(
                "the event stream sent an overlong line".to_owned(),
            ));
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventBody, LogLevel, Usage, now};
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::{Path as AxPath, Query, State};
    use axum::http::{HeaderMap, StatusCode as AxStatus, header};
    use axum::response::{IntoResponse, Response as AxResponse};
    use axum::routing::get;
    use std::sync::{Arc, Mutex};

    /// What the test server saw.
    #[derive(Clone, Default)]
    struct Seen {
        last_event_ids: Arc<Mutex<Vec<Option<String>>>>,
        queries: Arc<Mutex<Vec<String>>>,
        auth: Arc<Mutex<Vec<Option<String>>>>,
    }

    fn event(seq: u64, body: EventBody) -> Event {
        Event {
            seq,
            at: now(),
            body,
        }
    }

    fn log(seq: u64) -> Event {
        event(
            seq,
            EventBody::Log {
                level: LogLevel::Info,
                message: format!("line {seq}"),
            },
        )
    }

    fn frame(e: &Event) -> String {
        format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            e.seq,
            e.body.kind(),
            serde_json::to_string(e).unwrap()
        )
    }

    fn sse(body: Body) -> AxResponse {
        ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
    }

    /// `ok`: whole stream, with comments, split mid-frame. `flaky`: drops
    /// after seq 2 unless resumed with Last-Event-ID.
    async fn stream(
        State(seen): State<Seen>,
        AxPath((kind, _id)): AxPath<(String, String)>,
        headers: HeaderMap,
    ) -> AxResponse {
        let lei = headers
            .get("last-event-id")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.last_event_ids.lock().unwrap().push(lei.clone());
        seen.auth.lock().unwrap().push(
            headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        let done = event(4, EventBody::Completed);
        match kind.as_str() {
            "ok" => {
                let text = format!(
                    ": hello\n\n{}{}retry: 1000\r\n{}{}",
                    frame(&log(1)),
                    frame(&log(2)),
                    frame(&log(3)),
                    frame(&done)
                );
                let (a, b) = text.split_at(text.len() / 2);
                let chunks: Vec<Result<Bytes, std::io::Error>> =
                    vec![Ok(Bytes::from(a.to_owned())), Ok(Bytes::from(b.to_owned()))];
                sse(Body::from_stream(futures_util::stream::iter(chunks)))
            }
            "flaky" if lei.is_none() => {
                // Two events, a moment for them to reach the client, then a broken body.
                let steps = futures_util::stream::unfold(0u8, |step| async move {
                    let item = match step {
                        0 => Ok(Bytes::from(frame(&log(1)) + &frame(&log(2)))),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err(std::io::Error::other("dropped"))
                        }
                        _ => return None,
                    };
                    Some((item, step + 1))
                });
                sse(Body::from_stream(steps))
            }
            "flaky" => {
                let after: u64 = lei.unwrap().parse().unwrap();
                let text: String = [log(2), log(3), done]
                    .iter()
                    .filter(|e| e.seq > after)
                    .map(frame)
                    .collect();
                sse(Body::from(text))
            }
            _ => sse(Body::empty()),
        }
    }

    fn run_json(workflow: &str) -> serde_json::Value {
        let r = RunRecord {
            id: RunId::generate(),
            workflow: workflow.to_owned(),
            version: 1,
            digest: "d".into(),
            status: RunStatus::Completed,
            input: serde_json::json!({}),
            output: Some(serde_json::json!(1)),
            error: None,
            parent: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
            usage: Usage::default(),
            seed: [7; 32],
            wait: None,
            depth: 0,
            idempotency_key: None,
            ancestors: Vec::new(),
            trace: None,
            trigger: None,
            cancel_requested_by: None,
            attempt: 1,
        };
        let mut v = serde_json::to_value(r).unwrap();
        v.as_object_mut().unwrap().remove("seed");
        v
    }

    async fn runs_page(
        State(seen): State<Seen>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::Json<serde_json::Value> {
        let mut keys: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        keys.sort();
        seen.queries.lock().unwrap().push(keys.join("&"));
        let page = if q.contains_key("cursor") {
            serde_json::json!({"runs": [run_json("b"), run_json("b")], "next_cursor": "c2"})
        } else {
            serde_json::json!({"runs": [run_json("a"), run_json("a")], "next_cursor": "c1"})
        };
        axum::Json(page)
    }

    async fn serve() -> (String, Seen) {
        let seen = Seen::default();
        let app = Router::new()
            .route(
                "/v1/runs/{id}",
                get(|| async {
                    (
                        AxStatus::NOT_FOUND,
                        axum::Json(serde_json::json!(
                            {"error": {"code": "RUN_NOT_FOUND", "message": "no such run"}}
                        )),
                    )
                }),
            )
            .route(
                "/v1/workflows",
                get(|| async { (AxStatus::BAD_GATEWAY, "<html>  upstream\n down </html>") }),
            )
            .route("/v1/runs", get(runs_page))
            .route("/stream/{kind}/v1/runs/{id}/events/stream", get(stream))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn error_envelopes_and_other_bodies_become_api_errors() {
        let (base, _) = serve().await;
        let client = Client::new(&format!("{base}/"), Some("s3cret".into())).unwrap();
        match client.run(RunId::generate()).await.unwrap_err() {
            ClientError::Api {
                status,
                code,
                message,
            } => {
                assert_eq!(
                    (status, code.as_str(), message.as_str()),
                    (404, "RUN_NOT_FOUND", "no such run")
                );
            }
            e => panic!("{e:?}"),
        }
        let e = client.workflows().await.unwrap_err();
        assert_eq!(e.code(), "HTTP_502");
        assert!(
            matches!(&e, ClientError::Api { status: 502, message, .. } if message == "<html> upstream down </html>")
        );
    }

    #[tokio::test]
    async fn follow_reads_a_stream_to_its_terminal_event() {
        let (base, seen) = serve().await;
        let client = Client::new(&format!("{base}/stream/ok"), Some("s3cret".into())).unwrap();
        let mut got = Vec::new();
        client
            .follow(RunId::generate(), 0, |e| got.push((e.seq, e.body.kind())))
            .await
            .unwrap();
        assert_eq!(got, [(1, "log"), (2, "log"), (3, "log"), (4, "completed")]);
        assert_eq!(*seen.last_event_ids.lock().unwrap(), [None]);
        assert_eq!(
            *seen.auth.lock().unwrap(),
            [Some("Bearer s3cret".to_owned())]
        );
    }

    #[tokio::test]
    async fn follow_resumes_a_dropped_stream_from_the_last_event() {
        let (base, seen) = serve().await;
        let client = Client::new(&format!("{base}/stream/flaky"), None).unwrap();
        let mut got = Vec::new();
        client
            .follow(RunId::generate(), 0, |e| got.push(e.seq))
            .await
            .unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(
            *seen.last_event_ids.lock().unwrap(),
            [None, Some("2".to_owned())]
        );
        assert_eq!(*seen.auth.lock().unwrap(), [None, None]);
    }

    #[tokio::test]
    async fn follow_of_an_ended_run_with_nothing_new_returns() {
        let (base, seen) = serve().await;
        let client = Client::new(&format!("{base}/stream/empty"), None).unwrap();
        let mut n = 0;
        client
            .follow(RunId::generate(), 9, |_| n += 1)
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(*seen.last_event_ids.lock().unwrap(), [Some("9".to_owned())]);
    }

    #[tokio::test]
    async fn runs_follows_cursors_up_to_the_limit() {
        let (base, seen) = serve().await;
        let client = Client::new(&base, None).unwrap();
        let runs = client
            .runs(Some(RunStatus::Completed), Some("a b"), 3)
            .await
            .unwrap();
        let names: Vec<_> = runs.iter().map(|r| r.workflow.as_str()).collect();
        assert_eq!(names, ["a", "a", "b"]);
        assert_eq!(runs[0].seed, [0; 32]);
        assert_eq!(
            *seen.queries.lock().unwrap(),
            [
                "limit=3&status=completed&workflow=a b",
                "cursor=c1&limit=1&status=completed&workflow=a b"
            ]
        );
    }

    #[tokio::test]
    async fn transport_errors_name_the_server_not_the_token() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = Client::new(&format!("http://{addr}"), Some("s3cret".into())).unwrap();
        let e = client.workflows().await.unwrap_err();
        assert_eq!(e.code(), "HTTP");
        let text = e.to_string();
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!format!("{client:?}").contains("s3cret"));
    }

    #[test]
    fn bases_are_checked_and_trimmed() {
        assert!(Client::new("localhost:8080", None).is_err());
        assert!(Client::new("ftp://x", None).is_err());
        assert!(Client::new("http://x/?a=1", None).is_err());
        let c = Client::new("https://example.com/prefix//", Some(" t ".into())).unwrap();
        assert_eq!(c.base, "https://example.com/prefix");
        assert_eq!(c.authority, "example.com:443");
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(Client::new("http://x", Some("a b".into())).is_err());
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("hello-world_1.2~x"), "hello-world_1.2~x");
        assert_eq!(encode_segment("a/b c?é%#"), "a%2Fb%20c%3F%C3%A9%25%23");
    }

    #[test]
    fn sse_frames_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: 1\nda").unwrap().is_empty());
        assert_eq!(
            p.push(b"ta: {\"a\":\r\ndata:1}\r\n\r\nevent: x\n\n")
                .unwrap(),
            ["{\"a\":\n1}"]
        );
        assert!(p.buf.is_empty());
    }

    #[test]
    fn records_without_seeds_still_decode() {
        let r = record_from(run_json("w")).unwrap();
        assert_eq!(r.seed, [0; 32]);
        assert!(record_from(serde_json::json!([1])).is_err());
    }
}
