//! The store on PostgreSQL, from the outside: the CLI with `--store`
//! (the tables shared by whoever names the database, what only a redb
//! store has refused by name), a newer layout refused, and the database
//! going away and coming back under a server without an acknowledged run
//! lost. The durable, server and models suites run on PostgreSQL too
//! (`RUNWAY_TEST_STORE=postgres`, see `scripts/test.sh`).

mod support;

use support::ok;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
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

    let node = Node::start(dir.path(), "data", &url).await;
    let base = node.base.clone();
    let http = reqwest::Client::new();
    let ready = || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    deploy(&node, "steps");
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
        let run = node.ended(id, Duration::from_secs(60)).await;
        assert_eq!(run["status"], "completed", "{run}");
        written_once(&node.events(id).await, 4);
    }
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

/// A `runway serve` on the shared database, with a short lease.
struct Node {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
}

impl Node {
    async fn start(dir: &Path, name: &str, url: &str) -> Node {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).unwrap();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, "[store]\nlease = \"1s\"\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("{name}.log"));
        let child = runway(&data, url)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUNWAY_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let t0 = Instant::now();
        while reqwest::get(format!("{}/readyz", node.base)).await.is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20), "{name} never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    async fn start_run(&self, slug: &str, input: Value) -> String {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/workflows/{slug}/runs", self.base))
            .json(&input)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        let run: Value = res.json().await.unwrap();
        run["id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, id: &str) -> Value {
        reqwest::get(format!("{}/v1/runs/{id}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the run has ended, as this node reads it.
    async fn ended(&self, id: &str, within: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let run = self.run(id).await;
            if ["completed", "failed", "cancelled"].contains(&run["status"].as_str().unwrap_or(""))
            {
                return run;
            }
            assert!(t0.elapsed() < within, "{id} never ended: {run}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn events(&self, id: &str) -> Vec<Value> {
        let page: Value = reqwest::get(format!("{}/v1/runs/{id}/events", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["events"].as_array().unwrap().clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A run's log as written once: `steps` artifacts and events, numbered
/// without a gap or a repeat, one end, nothing after it.
fn written_once(events: &[Value], steps: usize) {
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let count = |k: &str| events.iter().filter(|e| e["kind"] == k).count();
    assert_eq!(count("artifact_written"), steps, "{events:?}");
    assert_eq!(count("custom"), steps, "{events:?}");
    assert_eq!(count("completed"), 1, "{events:?}");
    assert_eq!(events.last().unwrap()["kind"], "completed", "{events:?}");
}

fn deploy(node: &Node, example: &str) {
    ok(Command::new(env!("CARGO_BIN_EXE_runway"))
        .args(["--server", &node.base, "deploy"])
        .arg(support::wasm(example))
        .arg("--manifest")
        .arg(support::manifest_path(example))
        .output()
        .unwrap());
}

/// Two hosts on one database: a deploy on one is the other's too; the
/// runs of a host killed mid-run are taken over by the other by replay and
/// complete with every step written exactly once, as a run nobody killed;
/// the artifacts the dead host wrote are served by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_s_runs_are_taken_over_and_written_once() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let url = support::postgres_database(dir.path());
    let a = Node::start(dir.path(), "a", &url).await;
    let b = Node::start(dir.path(), "b", &url).await;
    deploy(&a, "steps");
    let input = json!({ "count": 5, "pause_ms": 200 });
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(a.start_run("steps", input.clone()).await);
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    a.signal("KILL");
    let t0 = Instant::now();
    let untouched = b.start_run("steps", input.clone()).await;
    let expected = b.ended(&untouched, Duration::from_secs(30)).await["output"].clone();
    for id in &ids {
        let run = b.ended(id, Duration::from_secs(30)).await;
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["output"], expected, "{run}");
        written_once(&b.events(id).await, 5);
        // Artifact bodies are in the database: any host serves them,
        // those the killed host wrote too.
        let body = reqwest::get(format!("{}/v1/runs/{id}/artifacts/step-0001.txt", b.base))
            .await
            .unwrap();
        assert_eq!(body.status().as_u16(), 200);
        assert!(!body.bytes().await.unwrap().is_empty());
    }
    // Lease (1 s) plus a takeover scan (every half lease) plus the rest of
    // the steps.
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(log.contains("took a run over"), "{log}");
}

/// Fencing: a host paused (SIGSTOP) past its lease loses its runs to the
/// other host, which finishes them; resumed (SIGCONT), it cannot write to
/// them any more: the database refuses its stale token, and the runs' logs
/// hold nothing from it after the takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_host_cannot_write_after_its_lease_was_taken() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let url = support::postgres_database(dir.path());
    let a = Node::start(dir.path(), "a", &url).await;
    let b = Node::start(dir.path(), "b", &url).await;
    deploy(&a, "steps");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            a.start_run("steps", json!({ "count": 8, "pause_ms": 150 }))
                .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.signal("STOP");
    for id in &ids {
        let run = b.ended(id, Duration::from_secs(30)).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    let before: Vec<Vec<Value>> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(b.events(id).await);
        }
        v
    };
    a.signal("CONT");
    // Its timers fire, its heartbeat runs: give it time to try.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (id, earlier) in ids.iter().zip(&before) {
        let events = b.events(id).await;
        assert_eq!(&events, earlier, "{id} changed after the takeover");
        written_once(&events, 8);
    }
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(
        log.contains("was refused") || log.contains("taken over by another host"),
        "{log}"
    );
    // Still serving.
    assert_eq!(a.run(&ids[0]).await["status"], "completed");
}

/// A signal or a cancel sent to a host other than the one driving the run
/// reaches it, and its event stream is served by any host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_cancel_or_stream_through_another_host_reaches_the_run() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let url = support::postgres_database(dir.path());
    let a = Node::start(dir.path(), "a", &url).await;
    let b = Node::start(dir.path(), "b", &url).await;
    deploy(&a, "approval");
    deploy(&a, "sleepy");
    let waiting = a
        .start_run("approval", json!({ "request": "deploy" }))
        .await;
    let t0 = Instant::now();
    while a.run(&waiting).await["status"] != "waiting_signal" {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = reqwest::Client::new()
        .post(format!("{}/v1/runs/{waiting}/signals/approve", b.base))
        .json(&json!({ "by": "ada" }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let run = a.ended(&waiting, Duration::from_secs(10)).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["signal"]["by"], "ada", "{run}");

    let sleeping = a.start_run("sleepy", json!({ "ms": 60000 })).await;
    let t0 = Instant::now();
    while a.run(&sleeping).await["status"] != "sleeping" {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = reqwest::Client::new()
        .post(format!("{}/v1/runs/{sleeping}/cancel", b.base))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let run = b.ended(&sleeping, Duration::from_secs(10)).await;
    assert_eq!(run["status"], "cancelled", "{run}");

    // The event stream of a run on A, from B: every event, in order, as
    // it becomes durable (told over NOTIFY, not found by B's 5 s re-check).
    deploy(&a, "steps");
    let id = a
        .start_run("steps", json!({ "count": 6, "pause_ms": 150 }))
        .await;
    let t0 = Instant::now();
    let res = reqwest::get(format!("{}/v1/runs/{id}/events/stream", b.base))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = tokio::time::timeout(Duration::from_secs(30), res.text())
        .await
        .expect("the stream ends after the run")
        .unwrap();
    let took = t0.elapsed();
    let streamed: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| {
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data).unwrap())
        })
        .collect();
    written_once(&streamed, 6);
    assert_eq!(streamed, a.events(&id).await);
    assert!(took < Duration::from_secs(4), "the stream took {took:?}");
}

/// `runway migrate --from-redb DIR`: a data directory's runs, workflows and
/// artifacts move into an empty database, and go on there (a run that
/// waited for a signal on redb takes it on PostgreSQL); a database that
/// holds runs already is refused.
#[test]
fn a_redb_data_directory_moves_into_postgres_and_goes_on_there() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let plain = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
        cmd.arg("--data-dir")
            .arg(&data)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUNWAY_SERVER")
            .env_remove("RUNWAY_STORE");
        cmd
    };
    let report = support::wasm("report");
    ok(plain(&["exec", report.to_str().unwrap(), "--manifest"])
        .arg(support::manifest_path("report"))
        .args(["--input", r#"{"title":"T","sections":[{"heading":"A"}]}"#])
        .env("RUNWAY_SECRET_REPORT_TOKEN", "tok-123")
        .output()
        .unwrap());
    ok(plain(&[
        "deploy",
        support::wasm("approval").to_str().unwrap(),
        "--manifest",
    ])
    .arg(support::manifest_path("approval"))
    .output()
    .unwrap());
    let waiting = plain(&["run", "approval", "--input", r#"{"request":"x"}"#, "--json"])
        .output()
        .unwrap();
    let waiting: Value = serde_json::from_slice(&waiting.stdout).unwrap();
    assert_eq!(waiting["status"], "waiting_signal", "{waiting}");
    let id = waiting["run_id"].as_str().unwrap().to_owned();

    let url = support::postgres_database(dir.path());
    let elsewhere = dir.path().join("elsewhere");
    let out: Value = serde_json::from_str(&ok(runway(&elsewhere, &url)
        .arg("migrate")
        .arg("--from-redb")
        .arg(&data)
        .arg("--json")
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(out["copied"]["runs"], 2, "{out}");
    assert_eq!(out["copied"]["blobs"], 1, "{out}");
    // The runs, the artifact body and the waiting run, all on PostgreSQL.
    let runs: Value = serde_json::from_str(&ok(runway(&elsewhere, &url)
        .args(["runs", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    let report_run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workflow"] == "report")
        .unwrap();
    let events = ok(runway(&elsewhere, &url)
        .args(["events", report_run["id"].as_str().unwrap(), "--json"])
        .output()
        .unwrap());
    assert!(events.contains("artifact_written"), "{events}");
    ok(runway(&elsewhere, &url)
        .args(["signal", &id, "approve", "--data", r#"{"by":"ada"}"#])
        .output()
        .unwrap());
    let done: Value = serde_json::from_str(&ok(runway(&elsewhere, &url)
        .args(["runs", "--status", "completed", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert!(
        done.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "{done}"
    );
    // Once there is data, a second copy is refused.
    let again = runway(&elsewhere, &url)
        .arg("migrate")
        .arg("--from-redb")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty"));
}

/// A tiny deterministic random source (the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Three hosts on one database under a mixed load — steps with pauses,
/// fan-outs with children, approvals with signals, durable sleeps and a
/// cron schedule every second — while one host at a time is SIGKILLed mid-run
/// and restarted, 20 times: every run completes exactly once, each step's
/// artifact and event and each child exactly once, outputs equal those of
/// runs nobody killed, no timer is lost and no cron instant starts twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_killed_twenty_times_lose_and_repeat_nothing() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let url = support::postgres_database(dir.path());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let mut nodes = vec![
        Node::start(dir.path(), "n0", &url).await,
        Node::start(dir.path(), "n1", &url).await,
        Node::start(dir.path(), "n2", &url).await,
    ];
    for example in ["steps", "hello", "fanout", "approval", "sleepy"] {
        deploy(&nodes[0], example);
    }
    // `hello` on a cron schedule every second, as the workflow `tick`.
    let tick = dir.path().join("tick.toml");
    std::fs::write(
        &tick,
        "slug = \"tick\"\n[[triggers.cron]]\nschedule = \"* * * * * *\"\ninput = { name = \"tick\" }\n",
    )
    .unwrap();
    ok(Command::new(env!("CARGO_BIN_EXE_runway"))
        .args(["--server", &nodes[1].base, "deploy"])
        .arg(support::wasm("hello"))
        .arg("--manifest")
        .arg(&tick)
        .output()
        .unwrap());
    let http = reqwest::Client::new();
    // Starts a run through whichever host answers; the key makes a retry
    // after a host died mid-request the same run.
    async fn start(
        http: &reqwest::Client,
        nodes: &[Node],
        first: usize,
        slug: &str,
        key: &str,
        input: &Value,
    ) -> String {
        for attempt in 0..60 {
            let node = &nodes[(first + attempt) % nodes.len()];
            let res = http
                .post(format!("{}/v1/workflows/{slug}/runs", node.base))
                .header("idempotency-key", key)
                .json(input)
                .send()
                .await;
            if let Ok(res) = res
                && res.status().is_success()
            {
                let run: Value = res.json().await.unwrap();
                return run["id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no host started {slug}");
    }
    let steps_input = json!({ "count": 4, "pause_ms": 120 });
    let fanout_input = json!({ "names": ["Ada", "Grace", "Alan"] });
    let mut started: Vec<(&str, String)> = Vec::new();
    let t0 = Instant::now();
    for round in 0..20 {
        for (i, (slug, input)) in [
            ("steps", steps_input.clone()),
            ("fanout", fanout_input.clone()),
            ("approval", json!({ "request": format!("r{round}") })),
            ("sleepy", json!({ "ms": 400 })),
        ]
        .into_iter()
        .enumerate()
        {
            let first = rng.below(3);
            let key = format!("load-{round}-{i}");
            started.push((slug, start(&http, &nodes, first, slug, &key, &input).await));
        }
        // Kill one host mid-run, and bring it back.
        let victim = rng.below(3);
        tokio::time::sleep(Duration::from_millis(100 + rng.below(300) as u64)).await;
        nodes[victim].signal("KILL");
        let name = format!("n{victim}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        nodes[victim] = Node::start(dir.path(), &name, &url).await;
    }
    println!("20 kills in {:?}", t0.elapsed());
    // Every approval gets its signal, through any host.
    for (slug, id) in &started {
        if *slug != "approval" {
            continue;
        }
        for attempt in 0.. {
            let node = &nodes[attempt % 3];
            let res = http
                .post(format!("{}/v1/runs/{id}/signals/approve", node.base))
                .header("signal-id", "once")
                .json(&json!({ "by": "ada" }))
                .send()
                .await
                .unwrap();
            if res.status().is_success() {
                break;
            }
            assert!(attempt < 50, "{}", res.text().await.unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // What runs nobody killed give.
    let clean_steps = nodes[0].start_run("steps", steps_input.clone()).await;
    let clean_fanout = nodes[0].start_run("fanout", fanout_input.clone()).await;
    let steps_output =
        nodes[0].ended(&clean_steps, Duration::from_secs(60)).await["output"].clone();
    let fanout_output =
        nodes[0].ended(&clean_fanout, Duration::from_secs(60)).await["output"].clone();
    for (slug, id) in &started {
        let run = nodes[rng.below(3)].ended(id, Duration::from_secs(90)).await;
        assert_eq!(run["status"], "completed", "{slug} {run}");
        let events = nodes[0].events(id).await;
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{slug} {id}: {seqs:?}"
        );
        assert_eq!(
            events.iter().filter(|e| e["kind"] == "completed").count(),
            1,
            "{slug} {id}"
        );
        match *slug {
            "steps" => {
                written_once(&events, 4);
                assert_eq!(run["output"], steps_output, "{id}");
            }
            "fanout" => {
                assert_eq!(run["output"], fanout_output, "{id}");
                let children = run["children"].as_array().unwrap();
                assert_eq!(children.len(), 3, "{id}: {run}");
                assert_eq!(
                    events
                        .iter()
                        .filter(|e| e["kind"] == "child_started")
                        .count(),
                    3,
                    "{id}"
                );
            }
            "approval" => assert_eq!(run["output"]["signal"]["by"], "ada", "{run}"),
            "sleepy" => assert!(run["output"]["slept_ms"].as_u64().unwrap() >= 400, "{run}"),
            _ => unreachable!(),
        }
    }
    // No cron instant started twice (each instant's key names one run).
    let u = url.clone();
    let (ticks, instants) = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
        let ticks: i64 = c
            .query_one("SELECT count(*) FROM runs WHERE workflow = 'tick'", &[])
            .unwrap()
            .get(0);
        let instants: i64 = c
            .query_one(
                "SELECT count(DISTINCT key) FROM idempotency_keys WHERE key LIKE 'cron:tick:%'",
                &[],
            )
            .unwrap()
            .get(0);
        (ticks, instants)
    })
    .join()
    .unwrap();
    assert!(ticks > 5, "the schedule fired {ticks} times");
    assert_eq!(ticks, instants, "a cron instant started more than one run");
}
