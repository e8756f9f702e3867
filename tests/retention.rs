//! Deleting ended runs and backing up: `[retention]` on the real server
//! deletes what aged out (rows, keys and exclusive artifact files, checked
//! on disk) and nothing active; `DELETE /v1/runs/{id}` keeps a blob another
//! run shares; a purge racing live runs loses nothing active; a backup
//! taken while the server runs is a data directory that restores every run
//! and artifact.

mod support;

use reqwest::StatusCode;
use runway::types::{RunId, RunStatus};
use runway::{Host, HostConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ADMIN: &str = "tok-retention-admin-4e1b";
const READER: &str = "tok-retention-read-9a2c";

/// The real `runway serve` on a data directory with `config` as its host
/// config; killed on drop.
struct Serve {
    child: std::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start(data: &Path, config: &str) -> Serve {
        support::guest_dir();
        std::fs::create_dir_all(data).unwrap();
        let config_path = data.with_extension("toml");
        std::fs::write(&config_path, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tokens = format!(
            "admin:admin:{},reader:read:{}",
            hex::encode(Sha256::digest(ADMIN.as_bytes())),
            hex::encode(Sha256::digest(READER.as_bytes()))
        );
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(&config_path)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUNWAY_API_TOKENS", tokens)
            .env_remove("RUNWAY_DATA_DIR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the server never came up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Serve { child, base, http }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
    }

    async fn deploy(&self, example: &str) {
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(support::wasm_bytes(example)).file_name("c.wasm"),
            )
            .text("manifest", support::manifest(example));
        let res = self
            .req(reqwest::Method::PUT, &format!("/v1/workflows/{example}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "deploy {example}: {}",
            res.status()
        );
    }

    /// Starts a run and waits for it to end or park; answers the run.
    async fn run(&self, slug: &str, input: Value, key: Option<&str>) -> Value {
        let mut rb = self
            .req(
                reqwest::Method::POST,
                &format!("/v1/workflows/{slug}/runs?wait=30"),
            )
            .json(&input);
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        let res = rb.send().await.unwrap();
        assert!(res.status().is_success(), "start {slug}: {}", res.status());
        res.json().await.unwrap()
    }

    async fn status(&self, path: &str) -> StatusCode {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// The file of artifact blob `digest` in data directory `data`.
fn blob(data: &Path, digest: &str) -> PathBuf {
    data.join("artifacts").join(&digest[..2]).join(digest)
}

fn digests(run: &Value) -> Vec<String> {
    run["output"]["artifacts"]
        .as_array()
        .expect("the steps output names its artifacts")
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

async fn until(what: &str, limit: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !ok().await {
        assert!(t0.elapsed() < limit, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_what_aged_out_and_nothing_active_or_shared() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Serve::start(&data, "[retention]\nmax_age = \"4s\"\n").await;
    s.deploy("steps").await;
    s.deploy("approval").await;

    // a: exclusive blobs and an idempotency key. b and c: the same blobs.
    let a = s.run("steps", json!({ "count": 2 }), Some("key-a")).await;
    let b = s.run("steps", json!({ "count": 3 }), None).await;
    let c = s.run("steps", json!({ "count": 3 }), None).await;
    let waiting = s.run("approval", json!({ "request": "ship" }), None).await;
    assert_eq!(waiting["status"], "waiting_signal");
    let (a_id, b_id, c_id) = (
        a["id"].as_str().unwrap(),
        b["id"].as_str().unwrap(),
        c["id"].as_str().unwrap(),
    );
    let w_id = waiting["id"].as_str().unwrap();
    assert_eq!(digests(&b), digests(&c));
    for d in digests(&a).iter().chain(&digests(&b)) {
        assert!(blob(&data, d).exists(), "blob {d} written");
    }

    // Deleting b by hand keeps the blobs c names.
    let res = s
        .req(reqwest::Method::DELETE, &format!("/v1/runs/{b_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["runs"], 1);
    assert_eq!(
        s.status(&format!("/v1/runs/{b_id}")).await,
        StatusCode::NOT_FOUND
    );
    for d in digests(&c) {
        assert!(blob(&data, &d).exists(), "shared blob {d} kept");
    }
    let res = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/runs/{c_id}/artifacts/step-0001.txt"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "step 1 of 3\n");
    // A run waiting for a signal cannot be deleted; a reader cannot delete.
    let res = s
        .req(reqwest::Method::DELETE, &format!("/v1/runs/{w_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "RUN_ACTIVE");
    let res = s
        .http
        .delete(format!("{}/v1/runs/{c_id}", s.base))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Retention takes a and c once they are 4 s old: rows, events and
    // blob files; the waiting run stays.
    until("a and c aged out", Duration::from_secs(40), async || {
        s.status(&format!("/v1/runs/{a_id}")).await == StatusCode::NOT_FOUND
            && s.status(&format!("/v1/runs/{c_id}")).await == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(
        s.status(&format!("/v1/runs/{a_id}/events")).await,
        StatusCode::NOT_FOUND
    );
    for d in digests(&a).iter().chain(&digests(&c)) {
        assert!(!blob(&data, d).exists(), "blob {d} reclaimed");
    }
    assert_eq!(s.status(&format!("/v1/runs/{w_id}")).await, StatusCode::OK);
    // Its key went with it: the same key starts a new run.
    let again = s.run("steps", json!({ "count": 2 }), Some("key-a")).await;
    assert_ne!(again["id"], a["id"]);
    assert_eq!(digests(&again), digests(&a));
    assert!(blob(&data, &digests(&a)[0]).exists(), "written anew");

    // The waiting run ends on its signal, intact.
    let res = s
        .req(
            reqwest::Method::POST,
            &format!("/v1/runs/{w_id}/signals/approve"),
        )
        .json(&json!({ "by": "ada" }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    until(
        "the approval completed",
        Duration::from_secs(20),
        async || {
            let v: Value = s
                .req(reqwest::Method::GET, &format!("/v1/runs/{w_id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["status"] == "completed"
        },
    )
    .await;

    // runway purge through the server: a dry run counts, a purge deletes.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
            .args(["--server", &s.base, "--token", ADMIN])
            .args(args)
            .env_remove("RUNWAY_DATA_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let dry = cli(&["purge", "--older-than", "1ms", "--dry-run", "--json"]);
    assert_eq!(dry["runs"], 2, "{dry}");
    // Both limits naming the same runs count them once.
    let both = cli(&[
        "purge",
        "--older-than",
        "1ms",
        "--keep-per-workflow",
        "0",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(both["runs"], 2, "{both}");
    let done = cli(&[
        "purge",
        "--older-than",
        "1ms",
        "--workflow",
        "approval",
        "--json",
    ]);
    assert_eq!(done["runs"], 1, "{done}");
    assert_eq!(
        s.status(&format!("/v1/runs/{w_id}")).await,
        StatusCode::NOT_FOUND
    );
    let left = cli(&["purge", "--older-than", "1ms", "--dry-run", "--json"]);
    assert_eq!(left["runs"], 1, "{left}");
}

/// Purges of everything ended, again and again while runs start, park,
/// write artifacts and end: no active run loses anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_racing_live_runs_loses_nothing_active() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig::new(dir.path())).await.unwrap();
    for name in ["steps", "approval"] {
        host.deploy(support::wasm_bytes(name), &support::manifest(name))
            .await
            .unwrap();
    }
    let mut waiting = Vec::new();
    for i in 0..16 {
        let id = host
            .start("approval", json!({ "request": format!("r{i}") }))
            .await
            .unwrap();
        waiting.push(id);
    }
    let purge = runway::host::PurgeRequest {
        older_than: Some("0s".into()),
        ..Default::default()
    };
    let mut steps: Vec<RunId> = Vec::new();
    let mut purged = 0;
    for round in 0..20 {
        for _ in 0..4 {
            steps.push(
                host.start("steps", json!({ "count": 3, "pause_ms": round % 3 }))
                    .await
                    .unwrap(),
            );
        }
        // Some of this round's runs end before the purge, some after.
        tokio::time::sleep(Duration::from_millis(25)).await;
        purged += host.purge(&purge).await.unwrap().runs;
    }
    assert!(purged > 0, "the purges deleted ended runs");
    for id in &waiting {
        host.signal(*id, "approve", json!({ "by": "ada" }), None)
            .await
            .unwrap();
    }
    for id in &waiting {
        let r = host.wait(*id).await.unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{id}");
        let (_, body) = host.artifact(*id, "decision.json").await.unwrap();
        let decision: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(decision["approved"], true);
    }
    // A steps run either completed with every artifact readable, or ended
    // and was purged afterwards; none failed.
    for id in &steps {
        match host.wait(*id).await {
            Ok(r) => {
                assert_eq!(r.status, RunStatus::Completed, "{id}");
                for name in ["step-0001.txt", "step-0002.txt", "step-0003.txt"] {
                    let (_, body) = host.artifact(*id, name).await.unwrap();
                    assert!(body.starts_with(b"step "));
                }
            }
            Err(e) => assert_eq!(e.code(), "RUN_NOT_FOUND", "{id}: {e}"),
        }
    }
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_every_run_and_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Serve::start(&data, "").await;
    s.deploy("steps").await;
    s.deploy("approval").await;
    let done = s.run("steps", json!({ "count": 3 }), Some("key-1")).await;
    let waiting = s.run("approval", json!({ "request": "ship" }), None).await;
    let backup = dir.path().join("backup");
    // Runs go on while the backup is taken.
    let load = {
        let base = s.base.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..20 {
                let _ = http
                    .post(format!("{base}/v1/workflows/steps/runs"))
                    .bearer_auth(ADMIN)
                    .json(&json!({ "count": 2 }))
                    .send()
                    .await;
            }
        })
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
        .args(["--server", &s.base, "--token", ADMIN, "backup", "--json"])
        .arg(&backup)
        .env_remove("RUNWAY_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["runs"].as_u64().unwrap() >= 2, "{report}");
    assert!(report["blobs"].as_u64().unwrap() >= 3, "{report}");
    load.await.unwrap();
    // A reader may not take a backup (it would read every run's data).
    let res = s
        .http
        .get(format!("{}/v1/backup", s.base))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The same target twice is refused: a backup never mixes with another.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
        .args(["--server", &s.base, "--token", ADMIN, "backup"])
        .arg(&backup)
        .env_remove("RUNWAY_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    drop(s);
    assert!(!backup.join(".backup.tar.part").exists());

    // The backup is a data directory: it opens, holds the runs and their
    // artifacts, and the waiting run goes on there.
    let host = Host::open(HostConfig::new(&backup)).await.unwrap();
    host.recover().await.unwrap();
    let done_id: RunId = done["id"].as_str().unwrap().parse().unwrap();
    let record = host.run_record(done_id).await.unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.output, Some(done["output"].clone()));
    let (_, body) = host.artifact(done_id, "step-0002.txt").await.unwrap();
    assert_eq!(body, b"step 2 of 3\n");
    assert_eq!(
        host.store().run_for_key("api:steps:key-1").unwrap(),
        Some(done_id),
        "idempotency keys are in it"
    );
    let w: RunId = waiting["id"].as_str().unwrap().parse().unwrap();
    host.signal(w, "approve", json!({ "by": "ada" }), None)
        .await
        .unwrap();
    assert_eq!(host.wait(w).await.unwrap().status, RunStatus::Completed);
    host.shutdown().await.unwrap();
}
