//! The HTTP API end to end: a real listener on loopback, real components,
//! driven with a real HTTP client.

mod support;

use reqwest::StatusCode;
use runway::Host;
use runway::config::{Scope, ServerSettings, TokenConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    http: reqwest::Client,
    token: Option<String>,
}

impl Server {
    async fn start(dir: &Path, tokens: &[(&str, Scope)], secrets: &[(&str, &str)]) -> Server {
        let settings = ServerSettings {
            tokens: tokens
                .iter()
                .map(|(t, s)| TokenConfig {
                    name: t.to_string(),
                    sha256: hex::encode(Sha256::digest(t.as_bytes())),
                    scope: (*s).into(),
                })
                .collect(),
            ..ServerSettings::default()
        };
        let mut s = Server::start_with(dir, settings, secrets).await;
        s.token = tokens.last().map(|(t, _)| t.to_string());
        s
    }

    /// With any settings (JWT, a proxy); requests carry no token.
    async fn start_with(dir: &Path, settings: ServerSettings, secrets: &[(&str, &str)]) -> Server {
        support::guest_dir();
        if !secrets.is_empty() {
            let text: String = secrets
                .iter()
                .map(|(k, v)| format!("{k} = \"{v}\"\n"))
                .collect();
            std::fs::write(dir.join("secrets.toml"), text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(
                    dir.join("secrets.toml"),
                    std::fs::Permissions::from_mode(0o600),
                );
            }
        }
        // A host that just shut down releases the data directory as its
        // last handle drops.
        let mut host = None;
        for _ in 0..400 {
            match Host::open(support::host_config(dir)).await {
                Ok(h) => {
                    host = Some(h);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        let host = host.expect("opening the data directory");
        host.recover().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (cron_stop_tx, cron_stop_rx) = tokio::sync::watch::channel(false);
        let cron = tokio::spawn(runway::triggers::cron::run(host.clone(), cron_stop_rx));
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.await;
                let _ = cron_stop_tx.send(true);
            };
            runway::api::serve(host, settings, listener, shutdown)
                .await
                .expect("serving");
            let _ = cron.await;
        });
        Server {
            base,
            stop: Some(stop_tx),
            task: Some(task),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn deploy(&self, example: &str, manifest: &str) -> Value {
        let slug = manifest
            .lines()
            .find_map(|l| l.strip_prefix("slug = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("a slug line")
            .to_owned();
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(support::wasm_bytes(example)).file_name("c.wasm"),
            )
            .text("manifest", manifest.to_owned());
        let res = self
            .req(reqwest::Method::PUT, &format!("/v1/workflows/{slug}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "deploy {example}: {}",
            res.status()
        );
        res.json().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let res = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.unwrap()
    }
}

fn envelope_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_trigger_wait_and_idempotent_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]).await;
    let d = s.deploy("hello", &support::manifest("hello")).await;
    assert_eq!(d["version"], 1);
    assert_eq!(d["created"], true);

    let res = s
        .post_json(
            "/v1/workflows/hello/runs?wait=10",
            &json!({ "name": "Ada" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"]["greeting"], "Hello, Ada!");
    assert!(run.get("seed").is_none(), "the seed stays private");

    // No wait: 202 and a Location to poll.
    let res = s
        .post_json("/v1/workflows/hello/runs", &json!({ "name": "Bo" }))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let t0 = Instant::now();
    loop {
        let r = s.get_json(&location).await;
        if r["status"] == "completed" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Same key and input: the same run, 200. Another input: 409.
    let with_key = |input: Value| {
        s.req(reqwest::Method::POST, "/v1/workflows/hello/runs?wait=10")
            .header("Idempotency-Key", "order-42")
            .json(&input)
            .send()
    };
    let a: Value = with_key(json!({ "name": "K" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = with_key(json!({ "name": "K" })).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let b: Value = res.json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    let res = with_key(json!({ "name": "other" })).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let e: Value = res.json().await.unwrap();
    assert_eq!(envelope_code(&e), "IDEMPOTENCY_CONFLICT");
    let page = s.get_json("/v1/runs?workflow=hello").await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 3);

    // Cursor paging, newest first, without overlap.
    let first = s.get_json("/v1/runs?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = s
        .get_json(&format!("/v1/runs?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["runs"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_without_gaps_and_the_stream_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]).await;
    s.deploy("steps", &support::manifest("steps")).await;
    let res = s
        .post_json(
            "/v1/workflows/steps/runs",
            &json!({ "count": 12, "pause_ms": 40 }),
        )
        .await;
    let run: Value = res.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_owned();

    // Read part of the stream, then drop the connection mid-run.
    let mut first = Vec::new();
    {
        let res = s
            .req(
                reqwest::Method::GET,
                &format!("/v1/runs/{id}/events/stream"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut body = res.bytes_stream();
        let mut buf = String::new();
        use futures_util::StreamExt;
        while first.len() < 8 {
            let chunk = body.next().await.expect("more events").unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                if let Some(e) = parse_frame(&frame) {
                    first.push(e);
                }
            }
        }
    }
    let last = first.last().unwrap()["seq"].as_u64().unwrap();
    // Resume with Last-Event-ID; the stream ends after the terminal event.
    let res = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{id}/events/stream"),
        )
        .header("Last-Event-ID", last.to_string())
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(30), res.text())
        .await
        .expect("the stream ends after the run")
        .unwrap();
    let rest: Vec<Value> = text.split("\n\n").filter_map(parse_frame).collect();
    let streamed: Vec<Value> = first.into_iter().chain(rest).collect();

    // Pages of 5 give the same log, gap-free.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let p = s
            .get_json(&format!("/v1/runs/{id}/events?after={after}&limit=5"))
            .await;
        let events = p["events"].as_array().unwrap().clone();
        after = p["next_after"].as_u64().unwrap();
        paged.extend(events);
        if p["complete"] == true {
            break;
        }
    }
    let seqs: Vec<u64> = paged.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=paged.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        streamed, paged,
        "the stream's union is exactly the event log"
    );
    assert_eq!(paged.last().unwrap()["kind"], "completed");
    s.stop().await;
}

fn parse_frame(frame: &str) -> Option<Value> {
    let data: String = frame
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .collect();
    (!data.is_empty()).then(|| serde_json::from_str(&data).expect("event JSON"))
}

/// Reads server-sent events off a response: (event, id, data).
struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    fn of(res: reqwest::Response) -> Sse {
        assert_eq!(res.status(), StatusCode::OK);
        Sse {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped), or `None` if
    /// none comes within `within`.
    async fn next(&mut self, within: Duration) -> Option<(String, String, Value)> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                if let Some(data) = field("data:") {
                    return Some((
                        field("event:").unwrap_or_default(),
                        field("id:").unwrap_or_default(),
                        serde_json::from_str(&data).expect("event JSON"),
                    ));
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }

    /// Events until one of `run` reaches `status` (panics after 30 s).
    async fn until(&mut self, run: &str, status: &str) -> Vec<(String, String, Value)> {
        let mut seen = Vec::new();
        loop {
            let e = self
                .next(Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("no {status} for {run}; saw {seen:?}"));
            let done = e.2["id"] == run && e.2["status"] == status;
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_feed_follows_every_run_and_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("feed-admin", Scope::Admin)], &[]).await;
    s.deploy("approval", &support::manifest("approval")).await;
    s.deploy("hello", &support::manifest("hello")).await;
    let feed = |query: &'static str, last: Option<String>| {
        let mut r = s.req(reqwest::Method::GET, &format!("/v1/runs/stream{query}"));
        if let Some(l) = last {
            r = r.header("Last-Event-ID", l);
        }
        async move { Sse::of(r.send().await.unwrap()) }
    };
    let mut all = feed("", None).await;
    let mut hellos = feed("?workflow=hello", None).await;
    let run: Value = s
        .post_json("/v1/workflows/approval/runs", &json!({ "request": "feed" }))
        .await
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let seen = all.until(&id, "waiting_signal").await;
    let (kind, cursor, summary) = seen.last().unwrap().clone();
    assert_eq!(kind, "run");
    assert_eq!(summary["workflow"], "approval");
    assert_eq!(summary["wait"]["name"], "approve");
    // A summary, not the record: no input or output (they can be large).
    assert!(summary.get("input").is_none() && summary.get("output").is_none());
    drop(all);
    // While nobody listens the run goes on to its end.
    s.post_json(
        &format!("/v1/runs/{id}/signals/approve"),
        &json!({ "by": "feed" }),
    )
    .await;
    let t0 = Instant::now();
    while s.get_json(&format!("/v1/runs/{id}")).await["status"] != "completed" {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Resumed from its cursor: the change it missed, saying what it left.
    let mut resumed = feed("", Some(cursor.clone())).await;
    let (_, _, change) = resumed.until(&id, "completed").await.pop().unwrap();
    assert_eq!(change["previous"], "waiting_signal");
    assert!(change["finished_at"].is_string());
    // A cursor this server never gave (another host's, a restart's) is
    // answered with `reset`: the client reads the list afresh.
    let mut stale = feed("", Some("01zz.7".into())).await;
    let (kind, _, _) = stale.next(Duration::from_secs(10)).await.expect("reset");
    assert_eq!(kind, "reset");
    // A filtered feed shows only its workflow's runs.
    let hello: Value = s
        .post_json(
            "/v1/workflows/hello/runs?wait=10",
            &json!({ "name": "feed" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let hello_id = hello["id"].as_str().unwrap();
    let seen = hellos.until(hello_id, "completed").await;
    assert!(
        seen.iter().all(|(_, _, r)| r["workflow"] == "hello"),
        "{seen:?}"
    );
    // Bad filters are refused before any stream.
    let res = s
        .req(reqwest::Method::GET, "/v1/runs/stream?status=dancing")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_timeline_time_ranges_and_whoami_answer_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            ("console-reader", Scope::Read),
            ("console-admin", Scope::Admin),
        ],
        &[],
    )
    .await;
    s.deploy("approval", &support::manifest("approval")).await;
    s.deploy("hello", &support::manifest("hello")).await;
    let me = s.get_json("/v1/whoami").await;
    assert_eq!(
        me,
        json!({
            "kind": "token", "id": "console-admin", "label": "token:console-admin",
            "scopes": ["admin"], "open": false,
            "can": { "read": true, "execute": true, "approve": true, "admin": true },
        })
    );
    let reader: Value = reqwest::Client::new()
        .get(format!("{}/v1/whoami", s.base))
        .bearer_auth("console-reader")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reader["scopes"], json!(["read"]));
    assert_eq!(reader["can"]["execute"], false);
    for name in ["a", "b"] {
        s.post_json("/v1/workflows/hello/runs?wait=10", &json!({ "name": name }))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cut = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let run: Value = s
        .post_json(
            "/v1/workflows/approval/runs",
            &json!({ "request": "timeline" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    while s.get_json(&format!("/v1/runs/{id}")).await["status"] != "waiting_signal" {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time ranges: ids sort by creation time.
    let enc = |t: &str| t.replace(':', "%3A").replace('+', "%2B");
    let newer = s.get_json(&format!("/v1/runs?since={}", enc(&cut))).await;
    let ids: Vec<&str> = newer["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    let older = s.get_json(&format!("/v1/runs?until={}", enc(&cut))).await;
    assert_eq!(older["runs"].as_array().unwrap().len(), 2);
    assert!(
        older["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["workflow"] == "hello")
    );
    let res = s
        .req(reqwest::Method::GET, "/v1/runs?since=yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(envelope_code(&body), "INVALID_TIME");
    // Counts by status, of all runs or one workflow's.
    let c = s.get_json("/v1/runs/counts").await;
    assert_eq!(
        c,
        json!({ "counts": { "completed": 2, "waiting_signal": 1 }, "total": 3 })
    );
    let c = s.get_json("/v1/runs/counts?workflow=approval").await;
    assert_eq!(c["total"], 1);
    // The timeline: queued, running, then the wait for the signal, still
    // open; after the signal it runs again and ends.
    let tl = s.get_json(&format!("/v1/runs/{id}/timeline")).await;
    let states: Vec<&str> = tl["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["queued", "running", "waiting_signal"], "{tl}");
    assert_eq!(tl["spans"][2]["detail"], "signal approve");
    assert!(tl["spans"][2]["to"].is_null() && tl["end"].is_null());
    s.post_json(
        &format!("/v1/runs/{id}/signals/approve"),
        &json!({ "by": "tl" }),
    )
    .await;
    let t0 = Instant::now();
    let tl = loop {
        let tl = s.get_json(&format!("/v1/runs/{id}/timeline")).await;
        if tl["status"] == "completed" {
            break tl;
        }
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let spans = tl["spans"].as_array().unwrap();
    assert_eq!(spans.last().unwrap()["state"], "running");
    assert!(spans.iter().all(|s| s["to"].is_string()), "{tl}");
    assert_eq!(spans.last().unwrap()["to"], tl["end"]);
    let marks: Vec<&str> = tl["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert!(marks.contains(&"signal_received"), "{tl}");
    let events = s
        .get_json(&format!("/v1/runs/{id}/events?limit=1000"))
        .await;
    assert_eq!(tl["last_seq"], events["next_after"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_signal_and_artifacts_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]).await;
    s.deploy("approval", &support::manifest("approval")).await;
    let run: Value = s
        .post_json("/v1/workflows/approval/runs", &json!({ "request": "ship" }))
        .await
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let wait_status = |status: &'static str| {
        let s = &s;
        let id = id.clone();
        async move {
            let t0 = Instant::now();
            loop {
                let r = s.get_json(&format!("/v1/runs/{id}")).await;
                if r["status"] == status {
                    return r;
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "{r}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_status("waiting_signal").await;
    let res = s
        .req(
            reqwest::Method::POST,
            &format!("/v1/runs/{id}/signals/approve"),
        )
        .header("Signal-Id", "d1")
        .json(&json!({ "by": "ada" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = s
        .req(
            reqwest::Method::POST,
            &format!("/v1/runs/{id}/signals/approve"),
        )
        .header("Signal-Id", "d1")
        .json(&json!({ "by": "ada" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let dup: Value = res.json().await.unwrap();
    assert_eq!(dup["duplicate"], true);
    let done = wait_status("completed").await;
    assert_eq!(done["output"]["approved"], true);

    let list = s.get_json(&format!("/v1/runs/{id}/artifacts")).await;
    assert_eq!(list[0]["name"], "decision.json");
    let res = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{id}/artifacts/decision.json"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"decision.json\""
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["signal"]["by"], "ada");
    let res = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{id}/artifacts/nope.txt"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A second run, cancelled while it waits.
    let run: Value = s
        .post_json("/v1/workflows/approval/runs", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id2 = run["id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    while s.get_json(&format!("/v1/runs/{id2}")).await["status"] != "waiting_signal" {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = s
        .req(reqwest::Method::POST, &format!("/v1/runs/{id2}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["status"], "cancelled", "{c}");
    let res = s
        .req(
            reqwest::Method::POST,
            &format!("/v1/runs/{id2}/signals/approve"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_answer_with_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]).await;
    s.deploy("hello", &support::manifest("hello")).await;
    let big = json!({ "name": "x".repeat(2 << 20) });
    let res = s.post_json("/v1/workflows/hello/runs", &big).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(envelope_code(&res.json().await.unwrap()), "BODY_TOO_LARGE");

    let deep = "[".repeat(200) + &"]".repeat(200);
    let res = s
        .req(reqwest::Method::POST, "/v1/workflows/hello/runs")
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(envelope_code(&res.json().await.unwrap()), "JSON_TOO_DEEP");

    let res = s
        .req(reqwest::Method::POST, "/v1/workflows/hello/runs")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let res = s
        .req(reqwest::Method::POST, "/v1/workflows/hello/runs")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let res = s
        .req(reqwest::Method::GET, "/v1/nothing/here")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(envelope_code(&res.json().await.unwrap()), "NOT_FOUND");
    let res = s
        .req(reqwest::Method::PATCH, "/v1/runs")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        envelope_code(&res.json().await.unwrap()),
        "METHOD_NOT_ALLOWED"
    );
    let res = s
        .req(reqwest::Method::GET, "/v1/runs/not-a-run")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = s
        .req(reqwest::Method::GET, "/v1/runs?status=bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // A deploy with a mismatched slug, and one that is not multipart.
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(support::wasm_bytes("hello")),
        )
        .text("manifest", support::manifest("hello"));
    let res = s
        .req(reqwest::Method::PUT, "/v1/workflows/other")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = s
        .req(reqwest::Method::PUT, "/v1/workflows/hello")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    s.stop().await;
}

/// A JWT signed with `key` over `claims` (`alg` HS256, RS256 or ES256).
fn jwt(
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    key: &jsonwebtoken::EncodingKey,
    claims: Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(support::root().join("tests/fixtures/jwt").join(name)).unwrap()
}

/// What a credential may do, or that it is refused outright.
#[derive(Clone, Debug)]
enum Expect {
    Unauthorized,
    Grants(runway::config::Grants),
}

/// How a request authenticates: an Authorization header, or a trusted
/// proxy's headers sent from `source`.
#[derive(Clone, Debug)]
struct Credential {
    label: String,
    bearer: Option<String>,
    proxy: Option<(&'static str, std::net::IpAddr)>,
    expect: Expect,
}

/// Every route against every kind of credential: named tokens (each scope,
/// and one bound to a workflow), HS256 / RS256 / ES256 JWTs (valid,
/// expired, not yet valid, wrong issuer, wrong audience, bad signature,
/// no scope claim; keys from a secret, a JWKS file and a JWKS URL on
/// loopback), and a trusted proxy's headers from an allowed and a
/// disallowed source. A refused request is in the audit trail with its
/// principal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_matrix_holds_on_every_route() {
    use jsonwebtoken::{Algorithm, EncodingKey};
    use runway::config::{Grants, JwtConfig, ProxyConfig};
    let dir = tempfile::tempdir().unwrap();
    // The JWKS URL: the RSA key, served on loopback.
    let jwks = axum::Router::new().route(
        "/jwks",
        axum::routing::get(|| async { fixture("jwks-rsa.json") }),
    );
    let jwks_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks", jwks_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(jwks_listener, jwks).await });
    let hs_key = "hs256-test-key-0123456789abcdefghijklmnop";
    let named = [
        ("t-read", "read"),
        ("t-exec", "execute"),
        ("t-approve", "approve"),
        ("t-admin", "admin"),
        ("t-hello", "execute:hello"),
    ];
    let settings = ServerSettings {
        tokens: named
            .iter()
            .map(|(t, g)| TokenConfig {
                name: t.to_string(),
                sha256: hex::encode(Sha256::digest(t.as_bytes())),
                scope: g.parse().unwrap(),
            })
            .collect(),
        jwt: Some(JwtConfig {
            issuer: Some("https://idp.test".into()),
            audience: Some("runway".into()),
            hs256_secret: Some("JWT_KEY".into()),
            jwks_file: Some(support::root().join("tests/fixtures/jwt/jwks-ec.json")),
            jwks_url: Some(jwks_url),
            leeway: Some("5s".into()),
            ..JwtConfig::default()
        }),
        proxy: Some(ProxyConfig {
            trusted: vec!["127.0.0.2".into()],
            ..ProxyConfig::default()
        }),
        ..ServerSettings::default()
    };
    let s = Server::start_with(dir.path(), settings, &[("JWT_KEY", hs_key)]).await;
    let admin = "t-admin".to_owned();
    let setup = |method: reqwest::Method, path: &str| {
        s.http
            .request(method, format!("{}{path}", s.base))
            .bearer_auth(&admin)
    };
    for ex in ["hello", "approval"] {
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(support::wasm_bytes(ex)).file_name("c.wasm"),
            )
            .text("manifest", support::manifest(ex));
        let res = setup(reqwest::Method::PUT, &format!("/v1/workflows/{ex}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    let run: Value = setup(reqwest::Method::POST, "/v1/workflows/hello/runs?wait=10")
        .json(&json!({ "name": "A" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();

    // Tokens.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |sub: &str, scope: Option<&str>, iss: &str, aud: &str, nbf: u64, exp: u64| {
        let mut c =
            json!({ "sub": sub, "iss": iss, "aud": aud, "nbf": nbf, "exp": exp, "iat": now });
        if let Some(sc) = scope {
            c["scope"] = json!(sc);
        }
        c
    };
    let ok = |sub: &str, scope: &str| {
        claims(
            sub,
            Some(scope),
            "https://idp.test",
            "runway",
            now - 10,
            now + 600,
        )
    };
    let hs = EncodingKey::from_secret(hs_key.as_bytes()).unwrap();
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();
    let rsa_other = EncodingKey::from_rsa_pem(&fixture("rsa-other.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&fixture("ec.pem")).unwrap();
    let grants = |g: &str| Expect::Grants(g.parse::<Grants>().unwrap());
    let mut creds: Vec<Credential> = Vec::new();
    let mut bearer = |label: &str, token: String, expect: Expect| {
        creds.push(Credential {
            label: label.into(),
            bearer: Some(token),
            proxy: None,
            expect,
        })
    };
    bearer("no token", String::new(), Expect::Unauthorized);
    bearer("unknown token", "wrong".into(), Expect::Unauthorized);
    for (t, g) in named {
        bearer(t, t.into(), grants(g));
    }
    bearer(
        "hs256",
        jwt(Algorithm::HS256, None, &hs, ok("hs-user", "execute")),
        grants("execute"),
    );
    bearer(
        "hs256 expired",
        jwt(
            Algorithm::HS256,
            None,
            &hs,
            claims(
                "u",
                Some("admin"),
                "https://idp.test",
                "runway",
                now - 900,
                now - 600,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "hs256 not yet valid",
        jwt(
            Algorithm::HS256,
            None,
            &hs,
            claims(
                "u",
                Some("admin"),
                "https://idp.test",
                "runway",
                now + 600,
                now + 900,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "hs256 wrong issuer",
        jwt(
            Algorithm::HS256,
            None,
            &hs,
            claims(
                "u",
                Some("admin"),
                "https://evil.test",
                "runway",
                now - 10,
                now + 600,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "hs256 wrong audience",
        jwt(
            Algorithm::HS256,
            None,
            &hs,
            claims(
                "u",
                Some("admin"),
                "https://idp.test",
                "other",
                now - 10,
                now + 600,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "hs256 bad signature",
        jwt(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(b"another-key-0123456789abcdefghijklmn").unwrap(),
            ok("u", "admin"),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "hs256 no scope claim",
        jwt(
            Algorithm::HS256,
            None,
            &hs,
            claims("u", None, "https://idp.test", "runway", now - 10, now + 600),
        ),
        grants(""),
    );
    bearer(
        "rs256 (JWKS URL)",
        jwt(
            Algorithm::RS256,
            Some("rsa-1"),
            &rsa,
            ok("rs-user", "admin"),
        ),
        grants("admin"),
    );
    bearer(
        "rs256 scopes as an array",
        jwt(Algorithm::RS256, Some("rsa-1"), &rsa, {
            let mut c = ok("rs-arr", "x");
            c["scope"] = json!(["read", "execute:approval"]);
            c
        }),
        grants("read execute:approval"),
    );
    bearer(
        "rs256 expired",
        jwt(
            Algorithm::RS256,
            Some("rsa-1"),
            &rsa,
            claims(
                "u",
                Some("admin"),
                "https://idp.test",
                "runway",
                now - 900,
                now - 600,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "rs256 not yet valid",
        jwt(
            Algorithm::RS256,
            Some("rsa-1"),
            &rsa,
            claims(
                "u",
                Some("admin"),
                "https://idp.test",
                "runway",
                now + 600,
                now + 900,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "rs256 wrong issuer",
        jwt(
            Algorithm::RS256,
            Some("rsa-1"),
            &rsa,
            claims(
                "u",
                Some("admin"),
                "https://evil.test",
                "runway",
                now - 10,
                now + 600,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "rs256 wrong audience",
        jwt(
            Algorithm::RS256,
            Some("rsa-1"),
            &rsa,
            claims(
                "u",
                Some("admin"),
                "https://idp.test",
                "other",
                now - 10,
                now + 600,
            ),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "rs256 bad signature",
        jwt(
            Algorithm::RS256,
            Some("rsa-1"),
            &rsa_other,
            ok("u", "admin"),
        ),
        Expect::Unauthorized,
    );
    bearer(
        "rs256 no scope claim",
        jwt(
            Algorithm::RS256,
            Some("rsa-1"),
            &rsa,
            claims("u", None, "https://idp.test", "runway", now - 10, now + 600),
        ),
        grants(""),
    );
    bearer(
        "es256 (JWKS file)",
        jwt(Algorithm::ES256, Some("ec-1"), &ec, ok("ec-user", "read")),
        grants("read"),
    );
    // An RS256 token presented as HS256 with the public key as the secret
    // (algorithm confusion) is refused: HS256 uses only the host secret.
    bearer(
        "hs256 keyed with the public JWKS",
        jwt(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(&fixture("jwks-rsa.json")).unwrap(),
            ok("u", "admin"),
        ),
        Expect::Unauthorized,
    );
    let trusted: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let untrusted: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    creds.push(Credential {
        label: "proxy, trusted source".into(),
        bearer: None,
        proxy: Some(("execute", trusted)),
        expect: grants("execute"),
    });
    creds.push(Credential {
        label: "proxy headers, other source".into(),
        bearer: None,
        proxy: Some(("admin", untrusted)),
        expect: Expect::Unauthorized,
    });

    // Routes: what each needs, and on which workflow (None: server-wide).
    use reqwest::Method as M;
    let routes: Vec<(M, String, Scope, Option<&str>)> = vec![
        // Listed to any reader: filtered to the workflows it may read.
        (
            M::GET,
            "/v1/workflows".into(),
            Scope::Read,
            Some("*somewhere*"),
        ),
        (
            M::GET,
            "/v1/workflows/hello".into(),
            Scope::Read,
            Some("hello"),
        ),
        (
            M::PUT,
            "/v1/workflows/hello".into(),
            Scope::Admin,
            Some("hello"),
        ),
        (
            M::DELETE,
            "/v1/workflows/zzz".into(),
            Scope::Admin,
            Some("zzz"),
        ),
        (
            M::POST,
            "/v1/workflows/hello/runs".into(),
            Scope::Execute,
            Some("hello"),
        ),
        (M::GET, "/v1/runs".into(), Scope::Read, None),
        (
            M::GET,
            "/v1/runs?workflow=hello".into(),
            Scope::Read,
            Some("hello"),
        ),
        (M::GET, "/v1/runs/counts".into(), Scope::Read, None),
        (M::GET, "/v1/runs/stream".into(), Scope::Read, None),
        (M::GET, "/v1/whoami".into(), Scope::Read, Some("*any*")),
        (M::GET, format!("/v1/runs/{id}"), Scope::Read, Some("hello")),
        (
            M::GET,
            format!("/v1/runs/{id}/events"),
            Scope::Read,
            Some("hello"),
        ),
        (
            M::GET,
            format!("/v1/runs/{id}/events/stream"),
            Scope::Read,
            Some("hello"),
        ),
        (
            M::GET,
            format!("/v1/runs/{id}/timeline"),
            Scope::Read,
            Some("hello"),
        ),
        (
            M::POST,
            format!("/v1/runs/{id}/cancel"),
            Scope::Execute,
            Some("hello"),
        ),
        (
            M::POST,
            format!("/v1/runs/{id}/signals/x"),
            Scope::Execute,
            Some("hello"),
        ),
        (
            M::GET,
            format!("/v1/runs/{id}/artifacts"),
            Scope::Read,
            Some("hello"),
        ),
        (
            M::GET,
            format!("/v1/runs/{id}/artifacts/none"),
            Scope::Read,
            Some("hello"),
        ),
        (M::GET, "/metrics".into(), Scope::Read, None),
        (M::GET, "/v1/models".into(), Scope::Read, None),
        (
            M::GET,
            "/v1/workflows/hello/cron".into(),
            Scope::Read,
            Some("hello"),
        ),
        (
            M::POST,
            "/v1/workflows/hello/cron/0/pause".into(),
            Scope::Execute,
            Some("hello"),
        ),
        (
            M::POST,
            "/v1/workflows/hello/cron/0/resume".into(),
            Scope::Execute,
            Some("hello"),
        ),
        (
            M::POST,
            "/v1/workflows/hello/cron/0/fire".into(),
            Scope::Execute,
            Some("hello"),
        ),
        (M::POST, "/v1/runs/purge".into(), Scope::Admin, None),
        (M::GET, "/v1/backup".into(), Scope::Admin, None),
        (M::GET, "/v1/audit".into(), Scope::Admin, None),
        (
            M::GET,
            "/v1/approvals".into(),
            Scope::Read,
            Some("*somewhere*"),
        ),
        (
            M::GET,
            "/v1/approvals?workflow=hello".into(),
            Scope::Read,
            Some("hello"),
        ),
        (
            M::POST,
            format!("/v1/runs/{id}/approvals/ship"),
            Scope::Approve,
            Some("hello"),
        ),
        (
            M::POST,
            format!("/v1/runs/{id}/rerun"),
            Scope::Execute,
            Some("hello"),
        ),
        (
            M::POST,
            format!("/v1/runs/{id}/reset?to=1"),
            Scope::Execute,
            Some("hello"),
        ),
    ];
    let direct = reqwest::Client::new();
    let via_proxy = reqwest::Client::builder()
        .local_address(trusted)
        .build()
        .unwrap();
    let mut checked = 0;
    for cred in &creds {
        let client = match cred.proxy {
            Some((_, ip)) if ip == trusted => &via_proxy,
            _ => &direct,
        };
        for (method, path, need, workflow) in &routes {
            let mut r = client.request(method.clone(), format!("{}{path}", s.base));
            if let Some(b) = cred.bearer.as_ref().filter(|b| !b.is_empty()) {
                r = r.bearer_auth(b);
            }
            if let Some((scopes, _)) = cred.proxy {
                r = r
                    .header("X-Forwarded-User", "proxied-user")
                    .header("X-Forwarded-Scopes", scopes);
            }
            let st = r.send().await.unwrap().status();
            let what = format!("{method} {path} as {}", cred.label);
            match &cred.expect {
                Expect::Unauthorized => assert_eq!(st, StatusCode::UNAUTHORIZED, "{what}"),
                Expect::Grants(g) => {
                    let allowed = match workflow {
                        Some("*any*") => true,
                        Some("*somewhere*") => g.allows_somewhere(*need),
                        w => g.allows(*need, *w),
                    };
                    if allowed {
                        assert!(
                            st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                            "{what}: {st}"
                        );
                    } else {
                        assert_eq!(st, StatusCode::FORBIDDEN, "{what}");
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, creds.len() * routes.len());
    // Who each says it is.
    let who = |token: &str| {
        let r = direct
            .get(format!("{}/v1/whoami", s.base))
            .bearer_auth(token.to_owned());
        async move { r.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let me = who(&jwt(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa,
        ok("rs-user", "admin"),
    ))
    .await;
    assert_eq!(
        (me["kind"].as_str(), me["id"].as_str(), me["label"].as_str()),
        (Some("jwt"), Some("rs-user"), Some("jwt:rs-user"))
    );
    let me = who("t-hello").await;
    assert_eq!(me["scopes"], json!(["execute:hello"]));
    assert_eq!(me["can"]["execute"], true);
    assert_eq!(me["can"]["approve"], false);
    // The trail holds refusals with who was refused.
    let audit: Value = setup(reqwest::Method::GET, "/v1/audit?limit=1000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["status"] == 403
            && e["principal"] == "token:t-read"
            && e["outcome"] == "refused"),
        "{audit}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["status"] == 401 && e["principal"].is_null()),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["method"] == "PUT"
            && e["path"] == "/v1/workflows/hello"
            && e["principal"] == "token:t-admin"
            && e["outcome"] == "ok"),
        "{audit}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["principal"] == "proxy:proxied-user" && e["method"] == "POST"),
        "{audit}"
    );
    // Probes, the API description and the console (which holds no data)
    // are public.
    for path in [
        "/healthz",
        "/readyz",
        "/v1/openapi.json",
        "/",
        "/docs",
        "/ui/app.js",
        "/ui/app.css",
    ] {
        let res = direct
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    s.stop().await;
}

/// Every run says what started it and for whom — the API (the token),
/// a webhook (its delivery), cron (the trigger and instant), a parent —
/// and signals and cancels name who sent them, on the run and in its
/// events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_signals_and_cancels_name_who_did_them() {
    use runway::triggers::webhook::sign_hmac;
    let dir = tempfile::tempdir().unwrap();
    let key = "whsec-attribution-key";
    let s = Server::start(
        dir.path(),
        &[("ops-admin", Scope::Admin)],
        &[("HOOK_KEY", key)],
    )
    .await;
    for ex in ["approval", "sleepy", "fanout", "hello"] {
        s.deploy(ex, &support::manifest(ex)).await;
    }
    s.deploy(
        "hello",
        "slug = \"hooked\"\n[triggers.webhook]\nscheme = \"hmac\"\nsecret = \"HOOK_KEY\"\ndelivery_id_header = \"X-Delivery\"\n[[triggers.cron]]\nschedule = \"* * * * * *\"\ninput = { name = \"cron\" }\n",
    )
    .await;
    let started = |v: Value| v["id"].as_str().unwrap().to_owned();
    // By the API, with the token's name.
    let hello = started(
        s.post_json("/v1/workflows/hello/runs?wait=10", &json!({ "name": "a" }))
            .await
            .json()
            .await
            .unwrap(),
    );
    let r = s.get_json(&format!("/v1/runs/{hello}")).await;
    assert_eq!(
        r["trigger"],
        json!({ "kind": "api", "by": "token:ops-admin" })
    );
    // A rerun: the same input on the same version, linked both ways.
    let res = s
        .post_json(&format!("/v1/runs/{hello}/rerun"), &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let again = started(res.json().await.unwrap());
    let r2 = s.get_json(&format!("/v1/runs/{again}")).await;
    assert_eq!(
        r2["trigger"],
        json!({ "kind": "rerun", "by": "token:ops-admin", "rerun_of": hello })
    );
    assert_eq!(
        (r2["input"].clone(), r2["version"].clone()),
        (r["input"].clone(), r["version"].clone())
    );
    let other = started(
        s.post_json(
            &format!("/v1/runs/{hello}/rerun"),
            &json!({ "input": { "name": "b" } }),
        )
        .await
        .json()
        .await
        .unwrap(),
    );
    assert_eq!(
        s.get_json(&format!("/v1/runs/{other}")).await["input"],
        json!({ "name": "b" })
    );
    assert_eq!(
        s.get_json(&format!("/v1/runs/{hello}")).await["reruns"],
        json!([again, other])
    );
    // By a webhook delivery.
    let body = br#"{"name":"hook"}"#.to_vec();
    let res = s
        .http
        .post(format!("{}/hooks/hooked", s.base))
        .header("content-type", "application/json")
        .header("X-Signature", sign_hmac(key.as_bytes(), &body, ""))
        .header("X-Delivery", "d-42")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let hook_run = res.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s.get_json(&format!("/v1/runs/{hook_run}")).await;
    assert_eq!(
        r["trigger"],
        json!({ "kind": "webhook", "by": "webhook:hooked:d-42" })
    );
    // By cron: the trigger and its instant.
    let t0 = Instant::now();
    let cron_run = loop {
        let page = s.get_json("/v1/runs?workflow=hooked&limit=100").await;
        if let Some(r) = page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"]["kind"] == "cron")
        {
            break r.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        cron_run["trigger"]["by"]
            .as_str()
            .unwrap()
            .starts_with("cron:hooked:0:"),
        "{cron_run}"
    );
    // By a parent.
    let parent = started(
        s.post_json(
            "/v1/workflows/fanout/runs?wait=20",
            &json!({ "names": ["Ada"] }),
        )
        .await
        .json()
        .await
        .unwrap(),
    );
    let p = s.get_json(&format!("/v1/runs/{parent}")).await;
    let child = p["children"][0].as_str().unwrap();
    let c = s.get_json(&format!("/v1/runs/{child}")).await;
    assert_eq!(c["trigger"], json!({ "kind": "child", "by": parent }));
    // A signal names its sender, in the run's event.
    let waiting = started(
        s.post_json("/v1/workflows/approval/runs", &json!({ "request": "x" }))
            .await
            .json()
            .await
            .unwrap(),
    );
    s.post_json(
        &format!("/v1/runs/{waiting}/signals/approve"),
        &json!({ "by": "self-asserted" }),
    )
    .await;
    let t0 = Instant::now();
    while s.get_json(&format!("/v1/runs/{waiting}")).await["status"] != "completed" {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = s
        .get_json(&format!("/v1/runs/{waiting}/events?limit=1000"))
        .await;
    let got = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "signal_received")
        .unwrap()
        .clone();
    assert_eq!(got["by"], "token:ops-admin", "{got}");
    // A cancel names who asked, on the run and in its `cancelled` event.
    let sleeper = started(
        s.post_json("/v1/workflows/sleepy/runs", &json!({ "ms": 600000 }))
            .await
            .json()
            .await
            .unwrap(),
    );
    let t0 = Instant::now();
    while s.get_json(&format!("/v1/runs/{sleeper}")).await["status"] != "sleeping" {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.post_json(&format!("/v1/runs/{sleeper}/cancel"), &json!({}))
        .await;
    let t0 = Instant::now();
    let r = loop {
        let r = s.get_json(&format!("/v1/runs/{sleeper}")).await;
        if r["status"] == "cancelled" {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r["cancel_requested_by"], "token:ops-admin");
    let events = s
        .get_json(&format!("/v1/runs/{sleeper}/events?limit=1000"))
        .await;
    let last = events["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({ "seq": last["seq"], "at": last["at"], "kind": "cancelled", "by": "token:ops-admin" })
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_verify_each_scheme_and_refuse_replays() {
    use runway::triggers::webhook::{sign_github, sign_hmac, sign_stripe};
    let dir = tempfile::tempdir().unwrap();
    let key = "whsec-test-key";
    let s = Server::start(dir.path(), &[], &[("HOOK_KEY", key)]).await;
    let manifests = [
        (
            "gh",
            "scheme = \"github\"\nsecret = \"HOOK_KEY\"\ninput_pointer = \"/who\"\n",
        ),
        (
            "st",
            "scheme = \"stripe\"\nsecret = \"HOOK_KEY\"\ninput_pointer = \"/data\"\n",
        ),
        (
            "hm",
            "scheme = \"hmac\"\nsecret = \"HOOK_KEY\"\nheader = \"X-Sig\"\nprefix = \"v1=\"\ndelivery_id_header = \"X-Delivery\"\n",
        ),
    ];
    for (slug, hook) in manifests {
        let m = format!("slug = \"{slug}\"\n[triggers.webhook]\n{hook}");
        s.deploy("hello", &m).await;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let post = |slug: &str, body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let mut r = s
            .http
            .post(format!("{}/hooks/{slug}", s.base))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    async fn reason(res: reqwest::Response) -> (StatusCode, String) {
        let st = res.status();
        let v: Value = res.json().await.unwrap_or_default();
        (st, v["error"]["message"].as_str().unwrap_or("").to_owned())
    }

    // github
    let body = br#"{"who":{"name":"gh-user"}}"#.to_vec();
    let good = vec![
        ("X-Hub-Signature-256", sign_github(key.as_bytes(), &body)),
        ("X-GitHub-Delivery", "gh-1".into()),
    ];
    let res = post("gh", body.clone(), good.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let first: Value = res.json().await.unwrap();
    let res = post("gh", body.clone(), good).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a replayed delivery id");
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["run_id"], first["run_id"]);
    let bad = vec![
        ("X-Hub-Signature-256", sign_github(b"other key", &body)),
        ("X-GitHub-Delivery", "gh-2".into()),
    ];
    let (st, why) = reason(post("gh", body.clone(), bad).await.unwrap()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(why.starts_with("bad_signature"), "{why}");
    let (st, why) = reason(post("gh", body.clone(), vec![]).await.unwrap()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(why.starts_with("missing_signature"), "{why}");

    // stripe: good, bad, stale, replayed (the payload's id)
    let body = br#"{"id":"evt_1","data":{"name":"stripe-user"}}"#.to_vec();
    let res = post(
        "st",
        body.clone(),
        vec![("Stripe-Signature", sign_stripe(key.as_bytes(), &body, now))],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = post(
        "st",
        body.clone(),
        vec![("Stripe-Signature", sign_stripe(key.as_bytes(), &body, now))],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "evt_1 again");
    let (st, why) = reason(
        post(
            "st",
            body.clone(),
            vec![(
                "Stripe-Signature",
                sign_stripe(key.as_bytes(), &body, now - 3600),
            )],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(why.starts_with("stale_timestamp"), "{why}");
    let (st, why) = reason(
        post(
            "st",
            body.clone(),
            vec![("Stripe-Signature", sign_stripe(b"nope", &body, now))],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(why.starts_with("bad_signature"), "{why}");

    // hmac with a custom header, prefix and delivery header
    let body = br#"{"name":"hmac-user"}"#.to_vec();
    let sig = sign_hmac(key.as_bytes(), &body, "v1=");
    let res = post(
        "hm",
        body.clone(),
        vec![("X-Sig", sig.clone()), ("X-Delivery", "h1".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let started: Value = res.json().await.unwrap();
    let res = post(
        "hm",
        body.clone(),
        vec![("X-Sig", sig), ("X-Delivery", "h1".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (st, _) = reason(
        post(
            "hm",
            body.clone(),
            vec![("X-Sig", "v1=00".into()), ("X-Delivery", "h2".into())],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // The verified payload (at the pointer) became the input.
    let id = started["run_id"].as_str().unwrap();
    let t0 = Instant::now();
    let run = loop {
        let r = s.get_json(&format!("/v1/runs/{id}")).await;
        if r["status"] == "completed" {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(run["output"]["greeting"], "Hello, hmac-user!");
    let gh_runs = s.get_json("/v1/runs?workflow=gh").await;
    assert_eq!(gh_runs["runs"].as_array().unwrap().len(), 1);
    assert_eq!(gh_runs["runs"][0]["input"], json!({ "name": "gh-user" }));

    // Rejections are counted by reason; the key is nowhere in the metrics.
    let metrics = s
        .req(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    if !metrics.is_empty() {
        assert!(
            metrics.contains("runway_webhooks_rejected_total"),
            "{metrics}"
        );
        assert!(!metrics.contains(key));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_fires_every_second_and_never_twice_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "slug = \"tick\"\n[[triggers.cron]]\nschedule = \"* * * * * *\"\ninput = { name = \"cron\" }\n";
    let s = Server::start(dir.path(), &[], &[]).await;
    s.deploy("hello", manifest).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    s.stop().await;
    // Down for a while: several instants are missed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = Server::start(dir.path(), &[], &[]).await;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let page = s.get_json("/v1/runs?workflow=tick&limit=1000").await;
    let runs = page["runs"].as_array().unwrap();
    let keys: Vec<&str> = runs
        .iter()
        .map(|r| r["idempotency_key"].as_str().unwrap())
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "an instant fired twice: {keys:?}");
    // About 2 fires before, 1 for the missed ones, about 1–2 after.
    assert!(
        (3..=7).contains(&runs.len()),
        "{} runs: {keys:?}",
        runs.len()
    );
    for r in runs {
        assert_eq!(r["input"], json!({ "name": "cron" }));
    }
    s.stop().await;
}

/// `?wait` comes back as soon as the run waits for a signal: only someone
/// else can wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_early_when_the_run_waits_for_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]).await;
    s.deploy("approval", &support::manifest("approval")).await;
    let t0 = Instant::now();
    let res = s
        .post_json("/v1/workflows/approval/runs?wait=30", &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "waiting_signal", "{run}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    s.stop().await;
}

/// An input contract: a bad input is 422 `INVALID_INPUT` naming where it
/// is wrong, and creates no run; the API description carries the schema;
/// a schema that is not one is refused at deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_schema_is_checked_before_a_run_exists_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]).await;
    let manifest = "slug = \"greet\"\n[input.schema]\ntype = \"object\"\nrequired = [\"name\"]\nproperties = { name = { type = \"string\", maxLength = 8 } }\n[output.schema]\ntype = \"object\"\nrequired = [\"greeting\"]\n";
    s.deploy("hello", manifest).await;
    for (bad, at) in [
        (json!({ "name": 5 }), "/name"),
        (json!({}), "/"),
        (json!({ "name": "far too long" }), "/name"),
    ] {
        let res = s.post_json("/v1/workflows/greet/runs", &bad).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(envelope_code(&e), "INVALID_INPUT");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("at {at}:")),
            "{e}"
        );
    }
    let page = s.get_json("/v1/runs?workflow=greet").await;
    assert!(
        page["runs"].as_array().unwrap().is_empty(),
        "no run was created"
    );
    let res = s
        .post_json(
            "/v1/workflows/greet/runs?wait=10",
            &json!({ "name": "Ada" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "completed", "{run}");
    // An output that does not follow [output.schema] fails the run, saying where.
    s.deploy(
        "hello",
        "slug = \"strict\"\n[output.schema]\ntype = \"object\"\nproperties = { greeting = { type = \"string\", maxLength = 5 } }\n",
    )
    .await;
    let res = s
        .post_json(
            "/v1/workflows/strict/runs?wait=10",
            &json!({ "name": "Ada" }),
        )
        .await;
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "INVALID_OUTPUT");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at /greeting:"),
        "{run}"
    );
    assert!(
        run["output"].is_null(),
        "no output that breaks the contract is stored"
    );
    let doc = s.get_json("/v1/openapi.json").await;
    let path = &doc["paths"]["/v1/workflows/greet/runs"]["post"];
    assert_eq!(
        path["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["name"])
    );
    assert_eq!(
        path["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["output"]["required"],
        json!(["greeting"])
    );
    // Not a schema: refused at deploy.
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(support::wasm_bytes("hello")),
        )
        .text("manifest", "slug = \"broken\"\n[input.schema]\ntype = 5\n");
    let res = s
        .req(reqwest::Method::PUT, "/v1/workflows/broken")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = res.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input.schema"),
        "{e}"
    );
    s.stop().await;
}

/// Cron controls: a trigger is listed with its next and last fire; paused,
/// it fires nothing; fired by hand, it starts a run at once; resumed, it
/// fires again; the CLI shows the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_triggers_are_listed_paused_fired_by_hand_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "slug = \"tick\"\n[[triggers.cron]]\nschedule = \"* * * * * *\"\ninput = { name = \"cron\" }\n";
    let s = Server::start(dir.path(), &[("ops", Scope::Admin)], &[]).await;
    s.deploy("hello", manifest).await;
    let runs = || async {
        s.get_json("/v1/runs?workflow=tick&limit=1000").await["runs"]
            .as_array()
            .unwrap()
            .len()
    };
    let t0 = Instant::now();
    let fired = loop {
        let list = s.get_json("/v1/workflows/tick/cron").await;
        let t = &list.as_array().unwrap()[0];
        assert_eq!(t["schedule"], "* * * * * *");
        assert_eq!(t["input"], json!({ "name": "cron" }));
        assert!(t["next_fire"].is_string(), "{t}");
        if t["last_run"].is_string() {
            break t.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "never fired: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(fired["last_fire"].is_string());
    let res = s
        .req(reqwest::Method::POST, "/v1/workflows/tick/cron/0/pause")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["paused"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = runs().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(runs().await, before, "a paused trigger fired");
    // By hand: at once, paused or not.
    let res = s
        .req(reqwest::Method::POST, "/v1/workflows/tick/cron/0/fire")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let v: Value = res.json().await.unwrap();
    assert!(location.ends_with(v["run_id"].as_str().unwrap()));
    let t0 = Instant::now();
    while s.get_json(&location).await["status"] != "completed" {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs().await, before + 1);
    let list = s.get_json("/v1/workflows/tick/cron").await;
    assert_eq!(list[0]["last_run"], v["run_id"]);
    assert_eq!(list[0]["last_run_status"], "completed");
    // The CLI, against the server.
    let out = cli(&s.base, "ops", &["cron", "tick", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["paused"], true);
    let out = cli(&s.base, "ops", &["cron", "tick", "--resume", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("running"));
    let t0 = Instant::now();
    while runs().await <= before + 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "never fired after resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = s
        .req(reqwest::Method::POST, "/v1/workflows/tick/cron/5/pause")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let e: Value = res.json().await.unwrap();
    assert_eq!(envelope_code(&e), "CRON_NOT_FOUND");
    s.stop().await;
}

/// schemathesis, installed by `scripts/setup-test-tools.sh`.
fn schemathesis() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("RUNWAY_SCHEMATHESIS") {
        return p.into();
    }
    support::root().join("target/tools/venv/bin/st")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_based_fuzzing_of_the_openapi_description_finds_no_5xx() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run ./scripts/setup-test-tools.sh",
        st.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("fuzz-admin", Scope::Admin)], &[]).await;
    // Data to reach past 404s: workflows, runs, an artifact.
    s.deploy("hello", &support::manifest("hello")).await;
    s.deploy("approval", &support::manifest("approval")).await;
    s.post_json(
        "/v1/workflows/hello/runs?wait=10",
        &json!({ "name": "fuzz" }),
    )
    .await;
    s.post_json("/v1/workflows/approval/runs", &json!({})).await;
    let spec = format!("{}/v1/openapi.json", s.base);
    let mut cmd = std::process::Command::new(&st);
    cmd.args([
        "run",
        &spec,
        "--checks",
        "not_a_server_error",
        // The stateful phase infers links from our Location headers and
        // then rejects its own inferences (schemathesis 4.32); the
        // coverage and fuzzing phases exercise every operation.
        "--phases",
        "coverage,fuzzing",
        "--max-examples",
        "30",
        "--seed",
        "20261121",
        "--header",
        "Authorization: Bearer fuzz-admin",
        // The all-runs feed never ends by itself (tested on its own).
        "--exclude-path",
        "/v1/runs/stream",
    ])
    .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("running schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("passed"), "{text}");
    s.stop().await;
}

/// The `runway` binary against the server (`--server`, `--token`).
fn cli(base: &str, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
        .args(["--server", base, "--token", token])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUNWAY_DATA_DIR")
        .output()
        .expect("running runway")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_talks_to_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("cli-admin", Scope::Admin)], &[]).await;
    let base = s.base.clone();
    let run = move |args: Vec<String>| {
        let base = base.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                cli(&base, "cli-admin", &refs)
            })
            .await
            .unwrap()
        }
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let wasm = support::wasm("steps").to_str().unwrap().to_owned();
    let manifest = support::manifest_path("steps").to_str().unwrap().to_owned();
    let o = run(vec!["deploy".into(), wasm, "--manifest".into(), manifest]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("deployed steps v1"), "{}", text(&o));

    let o = run(["run", "steps", "--json", "--input", r#"{"count":3}"#]
        .map(String::from)
        .to_vec())
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "completed");
    let id = v["run_id"].as_str().unwrap().to_owned();

    let o = run(vec![
        "events".into(),
        id.clone(),
        "--follow".into(),
        "--json".into(),
    ])
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let kinds: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("queued"));
    assert_eq!(kinds.last().map(String::as_str), Some("completed"));
    assert_eq!(kinds.iter().filter(|k| *k == "artifact_written").count(), 3);

    let o = run(vec!["workflows".into()]).await;
    assert!(text(&o).contains("steps"), "{}", text(&o));
    let o = run(vec!["runs".into(), "--json".into()]).await;
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["run_id"], json!(id));

    // A run waiting for a signal: back at once, and the hint names the
    // server, so pasting it elsewhere reaches the same run.
    let wasm = support::wasm("approval").to_str().unwrap().to_owned();
    let manifest = support::manifest_path("approval")
        .to_str()
        .unwrap()
        .to_owned();
    let o = run(vec!["deploy".into(), wasm, "--manifest".into(), manifest]).await;
    assert!(o.status.success(), "{}", text(&o));
    let t0 = Instant::now();
    let o = run(["run", "approval"].map(String::from).to_vec()).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        text(&o).contains(&format!("send it with `runway --server {} signal ", s.base)),
        "{}",
        text(&o)
    );

    // A bad token is the server's 401, as a clear error and exit code 2.
    let base = s.base.clone();
    let o = tokio::task::spawn_blocking(move || cli(&base, "wrong", &["runs"]))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("UNAUTHORIZED"), "{}", text(&o));
    assert!(
        !text(&o).contains("wrong"),
        "the token is not echoed: {}",
        text(&o)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_can_signal_the_run_whose_input_matches() {
    use runway::triggers::webhook::sign_hmac;
    let dir = tempfile::tempdir().unwrap();
    let key = "corr-key";
    let s = Server::start(dir.path(), &[], &[("APPROVALS_KEY", key)]).await;
    let manifest = format!(
        "{}\n[triggers.webhook]\nscheme = \"hmac\"\nsecret = \"APPROVALS_KEY\"\ndelivery_id_header = \"X-Delivery\"\ninput_pointer = \"/decision\"\n[triggers.webhook.signal]\nname = \"approve\"\ncorrelation_pointer = \"/pr\"\ninput_pointer = \"/request\"\n",
        support::manifest("approval").trim_end()
    );
    s.deploy("approval", &manifest).await;
    let mut ids = Vec::new();
    for pr in ["pr-6", "pr-7"] {
        let run: Value = s
            .post_json("/v1/workflows/approval/runs", &json!({ "request": pr }))
            .await
            .json()
            .await
            .unwrap();
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    let body = br#"{"pr":"pr-7","decision":{"by":"ada"}}"#.to_vec();
    let send = |delivery: &'static str| {
        s.http
            .post(format!("{}/hooks/approval", s.base))
            .header("content-type", "application/json")
            .header("X-Signature", sign_hmac(key.as_bytes(), &body, ""))
            .header("X-Delivery", delivery)
            .body(body.clone())
            .send()
    };
    // The runs may still be starting: the hook needs them waiting.
    let t0 = Instant::now();
    let res = loop {
        let res = send("d-1").await.unwrap();
        if res.status() != StatusCode::NOT_FOUND || t0.elapsed() > Duration::from_secs(10) {
            break res;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["action"], "signalled");
    assert_eq!(receipt["run_id"], json!(ids[1]));
    let res = send("d-1").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a replayed delivery is not signalled twice"
    );
    let t0 = Instant::now();
    let done = loop {
        let r = s.get_json(&format!("/v1/runs/{}", ids[1])).await;
        if r["status"] == "completed" {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{r}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["output"]["signal"], json!({ "by": "ada" }));
    let res = send("d-1").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a delivery replayed after its run ended is still a duplicate"
    );
    let other = s.get_json(&format!("/v1/runs/{}", ids[0])).await;
    assert_eq!(other["status"], "waiting_signal");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_loses_nothing_and_delete_waits_for_runs_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]).await;
    s.deploy("sleepy", &support::manifest("sleepy")).await;
    let run: Value = s
        .post_json("/v1/workflows/sleepy/runs", &json!({ "ms": 1500 }))
        .await
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let res = s
        .req(reqwest::Method::DELETE, "/v1/workflows/sleepy")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT, "a run is in flight");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.stop().await;

    // A new server resumes the sleeping run; it wakes on time.
    let s = Server::start(dir.path(), &[], &[]).await;
    let t0 = Instant::now();
    let done = loop {
        let r = s.get_json(&format!("/v1/runs/{id}")).await;
        if r["status"] == "completed" {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let late =
        done["output"]["after_ms"].as_i64().unwrap() - done["output"]["until_ms"].as_i64().unwrap();
    assert!((0..=100).contains(&late), "woke {late} ms late");
    let res = s
        .req(reqwest::Method::DELETE, "/v1/workflows/sleepy")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = s
        .req(reqwest::Method::GET, "/v1/workflows/sleepy")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The finished run still names its version.
    assert_eq!(s.get_json(&format!("/v1/runs/{id}")).await["version"], 1);
    s.stop().await;
}

#[test]
fn serve_refuses_to_listen_beyond_loopback_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("RUNWAY_API_TOKENS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without authentication"), "{err}");
}

/// A host with one execution slot held by an endless loop (so every other
/// run queues), served in process with `max_queued_runs`.
struct Hogged {
    host: Host,
    hog: runway::types::RunId,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Hogged {
    async fn start(max_queued_runs: usize) -> Hogged {
        support::guest_dir();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("secrets.toml"),
            format!("HOOK_KEY = \"{HOOK_KEY}\"\n"),
        )
        .unwrap();
        let mut config = support::host_config(dir.path());
        config.max_concurrent_runs = 1;
        config.server.max_queued_runs = max_queued_runs;
        let host = Host::open(config).await.unwrap();
        host.deploy(support::wasm_bytes("hello"), &support::manifest("hello"))
            .await
            .unwrap();
        host.deploy(
            support::wasm_bytes("hello"),
            "slug = \"hooked\"\n[triggers.webhook]\nscheme = \"hmac\"\nsecret = \"HOOK_KEY\"\n",
        )
        .await
        .unwrap();
        host.deploy(
            support::wasm_bytes("hostile"),
            "slug = \"hostile\"\n[budget]\nmax_fuel = \"unlimited\"\nmax_duration = \"30s\"\n",
        )
        .await
        .unwrap();
        let hog = host
            .start("hostile", json!({ "attack": "loop" }))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while host.run_record(hog).await.unwrap().status != runway::types::RunStatus::Running {
            assert!(Instant::now() < deadline, "the hog never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let settings = ServerSettings {
            max_queued_runs,
            ..ServerSettings::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(runway::api::serve(
            host.clone(),
            settings,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Hogged {
            host,
            hog,
            base,
            stop,
            server,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.host.cancel(self.hog).await.unwrap();
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

const HOOK_KEY: &str = "hook-key-9d2c";

/// Admission everywhere: a webhook delivery past the queue bound is 429
/// with `Retry-After` (the sender retries), and starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_past_the_queue_bound_is_429_and_starts_nothing() {
    use hmac::Mac;
    let h = Hogged::start(1).await;
    let http = reqwest::Client::new();
    let deliver = |name: &str| {
        let body = serde_json::to_vec(&json!({ "name": name })).unwrap();
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(HOOK_KEY.as_bytes()).unwrap();
        mac.update(&body);
        http.post(format!("{}/hooks/hooked", h.base))
            .header("x-signature", hex::encode(mac.finalize().into_bytes()))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let first = deliver("a").await.unwrap();
    assert!(first.status().is_success(), "{}", first.status());
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.host.queue_depth() < 1 {
        assert!(Instant::now() < deadline, "the run never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = h.host.runs(&Default::default(), 100).unwrap().len();
    let full = deliver("b").await.unwrap();
    assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(full.headers().contains_key("retry-after"));
    assert_eq!(h.host.runs(&Default::default(), 100).unwrap().len(), before);
    h.stop().await;
}

/// Idempotency before admission: a client re-sending an accepted request
/// while the queue is full learns its run; a new request gets 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_idempotency_key_is_answered_while_the_queue_is_full() {
    let h = Hogged::start(1).await;
    let (host, base) = (&h.host, &h.base);
    let http = reqwest::Client::new();
    let post = |key: Option<&'static str>| {
        let mut r = http
            .post(format!("{base}/v1/workflows/hello/runs"))
            .json(&json!({ "name": "k" }));
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        r.send()
    };
    let first = post(Some("order-1")).await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    // The hello waits behind the hog: the queue is full now.
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.queue_depth() < 1 {
        assert!(Instant::now() < deadline, "the run never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let full = post(None).await.unwrap();
    assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
    let again = post(Some("order-1")).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    h.stop().await;
}

/// The queue bound is exact: 64 triggers racing against a bound of 10
/// (one execution slot, held) admit exactly 10; the rest get 429 with
/// `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_triggers_against_the_queue_bound_admit_exactly_that_many() {
    let h = Hogged::start(10).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let url = format!("{}/v1/workflows/hello/runs", h.base);
        tasks.spawn(async move {
            let res = reqwest::Client::new()
                .post(url)
                .json(&json!({ "name": format!("n{i}") }))
                .send()
                .await
                .unwrap();
            (res.status(), res.headers().contains_key("retry-after"))
        });
    }
    let answers = tasks.join_all().await;
    let admitted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    let refused = answers
        .iter()
        .filter(|(s, retry)| *s == StatusCode::TOO_MANY_REQUESTS && *retry)
        .count();
    assert_eq!((admitted, refused), (10, 54), "{answers:?}");
    assert_eq!(h.host.queue_depth(), 10);
    h.stop().await;
}
