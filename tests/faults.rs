//! The machine's faults are the host's problem: a full disk makes the real
//! server report itself unavailable and heal by itself, a damaged store is
//! refused or served, never a panic. Each test drives the real binary.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn runway(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
    cmd.arg("--data-dir").arg(dir).env("NO_COLOR", "1");
    cmd.env_remove("RUNWAY_DATA_DIR");
    cmd
}

fn deploy(dir: &Path, name: &str) {
    let out = runway(dir)
        .arg("deploy")
        .arg(support::wasm(name))
        .arg("--manifest")
        .arg(support::manifest_path(name))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `runway serve` on loopback, its log in `log`.
struct Served {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Served {
    async fn start(dir: &Path, log: PathBuf) -> Served {
        let port = free_port();
        let child = runway(dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let t0 = Instant::now();
        while s.http.get(s.url("/healthz")).send().await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the server never came up: {}",
                s.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        s
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self.http.get(self.url(path)).send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// SIGTERM, and the exit code.
    fn terminate(mut self) -> (Option<i32>, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.log_text());
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("the server did not stop on SIGTERM: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// A small tmpfs mounted for one test (root only; CI runs as root).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts it, or `None` (said why) where mounting is not allowed and
    /// `RUNWAY_SKIP_MOUNT_TESTS` is set; without it, failing to mount fails
    /// the test.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        if out.status.success() {
            return Some(Tmpfs { dir });
        }
        let why = String::from_utf8_lossy(&out.stderr).into_owned();
        if std::env::var_os("RUNWAY_SKIP_MOUNT_TESTS").is_some() {
            eprintln!("skipped: cannot mount a tmpfs: {why}");
            return None;
        }
        panic!("cannot mount a tmpfs ({why}); run as root or set RUNWAY_SKIP_MOUNT_TESTS=1");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

/// Fills the file system under `path` with `filler` until it refuses more.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0xa5u8; 64 << 10];
    while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
}

/// A run's `step` events, by step number, with how often each shows.
fn steps_of(events: &Value) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for e in events["events"].as_array().unwrap() {
        if e["kind"] == "custom" && e["name"] == "step" {
            *seen
                .entry(e["payload"]["step"].as_u64().unwrap())
                .or_default() += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_the_store_and_the_server_heals_by_itself() {
    support::guest_dir();
    let Some(fs) = Tmpfs::mount("48m") else {
        return;
    };
    let data = fs.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    deploy(&data, "steps");
    let logs = tempfile::tempdir().unwrap();
    let s = Served::start(&data, logs.path().join("serve.log")).await;
    let filler = fs.path().join("filler");

    // Keyed starts under load; the disk fills under them.
    let input = json!({ "count": 3, "pause_ms": 5 });
    let mut accepted: BTreeMap<String, String> = BTreeMap::new();
    let mut refused: Vec<String> = Vec::new();
    let mut seen_unready = false;
    let t0 = Instant::now();
    let mut n = 0;
    let mut filled = false;
    // Load goes on for a while once the store is degraded: runs in flight
    // stay paused, clients keep being refused.
    let mut degraded_at: Option<Instant> = None;
    while degraded_at.is_none_or(|t| t.elapsed() < Duration::from_millis(1500)) {
        if seen_unready && !refused.is_empty() && degraded_at.is_none() {
            degraded_at = Some(Instant::now());
        }
        if degraded_at.is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the store never reported the full disk: {}",
            s.log_text()
        );
        if !filled && n >= 48 {
            fill(&filler);
            filled = true;
        }
        let mut batch = Vec::new();
        for _ in 0..8 {
            n += 1;
            let key = format!("k-{n}");
            let sent = s
                .http
                .post(s.url("/v1/workflows/steps/runs"))
                .header("Idempotency-Key", &key)
                .json(&input)
                .send();
            batch.push((key, tokio::spawn(sent)));
        }
        for (key, sent) in batch {
            let res = match sent.await.unwrap() {
                Ok(res) => res,
                Err(e) => panic!("{e:?}: {}", s.log_text()),
            };
            let status = res.status();
            let retry_after = res.headers().get("retry-after").cloned();
            let body: Value = res.json().await.unwrap();
            match status {
                StatusCode::ACCEPTED | StatusCode::OK => {
                    accepted.insert(key, body["id"].as_str().unwrap().to_owned());
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(body["error"]["code"], "STORAGE_UNAVAILABLE", "{body}");
                    assert!(retry_after.is_some(), "a 503 without Retry-After");
                    refused.push(key);
                }
                other => panic!("{other}: {body}\n{}", s.log_text()),
            }
        }
        let (status, body) = s.get("/readyz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("space")),
                "{body}"
            );
            seen_unready = true;
        }
        // Reads answer while writes are refused, or say why: never a 500.
        let (status, _) = s.get("/v1/runs?limit=5").await;
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    assert!(!accepted.is_empty());

    // Space comes back: the same server recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        if s.get("/readyz").await.0 == StatusCode::OK {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(15),
            "the store did not recover: {}",
            s.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "recovered {:?} after space was freed ({} runs accepted, {} refused)",
        freed.elapsed(),
        accepted.len(),
        refused.len()
    );

    // The refused keys are taken now; every key names one run.
    for key in &refused {
        let res = s
            .http
            .post(s.url("/v1/workflows/steps/runs"))
            .header("Idempotency-Key", key)
            .json(&input)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        let body: Value = res.json().await.unwrap();
        accepted.insert(key.clone(), body["id"].as_str().unwrap().to_owned());
    }
    for (key, id) in &accepted {
        let res = s
            .http
            .post(s.url("/v1/workflows/steps/runs"))
            .header("Idempotency-Key", key)
            .json(&input)
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["id"].as_str(), Some(id.as_str()), "{key}");
    }

    // Every acknowledged run completes, each step exactly once.
    for id in accepted.values() {
        let t0 = Instant::now();
        let run = loop {
            let (status, run) = s.get(&format!("/v1/runs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{run}");
            if run["status"] != "queued"
                && run["status"] != "running"
                && run["status"] != "sleeping"
            {
                break run;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{id} never ended: {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(run["status"], "completed", "{run}");
        let (_, events) = s.get(&format!("/v1/runs/{id}/events?limit=1000")).await;
        let steps = steps_of(&events);
        assert_eq!(
            steps,
            (1..=3).map(|i| (i, 1)).collect::<BTreeMap<_, _>>(),
            "{id}: {events}"
        );
    }
    let (status, page) = s.get("/v1/runs?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["runs"].as_array().unwrap().len(),
        accepted.len(),
        "one run per key"
    );

    let log = s.log_text();
    assert!(log.contains("store degraded"), "{log}");
    assert!(log.contains("store recovered"), "{log}");
    let (code, log) = s.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("panic"), "{log}");
}

/// Every run the server lists answers, with its events; the listing pages
/// to its end. Returns how many runs it listed.
async fn serves_every_run_it_lists(s: &Served) -> usize {
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/runs?limit=100&cursor={c}"),
            None => "/v1/runs?limit=100".to_owned(),
        };
        let (status, page) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}\n{}", s.log_text());
        for run in page["runs"].as_array().unwrap() {
            let id = run["id"].as_str().unwrap();
            let (status, body) = s.get(&format!("/v1/runs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{id}: {body}\n{}", s.log_text());
            // A damaged page under a run's events is said so, typed.
            let (status, body) = s.get(&format!("/v1/runs/{id}/events")).await;
            assert!(
                status == StatusCode::OK || body["error"]["code"] == "STORE_DAMAGED",
                "{id}: {status} {body}\n{}",
                s.log_text()
            );
            listed += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return listed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_or_served_never_a_panic() {
    support::guest_dir();
    let good_dir = tempfile::tempdir().unwrap();
    deploy(good_dir.path(), "hello");
    let logs = tempfile::tempdir().unwrap();
    let s = Served::start(good_dir.path(), logs.path().join("good.log")).await;
    for i in 0..200 {
        let res = s
            .http
            .post(s.url("/v1/workflows/hello/runs?wait=10"))
            .json(&json!({ "name": format!("n{i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let (code, log) = s.terminate();
    assert_eq!(code, Some(0), "{log}");
    let good = std::fs::read(good_dir.path().join("runway.redb")).unwrap();

    let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for seed in 0..8 {
        // Offsets spread over the file: the header, early pages, the tail.
        let at = match seed {
            0 => 0,
            1 => 512,
            2 => 4096,
            _ => (next() as usize) % good.len(),
        };
        let len = 256.min(good.len() - at);
        let mut bytes = good.clone();
        for b in &mut bytes[at..at + len] {
            *b = next() as u8;
        }
        damages.push((format!("{len} random bytes at {at}"), bytes));
    }
    damages.push(("truncated to half".into(), good[..good.len() / 2].to_vec()));
    damages.push(("truncated to 1000 bytes".into(), good[..1000].to_vec()));

    let mut refused = 0;
    for (what, bytes) in damages {
        let dir = tempfile::tempdir().unwrap();
        deploy(dir.path(), "hello");
        std::fs::write(dir.path().join("runway.redb"), &bytes).unwrap();
        // The doctor's check says what it found, never panics, and leaves
        // the file as it was.
        let out = runway(dir.path())
            .args(["doctor", "--json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0 | 1) => {
                let c: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(c["intact"], out.status.code() == Some(0), "{what}: {c}");
            }
            Some(2) => assert!(text.contains("runway.redb"), "{what}: {text}"),
            other => panic!("{what}: doctor exited {other:?}: {text}"),
        }
        assert!(
            std::fs::read(dir.path().join("runway.redb")).unwrap() == bytes,
            "{what}: the doctor's check changed the file"
        );
        let log = logs.path().join("damaged.log");
        let port = free_port();
        let mut child = runway(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        let up = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let text = std::fs::read_to_string(&log).unwrap();
                assert_ne!(status.code(), Some(0), "{what}: {text}");
                assert!(
                    text.contains("runway.redb") && text.contains("backup"),
                    "{what}: an unclear refusal: {text}"
                );
                break false;
            }
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                break true;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{what}: neither up nor refused"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if !up {
            refused += 1;
            continue;
        }
        let s = Served {
            child,
            base,
            log,
            http,
        };
        let listed = serves_every_run_it_lists(&s).await;
        let (code, log) = s.terminate();
        assert_eq!(code, Some(0), "{what}: {log}");
        eprintln!("{what}: served {listed} runs");
    }
    eprintln!("{refused} damaged stores refused");
}
