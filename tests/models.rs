//! Model calls through the host, against a real HTTP provider on loopback
//! that speaks both wire formats (tests/support/provider.rs): the answers,
//! retries, timeouts and typed errors; token and cost budgets, through
//! child runs too; replay that never calls the provider again; a SIGKILL of
//! the host mid-workflow; and a key that appears nowhere.

mod support;

use runway::types::{ErrorCode, EventBody, RunId, RunRecord, RunStatus};
use runway::{Host, HostConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::provider::{Behavior, Format, Provider};

const KEY: &str = "sk-test-3f9a7c1e5b2d4086a1c9e7f3";

/// `[models]` for a provider: `default` speaks OpenAI, `fast` Anthropic.
/// Rates: $1 per million input tokens, $2 per million output tokens.
fn models_toml(p: &Provider) -> String {
    format!(
        r#"
[models.aliases]
default = "oa/gpt-test"
fast = "an/claude-test"

[models.providers.oa]
kind = "openai"
base_url = "{}"
key_secret = "PROVIDER_KEY"
input_per_million = 1.0
output_per_million = 2.0
timeout = "400ms"
retries = 2
backoff = "10ms"

[models.providers.an]
kind = "anthropic"
base_url = "{}"
key_secret = "PROVIDER_KEY"
input_per_million = 1.0
output_per_million = 2.0
timeout = "400ms"
retries = 2
backoff = "10ms"
"#,
        p.openai_url(),
        p.anthropic_url()
    )
}

/// Writes the host config and the key (in the data dir's secrets file).
fn configure(dir: &Path, p: &Provider) -> std::path::PathBuf {
    std::fs::write(
        dir.join("secrets.toml"),
        format!("PROVIDER_KEY = \"{KEY}\"\n"),
    )
    .unwrap();
    let path = dir.join("runway-host.toml");
    std::fs::write(&path, models_toml(p)).unwrap();
    path
}

async fn host_with(dir: &Path, p: &Provider, tweak: impl FnOnce(&mut HostConfig)) -> Host {
    let path = configure(dir, p);
    let mut config = support::host_config(dir)
        .apply_file(&path)
        .expect("the config");
    tweak(&mut config);
    let host = Host::open(config).await.expect("opening a host");
    for name in ["summarize", "review"] {
        host.deploy(support::wasm_bytes(name), &support::manifest(name))
            .await
            .unwrap_or_else(|e| panic!("deploying {name}: {e}"));
    }
    host
}

async fn host(dir: &Path, p: &Provider) -> Host {
    host_with(dir, p, |_| {}).await
}

async fn finish(host: &Host, id: RunId) -> RunRecord {
    tokio::time::timeout(Duration::from_secs(60), host.wait(id))
        .await
        .expect("the run ended in time")
        .expect("waiting for a run")
}

async fn run(host: &Host, slug: &str, input: Value) -> RunRecord {
    let id = host.start(slug, input).await.unwrap();
    finish(host, id).await
}

/// The `model_call` events of a run.
fn calls(host: &Host, id: RunId) -> Vec<EventBody> {
    host.store()
        .events(id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.body)
        .filter(|b| b.kind() == "model_call")
        .collect()
}

/// Redeploys `slug` with its example manifest's model budgets replaced.
async fn deploy_with_budget(host: &Host, slug: &str, budget: &str) {
    // The examples' [budget] table comes last: the new keys land in it.
    let manifest: String = support::manifest(slug)
        .lines()
        .filter(|l| !l.starts_with("max_tokens") && !l.starts_with("max_usd"))
        .map(|l| format!("{l}\n"))
        .collect();
    let manifest = format!("{manifest}{budget}\n");
    host.deploy(support::wasm_bytes(slug), &manifest)
        .await
        .unwrap_or_else(|e| panic!("deploying {slug}: {e}\n{manifest}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarize_completes_against_each_wire_format() {
    let p = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), &p).await;
    let text = "Durable workflows survive crashes of the host by replaying a journal.";
    for (model, format) in [("default", Format::OpenAi), ("fast", Format::Anthropic)] {
        for structured in [false, true] {
            let before = p.count();
            let r = run(
                &host,
                "summarize",
                json!({ "text": text, "model": model, "structured": structured }),
            )
            .await;
            assert_eq!(r.status, RunStatus::Completed, "{model}: {r:?}");
            let out = r.output.clone().unwrap();
            let asked = format!("Summarize:\n\n{text}");
            let expected: String =
                format!("summary: {}", asked.chars().take(60).collect::<String>());
            assert_eq!(
                out["summary"],
                json!(expected),
                "{model} structured={structured}"
            );
            if structured {
                assert_eq!(out["words"], json!(asked.split_whitespace().count()));
            }
            assert_eq!(out["input_tokens"], 100);
            assert_eq!(out["output_tokens"], 20);
            // 100 * $1/M + 20 * $2/M
            assert!(
                (out["cost_usd"].as_f64().unwrap() - 0.00014).abs() < 1e-12,
                "{out}"
            );
            // The artifact holds the summary.
            let (_, body) = host.artifact(r.id, "summary.md").await.unwrap();
            assert_eq!(String::from_utf8(body).unwrap(), expected);

            // One request, in the provider's own format.
            assert_eq!(p.count(), before + 1);
            let req = p.requests().pop().unwrap();
            assert_eq!(req.format, format);
            assert!(req.authorized);
            match format {
                Format::OpenAi => {
                    assert_eq!(req.body["model"], "gpt-test");
                    assert_eq!(req.body["messages"][0]["role"], "system");
                    assert_eq!(req.body["max_tokens"], 400);
                    assert_eq!(req.body["response_format"].is_object(), structured);
                }
                Format::Anthropic => {
                    assert_eq!(req.body["model"], "claude-test");
                    assert!(req.body["system"].is_string());
                    assert_eq!(req.body["messages"][0]["role"], "user");
                    assert_eq!(req.body["tool_choice"].is_object(), structured);
                }
            }

            // The event and the run's usage say the same.
            let ev = calls(&host, r.id);
            assert_eq!(ev.len(), 1);
            let EventBody::ModelCall {
                model: asked_for,
                provider,
                input_tokens,
                output_tokens,
                finish_reason,
                error,
                attempts,
                ..
            } = &ev[0]
            else {
                unreachable!()
            };
            assert_eq!(asked_for, model);
            assert_eq!(provider, if format == Format::OpenAi { "oa" } else { "an" });
            assert_eq!((*input_tokens, *output_tokens, *attempts), (100, 20, 1));
            assert_eq!(finish_reason.as_deref(), Some("stop"));
            assert!(error.is_none());
            assert_eq!(r.usage.model.calls, 1);
            assert_eq!(r.usage.model.tokens(), 120);
            assert_eq!(r.usage.model.cost_usd.0, 140_000);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_retry_after_and_errors_are_typed() {
    let p = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), &p).await;

    // 429 with Retry-After: 1 -> the retry waits a second.
    p.script([Behavior::RateLimited {
        retry_after_secs: 1,
    }]);
    let before = p.count();
    let r = run(&host, "summarize", json!({ "text": "t" })).await;
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    let reqs = p.requests();
    assert_eq!(reqs.len(), before + 2);
    let gap = reqs[before + 1].at - reqs[before].at;
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_secs(3),
        "the retry came {gap:?} after the 429"
    );
    let EventBody::ModelCall { attempts, .. } = &calls(&host, r.id)[0] else {
        unreachable!()
    };
    assert_eq!(*attempts, 2);

    // A 500 is retried with backoff (10 ms here), not waited for long.
    p.script([Behavior::ServerError, Behavior::ServerError]);
    let t0 = Instant::now();
    let r = run(&host, "summarize", json!({ "text": "t", "model": "fast" })).await;
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(1));

    // Each failure the guest sees has its code; summarize propagates it.
    let cases: Vec<(Vec<Behavior>, &str, &str)> = vec![
        (
            vec![
                Behavior::RateLimited {
                    retry_after_secs: 0,
                };
                3
            ],
            "default",
            "RATE_LIMITED",
        ),
        (vec![Behavior::ServerError; 3], "fast", "PROVIDER_ERROR"),
        (vec![Behavior::Malformed], "default", "INVALID_RESPONSE"),
        (vec![Behavior::Malformed], "fast", "INVALID_RESPONSE"),
        (
            vec![Behavior::Slow(Duration::from_secs(2))],
            "default",
            "PROVIDER_TIMEOUT",
        ),
        (vec![], "oa/other-model", "MODEL_NOT_ALLOWED"),
        // `anthropic/*` is allowed, but no provider of that name exists here.
        (vec![], "anthropic/claude", "MODEL_UNKNOWN"),
    ];
    for (script, model, code) in cases {
        let n = script.len();
        p.script(script);
        let before = p.count();
        let t0 = Instant::now();
        let r = run(&host, "summarize", json!({ "text": "t", "model": model })).await;
        assert_eq!(r.status, RunStatus::Failed, "{code}: {r:?}");
        let e = r.error.unwrap();
        assert_eq!(e.code, ErrorCode::ProgramError);
        assert!(e.message.starts_with(code), "{code}: {}", e.message);
        assert_eq!(p.count() - before, n, "{code}: requests made");
        if code == "PROVIDER_TIMEOUT" {
            // One attempt of 400 ms: timeouts are not retried.
            assert!(
                t0.elapsed() < Duration::from_millis(1500),
                "{:?}",
                t0.elapsed()
            );
        }
        if code == "PROVIDER_ERROR" {
            assert!(e.message.contains("500"), "{}", e.message);
        }
        // Every call is in the log, with its error.
        let ev = calls(&host, r.id);
        assert_eq!(ev.len(), 1, "{code}");
        let EventBody::ModelCall { error, .. } = &ev[0] else {
            unreachable!()
        };
        assert_eq!(error.as_ref().unwrap().code, code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_cost_budgets_stop_the_run_at_the_crossing_call() {
    let p = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), &p).await;
    // Each call: 120 tokens, $0.00014.
    for (budget, calls_made, kind) in [
        ("max_tokens = 300", 3, "max_tokens"),
        ("max_usd = 0.0002", 2, "max_usd"),
    ] {
        deploy_with_budget(&host, "summarize", budget).await;
        let before = p.count();
        let r = run(&host, "summarize", json!({ "text": "t", "rounds": 10 })).await;
        assert_eq!(r.status, RunStatus::Failed, "{r:?}");
        assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::BudgetExceeded);
        assert!(r.error.as_ref().unwrap().message.contains(kind), "{r:?}");
        assert_eq!(p.count() - before, calls_made, "{kind}");
        assert_eq!(calls(&host, r.id).len(), calls_made);
        assert_eq!(r.usage.model.calls, calls_made as u64);
        let ev = host.store().events(r.id, 0, usize::MAX).unwrap();
        assert!(
            ev.iter().any(|e| matches!(
                &e.body,
                EventBody::BudgetExceeded { budget, .. } if budget.as_str() == kind
            )),
            "{ev:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_spend_their_root_budget_and_stop_at_the_crossing_call() {
    let p = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    // One run at a time: the children call in a known order.
    let host = host_with(dir.path(), &p, |c| c.max_concurrent_runs = 1).await;
    deploy_with_budget(&host, "review", "max_tokens = 300").await;
    let files: Vec<Value> = (0..5)
        .map(|i| json!({ "name": format!("f{i}.rs"), "text": format!("fn f{i}() {{}}") }))
        .collect();
    let r = run(&host, "review", json!({ "files": files })).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::BudgetExceeded);
    // 120 tokens a call: the third crosses 300, and nothing calls after it.
    assert_eq!(p.count(), 3);
    assert_eq!(r.usage.model.calls, 0);
    assert_eq!(r.usage.model_tree.calls, 3);
    assert_eq!(r.usage.model_tree.tokens(), 360);
    let kids = host.store().children(r.id).unwrap();
    assert_eq!(kids.len(), 5);
    // The children run one at a time (in the order the scheduler picks):
    // two fit, the third crosses, the rest are stopped before they call
    // (by the spent budget, or cancelled with their parent).
    let mut seen = Vec::new();
    for k in kids {
        let c = finish(&host, k).await;
        let made = calls(&host, k).len();
        if c.status == RunStatus::Failed {
            let e = c.error.unwrap();
            assert_eq!(e.code, ErrorCode::BudgetExceeded);
            assert!(e.message.contains("ancestor"), "{}", e.message);
        }
        seen.push((c.status, made));
    }
    seen.sort_by_key(|(s, made)| (std::cmp::Reverse(*made), s.as_str()));
    assert_eq!(
        seen[..3],
        [
            (RunStatus::Completed, 1),
            (RunStatus::Completed, 1),
            (RunStatus::Failed, 1)
        ],
        "{seen:?}"
    );
    assert!(
        seen[3..]
            .iter()
            .all(|(s, made)| *made == 0 && matches!(s, RunStatus::Failed | RunStatus::Cancelled)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_never_calls_the_provider_again_and_the_cap_holds() {
    let p = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    // Every park evicts: each sleep between rounds rebuilds the run by
    // replaying its journal, model calls included.
    let host = host_with(dir.path(), &p, |c| c.max_warm_instances = 0).await;
    let r = run(
        &host,
        "summarize",
        json!({ "text": "t", "rounds": 4, "pause_ms": 20 }),
    )
    .await;
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert_eq!(p.count(), 4);
    assert_eq!(calls(&host, r.id).len(), 4);
    assert_eq!(r.usage.model.calls, 4);
    assert_eq!(r.output.unwrap()["calls"], 4);

    // The per-provider cap: 6 children, slow answers, at most 16 in flight
    // by default; here 2.
    let dir = tempfile::tempdir().unwrap();
    let host = host_with(dir.path(), &p, |c| {
        for provider in c.models.providers.values_mut() {
            provider.concurrency = Some(2);
        }
    })
    .await;
    p.set_default(Behavior::Slow(Duration::from_millis(150)));
    let files: Vec<Value> = (0..6)
        .map(|i| json!({ "name": format!("f{i}"), "text": "x" }))
        .collect();
    let before = p.count();
    let r = run(&host, "review", json!({ "files": files })).await;
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert_eq!(p.count() - before, 6);
    assert_eq!(p.max_in_flight(), 2);
}

/// The `runway` binary on `dir`, logging everything at debug level.
fn runway(dir: &Path, config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runway"));
    cmd.arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .env("RUNWAY_LOG", "debug")
        .env_remove("RUNWAY_DATA_DIR")
        .env_remove("RUNWAY_SERVER");
    cmd
}

/// `runway serve` on a free loopback port, its log in `log`.
async fn serve(dir: &Path, config: &Path, log: &Path) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = runway(dir, config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the server never came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, base)
}

async fn get(base: &str, path: &str) -> (String, Value) {
    let text = reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (text, v)
}

async fn model_calls_over_http(base: &str, id: &str) -> usize {
    let (_, page) = get(base, &format!("/v1/runs/{id}/events?limit=1000")).await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "model_call")
        .count()
}

/// Waits until the run has `status` (and, if given, that many model calls).
async fn until(base: &str, id: &str, status: &str, calls: Option<usize>) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, r) = get(base, &format!("/v1/runs/{id}")).await;
        if r["status"] == status
            && match calls {
                Some(n) => model_calls_over_http(base, id).await == n,
                None => true,
            }
        {
            return r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "run {id} never became {status} (with {calls:?} model calls): {r}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_never_calls_twice_and_the_key_shows_nowhere() {
    let p = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = configure(&data, &p);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = runway(&data, &config)
        .arg("deploy")
        .arg(support::wasm("summarize"))
        .arg("--manifest")
        .arg(support::manifest_path("summarize"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // `runway models` shows what each alias resolves to, never the key.
    let out = runway(&data, &config)
        .args(["models", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["name"], "default");
    assert_eq!(listed[0]["resolved"]["reference"], "oa/gpt-test");
    assert_eq!(listed[0]["key_secret"], "PROVIDER_KEY");
    assert_eq!(listed[1]["resolved"]["kind"], "anthropic");
    let table = runway(&data, &config).arg("models").output().unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("an/claude-test"), "{table}");
    assert!(!table.contains(KEY) && !String::from_utf8_lossy(&out.stdout).contains(KEY));

    // Four calls with a durable sleep before each of the last three; the
    // host is killed in the first two sleeps.
    let (mut server, mut base) = serve(&data, &config, &logs.join("0.log")).await;
    let http = reqwest::Client::new();
    let run: Value = http
        .post(format!("{base}/v1/workflows/summarize/runs"))
        .json(&json!({ "text": "kill me softly", "rounds": 4, "pause_ms": 700 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    for kill in 1..=2 {
        until(&base, &id, "sleeping", Some(kill)).await;
        server.kill().unwrap();
        server.wait().unwrap();
        assert_eq!(p.count(), kill, "calls made before kill {kill}");
        (server, base) = serve(&data, &config, &logs.join(format!("{kill}.log"))).await;
    }
    let done = until(&base, &id, "completed", None).await;
    assert_eq!(p.count(), 4, "each journaled call was made exactly once");
    assert_eq!(model_calls_over_http(&base, &id).await, 4);
    assert_eq!(done["output"]["calls"], 4);
    assert_eq!(done["usage"]["model"]["calls"], 4);

    // A provider that echoes the key, in an error and in an answer.
    let mut ids = vec![id];
    for (behavior, status) in [
        (Behavior::EchoKey, "failed"),
        (Behavior::EchoKeyInText, "completed"),
    ] {
        p.script([behavior]);
        let run: Value = http
            .post(format!("{base}/v1/workflows/summarize/runs?wait=30"))
            .json(&json!({ "text": "echo" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(run["status"], status, "{run}");
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    // The provider did get the key: it is masked, not missing.
    assert!(p.requests().iter().all(|r| r.authorized));

    // Everything the API shows of these runs...
    let mut shown = String::new();
    for id in &ids {
        for path in [
            format!("/v1/runs/{id}"),
            format!("/v1/runs/{id}/events?limit=1000"),
            format!("/v1/runs/{id}/artifacts"),
            format!("/v1/runs/{id}/artifacts/summary.md"),
        ] {
            shown.push_str(&get(&base, &path).await.0);
        }
    }
    shown.push_str(&get(&base, "/v1/models").await.0);
    assert!(shown.contains("PROVIDER_ERROR"), "{shown}");
    assert!(shown.contains("the key is ****"), "{shown}");
    server.kill().unwrap();
    server.wait().unwrap();

    // ...every byte in the data directory but the secrets file, and every
    // log line: no key, nor a 12-byte piece of it.
    let mut haystacks = vec![("the API".to_owned(), shown.into_bytes())];
    for f in support::files(&data)
        .into_iter()
        .chain(support::files(&logs))
    {
        if f.file_name().is_some_and(|n| n == "secrets.toml") {
            continue;
        }
        haystacks.push((f.display().to_string(), std::fs::read(&f).unwrap()));
    }
    assert!(haystacks.len() > 5, "{haystacks:?}");
    for (name, bytes) in &haystacks {
        for piece in KEY.as_bytes().windows(12) {
            assert!(
                !bytes.windows(piece.len()).any(|w| w == piece),
                "{name} holds part of the key"
            );
        }
    }
    let log = std::fs::read_to_string(logs.join("2.log")).unwrap();
    assert!(log.contains("DEBUG"), "the log is at debug level: {log}");
}

/// A running run is charged as it goes: its listing and its detail, both
/// over HTTP, show the same live model usage (not 0 in the listing).
#[tokio::test(flavor = "multi_thread")]
async fn list_and_detail_agree_on_a_running_runs_model_usage() {
    let provider = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), &provider).await;
    // One call, then a long durable sleep before the second.
    let id = host
        .start(
            "summarize",
            json!({ "text": "t", "rounds": 2, "pause_ms": 60_000 }),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.run_record(id).await.unwrap().status != RunStatus::Sleeping {
        assert!(Instant::now() < deadline, "the run never slept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(runway::api::serve(
        host.clone(),
        runway::config::ServerSettings::default(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let res = http.get(path).send().await.unwrap();
            assert_eq!(res.status(), reqwest::StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }
    };
    let detail = get(format!("{base}/v1/runs/{id}")).await;
    let page = get(format!("{base}/v1/runs?workflow=summarize")).await;
    let listed = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.to_string())
        .expect("the run is listed")
        .clone();
    assert_eq!(detail["status"], "sleeping");
    assert_eq!(detail["usage"]["model"]["calls"], 1, "{detail}");
    assert!(detail["usage"]["model"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(listed["usage"]["model"], detail["usage"]["model"]);
    assert_eq!(listed["usage"]["model_tree"], detail["usage"]["model_tree"]);
    host.cancel(id).await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
