//! Operating the real server: its log is one JSON object per line with the
//! documented fields for every lifecycle step, an access log line per
//! request carrying its id, and no secret, token or request body in any
//! line; `/metrics` has help text, histograms with buckets and the build.

mod support;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

const TOKEN: &str = "tok-ops-5c8e1f9a7b3d";
const WEBHOOK_KEY: &str = "whkey-ops-2b7d9e4f6a1c";
const BODY_MARKER: &str = "body-marker-8f3e2a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_log_has_every_lifecycle_step_and_no_secret() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("secrets.toml"),
        format!("WEBHOOK_KEY = \"{WEBHOOK_KEY}\"\n"),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUNWAY_LOG_FORMAT", "json")
        .env_remove("RUNWAY_LOG")
        .env(
            "RUNWAY_API_TOKENS",
            format!(
                "ops:admin:{}",
                hex::encode(Sha256::digest(TOKEN.as_bytes()))
            ),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Deploy: hello with a webhook and a cron schedule every second.
    let manifest = "slug = \"hello\"\n[triggers.webhook]\nscheme = \"hmac\"\nsecret = \"WEBHOOK_KEY\"\n[[triggers.cron]]\nschedule = \"* * * * * *\"\ninput = { name = \"cron\" }\n";
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(support::wasm_bytes("hello")),
        )
        .text("manifest", manifest);
    let res = http
        .put(format!("{base}/v1/workflows/hello"))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    // A run, with a request id of the client's.
    let res = http
        .post(format!("{base}/v1/workflows/hello/runs?wait=10"))
        .bearer_auth(TOKEN)
        .header("x-request-id", "req-ops-1")
        .json(&json!({ "name": BODY_MARKER }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "req-ops-1");
    // Without one, the server makes one up and says which.
    let res = http
        .post(format!("{base}/v1/workflows/hello/runs?wait=10"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "two" }))
        .send()
        .await
        .unwrap();
    assert!(!res.headers()["x-request-id"].is_empty());
    // A webhook delivery.
    let body = serde_json::to_vec(&json!({ "name": BODY_MARKER })).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes()).unwrap();
    mac.update(&body);
    let res = http
        .post(format!("{base}/hooks/hello"))
        .header("x-signature", hex::encode(mac.finalize().into_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    // A rejected one.
    let res = http
        .post(format!("{base}/hooks/hello"))
        .header("x-signature", "00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Metrics: help text, buckets, the build.
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# HELP runway_runs_finished_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("runway_run_duration_seconds_bucket{"),
        "{metrics}"
    );
    assert!(metrics.contains("runway_build_info{version="), "{metrics}");
    assert!(metrics.contains("code=\"\""), "{metrics}");
    // A cron fire.
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("cron fired")
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "no cron fire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: kill(2) on our own child.
    unsafe { kill(child.id() as i32, 15) };
    assert!(child.wait().unwrap().success());

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(l.get(field).is_some(), "{field} missing: {l}");
        }
    }
    let with = |message: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    };
    assert!(with("runway serving on")[0]["resumed"].is_number());
    assert_eq!(with("deployed")[0]["workflow"], "hello");
    let ended = with("run ended");
    assert!(ended.len() >= 3, "{text}");
    assert!(ended[0]["run"].as_str().unwrap().starts_with("run_"));
    assert!(ended.iter().all(|l| l["workflow"] == "hello"));
    assert!(
        ended
            .iter()
            .any(|l| l["status"] == "completed" && l["duration_ms"].is_number())
    );
    assert_eq!(with("webhook started a run").len(), 1);
    assert!(
        with("webhook rejected")[0]["reason"]
            .as_str()
            .unwrap()
            .ends_with("_signature")
    );
    assert!(!with("cron fired").is_empty());
    // The access log: one line per request with its id.
    let access: Vec<&Value> = with("finished processing request")
        .into_iter()
        .filter(|l| l["span"]["id"] == "req-ops-1")
        .collect();
    assert_eq!(access.len(), 1, "{text}");
    assert_eq!(access[0]["span"]["path"], "/v1/workflows/hello/runs");
    assert_eq!(access[0]["status"], 200);
    for secret in [TOKEN, WEBHOOK_KEY, BODY_MARKER] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// One exported span, flattened from OTLP.
#[derive(Clone, Debug)]
struct Exported {
    name: String,
    trace: String,
    id: String,
    parent: String,
    attributes: std::collections::HashMap<String, String>,
}

/// A loopback OTLP/HTTP receiver: decodes each `POST /v1/traces` with the
/// protocol's own message types.
async fn otlp_receiver() -> (String, std::sync::Arc<parking_lot::Mutex<Vec<Exported>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let spans = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<Exported>::new()));
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                let mut out = sink.lock();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            let attributes = s
                                .attributes
                                .iter()
                                .map(|kv| {
                                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                                    (kv.key.clone(), format!("{v:?}"))
                                })
                                .collect();
                            out.push(Exported {
                                name: s.name,
                                trace: hex::encode(s.trace_id),
                                id: hex::encode(s.span_id),
                                parent: hex::encode(s.parent_span_id),
                                attributes,
                            });
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, spans)
}

/// With `[telemetry] otlp_endpoint`, a `fanout` run is one trace under the
/// `traceparent` its trigger sent: the request, each execution of the run,
/// its host calls and its park, and each child run under the call that
/// started it; an outbound HTTP call carries its span's `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_run_is_one_trace_under_the_triggers_traceparent() {
    support::guest_dir();
    let (collector, spans) = otlp_receiver().await;
    let service = support::service::Service::start().await;
    let provider = support::provider::Provider::start("sk-ops-trace-7d2e").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("secrets.toml"),
        "PROVIDER_KEY = \"sk-ops-trace-7d2e\"\n",
    )
    .unwrap();
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[telemetry]\notlp_endpoint = \"{collector}\"\n[egress]\nallow = [\"http://127.0.0.1:*\"]\nallow_private = [\"127.0.0.0/8\"]\n[models.aliases]\ndefault = \"oa/gpt-test\"\n[models.providers.oa]\nkind = \"openai\"\nbase_url = \"{}\"\nkey_secret = \"PROVIDER_KEY\"\n",
            provider.openai_url()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for name in ["hello", "fanout", "fetch", "summarize"] {
        let manifest = if name == "fetch" {
            "slug = \"fetch\"\n[http]\nallow = [\"http://127.0.0.1:*\"]\n".to_owned()
        } else {
            support::manifest(name)
        };
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(support::wasm_bytes(name)),
            )
            .text("manifest", manifest);
        let res = http
            .put(format!("{base}/v1/workflows/{name}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let res = http
        .post(format!("{base}/v1/workflows/fanout/runs?wait=30"))
        .header("traceparent", format!("00-{trace}-{caller}-01"))
        .json(&json!({ "names": ["Ada", "Grace", "Edsger"] }))
        .send()
        .await
        .unwrap();
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "completed", "{run}");
    let fetch_trace = "0af7651916cd43dd8448eb211c80319c";
    let res = http
        .post(format!("{base}/v1/workflows/fetch/runs?wait=30"))
        .header(
            "traceparent",
            format!("00-{fetch_trace}-b7ad6b7169203331-01"),
        )
        .json(&json!({ "requests": [{ "url": format!("{}/echo", service.base) }] }))
        .send()
        .await
        .unwrap();
    let fetched: Value = res.json().await.unwrap();
    assert_eq!(fetched["status"], "completed", "{fetched}");
    assert!(
        fetched["output"]["responses"][0]["error"].is_null(),
        "{fetched}"
    );

    // Wait for the batches (sent every 500 ms).
    let t0 = Instant::now();
    let ours = loop {
        let ours: Vec<Exported> = spans
            .lock()
            .iter()
            .filter(|s| s.trace == trace)
            .cloned()
            .collect();
        let hello_runs = ours.iter().filter(|s| s.name == "run hello").count();
        if hello_runs == 3 && ours.iter().any(|s| s.name == "run fanout") {
            // The fanout's last execution ends after its children.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            break spans
                .lock()
                .iter()
                .filter(|s| s.trace == trace)
                .cloned()
                .collect::<Vec<_>>();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "spans: {:#?}",
            spans.lock()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let named = |name: &str| {
        ours.iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let request = named("POST /v1/workflows/fanout/runs");
    assert_eq!(request.len(), 1, "{ours:#?}");
    assert_eq!(
        request[0].parent, caller,
        "the request is the child of the caller's span"
    );
    let executions = named("run fanout");
    assert!(!executions.is_empty());
    for e in &executions {
        assert_eq!(
            e.parent, request[0].id,
            "each execution descends from the request"
        );
        assert!(e.attributes["runway.run_id"].contains(run["id"].as_str().unwrap()));
    }
    let is_execution = |id: &str| executions.iter().any(|e| e.id == id);
    let starts = named("workflows.start");
    assert_eq!(starts.len(), 3, "{ours:#?}");
    assert!(starts.iter().all(|s| is_execution(&s.parent)));
    let children = named("run hello");
    let mut parents: Vec<&str> = children.iter().map(|c| c.parent.as_str()).collect();
    parents.sort();
    let mut start_ids: Vec<&str> = starts.iter().map(|s| s.id.as_str()).collect();
    start_ids.sort();
    assert_eq!(
        parents, start_ids,
        "each child run under the call that started it"
    );
    let parks: Vec<_> = ours
        .iter()
        .filter(|s| s.name.starts_with("park "))
        .collect();
    assert!(
        !parks.is_empty(),
        "the fanout's wait for its children: {ours:#?}"
    );
    assert!(
        parks
            .iter()
            .all(|p| is_execution(&p.parent) || p.parent == request[0].id)
    );
    assert!(
        ours.iter().all(|s| s.name != "run fetch"),
        "another trace's run"
    );

    // The outbound call carries its own span's traceparent.
    let seen = service.seen();
    let sent = seen
        .iter()
        .find(|s| s.path == "/echo")
        .and_then(|s| s.headers.get("traceparent").cloned())
        .unwrap_or_else(|| {
            std::thread::sleep(Duration::from_secs(1));
            let f: Vec<_> = spans
                .lock()
                .iter()
                .filter(|s| s.trace == fetch_trace)
                .cloned()
                .collect();
            panic!("no traceparent on the outbound request: {seen:#?} {f:#?}")
        });
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts[1], fetch_trace);
    let t0 = Instant::now();
    loop {
        let found = spans
            .lock()
            .iter()
            .any(|s| s.id == parts[2] && s.name == "http.send" && s.trace == fetch_trace);
        if found {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no span {} among {:#?}",
            parts[2],
            spans.lock()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A model call's span carries the gen_ai.* attributes.
    let model_trace = "1f2e3d4c5b6a79881f2e3d4c5b6a7988";
    let res = http
        .post(format!("{base}/v1/workflows/summarize/runs?wait=30"))
        .header(
            "traceparent",
            format!("00-{model_trace}-1f2e3d4c5b6a7988-01"),
        )
        .json(&json!({ "text": "Durable runs survive any crash of the host." }))
        .send()
        .await
        .unwrap();
    let summarized: Value = res.json().await.unwrap();
    assert_eq!(summarized["status"], "completed", "{summarized}");
    let t0 = Instant::now();
    let call = loop {
        let found = spans
            .lock()
            .iter()
            .find(|s| s.trace == model_trace && s.name == "models.generate")
            .cloned();
        if let Some(call) = found {
            break call;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no model span among {:#?}",
            spans.lock()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let attr = |k: &str| call.attributes.get(k).cloned().unwrap_or_default();
    assert!(attr("gen_ai.provider.name").contains("\"oa\""), "{call:?}");
    assert!(
        attr("gen_ai.request.model").contains("\"gpt-test\""),
        "{call:?}"
    );
    assert!(
        attr("gen_ai.operation.name").contains("\"chat\""),
        "{call:?}"
    );
    assert!(
        attr("gen_ai.usage.input_tokens").starts_with("Some(IntValue("),
        "{call:?}"
    );
    assert!(
        attr("gen_ai.usage.output_tokens").starts_with("Some(IntValue("),
        "{call:?}"
    );
    assert!(
        spans.lock().iter().all(|s| !s
            .attributes
            .values()
            .any(|v| v.contains("sk-ops-trace-7d2e"))),
        "no span holds the provider key"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The Dockerfile's runtime stage, run with this build's binary (no
/// container engine is needed): it runs as a user that is not root with
/// its data directory a volume; its command refuses to listen on every
/// interface without API tokens; with tokens it serves on the data
/// directory its ENV names, and its HEALTHCHECK passes while the server is
/// ready and fails once it is gone. (The test listens on loopback.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dockerfile_runtime_stage_serves_and_its_health_check_tells() {
    let dockerfile = std::fs::read_to_string(support::root().join("Dockerfile")).unwrap();
    let stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let instruction = |name: &str| -> String {
        let prefix = format!("{name} ");
        let line = stage
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {name} in the runtime stage"));
        line[prefix.len()..].trim().to_owned()
    };
    let argv = |text: &str| -> Vec<String> {
        let json = &text[text.find('[').unwrap()..];
        serde_json::from_str(json).unwrap()
    };
    let user = instruction("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    let env: Vec<(String, String)> = instruction("ENV")
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let var = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(instruction("VOLUME"), var("RUNWAY_DATA_DIR"));
    let mut command = argv(&instruction("ENTRYPOINT"));
    command.extend(argv(&instruction("CMD")));
    let health = argv(&instruction("HEALTHCHECK"));
    let program = command[0].clone();
    assert_eq!(health[0], program);

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |argv: &[String], listen: &str, tokens: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runway"));
        cmd.args(&argv[1..]).env_remove("RUNWAY_LOG");
        for (k, v) in &env {
            let v = match k.as_str() {
                "RUNWAY_DATA_DIR" => dir.path().to_str().unwrap().to_owned(),
                "RUNWAY_LISTEN" => listen.to_owned(),
                "RUNWAY_SERVER" => v.replace(":8686", &format!(":{port}")),
                _ => v.clone(),
            };
            cmd.env(k, v);
        }
        if tokens {
            let sha = hex::encode(Sha256::digest(TOKEN.as_bytes()));
            cmd.env("RUNWAY_API_TOKENS", format!("ops:admin:{sha}"));
        }
        cmd
    };
    // Every interface and no token: refused before anything listens.
    let everywhere = var("RUNWAY_LISTEN").replace(":8686", &format!(":{port}"));
    assert!(everywhere.starts_with("0.0.0.0:"), "{everywhere}");
    let refused = run(&command, &everywhere, false).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("without authentication"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let loopback = format!("127.0.0.1:{port}");
    let healthy = || run(&health, &loopback, false).output().unwrap().status;
    assert!(!healthy().success(), "healthy with no server");
    let mut server = run(&command, &loopback, true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !healthy().success() {
        assert!(t0.elapsed() < Duration::from_secs(20), "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dir.path().join("runway.redb").is_file());
    server.kill().unwrap();
    server.wait().unwrap();
    let down = run(&health, &loopback, false).output().unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("not ready"));
}
