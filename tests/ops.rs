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
