//! The store on PostgreSQL, from the outside: the CLI with `--store`
//! (the tables shared by whoever names the database, what only a redb
//! store has refused by name), a newer layout refused, and the database
//! going away and coming back under a server without an acknowledged run
//! lost. The durable, server and models suites run on PostgreSQL too
//! (`RUNWAY_TEST_STORE=postgres`, see `scripts/test.sh`).

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn runway(data: &Path, store: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--store")
        .arg(store)
        .env("NO_COLOR", "1")
        .env_remove("RUNWAY_SERVER")
        .env_remove("RUNWAY_LOG");
    cmd
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_cli_keeps_its_tables_in_postgres_for_every_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::postgres_database(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let out = ok(runway(&a, &url)
        .arg("exec")
        .arg(support::wasm("hello"))
        .arg("--manifest")
        .arg(support::manifest_path("hello"))
        .args(["--input", r#"{"name":"Ada"}"#])
        .output()
        .unwrap());
    assert!(out.contains("Hello, Ada!"), "{out}");
    assert!(!a.join("runway.redb").exists(), "the tables went to a file");
    // Another data directory on the same database sees the same runs.
    let runs: Value = serde_json::from_str(&ok(runway(&b, &url)
        .args(["runs", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["output"]["greeting"], "Hello, Ada!");
    // A file backup is redb's: said so, with what to use instead.
    let out = runway(&a, &url)
        .arg("backup")
        .arg(dir.path().join("copy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pg_dump"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a PostgreSQL URL: refused before anything opens.
    let out = runway(&a, "mysql://x/y").arg("runs").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres://"));
}

#[test]
fn a_database_of_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::postgres_database(dir.path());
    ok(runway(dir.path(), &url)
        .arg("deploy")
        .arg(support::wasm("hello"))
        .arg("--manifest")
        .arg(support::manifest_path("hello"))
        .output()
        .unwrap());
    let u = url.clone();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
        c.execute(
            "UPDATE runway_meta SET value = 99 WHERE key = 'schema'",
            &[],
        )
        .unwrap();
    })
    .join()
    .unwrap();
    let out = runway(dir.path(), &url).arg("workflows").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer Runway") && err.contains("99"), "{err}");
}

/// PostgreSQL stops as if it crashed while a server has runs in flight:
/// the server says it is not ready and refuses new runs (nothing half
/// stored), then goes on by itself once the database is back; every run
/// it had acknowledged completes, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_and_back_loses_no_acknowledged_run() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    // A cluster of this test's own, to stop and start.
    let cluster = dir.path().join("pg");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = support::root().join("scripts/postgres.sh");
    let pg = |cmd: &str| {
        let out = Command::new(&script)
            .arg(cmd)
            .arg(&cluster)
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let url = pg("start");
    struct Stop<F: Fn()>(F);
    impl<F: Fn()> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let _stop = Stop(|| {
        let _ = Command::new(&script).arg("stop").arg(&cluster).output();
    });

    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{http_port}");
    let mut server = runway(&dir.path().join("data"), &url)
        .args(["serve", "--listen", &format!("127.0.0.1:{http_port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let ready = || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let t0 = Instant::now();
    while ready().await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(20), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ok(Command::new(env!("CARGO_BIN_EXE_runway"))
        .args(["--server", &base, "deploy"])
        .arg(support::wasm("steps"))
        .arg("--manifest")
        .arg(support::manifest_path("steps"))
        .output()
        .unwrap());
    // Runs that pause between steps: in flight when the database goes.
    let mut ids = Vec::new();
    for i in 0..12 {
        let res = http
            .post(format!("{base}/v1/workflows/steps/runs"))
            .header("idempotency-key", format!("k{i}"))
            .json(&json!({ "count": 4, "pause_ms": 300 }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        let run: Value = res.json().await.unwrap();
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    pg("crash");
    let t0 = Instant::now();
    while ready().await != 503 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "ready without a database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = http
        .post(format!("{base}/v1/workflows/steps/runs"))
        .json(&json!({ "count": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "STORAGE_UNAVAILABLE", "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg("start");
    let t0 = Instant::now();
    while ready().await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(30), "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        let t0 = Instant::now();
        let run = loop {
            let run: Value = http
                .get(format!("{base}/v1/runs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if run["status"] == "completed" || run["status"] == "failed" {
                break run;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{id} never ended: {run}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(run["status"], "completed", "{run}");
        let events: Value = http
            .get(format!("{base}/v1/runs/{id}/events"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = events["events"].as_array().unwrap();
        let written = events
            .iter()
            .filter(|e| e["kind"] == "artifact_written")
            .count();
        assert_eq!(written, 4, "{id}: {events:?}");
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Not a test: `scripts/test.sh` runs it (with `--ignored`) to stop the
/// cluster the tests started.
#[test]
#[ignore]
fn stop_the_test_cluster() {
    let (dir, _) = support::test_cluster();
    let _ = Command::new(support::root().join("scripts/postgres.sh"))
        .arg("stop")
        .arg(dir)
        .output();
}
