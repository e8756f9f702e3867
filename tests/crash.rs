//! Crashes of the real host process: SIGKILL at random moments, restart,
//! and check that every run ends as if nothing had happened — no step
//! repeated, no child started twice, timers on time, and a workflow that
//! behaves differently on replay caught as `NONDETERMINISM`.

mod support;

use rand::RngExt;
use runway::types::{ErrorCode, EventBody, RunId, RunStatus};
use runway::{Host, HostConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn runway(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
    cmd.arg("--data-dir").arg(dir).env("NO_COLOR", "1");
    cmd.env_remove("RUNWAY_DATA_DIR");
    cmd
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "runway failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn deploy(dir: &Path, name: &str) {
    ok(runway(dir)
        .arg("deploy")
        .arg(support::wasm(name))
        .arg("--manifest")
        .arg(support::manifest_path(name))
        .output()
        .unwrap());
}

/// Queues a run without executing it; returns its id.
fn queue(dir: &Path, slug: &str, input: &Value) -> RunId {
    ok(runway(dir)
        .args(["run", slug, "--detach", "--input", &input.to_string()])
        .output()
        .unwrap())
    .parse()
    .expect("a run id")
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().expect("starting runway")
}

/// SIGKILL: no destructor, no flush, no goodbye.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn resume_to_end(dir: &Path) {
    ok(runway(dir).arg("resume").output().unwrap());
}

async fn open(dir: &Path) -> Host {
    Host::open(HostConfig::new(dir))
        .await
        .expect("opening the data dir")
}

/// What a finished workload looks like, independent of run ids and times.
#[derive(Debug, PartialEq)]
struct Outcome {
    outputs: Vec<Value>,
    /// steps run -> step artifact names, each with how often its write shows.
    artifacts: Vec<BTreeMap<String, usize>>,
    children: Vec<usize>,
}

fn inspect(host: &Host, runs: &[RunId]) -> Outcome {
    let store = host.store();
    let mut outcome = Outcome {
        outputs: Vec::new(),
        artifacts: Vec::new(),
        children: Vec::new(),
    };
    for &id in runs {
        let r = store.run(id).unwrap().unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        outcome.outputs.push(r.output.clone().unwrap());
        let events = store.events(id, 0, usize::MAX).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        let mut written = BTreeMap::new();
        for e in &events {
            if let EventBody::ArtifactWritten { name, .. } = &e.body {
                *written.entry(name.clone()).or_insert(0) += 1;
            }
        }
        let stored: Vec<String> = store
            .artifacts(id)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(stored, written.keys().cloned().collect::<Vec<_>>());
        outcome.artifacts.push(written);
        let children = store.children(id).unwrap();
        for c in &children {
            let child = store.run(*c).unwrap().unwrap();
            assert_eq!(child.status, RunStatus::Completed, "{child:?}");
            assert_eq!(child.parent, Some(id));
        }
        outcome.children.push(children.len());
    }
    outcome
}

fn workload() -> Vec<(&'static str, Value)> {
    let names: Vec<String> = (0..6).map(|i| format!("kid{i}")).collect();
    vec![
        ("steps", json!({ "count": 40, "pause_ms": 150 })),
        ("steps", json!({ "count": 50, "pause_ms": 100 })),
        ("fanout", json!({ "names": names })),
        ("fanout", json!({ "names": ["solo"] })),
        ("steps", json!({ "count": 80 })),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_torture_every_run_completes_once_as_if_never_killed() {
    support::guest_dir();
    // The reference: the same workload, never interrupted.
    let calm = tempfile::tempdir().unwrap();
    let torn = tempfile::tempdir().unwrap();
    let mut runs: [Vec<RunId>; 2] = [Vec::new(), Vec::new()];
    for (i, dir) in [calm.path(), torn.path()].into_iter().enumerate() {
        for name in ["hello", "steps", "fanout"] {
            deploy(dir, name);
        }
        for (slug, input) in workload() {
            runs[i].push(queue(dir, slug, &input));
        }
    }
    resume_to_end(calm.path());

    let mut rng = rand::rng();
    let mut kills = 0;
    let t0 = Instant::now();
    while kills < 24 {
        let mut host = spawn({
            let mut c = runway(torn.path());
            c.arg("resume");
            c
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(20..220)));
        if host.try_wait().unwrap().is_some() {
            // It finished everything before the kill: the workload is too
            // short to torture; the count below would say so.
            break;
        }
        kill(&mut host);
        kills += 1;
    }
    assert!(
        kills >= 20,
        "only {kills} kills landed before the workload finished"
    );
    resume_to_end(torn.path());
    let crash_time = t0.elapsed();

    let calm_host = open(calm.path()).await;
    let expected = inspect(&calm_host, &runs[0]);
    drop(calm_host);
    let torn_host = open(torn.path()).await;
    let got = inspect(&torn_host, &runs[1]);
    assert_eq!(got, expected, "after {kills} kills in {crash_time:?}");
    // Each step artifact exactly once.
    for written in &got.artifacts {
        assert!(written.values().all(|&n| n == 1), "{written:?}");
    }
    assert_eq!(got.children, vec![0, 0, 6, 1, 0]);
    // Exactly the children the workload asked for, each once.
    let hellos = torn_host.store().runs(None, Some("hello"), 1000).unwrap();
    assert_eq!(hellos.len(), 7);
    assert!(torn_host.store().active_runs().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_wakes_on_time_after_a_restart_with_the_same_clock_and_random() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    deploy(dir.path(), "sleepy");
    let mut host = spawn({
        let mut c = runway(dir.path());
        c.args(["run", "sleepy", "--input", r#"{"ms":1500}"#]);
        c
    });
    std::thread::sleep(Duration::from_millis(500));
    kill(&mut host);
    // Back up well before the deadline; the run must wake on time.
    let out = runway(dir.path())
        .args(["resume", "--json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_str(&ok(out)).unwrap();
    let run = &list[0];
    assert_eq!(run["status"], "completed", "{list}");
    let o = &run["output"];
    let late = o["after_ms"].as_i64().unwrap() - o["until_ms"].as_i64().unwrap();
    assert!(
        (0..=100).contains(&late),
        "woke {late} ms after its deadline"
    );
    let id: RunId = run["run_id"].as_str().unwrap().parse().unwrap();
    let host = open(dir.path()).await;
    let events = host.store().events(id, 0, usize::MAX).unwrap();
    let before = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Custom { name, payload } if name == "before" => Some(payload.clone()),
            _ => None,
        })
        .expect("the before event, recorded before the crash");
    assert_eq!(before["clock_ms"], o["before_ms"]);
    assert_eq!(before["random"], o["random"]);
    assert_eq!(
        events.iter().filter(|e| e.body.kind() == "custom").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_calls_differently_on_replay_fails_with_nondeterminism() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, "FLAVOR = \"a\"\n").unwrap();
    deploy(dir.path(), "hostile");
    let mut host = spawn({
        let mut c = runway(dir.path());
        c.args([
            "run",
            "hostile",
            "--input",
            r#"{"attack":"diverge","ms":3000}"#,
        ]);
        c
    });
    // The run writes a.txt and sleeps; the host dies; the value changes.
    std::thread::sleep(Duration::from_millis(700));
    kill(&mut host);
    std::fs::write(&secrets, "FLAVOR = \"b\"\n").unwrap();
    let list: Value = serde_json::from_str(&ok(runway(dir.path())
        .args(["resume", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    let run = &list[0];
    assert_eq!(run["status"], "failed", "{list}");
    assert_eq!(run["error"]["code"], json!(ErrorCode::Nondeterminism));
    let message = run["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("artifacts.write") && message.contains("runtime.emit"),
        "{message}"
    );
}

/// Whether opening `dir`'s store has to repair it (it was not closed).
fn needs_repair(dir: &Path) -> bool {
    let repaired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = repaired.clone();
    let db = redb::Database::builder()
        .set_repair_callback(move |_| flag.store(true, std::sync::atomic::Ordering::Relaxed))
        .create(dir.join("runway.redb"))
        .expect("opening the store");
    drop(db);
    repaired.load(std::sync::atomic::Ordering::Relaxed)
}

/// SIGTERM (and the end of every CLI command) closes the store cleanly: the
/// next open needs no repair. A SIGKILL still does, and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_the_store_so_the_next_open_needs_no_repair() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    deploy(dir.path(), "hello");
    assert!(!needs_repair(dir.path()), "after a CLI command");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let serve = || {
        let mut cmd = runway(dir.path());
        cmd.args(["serve", "--listen", &listen]);
        spawn(cmd)
    };
    let start_one = async || {
        let http = reqwest::Client::new();
        for _ in 0..500 {
            if let Ok(r) = http
                .post(format!("http://{listen}/v1/workflows/hello/runs?wait=10"))
                .json(&json!({ "name": "t" }))
                .send()
                .await
            {
                assert!(r.status().is_success());
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server never answered");
    };
    let mut server = serve();
    start_one().await;
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
    assert!(!needs_repair(dir.path()), "after SIGTERM");
    // For contrast: SIGKILL leaves it to be repaired (and nothing is lost).
    let mut server = serve();
    start_one().await;
    kill(&mut server);
    assert!(needs_repair(dir.path()), "after SIGKILL");
    let host = open(dir.path()).await;
    let runs = host.runs(&Default::default(), 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
}
