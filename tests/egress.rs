//! Outbound HTTP from workflows, against a loopback service that records
//! every request (tests/support/service.rs): the egress policy and its
//! audit, secret placeholders, limits and retries, a `pr-review` workflow
//! against fakes of GitHub and a model provider, and SIGKILLs of the real
//! server between and during requests.

mod support;

use runway::types::{EventBody, RunRecord, RunStatus};
use runway::{Host, HostConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::service::Service;

/// A token the service should see, and nothing else ever hold.
const TOKEN: &str = "ghp_TESTtoken7f3a9c1e5b2d4086";

/// A host whose `[egress]` is `egress` (TOML lines), with the secret
/// `GITHUB_TOKEN` set.
async fn host(dir: &Path, egress: &str, extra: &str) -> Host {
    std::fs::write(
        dir.join("secrets.toml"),
        format!("GITHUB_TOKEN = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let path = dir.join("runway-host.toml");
    std::fs::write(&path, format!("{extra}\n[egress]\n{egress}\n")).unwrap();
    let config = HostConfig::new(dir).apply_file(&path).expect("the config");
    Host::open(config).await.expect("opening a host")
}

/// Deploys `fetch` with `[http]` lines and the secret it may use.
async fn deploy_fetch(host: &Host, http: &str) {
    let manifest = format!(
        "slug = \"fetch\"\nsecrets = [\"GITHUB_TOKEN\"]\n[http]\n{http}\n[budget]\nmax_duration = \"30s\"\n"
    );
    host.deploy(support::wasm_bytes("fetch"), &manifest)
        .await
        .expect("deploying fetch");
}

async fn fetch(host: &Host, requests: Value) -> (RunRecord, Vec<Value>) {
    let r = host
        .run("fetch", json!({ "requests": requests }))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    let responses = r.output.clone().unwrap()["responses"]
        .as_array()
        .unwrap()
        .clone();
    (r, responses)
}

/// The run's `http_call` events, as JSON.
fn http_events(host: &Host, run: &RunRecord) -> Vec<Value> {
    host.events(run.id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.body, EventBody::HttpCall { .. }))
        .map(|e| serde_json::to_value(&e).unwrap())
        .collect()
}

const LOOPBACK: &str = "allow = [\"http://127.0.0.1:*\"]\nallow_private = [\"127.0.0.0/8\"]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_denial_is_typed_audited_and_reaches_nothing() {
    support::guest_dir();
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(
        dir.path(),
        "allow = [\"http://127.0.0.1:*\", \"http://localhost:*\", \"http://169.254.169.254:*\", \"https://*.example.org\"]\ndeny = [\"https://blocked.example.org\"]",
        "",
    )
    .await;
    deploy_fetch(&host, "allow = [\"http://127.0.0.1:*\", \"http://localhost:*\", \"http://169.254.169.254:*\", \"https://blocked.example.org\"]").await;
    let b = &svc.base;
    let cases = [
        // Not named by the manifest.
        ("https://api.example.org/x".to_owned(), "manifest"),
        // Denied by the host.
        ("https://blocked.example.org/x".to_owned(), "deny rule"),
        // Loopback without the host's explicit allowance.
        (format!("{b}/echo"), "loopback"),
        // The cloud metadata address.
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        // A name that resolves to loopback.
        (format!("http://localhost:{}/echo", svc.port), "resolves to"),
    ];
    let requests: Vec<Value> = cases.iter().map(|(u, _)| json!({ "url": u })).collect();
    let (run, responses) = fetch(&host, json!(requests)).await;
    let events = http_events(&host, &run);
    assert_eq!(events.len(), cases.len());
    for (i, (url, why)) in cases.iter().enumerate() {
        assert_eq!(
            responses[i]["error"]["code"], "EGRESS_DENIED",
            "{url}: {}",
            responses[i]
        );
        assert!(
            responses[i]["error"]["message"]
                .as_str()
                .unwrap()
                .contains(why),
            "{url}: {}",
            responses[i]
        );
        assert_eq!(events[i]["egress"]["decision"], "denied", "{}", events[i]);
        assert_eq!(events[i]["error"]["code"], "EGRESS_DENIED");
        assert_eq!(events[i]["attempts"], 0, "{}", events[i]);
    }
    assert!(svc.seen().is_empty(), "{:?}", svc.seen());
    host.shutdown().await.unwrap();
    drop(host);

    // Loopback allowed explicitly: a redirect to the metadata address is
    // checked again and refused; the first hop reached the service only.
    let dir = tempfile::tempdir().unwrap();
    let host = self::host(dir.path(), LOOPBACK, "").await;
    deploy_fetch(
        &host,
        "allow = [\"http://127.0.0.1:*\", \"http://169.254.169.254\"]",
    )
    .await;
    let to = "http://169.254.169.254/latest/meta-data/";
    let (run, responses) = fetch(&host, json!([{ "url": format!("{b}/redirect?to={to}") }])).await;
    assert_eq!(
        responses[0]["error"]["code"], "EGRESS_DENIED",
        "{}",
        responses[0]
    );
    let events = http_events(&host, &run);
    assert_eq!(events[0]["egress"]["decision"], "denied", "{}", events[0]);
    assert!(
        events[0]["egress"]["reason"]
            .as_str()
            .unwrap()
            .contains("redirect 1"),
        "{}",
        events[0]
    );
    assert_eq!(svc.count("/redirect"), 1);
    assert_eq!(svc.seen().len(), 1);
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_requests_are_journaled_audited_and_never_sent_twice() {
    support::guest_dir();
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), LOOPBACK, "").await;
    deploy_fetch(
        &host,
        "allow = [\"http://127.0.0.1:*\"]\nmethods = [\"GET\", \"POST\"]",
    )
    .await;
    let b = &svc.base;
    let (run, responses) = fetch(
        &host,
        json!([
            { "url": format!("{b}/echo?q=1") },
            { "method": "POST", "url": format!("{b}/echo"), "body": "hello", "headers": [["content-type", "text/plain"]] },
            { "method": "POST", "url": format!("{b}/echo"), "headers": [["Idempotency-Key", "mine"]] },
            { "method": "DELETE", "url": format!("{b}/echo") },
        ]),
    )
    .await;
    let seen = svc.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
    assert!(
        !seen[0].headers.contains_key("idempotency-key"),
        "GET carries no key"
    );
    assert_eq!(seen[1].body, b"hello");
    assert_eq!(seen[1].headers["content-type"], "text/plain");
    // The key: the run and the call's position.
    let key = &seen[1].headers["idempotency-key"];
    assert!(key.starts_with(&run.id.to_string()), "{key}");
    assert_eq!(seen[2].headers["idempotency-key"], "mine");
    assert_eq!(
        responses[3]["error"]["code"], "EGRESS_DENIED",
        "the manifest allows GET and POST only"
    );
    let echoed: Value = serde_json::from_str(responses[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "POST");
    let events = http_events(&host, &run);
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["status"], 200);
    assert_eq!(events[0]["method"], "GET");
    assert_eq!(events[0]["egress"]["decision"], "allowed");
    assert_eq!(events[0]["egress"]["host_rule"], "http://127.0.0.1:*");
    assert_eq!(
        events[1]["bytes_received"].as_u64().unwrap() as usize,
        responses[1]["body"].as_str().unwrap().len()
    );

    // A replay answers from the journal: nothing is sent again.
    let journal = host.store().journal(run.id).unwrap();
    assert!(
        journal
            .iter()
            .any(|e| e.call == "runway:workflow/http.send")
    );
    host.shutdown().await.unwrap();
    drop(host);
    let again = self::host(dir.path(), LOOPBACK, "").await;
    let rec = again.run_record(run.id).await.unwrap();
    assert_eq!(rec.status, RunStatus::Completed);
    assert_eq!(svc.seen().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_placeholder_reaches_the_service_and_nothing_else_holds_the_value() {
    support::guest_dir();
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), LOOPBACK, "").await;
    deploy_fetch(&host, "allow = [\"http://127.0.0.1:*\"]").await;
    let b = &svc.base;
    let (run, responses) = fetch(
        &host,
        json!([
            // The service echoes the header (body and a response header).
            { "url": format!("{b}/echo"), "headers": [["authorization", "Bearer {{secret:GITHUB_TOKEN}}"]] },
            // Undeclared: refused, nothing sent.
            { "url": format!("{b}/echo"), "headers": [["x-key", "{{secret:OTHER}}"]] },
        ]),
    )
    .await;
    let seen = svc.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(
        responses[1]["error"]["code"], "HTTP_INVALID_REQUEST",
        "{}",
        responses[1]
    );
    // The guest saw the echo masked.
    let shown = responses[0].to_string();
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("********"), "{shown}");
    // Not in any event, journal entry, the run record, or any file.
    let events = serde_json::to_string(&host.events(run.id, 0, usize::MAX).unwrap()).unwrap();
    assert!(!events.contains(TOKEN));
    let journal = serde_json::to_string(&host.store().journal(run.id).unwrap()).unwrap();
    assert!(!journal.contains(TOKEN));
    assert!(
        !serde_json::to_string(&host.run_record(run.id).await.unwrap())
            .unwrap()
            .contains(TOKEN)
    );
    host.shutdown().await.unwrap();
    for f in support::files(dir.path()) {
        if f.file_name().is_some_and(|n| n == "secrets.toml") {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "{} holds the token",
            f.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_retries_are_typed_and_counted() {
    support::guest_dir();
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(
        dir.path(),
        &format!("{LOOPBACK}\nmax_response_bytes = \"1 KiB\"\ntimeout = \"300ms\"\nretries = 2\nbackoff = \"10ms\""),
        "",
    )
    .await;
    deploy_fetch(&host, "allow = [\"http://127.0.0.1:*\"]").await;
    let b = &svc.base;
    // A port nothing listens on.
    let closed = support::free_port();
    let t0 = Instant::now();
    let (_, responses) = fetch(
        &host,
        json!([
            { "url": format!("{b}/slow?ms=2000") },
            { "url": format!("{b}/big?bytes=2048") },
            { "url": format!("{b}/big?bytes=1000") },
            { "url": format!("{b}/limited?times=1") },
            { "url": format!("{b}/limited?times=5") },
            { "method": "POST", "url": format!("{b}/fail"), "headers": [["idempotency-key", "k"]] },
            { "method": "PATCH", "url": format!("{b}/fail") },
            { "url": format!("http://127.0.0.1:{closed}/") },
            { "url": format!("{b}/slow?ms=100"), "timeout_ms": 50 },
        ]),
    )
    .await;
    assert_eq!(
        responses[0]["error"]["code"], "HTTP_TIMEOUT",
        "{}",
        responses[0]
    );
    assert_eq!(
        responses[1]["error"]["code"], "HTTP_TOO_LARGE",
        "{}",
        responses[1]
    );
    assert_eq!(responses[2]["status"], 200);
    // 429 with Retry-After: 1, once: retried after a second, then 200.
    assert_eq!(responses[3]["status"], 200, "{}", responses[3]);
    assert_eq!(svc.count("/limited?times=1"), 2);
    // Limited past the retries: the last 429 is the answer; 3 attempts.
    assert_eq!(responses[4]["status"], 429, "{}", responses[4]);
    assert_eq!(svc.count("/limited?times=5"), 3);
    // 500 past the retries is the answer. A POST with its own key and a
    // PATCH with the host's are retried, each attempt with the same key.
    assert_eq!(responses[5]["status"], 500);
    assert_eq!(responses[6]["status"], 500);
    let fails: Vec<_> = svc
        .seen()
        .into_iter()
        .filter(|s| s.path == "/fail")
        .collect();
    let posts: Vec<_> = fails.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(posts.len(), 3);
    assert!(posts.iter().all(|s| s.headers["idempotency-key"] == "k"));
    let patches: Vec<_> = fails.iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(patches.len(), 3);
    assert!(
        patches
            .iter()
            .all(|s| s.headers["idempotency-key"] == patches[0].headers["idempotency-key"])
    );
    assert_eq!(
        responses[7]["error"]["code"], "HTTP_CONNECT",
        "{}",
        responses[7]
    );
    assert_eq!(
        responses[8]["error"]["code"], "HTTP_TIMEOUT",
        "{}",
        responses[8]
    );
    assert_eq!(svc.count("/slow"), 2, "a timeout is not retried");
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pr_review_fetches_the_diff_asks_a_model_and_comments() {
    support::guest_dir();
    let svc = Service::start().await;
    let provider = support::provider::Provider::start("sk-test-key").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secrets.toml"),
        format!("GITHUB_TOKEN = \"{TOKEN}\"\nPROVIDER_KEY = \"sk-test-key\"\nGITHUB_WEBHOOK_SECRET = \"whsec\"\n"),
    )
    .unwrap();
    let path = dir.path().join("runway-host.toml");
    std::fs::write(
        &path,
        format!(
            "[models.aliases]\ndefault = \"oa/gpt-test\"\n[models.providers.oa]\nkind = \"openai\"\nbase_url = \"{}\"\nkey_secret = \"PROVIDER_KEY\"\n[egress]\n{LOOPBACK}\n",
            provider.openai_url()
        ),
    )
    .unwrap();
    let config = HostConfig::new(dir.path()).apply_file(&path).unwrap();
    let host = Host::open(config).await.unwrap();
    // The example's manifest, pointed at the fake GitHub.
    let manifest = support::manifest("pr-review")
        .replace("https://api.github.com\"", &format!("{}\"", svc.base))
        .replace(
            "allow = [\"api.github.com\"]",
            "allow = [\"http://127.0.0.1:*\"]",
        );
    host.deploy(support::wasm_bytes("pr-review"), &manifest)
        .await
        .unwrap();
    let delivery = json!({
        "action": "opened",
        "number": 7,
        "pull_request": { "title": "Rename a to b", "body": "Small." },
        "repository": { "full_name": "acme/widgets" }
    });
    let r = host.run("pr-review", delivery).await.unwrap();
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out["diff_bytes"], support::service::DIFF.len());
    let seen = svc.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/repos/acme/widgets/pulls/7");
    assert_eq!(seen[0].headers["accept"], "application/vnd.github.diff");
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].path, "/repos/acme/widgets/issues/7/comments");
    assert_eq!(seen[1].headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(seen[1].headers["content-type"], "application/json");
    assert!(seen[1].headers["idempotency-key"].starts_with(&r.id.to_string()));
    let comment: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert!(
        comment["body"]
            .as_str()
            .unwrap()
            .starts_with("**Automated review**"),
        "{comment}"
    );
    assert_eq!(out["comment_id"], 1002);
    // The model saw the diff.
    let asked = provider.requests();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].body.to_string().contains("fn b()"));
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGKILL of the real server in a durable sleep between two requests and
/// during a slow one: every answered request was sent once; the one in
/// flight at the kill was sent again, once, with the same Idempotency-Key;
/// no log line holds the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_and_during_requests_sends_each_once_and_repeats_with_the_same_key() {
    support::guest_dir();
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("secrets.toml"),
        format!("GITHUB_TOKEN = \"{TOKEN}\"\n"),
    )
    .unwrap();
    std::fs::write(
        data.join("runway-host.toml"),
        format!("[egress]\n{LOOPBACK}\n"),
    )
    .unwrap();
    let manifest = dir.path().join("fetch.toml");
    std::fs::write(
        &manifest,
        "slug = \"fetch\"\nsecrets = [\"GITHUB_TOKEN\"]\n[http]\nallow = [\"http://127.0.0.1:*\"]\n",
    )
    .unwrap();
    let out = support::runway_on(&data)
        .arg("deploy")
        .arg(support::wasm("fetch"))
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.path().join("serve.log");
    let port = support::free_port();
    let mut server = support::serve_on(&data, port, &log).await;
    let b = &svc.base;
    let auth = [["authorization", "Bearer {{secret:GITHUB_TOKEN}}"]];
    let input = json!({
        "pause_ms": 2000,
        "requests": [
            { "method": "POST", "url": format!("{b}/echo?n=1"), "headers": auth },
            { "method": "POST", "url": format!("{b}/slow?ms=1500&n=2"), "headers": auth },
            { "method": "POST", "url": format!("{b}/echo?n=3"), "headers": auth },
        ]
    });
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("http://127.0.0.1:{port}/v1/workflows/fetch/runs"))
        .json(&input)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_owned();

    // In the durable sleep after the first request.
    until("the first request", || svc.count("/echo?n=1") == 1).await;
    let t0 = Instant::now();
    loop {
        let r: Value = http
            .get(format!("http://127.0.0.1:{port}/v1/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] == "sleeping" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never slept: {r}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    server = support::serve_on(&data, port, &log).await;

    // During the slow second request.
    until("the slow request", || svc.count("/slow") == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    server = support::serve_on(&data, port, &log).await;

    let t0 = Instant::now();
    let run = loop {
        let r: Value = http
            .get(format!("http://127.0.0.1:{port}/v1/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] == "completed" || r["status"] == "failed" {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        svc.count("/echo?n=1"),
        1,
        "answered before a kill: sent once"
    );
    assert_eq!(svc.count("/echo?n=3"), 1);
    let slow: Vec<_> = svc
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/slow"))
        .collect();
    assert_eq!(slow.len(), 2, "in flight at the kill: sent again, once");
    assert_eq!(
        slow[0].headers["idempotency-key"],
        slow[1].headers["idempotency-key"]
    );
    assert!(slow[0].headers["idempotency-key"].starts_with(&id));
    assert!(
        svc.seen()
            .iter()
            .all(|s| s.headers["authorization"] == format!("Bearer {TOKEN}"))
    );
    let _ = server.kill();
    let _ = server.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("runway serving"), "{text}");
    assert!(!text.contains(TOKEN), "a log line holds the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_budgets_end_the_run() {
    support::guest_dir();
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), LOOPBACK, "").await;
    let manifest = "slug = \"fetch\"\n[http]\nallow = [\"http://127.0.0.1:*\"]\n[budget]\nmax_http_calls = 2\n";
    host.deploy(support::wasm_bytes("fetch"), manifest)
        .await
        .unwrap();
    let b = &svc.base;
    let urls: Vec<Value> = (0..3)
        .map(|i| json!({ "url": format!("{b}/echo?i={i}") }))
        .collect();
    let r = host
        .run("fetch", json!({ "requests": urls }))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(
        r.error.unwrap().code,
        runway::types::ErrorCode::BudgetExceeded
    );
    assert_eq!(svc.seen().len(), 2);
    let manifest = "slug = \"fetch\"\n[http]\nallow = [\"http://127.0.0.1:*\"]\n[budget]\nmax_http_bytes = 1500\n";
    host.deploy(support::wasm_bytes("fetch"), manifest)
        .await
        .unwrap();
    let r = host
        .run("fetch", json!({ "requests": [{ "url": format!("{b}/big?bytes=1000") }, { "url": format!("{b}/big?bytes=1000") }, { "url": format!("{b}/big?bytes=1000") }] }))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(
        svc.count("/big"),
        2,
        "the budget is checked before the next request"
    );
}

/// A data directory where `pr-review` is deployed (by the CLI) against the
/// fake GitHub `svc` and the fake provider `provider` (which the host
/// calls once per model call, no retries of its own), with `extra` lines
/// added to its manifest.
fn pr_review_data(
    dir: &Path,
    svc: &Service,
    provider: &support::provider::Provider,
    extra: &str,
) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("secrets.toml"),
        format!("GITHUB_TOKEN = \"{TOKEN}\"\nPROVIDER_KEY = \"sk-test-key\"\nGITHUB_WEBHOOK_SECRET = \"whsec\"\n"),
    )
    .unwrap();
    std::fs::write(
        data.join("runway-host.toml"),
        format!(
            "[models.aliases]\ndefault = \"oa/gpt-test\"\n[models.providers.oa]\nkind = \"openai\"\nbase_url = \"{}\"\nkey_secret = \"PROVIDER_KEY\"\nretries = 0\n[egress]\n{LOOPBACK}\n",
            provider.openai_url()
        ),
    )
    .unwrap();
    let manifest = support::manifest("pr-review")
        .replace("https://api.github.com\"", &format!("{}\"", svc.base))
        .replace(
            "allow = [\"api.github.com\"]",
            "allow = [\"http://127.0.0.1:*\"]",
        );
    let path = dir.join("pr-review.toml");
    std::fs::write(&path, format!("{manifest}\n{extra}\n")).unwrap();
    support::ok(
        support::runway_on(&data)
            .arg("deploy")
            .arg(support::wasm("pr-review"))
            .arg("--manifest")
            .arg(&path)
            .output()
            .unwrap(),
    );
    data
}

fn delivery() -> Value {
    json!({
        "action": "opened",
        "number": 7,
        "pull_request": { "title": "Rename a to b", "body": "Small." },
        "repository": { "full_name": "acme/widgets" }
    })
}

/// GETs `path` on the server at `base` as JSON.
async fn get(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls run `id` until it has ended; its view.
async fn ended(base: &str, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let r = get(base, &format!("/v1/runs/{id}")).await;
        if ["completed", "failed", "cancelled"].contains(&r["status"].as_str().unwrap_or("")) {
            return r;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never ended: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The seq of run `id`'s first event of `kind`.
async fn seq_of(base: &str, id: &str, kind: &str) -> u64 {
    let page = get(base, &format!("/v1/runs/{id}/events?limit=1000")).await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {page}"))["seq"]
        .as_u64()
        .unwrap()
}

/// Reset over HTTP and by the CLI: a fork after the model call makes only
/// the comment again; one after the diff's fetch asks the model again but
/// fetches nothing; one from the start does everything again. The fake
/// GitHub and provider count what each fork sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_re_executes_only_what_comes_after_its_event() {
    support::guest_dir();
    let svc = Service::start().await;
    let provider = support::provider::Provider::start("sk-test-key").await;
    let dir = tempfile::tempdir().unwrap();
    let data = pr_review_data(dir.path(), &svc, &provider, "");
    let port = support::free_port();
    let mut server = support::serve_on(&data, port, &dir.path().join("serve.log")).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{base}/v1/workflows/pr-review/runs"))
        .json(&delivery())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let first = ended(&base, &id).await;
    assert_eq!(first["status"], "completed", "{first}");
    let sent = |svc: &Service| {
        (
            svc.count("/repos/acme/widgets/pulls"),
            svc.count("/repos/acme/widgets/issues"),
        )
    };
    assert_eq!((sent(&svc), provider.count()), ((1, 1), 1));

    let reset = |to: u64| {
        let http = http.clone();
        let url = format!("{base}/v1/runs/{id}/reset?to={to}");
        async move { http.post(url).send().await.unwrap() }
    };
    // After the model's answer: only the comment is posted again.
    let model = seq_of(&base, &id, "model_call").await;
    let res = reset(model).await;
    assert_eq!(res.status(), reqwest::StatusCode::ACCEPTED);
    let fork: Value = res.json().await.unwrap();
    let fork_id = fork["id"].as_str().unwrap().to_owned();
    let done = ended(&base, &fork_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!((sent(&svc), provider.count()), ((1, 2), 1));
    assert_eq!(done["trigger"]["kind"], "reset");
    assert_eq!(done["trigger"]["rerun_of"], id.as_str());
    assert_eq!(done["trigger"]["reset_to"], model);
    assert_eq!(done["version"], first["version"]);
    // The copied model call counts in the fork's usage.
    assert_eq!(done["usage"]["model"]["calls"], 1, "{done}");
    assert_eq!(done["output"]["diff_bytes"], first["output"]["diff_bytes"]);
    // A new comment, with the fork's own idempotency key.
    let seen = svc.seen();
    let post = seen.last().unwrap();
    assert_eq!(post.method, "POST");
    assert!(post.headers["idempotency-key"].starts_with(&fork_id));
    // The fork's events up to the model call are the original's.
    let events = |run: String| {
        let base = base.clone();
        async move {
            get(&base, &format!("/v1/runs/{run}/events?limit=1000")).await["events"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let (a, b) = (events(id.clone()).await, events(fork_id.clone()).await);
    assert_eq!(a[..model as usize], b[..model as usize]);
    assert_eq!(b.iter().filter(|e| e["kind"] == "model_call").count(), 1);

    // After the diff's fetch, by the CLI: the model is asked again.
    let fetched = seq_of(&base, &id, "http_call").await;
    let out = support::ok(
        support::runway_on(&data)
            .args([
                "--server",
                &base,
                "reset",
                &id,
                "--to",
                &fetched.to_string(),
                "--detach",
            ])
            .output()
            .unwrap(),
    );
    let cli_fork = out.trim().to_owned();
    let done = ended(&base, &cli_fork).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!((sent(&svc), provider.count()), ((1, 3), 2));
    assert_eq!(done["trigger"]["reset_to"], fetched);

    // From the first event: everything again.
    let res = reset(1).await;
    let fresh = ended(
        &base,
        res.json::<Value>().await.unwrap()["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(fresh["status"], "completed", "{fresh}");
    assert_eq!((sent(&svc), provider.count()), ((2, 4), 3));
    assert_eq!(fresh["trigger"]["reset_to"], 0);

    // The original lists its forks; a point it does not have is refused.
    let original = get(&base, &format!("/v1/runs/{id}")).await;
    assert_eq!(
        original["reruns"].as_array().unwrap().len(),
        3,
        "{original}"
    );
    for to in [0, 10_000] {
        let res = reset(to).await;
        assert_eq!(res.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INVALID_RESET_POINT", "{body}");
    }
    server.kill().unwrap();
    let _ = server.wait();
}

/// `[retry]`: a model call that fails fails the run's first attempt; the
/// second replays the diff's fetch from the journal (not sent again), asks
/// the model again and completes. The attempt shows on the run and in its
/// events; a failure the policy does not name is not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_run_keeps_its_answered_calls_and_shows_its_attempts() {
    support::guest_dir();
    let svc = Service::start().await;
    let provider = support::provider::Provider::start("sk-test-key").await;
    let dir = tempfile::tempdir().unwrap();
    let data = pr_review_data(
        dir.path(),
        &svc,
        &provider,
        "[retry]\nmax_attempts = 3\nbackoff = \"200ms\"\n",
    );
    let port = support::free_port();
    let mut server = support::serve_on(&data, port, &dir.path().join("serve.log")).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = || {
        let http = http.clone();
        let url = format!("{base}/v1/workflows/pr-review/runs");
        async move {
            let v: Value = http
                .post(url)
                .json(&delivery())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["id"].as_str().unwrap().to_owned()
        }
    };
    use support::provider::Behavior;
    provider.script([Behavior::ServerError]);
    let id = start().await;
    let run = ended(&base, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["attempt"], 2);
    let page0 = get(&base, &format!("/v1/runs/{id}/events?limit=1000")).await;
    assert_eq!(
        svc.count("/repos/acme/widgets/pulls"),
        1,
        "the diff is fetched once: {page0}"
    );
    assert_eq!(svc.count("/repos/acme/widgets/issues"), 1);
    assert_eq!(provider.count(), 2);
    let page = get(&base, &format!("/v1/runs/{id}/events?limit=1000")).await;
    let retrying: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "retrying")
        .collect();
    assert_eq!(retrying.len(), 1, "{page}");
    assert_eq!(retrying[0]["attempt"], 2);
    assert_eq!(retrying[0]["code"], "PROVIDER_ERROR");
    assert!(retrying[0]["kept"].as_u64().unwrap() >= 1, "{page}");

    // Every attempt fails: the last one's failure is the run's.
    provider.script([
        Behavior::ServerError,
        Behavior::ServerError,
        Behavior::ServerError,
    ]);
    let id = start().await;
    let run = ended(&base, &id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["attempt"], 3);
    assert_eq!(run["error"]["cause"], "PROVIDER_ERROR");
    assert_eq!(provider.count(), 5);
    assert_eq!(svc.count("/repos/acme/widgets/pulls"), 2);

    // An unreadable answer is not among the default codes: not retried.
    provider.script([Behavior::Malformed]);
    let id = start().await;
    let run = ended(&base, &id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["attempt"], 1);
    assert_eq!(run["error"]["cause"], "INVALID_RESPONSE");
    server.kill().unwrap();
    let _ = server.wait();
}
