//! `cargo bench -p runway` — the host's headline figures, printed with their
//! conditions. Medians and percentiles over many samples; these machines
//! are noisy, so read ratios rather than single numbers.
//!
//! 1. instantiate-to-first-guest-instruction of `hello`, warm compile cache
//! 2. `hello` runs per second in one host process, every run durable
//! 3. event appends per second with group commit, every append durable
//! 4. first run after a host restart, compile cache on disk
//! 5. replay of a 10,000-call history (an evicted run woken from a timer)
//! 6. 10,000 runs sleeping at once: resident memory and wake-up lateness
//! 7. wake-to-resume of one evicted run, against one kept warm
//! 8. `runway serve`: `hello` through `POST …/runs?wait=` with 1, 16 and 64
//!    keep-alive clients; the server's resident memory after those runs
//! 9. 1,000 SSE subscribers on one busy run
//! 10. host overhead per model `generate` call, beyond the provider's own
//!     round trip (a loopback OpenAI-format provider answering at once)
//! 12. opening a store of 100,000+ runs after `runway serve` was stopped
//!     with SIGTERM (a clean close needs no repair)
//! 11. containment: for each class of hostile guest, run through `runway
//!     serve` beside a stream of `hello` runs — the server's peak resident
//!     memory, the neighbour's p99, how the attack ended, and whether the
//!     API still answers afterwards
//! 19. the PostgreSQL store: `hello` over HTTP at 64 clients against redb,
//!     on 1, 2 and 3 hosts sharing one database (CPU and database
//!     transactions per run), takeover after a host dies, and the cost of a
//!     journaled step
//! 20. the console: first paint of the runs list over 100,000 runs and of a
//!     run page with 10,000 events (Chromium, `tests/console/paint.mjs`);
//!     the all-runs feed with 50 consoles connected while runs change
//!     status at 1,000 a second; the console's size
//! 21. identities and approvals: the cost of verifying an RS256 JWT (keys
//!     cached) against a named token per request, and listing pending
//!     approvals with 10,000 of them among 100,000 runs
//! 22. agents: host overhead per MCP tool call (an rmcp server on loopback
//!     answering at once) against the same call from a plain rmcp client,
//!     and a 10-turn agent (`triage`, one tool call a turn) end to end
//!     against instant loopback services
//!
//! 1 and 2 run once per instance allocator (pooling, on-demand) to show
//! which pays. `RUNWAY_BENCH_QUICK=1` shrinks every sample count.

#[path = "../../tests/support/mod.rs"]
mod support;

use runway::sandbox::engine::Allocator;
use runway::store::{Store, Write};
use runway::types::{Event, EventBody, RunId, RunStatus, now};
use runway::{Host, HostConfig};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn quick() -> bool {
    std::env::var_os("RUNWAY_BENCH_QUICK").is_some()
}

/// `RUNWAY_BENCH_ONLY=2` (or `1,3`) runs only those figures.
fn wanted(figure: u32) -> bool {
    match std::env::var("RUNWAY_BENCH_ONLY") {
        Ok(list) => list.split(',').any(|f| f.trim() == figure.to_string()),
        Err(_) => true,
    }
}

/// The `runway` binary the server figures start: this build's, or
/// `RUNWAY_BENCH_BIN` (another build's, for a back-to-back comparison).
fn server_binary() -> std::path::PathBuf {
    std::env::var_os("RUNWAY_BENCH_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_runway").into(), Into::into)
}

fn scale(n: usize) -> usize {
    if quick() { (n / 10).max(1) } else { n }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn open(dir: &Path, allocator: Allocator) -> Host {
    let mut config = HostConfig::new(dir);
    config.engine.allocator = allocator;
    config.max_concurrent_runs = 256;
    // A host that just dropped releases the file lock from its writer thread.
    for _ in 0..500 {
        match Host::open(config.clone()).await {
            Ok(h) => return h,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    panic!("could not open {}", dir.display());
}

async fn deploy_hello(host: &Host) {
    host.deploy(support::wasm_bytes("hello"), &support::manifest("hello"))
        .await
        .expect("deploy hello");
}

/// Figure 1: p50/p99 of sandbox + instantiate, warm compile cache.
async fn instantiate(allocator: Allocator) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path(), allocator).await;
    deploy_hello(&host).await;
    for _ in 0..200 {
        host.time_instantiate("hello").await.unwrap();
    }
    let mut samples: Vec<Duration> = Vec::new();
    for _ in 0..scale(5_000) {
        samples.push(host.time_instantiate("hello").await.unwrap());
    }
    samples.sort();
    let p50 = pct(&samples, 0.5);
    println!(
        "  instantiate-to-first-instruction [{allocator:?}]: p50 {}  p90 {}  p99 {}  (n={}, target p50 <= 50 µs)",
        us(p50),
        us(pct(&samples, 0.9)),
        us(pct(&samples, 0.99)),
        samples.len()
    );
    p50
}

/// Figure 2: completed `hello` runs per second, each run's queued and final
/// state committed durably (fsync, group commit), `concurrency` in flight.
async fn throughput(allocator: Allocator, concurrency: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path(), allocator).await;
    deploy_hello(&host).await;
    host.run("hello", json!({"name": "warm"})).await.unwrap();
    let total = scale(20_000);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let host = host.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0usize;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let r = host.run("hello", json!({"name": "Ada"})).await.unwrap();
                assert_eq!(r.status, RunStatus::Completed);
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for w in workers {
        done += w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "  hello runs/s [{allocator:?}, {concurrency} in flight]: {rate:.0} runs/s ({done} runs in {}, every run durable; target >= 5,000)",
        ms(elapsed)
    );
    rate
}

/// How the appenders of figure 3 wait for durability.
#[derive(Clone, Copy, PartialEq)]
enum Appends {
    /// Every append waits for its own fsync (the worst case).
    EachDurable,
    /// Appends are handed to the writer as they happen (a log line, an
    /// output line) and become durable with the run's next durable commit:
    /// what a run does.
    RideAlong,
}

/// Figure 3: event appends per second through the group-commit writer,
/// `runs` concurrent appenders of `per_run` events each.
async fn appends(runs: usize, per_run: usize, mode: Appends) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..runs {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let run = RunId::generate();
            for seq in 1..=per_run as u64 {
                let e = Event {
                    seq,
                    at: now(),
                    body: EventBody::Log {
                        level: runway::types::LogLevel::Info,
                        message: "step finished".into(),
                    },
                };
                let write = vec![Write::AppendEvents(run, vec![e])];
                match mode {
                    Appends::EachDurable => store.commit(write).await.map(drop).unwrap(),
                    Appends::RideAlong => {
                        store.enqueue(write);
                        if seq % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
            }
            store.commit(Vec::new()).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let n = runs * per_run;
    let rate = n as f64 / elapsed.as_secs_f64();
    let how = match mode {
        Appends::EachDurable => "each append waits for its fsync",
        Appends::RideAlong => "appends ride along, durable at each run's commit",
    };
    println!(
        "  event appends/s [{runs} runs, {how}]: {rate:.0}/s ({n} in {}; target >= 50,000)",
        ms(elapsed)
    );
    rate
}

/// Figure 3b: the cost of one durable commit alone (one appender).
async fn single_commit_latency() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let run = RunId::generate();
    let mut samples = Vec::new();
    for seq in 1..=scale(300) as u64 {
        let e = Event {
            seq,
            at: now(),
            body: EventBody::Running,
        };
        let t0 = Instant::now();
        store
            .commit(vec![Write::AppendEvents(run, vec![e])])
            .await
            .unwrap();
        samples.push(t0.elapsed());
    }
    samples.sort();
    let p50 = pct(&samples, 0.5);
    println!(
        "  one durable commit (fsync), alone: p50 {}  p99 {}",
        ms(p50),
        ms(pct(&samples, 0.99))
    );
    p50
}

/// Figure 4: open the data directory and complete the first `hello` run,
/// with the compiled component in the on-disk cache (new engine, cold
/// in-memory caches), repeated over several restarts.
async fn first_run_after_restart() -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    {
        let host = open(dir.path(), Allocator::Pooling).await;
        deploy_hello(&host).await;
        host.flush().await.unwrap();
    }
    let mut total = Vec::new();
    let mut run_only = Vec::new();
    for _ in 0..scale(30) {
        // Let the previous host's writer release the file lock first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        let host = open(dir.path(), Allocator::Pooling).await;
        let t1 = Instant::now();
        let r = host.run("hello", json!({"name": "again"})).await.unwrap();
        let t2 = Instant::now();
        assert_eq!(r.status, RunStatus::Completed);
        total.push(t2 - t0);
        run_only.push(t2 - t1);
        drop(host);
    }
    total.sort();
    run_only.sort();
    println!(
        "  first run after restart: run p50 {} (p90 {}); open + run p50 {} (p90 {})  (n={}, target <= 10 ms)",
        ms(pct(&run_only, 0.5)),
        ms(pct(&run_only, 0.9)),
        ms(pct(&total, 0.5)),
        ms(pct(&total, 0.9)),
        total.len()
    );
    (pct(&run_only, 0.5), pct(&total, 0.5))
}

async fn open_with(dir: &Path, warm: usize) -> Host {
    let mut config = HostConfig::new(dir);
    config.max_warm_instances = warm;
    Host::open(config).await.expect("open")
}

/// Milliseconds between two timestamps.
fn between(a: time::OffsetDateTime, b: time::OffsetDateTime) -> Duration {
    Duration::from_secs_f64((b - a).as_seconds_f64().max(0.0))
}

/// When the run's (last) sleep was due, from its `sleeping` event.
fn sleep_until_ms(host: &Host, id: RunId) -> u64 {
    host.store()
        .events(id, 0, usize::MAX)
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| match e.body {
            EventBody::Sleeping { until_ms } => Some(until_ms),
            _ => None,
        })
        .expect("a sleeping event")
}

/// Figure 5: a run of `steps` with 5,000 steps (two journaled calls each)
/// parks on a 300 ms timer at the end (so its own commits are done before the wake) with its instance evicted; on wake the
/// host loads the journal, instantiates and replays all 10,000 calls.
async fn replay_10k() {
    let dir = tempfile::tempdir().unwrap();
    let host = open_with(dir.path(), 0).await;
    host.deploy(support::wasm_bytes("steps"), &support::manifest("steps"))
        .await
        .unwrap();
    let mut wake_to_done = Vec::new();
    let mut running_to_done = Vec::new();
    let mut calls = 0;
    for _ in 0..if quick() { 2 } else { 7 } {
        let id = host
            .start("steps", json!({"count": 5000, "end_sleep_ms": 300}))
            .await
            .unwrap();
        let r = host.wait(id).await.unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        calls = host.store().journal(id).unwrap().len();
        let until = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(sleep_until_ms(&host, id)) * 1_000_000,
        )
        .unwrap();
        wake_to_done.push(between(until, r.finished_at.unwrap()));
        let events = host.store().events(id, 0, usize::MAX).unwrap();
        let resumed = events
            .iter()
            .rev()
            .find(|e| e.body.kind() == "running")
            .unwrap()
            .at;
        running_to_done.push(between(resumed, r.finished_at.unwrap()));
    }
    running_to_done.sort();
    // The replay alone, many times: copies of the finished run (same input,
    // seed and journal) resumed from scratch, so every call is answered
    // from the journal.
    let (template, history) = {
        let last = host
            .store()
            .runs(Some(RunStatus::Completed), Some("steps"), 1)
            .unwrap();
        let r = last.into_iter().next().unwrap();
        let h = host.store().journal(r.id).unwrap();
        (r, h)
    };
    let mut replays = Vec::new();
    for _ in 0..if quick() { 5 } else { 30 } {
        let mut copy = template.clone();
        copy.id = RunId::generate();
        copy.status = RunStatus::Running;
        copy.output = None;
        copy.finished_at = None;
        host.store()
            .commit(vec![
                Write::PutRun(Box::new(copy.clone())),
                Write::AppendJournal(copy.id, history.clone()),
            ])
            .await
            .unwrap();
        let t0 = Instant::now();
        assert!(host.resume(copy.id));
        let r = host.wait(copy.id).await.unwrap();
        replays.push(t0.elapsed());
        assert_eq!(r.output, template.output);
    }
    replays.sort();
    println!(
        "  replay alone (resume a copy of the finished run: load journal, instantiate, answer {} calls, durable finish): p50 {} p90 {} (n={}, target <= 50 ms)",
        history.len(),
        ms(pct(&replays, 0.5)),
        ms(pct(&replays, 0.9)),
        replays.len()
    );
    wake_to_done.sort();
    println!(
        "  replay of a {calls}-call history, timer due -> run finished (load journal, instantiate, replay): p50 {} (min {}, max {}, n={}, target <= 50 ms)",
        ms(pct(&wake_to_done, 0.5)),
        ms(wake_to_done[0]),
        ms(*wake_to_done.last().unwrap()),
        wake_to_done.len()
    );
    println!(
        "    of which instantiate + replay + finish (after the journal is loaded): p50 {}",
        ms(pct(&running_to_done, 0.5))
    );
}

/// Resident and peak resident memory of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Figure 6: 10,000 `sleepy` runs asleep in one host (default config: 64
/// warm slots, the rest evicted); memory while they all sleep, and how
/// late each woke (guest clock after the sleep minus the timer's due time).
async fn sleeping_10k() {
    let n = scale(10_000);
    let sleep_ms = if quick() { 4_000 } else { 15_000 };
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(HostConfig::new(dir.path())).await.unwrap();
    host.deploy(support::wasm_bytes("sleepy"), &support::manifest("sleepy"))
        .await
        .unwrap();
    let (rss0, _) = rss_mib();
    let t0 = Instant::now();
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..n {
        let h = host.clone();
        starts.spawn(async move { h.start("sleepy", json!({"ms": sleep_ms})).await.unwrap() });
    }
    let ids = starts.join_all().await;
    loop {
        let asleep = host
            .store()
            .runs(Some(RunStatus::Sleeping), Some("sleepy"), n)
            .unwrap()
            .len();
        if asleep == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_asleep = t0.elapsed();
    let (rss, _) = rss_mib();
    let mut late = Vec::with_capacity(n);
    for id in ids {
        let r = host.wait(id).await.unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        let after_us = r.output.unwrap()["after_us"].as_u64().unwrap();
        let due_us = sleep_until_ms(&host, id) * 1000;
        late.push(Duration::from_micros(after_us.saturating_sub(due_us)));
    }
    let (_, peak) = rss_mib();
    late.sort();
    println!(
        "  {n} runs asleep at once (all parked {} after the first start): resident {:.0} MiB ({:.0} MiB before the runs; peak {:.0} MiB)  (target <= 512 MiB)",
        ms(all_asleep),
        rss,
        rss0,
        peak
    );
    println!(
        "  wake-up lateness: p50 {} p99 {} max {}  (target p99 <= 1 s)",
        ms(pct(&late, 0.5)),
        ms(pct(&late, 0.99)),
        ms(*late.last().unwrap())
    );
}

/// Figure 7: one `sleepy` run at a time sleeps 20 ms; from the timer's due
/// time to the guest reading the clock after its sleep. Evicted means a
/// new instance and a replay of the run's journal; warm means the parked
/// instance simply continues.
async fn wake_to_resume(warm: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let host = open_with(dir.path(), warm).await;
    host.deploy(support::wasm_bytes("sleepy"), &support::manifest("sleepy"))
        .await
        .unwrap();
    let mut late = Vec::new();
    for _ in 0..scale(200) {
        let r = host.run("sleepy", json!({"ms": 20})).await.unwrap();
        let after_us = r.output.unwrap()["after_us"].as_u64().unwrap();
        let due_us = sleep_until_ms(&host, r.id) * 1000;
        late.push(Duration::from_micros(after_us.saturating_sub(due_us)));
    }
    late.sort();
    println!(
        "  {}: wake-to-resume p50 {} p90 {} p99 {} (n={}{})",
        if warm == 0 { "evicted" } else { "warm" },
        ms(pct(&late, 0.5)),
        ms(pct(&late, 0.9)),
        ms(pct(&late, 0.99)),
        late.len(),
        if warm == 0 {
            ", target p50 <= 5 ms"
        } else {
            ""
        }
    );
    pct(&late, 0.5)
}

/// A `runway serve` process on a fresh data directory.
struct ServerProcess {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    async fn start() -> ServerProcess {
        Self::start_with(&[], None).await
    }

    /// With extra environment, and a host config file (left out if this
    /// binary refuses it, so an older binary runs with its defaults).
    async fn start_with(env: &[(&str, &str)], config: Option<&str>) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = config {
            std::fs::write(dir.path().join("runway-host.toml"), text).unwrap();
            let mut probe = std::process::Command::new(server_binary());
            probe
                .args(["--data-dir"])
                .arg(dir.path())
                .args(["--config"])
                .arg(dir.path().join("runway-host.toml"))
                .args(["models"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if !probe.status().is_ok_and(|s| s.success()) {
                println!("  (this binary refuses {config:?}; running with its defaults)");
                let _ = std::fs::remove_file(dir.path().join("runway-host.toml"));
            }
        }
        Self::spawn_in(dir, env).await
    }

    /// Serves the data directory `dir` (its `runway-host.toml`, if any).
    async fn spawn_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> ServerProcess {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = std::process::Command::new(server_binary());
        cmd.args(["--data-dir"]).arg(dir.path());
        if dir.path().join("runway-host.toml").exists() {
            cmd.args(["--config"])
                .arg(dir.path().join("runway-host.toml"));
        }
        let child = cmd
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting runway serve");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..500 {
            if http.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ServerProcess {
            child,
            base,
            _dir: dir,
        }
    }

    async fn deploy(&self, name: &str) {
        self.deploy_as(name, None).await;
    }

    /// Deploys with a bearer token (a server with authentication).
    async fn deploy_as(&self, name: &str, token: Option<&str>) {
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(support::wasm_bytes(name)),
            )
            .text("manifest", support::manifest(name));
        let mut req = reqwest::Client::new()
            .put(format!("{}/v1/workflows/{name}", self.base))
            .multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert!(
            res.status().is_success(),
            "deploying {name}: {}",
            res.status()
        );
    }

    fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    /// Stops the server with SIGTERM and waits for it; the data stays.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("waiting for runway serve")
    }

    /// The most resident memory the server has had.
    fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    /// CPU time the server has used so far (user + system).
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces): utime is
        // the 14th field of the line, stime the 15th, in clock ticks.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    fn status_mib(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 keep-alive client: the load generator must cost the
/// two shared cores as little as possible. One request at a time per
/// connection; reads exactly `Content-Length` bytes of each answer.
struct RawClient {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    request: Vec<u8>,
}

impl RawClient {
    async fn connect(addr: &str, path: &str, body: &str) -> RawClient {
        Self::connect_with(addr, path, body, None).await
    }

    /// With a bearer token.
    async fn connect_with(addr: &str, path: &str, body: &str, token: Option<&str>) -> RawClient {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        RawClient {
            stream: tokio::io::BufReader::new(tcp),
            request,
        }
    }

    /// Sends the request, returns the status code.
    async fn call(&mut self) -> u16 {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        self.stream
            .get_mut()
            .write_all(&self.request)
            .await
            .unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await.unwrap();
        status
    }
}

/// Figure 8: `clients` keep-alive connections, each posting `hello` runs
/// with `?wait=10` back to back for `dur`; every answer is a finished,
/// durable run.
async fn http_load(
    server: &ServerProcess,
    clients: usize,
    dur: Duration,
) -> (f64, Duration, Duration) {
    http_load_on(server, "hello", clients, dur, |c| {
        format!(r#"{{"name":"c{c}"}}"#)
    })
    .await
}

/// `clients` keep-alive clients starting runs of `slug` (client `c` with
/// input `body(c)`) and waiting for each, for `dur`: runs/s, p50, p99.
async fn http_load_on(
    server: &ServerProcess,
    slug: &str,
    clients: usize,
    dur: Duration,
    body: impl Fn(usize) -> String,
) -> (f64, Duration, Duration) {
    http_load_at(&server.base, slug, clients, dur, body).await
}

/// [`http_load_on`] against the server at `base`.
async fn http_load_at(
    base: &str,
    slug: &str,
    clients: usize,
    dur: Duration,
    body: impl Fn(usize) -> String,
) -> (f64, Duration, Duration) {
    let addr = base.trim_start_matches("http://").to_owned();
    let path = format!("/v1/workflows/{slug}/runs?wait=10");
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let addr = addr.clone();
        let path = path.clone();
        let body = body(c);
        tasks.spawn(async move {
            let mut client = RawClient::connect(&addr, &path, &body).await;
            let mut lat = Vec::new();
            while t0.elapsed() < dur {
                let s = Instant::now();
                assert_eq!(client.call().await, 200);
                lat.push(s.elapsed());
            }
            lat
        });
    }
    let mut all: Vec<Duration> = tasks.join_all().await.into_iter().flatten().collect();
    let elapsed = t0.elapsed();
    all.sort();
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    (rate, pct(&all, 0.5), pct(&all, 0.99))
}

/// Figure 9: `subscribers` SSE streams on one run that emits events while
/// they watch; each must receive the whole log, in order, exactly once.
async fn sse_fanout(server: &ServerProcess, subscribers: usize) {
    server.deploy("steps").await;
    let http = reqwest::Client::new();
    let run: serde_json::Value = http
        .post(format!("{}/v1/workflows/steps/runs", server.base))
        .header("content-type", "application/json")
        .body(r#"{"count":150,"pause_ms":10}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/runs/{id}/events/stream", server.base);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..subscribers {
        let url = url.clone();
        tasks.spawn(async move {
            let text = reqwest::Client::new()
                .get(&url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .filter_map(|l| l.strip_prefix("id: "))
                .map(|s| s.parse::<u64>().unwrap())
                .collect::<Vec<u64>>()
        });
    }
    let results = tasks.join_all().await;
    let elapsed = t0.elapsed();
    let full = results.iter().map(Vec::len).max().unwrap_or(0);
    let complete = results
        .iter()
        .filter(|seqs| **seqs == (1..=full as u64).collect::<Vec<_>>())
        .count();
    for seqs in results
        .iter()
        .filter(|s| s.len() != full || **s != (1..=full as u64).collect::<Vec<_>>())
    {
        let first_bad = seqs.iter().enumerate().find(|(i, s)| **s != *i as u64 + 1);
        println!(
            "  INCOMPLETE: {} events, first out of order at {:?}, last {:?}",
            seqs.len(),
            first_bad,
            seqs.last()
        );
    }
    println!(
        "  {subscribers} SSE subscribers on one run emitting {full} events over {}: {complete} received the whole log in order with no gap or duplicate ({:.0} events delivered/s)",
        ms(elapsed),
        (full * subscribers) as f64 / elapsed.as_secs_f64()
    );
}

const MODEL_KEY: &str = "sk-bench-0123456789abcdef";

/// Median round trip of the same request sent straight to the provider
/// with a plain client: the part of a call that is the provider's.
async fn bare_model_round_trip(p: &support::provider::Provider, n: usize) -> Duration {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let body = json!({
        "model": "gpt-bench",
        "messages": [
            {"role": "system", "content": "You summarize documents for busy engineers. Be faithful and brief."},
            {"role": "user", "content": "Summarize:\n\nsummary: x"}
        ],
        "max_tokens": 400,
        "temperature": 0.2
    });
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let res = http
            .post(format!("{}/chat/completions", p.openai_url()))
            .bearer_auth(MODEL_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        res.bytes().await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    pct(&lat, 0.5)
}

/// Runs `summarize` with many rounds (one `generate` each) on a data dir
/// under `parent`; returns the gaps between consecutive calls' events.
async fn model_call_gaps(
    p: &support::provider::Provider,
    parent: &Path,
    rounds: usize,
) -> Vec<Duration> {
    let dir = tempfile::tempdir_in(parent).unwrap();
    std::fs::write(
        dir.path().join("secrets.toml"),
        format!("KEY = \"{MODEL_KEY}\"\n"),
    )
    .unwrap();
    let config = dir.path().join("runway-host.toml");
    std::fs::write(
        &config,
        format!(
            "[models.aliases]\ndefault = \"bench/gpt-bench\"\n[models.providers.bench]\nkind = \"openai\"\nbase_url = \"{}\"\nkey_secret = \"KEY\"\ninput_per_million = 1\noutput_per_million = 2\n",
            p.openai_url()
        ),
    )
    .unwrap();
    let host = Host::open(HostConfig::new(dir.path()).apply_file(&config).unwrap())
        .await
        .unwrap();
    host.deploy(
        support::wasm_bytes("summarize"),
        &support::manifest("summarize"),
    )
    .await
    .unwrap();
    let r = host
        .run("summarize", json!({ "text": "x", "rounds": rounds }))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    let at: Vec<time::OffsetDateTime> = host
        .store()
        .events(r.id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.body.kind() == "model_call")
        .map(|e| e.at)
        .collect();
    assert_eq!(at.len(), rounds);
    let mut gaps: Vec<Duration> = at.windows(2).map(|w| between(w[0], w[1])).collect();
    gaps.sort();
    host.shutdown().await.unwrap();
    gaps
}

async fn model_overhead() {
    let p = support::provider::Provider::start(MODEL_KEY).await;
    let n = scale(2_000);
    bare_model_round_trip(&p, 200).await;
    let bare = bare_model_round_trip(&p, n).await;
    println!(
        "  the provider's own round trip (plain client, same request): p50 {}",
        us(bare)
    );
    let shm = Path::new("/dev/shm");
    let mut places = vec![("data dir on disk (fsync per commit)", std::env::temp_dir())];
    if shm.is_dir() {
        places.push(("data dir on tmpfs (fsync ~free)", shm.to_path_buf()));
    }
    for (label, parent) in places {
        // Warm-up: compile cache, connection pool.
        model_call_gaps(&p, &parent, 20).await;
        let gaps = model_call_gaps(&p, &parent, scale(1_000)).await;
        let p50 = pct(&gaps, 0.5);
        println!(
            "  {label}: call to call p50 {} p99 {}; host overhead p50 {}  (target p50 <= 200 us)",
            us(p50),
            us(pct(&gaps, 0.99)),
            us(p50.saturating_sub(bare)),
        );
    }
}

/// Figure 12: fill a store through `runway serve`, stop it with SIGTERM,
/// and time opening the store again (a store left needing repair walks the
/// whole file first).
async fn open_after_sigterm() {
    let mut server = ServerProcess::start().await;
    server.deploy("hello").await;
    let dur = Duration::from_secs(if quick() { 1 } else { 8 });
    let (rate, _, _) = http_load(&server, 64, dur).await;
    let status = server.terminate();
    let path = server._dir.path().to_owned();
    let bytes = std::fs::metadata(path.join("runway.redb")).map_or(0, |m| m.len());
    let mut opens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let store = Store::open(&path).expect("opening the store");
        opens.push(t.elapsed());
        let runs = store.runs(None, None, 1).unwrap().len();
        assert_eq!(runs, 1);
        store.close().await.unwrap();
    }
    println!(
        "  {:.0} runs in a {:.0} MiB store, server exit {status}: first open {} (then {}, {})",
        rate * dur.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64,
        ms(opens[0]),
        ms(opens[1]),
        ms(opens[2])
    );
}

/// Figure 15: journaled HTTP calls against a loopback service that answers
/// at once, data dir on disk. Per call: the time between consecutive
/// `http_call` events of a run making 200 calls in a row, minus a bare
/// client's round trip to the same service (the host's overhead). Then a
/// `fetch` run of 10 sequential calls, end to end.
async fn http_calls() {
    let svc = support::service::Service::start().await;
    let url = format!("{}/ok", svc.base);
    // A bare client: the service's own round trip.
    let client = reqwest::Client::new();
    let mut bare = Vec::new();
    for _ in 0..scale(2_000) {
        let t = Instant::now();
        let r = client.get(&url).send().await.unwrap();
        r.bytes().await.unwrap();
        bare.push(t.elapsed());
    }
    bare.sort();
    let bare_p50 = pct(&bare, 0.5);

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config_path = dir.path().join("runway-host.toml");
    std::fs::write(
        &config_path,
        "[egress]\nallow = [\"http://127.0.0.1:*\"]\nallow_private = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    let config = HostConfig::new(dir.path())
        .apply_file(&config_path)
        .unwrap();
    let host = Host::open(config).await.unwrap();
    host.deploy(
        support::wasm_bytes("fetch"),
        "slug = \"fetch\"\n[http]\nallow = [\"http://127.0.0.1:*\"]\n",
    )
    .await
    .unwrap();
    let calls = |n: usize| {
        let requests: Vec<_> = (0..n).map(|_| json!({ "url": url })).collect();
        json!({ "requests": requests })
    };
    let r = host.run("fetch", calls(200)).await.unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    let at: Vec<_> = host
        .events(r.id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.body, EventBody::HttpCall { .. }))
        .map(|e| e.at)
        .collect();
    let mut gaps: Vec<Duration> = at.windows(2).map(|w| between(w[0], w[1])).collect();
    gaps.sort();
    let over = |d: Duration| d.saturating_sub(bare_p50);
    println!(
        "  bare client round trip p50 {}; call to call p50 {} p99 {}; host overhead p50 {} p99 {}  (target p50 <= 0.3 ms)",
        ms(bare_p50),
        ms(pct(&gaps, 0.5)),
        ms(pct(&gaps, 0.99)),
        ms(over(pct(&gaps, 0.5))),
        ms(over(pct(&gaps, 0.99)))
    );
    let mut runs = Vec::new();
    for _ in 0..scale(200) {
        let t = Instant::now();
        let r = host.run("fetch", calls(10)).await.unwrap();
        runs.push(t.elapsed());
        assert_eq!(r.status, RunStatus::Completed);
    }
    runs.sort();
    println!(
        "  fetch with 10 sequential journaled calls, end to end: p50 {} p99 {}  (target p50 <= 4 ms)",
        ms(pct(&runs, 0.5)),
        ms(pct(&runs, 0.99))
    );
    host.shutdown().await.unwrap();
}

/// Figure 16: `hello` over HTTP at 64 clients with the server's logs off,
/// as text at `info` (the default), as JSON at `info`, and as JSON with
/// traces exported over OTLP to a loopback collector; rounds alternate,
/// medians reported with their ratio to logs off.
async fn logging_cost() {
    let dur = Duration::from_secs(if quick() { 1 } else { 4 });
    let collector = otlp_sink().await;
    let modes: [(&str, &[(&str, &str)]); 4] = [
        ("off", &[("RUNWAY_LOG", "off")]),
        ("text, info", &[("RUNWAY_LOG", "info")]),
        (
            "json, info",
            &[("RUNWAY_LOG", "info"), ("RUNWAY_LOG_FORMAT", "json")],
        ),
        (
            "json, info + OTLP traces",
            &[
                ("RUNWAY_LOG", "info"),
                ("RUNWAY_LOG_FORMAT", "json"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", collector),
            ],
        ),
    ];
    let mut rates = vec![Vec::new(); modes.len()];
    let mut cpu_per_run = vec![Vec::new(); modes.len()];
    for _ in 0..if quick() { 1 } else { 5 } {
        for (i, (_, env)) in modes.iter().enumerate() {
            let server = ServerProcess::start_with(env, None).await;
            server.deploy("hello").await;
            http_load(&server, 4, Duration::from_millis(300)).await;
            let cpu = server.cpu();
            let (rate, _, _) = http_load(&server, 64, dur).await;
            let runs = rate * dur.as_secs_f64();
            rates[i].push(rate);
            cpu_per_run[i].push((server.cpu() - cpu).as_secs_f64() * 1e6 / runs);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let off = median(&mut rates[0]);
    let off_cpu = median(&mut cpu_per_run[0]);
    for (i, (name, _)) in modes.iter().enumerate() {
        let m = median(&mut rates[i]);
        let c = median(&mut cpu_per_run[i]);
        println!(
            "  logs {name}: {m:.0} runs/s (median), {:.2}x of logs off{}; server CPU {c:.0} µs per run ({:.2}x)",
            m / off,
            if i == 3 { "  (target >= 0.8)" } else { "" },
            c / off_cpu
        );
    }
    let bytes = SPANS_RECEIVED.load(std::sync::atomic::Ordering::Relaxed);
    println!("  the collector received {bytes} bytes of OTLP exports");
}

static SPANS_RECEIVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A loopback OTLP/HTTP collector that counts what it receives and drops
/// it, on a thread and runtime of its own (not the load generator's); its
/// base URL (leaked: the figure's modes name it for the whole run).
async fn otlp_sink() -> &'static str {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/v1/traces",
                    axum::routing::post(|body: axum::body::Bytes| async move {
                        SPANS_RECEIVED
                            .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        (
                            [("content-type", "application/x-protobuf")],
                            Vec::<u8>::new(),
                        )
                    }),
                )
                .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).await;
        });
    });
    Box::leak(base.into_boxed_str())
}

/// Figure 18: the data directory's size under a steady load with
/// `[retention] max_age = "1m"` for 10 minutes: `hello` runs and `report`
/// runs (each writes an artifact of its own), sampled every 30 s. For the
/// first minute nothing is old enough to delete (the growth without
/// retention); after it the size must plateau.
async fn retention_plateau() {
    let (total, every, age) = if quick() {
        (Duration::from_secs(40), Duration::from_secs(4), "5s")
    } else {
        (Duration::from_secs(600), Duration::from_secs(30), "1m")
    };
    let server = ServerProcess::start_with(
        &[("RUNWAY_SECRET_REPORT_TOKEN", "bench-token")],
        Some(&format!("[retention]\nmax_age = \"{age}\"\n")),
    )
    .await;
    server.deploy("hello").await;
    server.deploy("report").await;
    let dir = server._dir.path().to_owned();
    let t0 = Instant::now();
    let mut sizes = Vec::new();
    while t0.elapsed() < total {
        let (hello, report) = tokio::join!(
            http_load(&server, 12, every),
            http_load_on(&server, "report", 4, every, |c| {
                format!(
                    r#"{{"title":"bench {c}","sections":[{{"heading":"h","body":"{}"}}]}}"#,
                    "x".repeat(2000)
                )
            })
        );
        let mib = disk_usage(&dir) as f64 / f64::from(1 << 20);
        let store = disk_usage(&dir.join("runway.redb")) as f64 / f64::from(1 << 20);
        sizes.push(mib);
        println!(
            "  {:>4.0} s: data dir {mib:>7.1} MiB, store file {store:>7.1} MiB  ({:.0} hello + {:.0} report runs/s)",
            t0.elapsed().as_secs_f64(),
            hello.0,
            report.0
        );
    }
    let half = sizes.len() / 2;
    let peak_first = sizes[..half].iter().copied().fold(0.0, f64::max);
    let peak_second = sizes[half..].iter().copied().fold(0.0, f64::max);
    println!(
        "  largest in the first half {peak_first:.1} MiB, in the second half {peak_second:.1} MiB ({:+.1}%), at the end {:.1} MiB",
        (peak_second / peak_first - 1.0) * 100.0,
        sizes.last().copied().unwrap_or(0.0)
    );
}

/// Bytes the files under `dir` take on disk.
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

/// Figure 17: `runway verify` of 1,000 recorded `steps` runs (4 host calls
/// each) against the same component.
async fn verify_runs() {
    let dir = tempfile::tempdir().unwrap();
    let host = open(dir.path(), Allocator::Pooling).await;
    host.deploy(support::wasm_bytes("steps"), &support::manifest("steps"))
        .await
        .unwrap();
    let n = scale(1_000);
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(host.start("steps", json!({ "count": 2 })).await.unwrap());
    }
    for id in ids {
        host.wait(id).await.unwrap();
    }
    let t = Instant::now();
    let verdicts = host
        .verify("steps", support::wasm_bytes("steps"), n)
        .await
        .unwrap();
    let took = t.elapsed();
    let same = verdicts
        .iter()
        .filter(|v| v.outcome == runway::host::Outcome::Same)
        .count();
    println!(
        "  {} runs replayed in {} ({same} the same)  (target <= 2 s for 1,000)",
        verdicts.len(),
        ms(took)
    );
}

/// Figure 14: a churn of `steps` runs with 20 ms pauses (each pause parks
/// the run and wakes it), all started at once, under a small and the
/// `max_concurrent_runs` with many warm slots, and the defaults: how many runs end
/// failed (the target is none: host capacity is a wait).
async fn capacity_churn() {
    let n = scale(4_000);
    for (concurrent, warm) in [(8, 300), (256, 64)] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HostConfig::new(dir.path());
        config.max_concurrent_runs = concurrent;
        config.max_warm_instances = warm;
        let host = Host::open(config).await.expect("opening a host");
        host.deploy(support::wasm_bytes("steps"), &support::manifest("steps"))
            .await
            .expect("deploy steps");
        let t0 = Instant::now();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(
                host.start("steps", json!({ "count": 3, "pause_ms": 20 }))
                    .await
                    .unwrap(),
            );
        }
        let mut failed = std::collections::BTreeMap::<String, usize>::new();
        for id in ids {
            let r = host.wait(id).await.unwrap();
            if r.status != RunStatus::Completed {
                let code = r
                    .error
                    .map_or_else(|| format!("{:?}", r.status), |e| e.code.as_str().to_owned());
                *failed.entry(code).or_default() += 1;
            }
        }
        println!(
            "  max_concurrent_runs {concurrent}, max_warm_instances {warm}: {n} runs in {:.1} s, failed: {}  (target: none)",
            t0.elapsed().as_secs_f64(),
            if failed.is_empty() {
                "none".to_owned()
            } else {
                format!("{failed:?}")
            }
        );
        host.shutdown().await.unwrap();
    }
}

/// Figure 13: `runway serve` on a small tmpfs under a load of `steps`
/// runs; the disk is filled until the store reports itself unavailable,
/// held full for 2 s, then freed: the time from freeing the space to
/// `/readyz` answering 200 again, over several rounds, and how many
/// acknowledged runs did not complete.
async fn recover_after_full_disk() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96m", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("  (skipped: cannot mount a tmpfs here; run as root)");
        return;
    }
    let server = ServerProcess::spawn_in(tempfile::tempdir_in(mount.path()).unwrap(), &[]).await;
    server.deploy("steps").await;
    let http = reqwest::Client::new();
    let ready = async |http: &reqwest::Client| {
        http.get(format!("{}/readyz", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    let rounds = if quick() { 2 } else { 5 };
    let mut recover = Vec::new();
    let mut accepted = Vec::new();
    let mut refused = 0usize;
    for round in 0..rounds {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = tokio::task::JoinSet::new();
        for c in 0..8 {
            let (stop, http) = (stop.clone(), http.clone());
            let url = format!("{}/v1/workflows/steps/runs", server.base);
            load.spawn(async move {
                let (mut ok, mut no) = (Vec::new(), 0usize);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let res = http
                        .post(&url)
                        .header("Idempotency-Key", format!("r{round}-c{c}-{i}"))
                        .json(&json!({ "count": 3, "pause_ms": 5 }))
                        .send()
                        .await
                        .unwrap();
                    if res.status().is_success() {
                        let v: serde_json::Value = res.json().await.unwrap();
                        ok.push(v["id"].as_str().unwrap().to_owned());
                    } else {
                        assert_eq!(res.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
                        no += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                (ok, no)
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let filler = mount.path().join("filler");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0x5au8; 64 << 10];
            while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
        }
        let t = Instant::now();
        while ready(&http).await {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the store never noticed the full disk"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        std::fs::remove_file(&filler).unwrap();
        let freed = Instant::now();
        while !ready(&http).await {
            assert!(
                freed.elapsed() < Duration::from_secs(30),
                "the store did not recover"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        recover.push(freed.elapsed());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for (ok, no) in load.join_all().await {
            accepted.extend(ok);
            refused += no;
        }
    }
    let mut lost = 0;
    for id in &accepted {
        let url = format!("{}/v1/runs/{id}", server.base);
        let t = Instant::now();
        loop {
            let v: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
            if v["status"] == "completed" {
                break;
            }
            if v["status"] == "failed" || t.elapsed() > Duration::from_secs(30) {
                lost += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    recover.sort();
    println!(
        "  {rounds} rounds: recovered p50 {} (max {}) after space was freed; {} runs acknowledged, {lost} not completed, {refused} starts refused with 503",
        ms(pct(&recover, 0.5)),
        ms(recover[recover.len() - 1]),
        accepted.len()
    );
    drop(server);
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(mount.path())
        .status();
}

/// Figure 11: one fresh server per class of attack.
async fn containment() {
    let manifest = "slug = \"hostile\"\nsecrets = [\"LEAK_ME\"]\n[budget]\nmax_duration = \"10s\"\nmax_memory = \"256 MiB\"\nmax_fuel = \"unlimited\"\n";
    let classes: [(&str, serde_json::Value, usize, Option<&str>); 8] = [
        (
            "result nested 127 deep",
            json!({"attack": "deep_result"}),
            1,
            None,
        ),
        (
            "journal: clock reads",
            json!({"attack": "clock_flood"}),
            1,
            None,
        ),
        (
            "journal: sleep(0)",
            json!({"attack": "sleep_flood"}),
            1,
            None,
        ),
        (
            "event payload of 32 MiB",
            json!({"attack": "big_event", "n": 32 << 20}),
            1,
            None,
        ),
        (
            "failure message of 32 MiB",
            json!({"attack": "long_failure", "n": 32 << 20}),
            1,
            None,
        ),
        ("secret reads", json!({"attack": "secret_flood"}), 1, None),
        ("fork bomb", json!({"attack": "fork_bomb"}), 1, None),
        (
            "8 runs holding 200 MiB, parked",
            json!({"attack": "hold", "n": 200, "ms": 2000}),
            8,
            Some("max_host_memory = \"512 MiB\"\n"),
        ),
    ];
    println!(
        "  {:<32} {:>9} {:>11} {:>8}  attack ended           API after",
        "class", "peak RSS", "hello p99", "hellos"
    );
    for (name, input, copies, config) in classes {
        let server =
            ServerProcess::start_with(&[("RUNWAY_SECRET_LEAK_ME", "s3cret-value")], config).await;
        server.deploy("hello").await;
        let form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(support::wasm_bytes("hostile")),
            )
            .text("manifest", manifest);
        let http = reqwest::Client::new();
        let res = http
            .put(format!("{}/v1/workflows/hostile", server.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        // Warm: compile both.
        let _ = http
            .post(format!("{}/v1/workflows/hello/runs?wait=10", server.base))
            .json(&json!({"name": "warm"}))
            .send()
            .await;
        let mut ids = Vec::new();
        for _ in 0..copies {
            let res = http
                .post(format!("{}/v1/workflows/hostile/runs", server.base))
                .json(&input)
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = res.json().await.unwrap_or_default();
            ids.push(v["id"].as_str().unwrap_or_default().to_owned());
        }
        // Four hello clients beside the attack, until it ends (or 12 s).
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (stop, base) = (stop.clone(), server.base.clone());
            clients.spawn(async move {
                let http = reqwest::Client::new();
                let mut lat = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = http
                        .post(format!("{base}/v1/workflows/hello/runs?wait=10"))
                        .json(&json!({"name": "n"}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        lat.push(t.elapsed());
                    }
                }
                lat
            });
        }
        let started = Instant::now();
        let mut ended = String::from("still running at 12 s");
        while started.elapsed() < Duration::from_secs(12) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut statuses = Vec::new();
            for id in &ids {
                let r = http
                    .get(format!("{}/v1/runs/{id}", server.base))
                    .send()
                    .await;
                statuses.push(match r {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        let code = v["error"]["code"].as_str().unwrap_or("").to_owned();
                        format!("{} {code}", v["status"].as_str().unwrap_or("?"))
                    }
                    Ok(r) => format!("GET answered {}", r.status().as_u16()),
                    Err(e) => format!("GET failed: {e}"),
                });
            }
            let done = statuses.iter().all(|s| {
                s.starts_with("completed") || s.starts_with("failed") || s.starts_with("GET")
            });
            statuses.dedup();
            ended = statuses.join(", ");
            if done {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut lat: Vec<Duration> = clients.join_all().await.into_iter().flatten().collect();
        lat.sort();
        let list = http
            .get(format!("{}/v1/runs?limit=1000", server.base))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        println!(
            "  {name:<32} {:>6.0} MiB {:>11} {:>8}  {ended:<22} GET /v1/runs {list}",
            server.peak_rss_mib(),
            if lat.is_empty() {
                "-".into()
            } else {
                ms(pct(&lat, 0.99))
            },
            lat.len(),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    support::guest_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "runway benchmarks: {} cores, redb with fsync per batch, release build{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick() { ", QUICK sample counts" } else { "" }
    );
    runtime.block_on(async {
        if wanted(1) {
            println!("\n1. instantiate (sandbox + InstancePre::instantiate_async)");
            let pooled = instantiate(Allocator::Pooling).await;
            let on_demand = instantiate(Allocator::OnDemand).await;
            println!(
                "  pooling vs on-demand: {:.2}x",
                on_demand.as_secs_f64() / pooled.as_secs_f64()
            );
        }
        if wanted(2) {
            println!("\n2. hello throughput");
            let p = throughput(Allocator::Pooling, 256).await;
            let o = throughput(Allocator::OnDemand, 256).await;
            println!("  pooling vs on-demand: {:.2}x", p / o);
        }
        if wanted(3) {
            println!("\n3. event appends with group commit");
            let one = single_commit_latency().await;
            let rate = appends(256, scale(2_000), Appends::EachDurable).await;
            println!(
                "  group commit vs one fsync per append: {:.0}x",
                rate * one.as_secs_f64()
            );
            appends(256, scale(2_000), Appends::RideAlong).await;
        }
        if wanted(4) {
            println!("\n4. restart");
            first_run_after_restart().await;
        }
        if wanted(5) {
            println!("\n5. replay");
            replay_10k().await;
        }
        if wanted(6) {
            println!("\n6. many sleeping runs");
            sleeping_10k().await;
        }
        if wanted(8) {
            println!("\n8. runway serve: hello via POST /v1/workflows/hello/runs?wait=10, keep-alive clients");
            {
                // For comparison: the same run, one at a time, in process.
                let dir = tempfile::tempdir().unwrap();
                let host = open(dir.path(), Allocator::Pooling).await;
                deploy_hello(&host).await;
                let mut lat = Vec::new();
                for _ in 0..scale(2000) {
                    let t = Instant::now();
                    host.run("hello", json!({"name": "x"})).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat.sort();
                println!(
                    "  in process, one at a time, no HTTP: p50 {} p99 {}",
                    ms(pct(&lat, 0.5)),
                    ms(pct(&lat, 0.99))
                );
            }

            let server = ServerProcess::start().await;
            server.deploy("hello").await;
            let dur = Duration::from_secs(if quick() { 1 } else { 5 });
            // Warm-up: compile cache, connections.
            http_load(&server, 4, Duration::from_millis(300)).await;
            let mut total = 0.0;
            for clients in [1, 16, 64] {
                let (rate, p50, p99) = http_load(&server, clients, dur).await;
                total += rate * dur.as_secs_f64();
                println!(
                    "  {clients:>2} clients: {rate:.0} runs/s, p50 {} p99 {}{}",
                    ms(p50),
                    ms(p99),
                    match clients {
                        1 => "  (target p50 <= 1 ms)",
                        64 => "  (target >= 7,000 runs/s)",
                        _ => "",
                    }
                );
            }
            println!(
                "  server resident memory after these {total:.0} runs: {:.0} MiB",
                server.rss_mib()
            );
            drop(server);
            // A fresh server after exactly 10,000 runs (16 clients).
            let server = ServerProcess::start().await;
            server.deploy("hello").await;
            let idle = server.rss_mib();
            let n = scale(10_000);
            let url = format!("{}/v1/workflows/hello/runs?wait=10", server.base);
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..16 {
                let url = url.clone();
                tasks.spawn(async move {
                    let http = reqwest::Client::new();
                    for _ in 0..n / 16 {
                        let res = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(format!(r#"{{"name":"m{c}"}}"#))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), reqwest::StatusCode::OK);
                    }
                });
            }
            tasks.join_all().await;
            println!(
                "  server resident memory after {} runs: {:.0} MiB (idle after deploy: {:.0} MiB)  (target <= 64 MiB)",
                n / 16 * 16,
                server.rss_mib(),
                idle
            );
        }
        if wanted(10) {
            println!("\n10. model calls: summarize with back-to-back generate calls, OpenAI format on loopback");
            model_overhead().await;
        }
        if wanted(9) {
            println!("\n9. SSE fan-out");
            let server = ServerProcess::start().await;
            sse_fanout(&server, if quick() { 100 } else { 1000 }).await;
        }
        if wanted(11) {
            println!("\n11. containment: hostile guests through runway serve, a hello client beside each");
            containment().await;
        }
        if wanted(12) {
            println!("\n12. store open after SIGTERM");
            open_after_sigterm().await;
        }
        if wanted(13) {
            println!("\n13. a full disk under load, then freed (runway serve on a 96 MiB tmpfs)");
            recover_after_full_disk().await;
        }
        if wanted(14) {
            println!("\n14. capacity churn: steps runs with 20 ms pauses, all started at once (few execution slots and many warm ones; the defaults)");
            capacity_churn().await;
        }
        if wanted(17) {
            println!("\n17. runway verify: recorded runs replayed against a new component");
            verify_runs().await;
        }
        if wanted(18) {
            println!("\n18. retention: the data dir under a steady load, ended runs kept 1 minute");
            retention_plateau().await;
        }
        if wanted(16) {
            println!("\n16. the cost of the server's logs and traces: hello over HTTP, 64 clients");
            logging_cost().await;
        }
        if wanted(15) {
            println!("\n15. outbound HTTP: journaled calls to a loopback service answering at once, data dir on disk");
            http_calls().await;
        }
        if wanted(19) {
            println!("\n19. PostgreSQL store: hello over HTTP, several hosts, takeover, per-step overhead");
            postgres_figures().await;
        }
        if wanted(20) {
            println!("\n20. the console: first paint in Chromium, the all-runs feed under load");
            console_figures().await;
        }
        if wanted(21) {
            println!("\n21. identities and approvals: JWT verification per request, pending approvals among 100,000 runs");
            identity_figures().await;
        }
        if wanted(22) {
            println!("\n22. agents: host overhead per MCP tool call, a 10-turn agent end to end");
            agent_figures().await;
        }
        if wanted(7) {
            println!("\n7. wake-to-resume (timer due -> guest runs again; includes the 1 ms timer granularity)");
            let evicted = wake_to_resume(0).await;
            let warm = wake_to_resume(64).await;
            println!(
                "  evicted costs {:.2} ms more than warm at p50",
                evicted.as_secs_f64() * 1e3 - warm.as_secs_f64() * 1e3
            );
        }
    });
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): utime is 14th, stime 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Transactions committed in the database `url` names, so far.
fn pg_commits(url: &str) -> i64 {
    let (base, db) = url.rsplit_once('/').unwrap();
    let (admin, db) = (format!("{base}/postgres"), db.to_owned());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get::<_, i64>(0)
    })
    .join()
    .unwrap()
}

/// Figure 19: the PostgreSQL store against redb, back to back: `hello` over
/// HTTP at 64 clients on one host, then on 1, 2 and 3 hosts sharing one
/// database (clients spread over them; CPU and database transactions per
/// run, to project past this 2-core machine); the takeover latency after a
/// host dies (lease 2 s); the cost of one journaled step in process.
async fn postgres_figures() {
    let dur = Duration::from_secs(if quick() { 1 } else { 5 });
    let lease = "[store]\nlease = \"2s\"\n";
    // One host: redb, then PostgreSQL.
    let redb = ServerProcess::start().await;
    redb.deploy("hello").await;
    http_load(&redb, 4, Duration::from_millis(300)).await;
    let (redb_rate, redb_p50, _) = http_load(&redb, 64, dur).await;
    drop(redb);
    println!(
        "  redb, 1 host, 64 clients: {redb_rate:.0} runs/s, p50 {}",
        ms(redb_p50)
    );
    for hosts in 1..=3usize {
        let db_dir = tempfile::tempdir().unwrap();
        let url = support::postgres_database(db_dir.path());
        let mut servers = Vec::new();
        for _ in 0..hosts {
            servers.push(ServerProcess::start_with(&[("RUNWAY_STORE", &url)], Some(lease)).await);
        }
        servers[0].deploy("hello").await;
        for s in &servers {
            http_load(s, 2, Duration::from_millis(300)).await;
        }
        let commits0 = pg_commits(&url);
        let cpu0: f64 = servers.iter().map(|s| cpu_secs(s.child.id())).sum();
        let mut loads = tokio::task::JoinSet::new();
        for s in &servers {
            let base = s.base.clone();
            let per = 64 / hosts;
            loads.spawn(async move {
                http_load_at(&base, "hello", per, dur, |c| {
                    format!(r#"{{"name":"c{c}"}}"#)
                })
                .await
            });
        }
        let results = loads.join_all().await;
        let rate: f64 = results.iter().map(|r| r.0).sum();
        let p50 = results.iter().map(|r| r.1).max().unwrap_or_default();
        let runs = rate * dur.as_secs_f64();
        let cpu: f64 = servers.iter().map(|s| cpu_secs(s.child.id())).sum::<f64>() - cpu0;
        let commits = pg_commits(&url) - commits0;
        println!(
            "  PostgreSQL, {hosts} host{}, 64 clients: {rate:.0} runs/s ({:.2}x redb), p50 {}, host CPU {:.2} ms/run, {:.1} database transactions/run",
            if hosts == 1 { "" } else { "s" },
            rate / redb_rate,
            ms(p50),
            cpu * 1000.0 / runs.max(1.0),
            commits as f64 / runs.max(1.0)
        );
    }
    // Takeover: a host dies while a run sleeps; another finishes it.
    let db_dir = tempfile::tempdir().unwrap();
    let url = support::postgres_database(db_dir.path());
    let mut takeovers = Vec::new();
    let b = ServerProcess::start_with(&[("RUNWAY_STORE", &url)], Some(lease)).await;
    for i in 0..if quick() { 1 } else { 5 } {
        let mut a = ServerProcess::start_with(&[("RUNWAY_STORE", &url)], Some(lease)).await;
        if i == 0 {
            a.deploy("sleepy").await;
        }
        let http = reqwest::Client::new();
        let run: serde_json::Value = http
            .post(format!("{}/v1/workflows/sleepy/runs", a.base))
            .header("content-type", "application/json")
            .body(r#"{"ms":300}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = run["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = a.child.kill();
        let _ = a.child.wait();
        let killed = Instant::now();
        loop {
            let r: serde_json::Value = http
                .get(format!("{}/v1/runs/{id}", b.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["status"] == "completed" {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "{r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        takeovers.push(killed.elapsed());
    }
    takeovers.sort();
    println!(
        "  takeover after a host is killed (lease 2 s, scan every 1 s): p50 {} (max {})",
        ms(pct(&takeovers, 0.5)),
        ms(*takeovers.last().unwrap())
    );
    // One journaled step (artifact + event), in process.
    let steps = scale(300);
    for store in ["redb", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HostConfig::new(dir.path());
        if store == "postgres" {
            config.store_url = Some(support::postgres_database(dir.path()));
        }
        let host = Host::open(config).await.unwrap();
        host.deploy(support::wasm_bytes("steps"), &support::manifest("steps"))
            .await
            .unwrap();
        let t = Instant::now();
        let r = host.run("steps", json!({ "count": steps })).await.unwrap();
        assert_eq!(r.status, runway::types::RunStatus::Completed);
        println!(
            "  {store}: {} per journaled step ({steps} steps in one run)",
            us(t.elapsed() / steps as u32)
        );
        host.shutdown().await.unwrap();
    }
}

/// Figure 20: the console. First paint of the runs list over 100,000 runs
/// and of a run page with 10,000 events, in Chromium (each page loaded
/// afresh five times; `tests/console/paint.mjs`); then the all-runs feed
/// with 50 consoles connected while `hello` runs start and end at 1,000 a
/// second: whether every console sees every run end, and how long after
/// its end.
async fn console_figures() {
    println!(
        "  console assets: {} bytes before compression (target <= 300 KB)",
        runway::api::console::total_bytes()
    );
    let server = ServerProcess::start().await;
    server.deploy("hello").await;
    server.deploy("steps").await;
    let http = reqwest::Client::new();
    // A run with 10,000 events: 3,333 steps of artifact, event and output.
    let steps = scale(3_333);
    let run: serde_json::Value = http
        .post(format!("{}/v1/workflows/steps/runs?wait=120", server.base))
        .header("content-type", "application/json")
        .body(format!(r#"{{"count":{steps},"print":true}}"#))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let big = run["id"].as_str().unwrap().to_owned();
    // 100,000 runs, 64 clients at a time.
    let n = scale(100_000);
    let t = Instant::now();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..64 {
        let addr = addr.clone();
        tasks.spawn(async move {
            let body = format!(r#"{{"name":"c{c}"}}"#);
            let mut client =
                RawClient::connect(&addr, "/v1/workflows/hello/runs?wait=10", &body).await;
            for _ in 0..n.div_ceil(64) {
                assert_eq!(client.call().await, 200);
            }
        });
    }
    tasks.join_all().await;
    let stored = n.div_ceil(64) * 64 + 1;
    println!(
        "  {stored} runs stored in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let script = support::root().join("tests/console/paint.mjs");
    if !std::path::Path::new(&chromium).exists()
        || !support::root()
            .join("tests/console/node_modules/playwright-core")
            .exists()
    {
        println!(
            "  first paint: skipped (run ./scripts/setup-browser.sh for Chromium and playwright-core)"
        );
    } else {
        let out = std::process::Command::new("node")
            .arg(&script)
            .arg(&server.base)
            .arg(&big)
            .env("CHROMIUM", &chromium)
            .output()
            .expect("running node");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let paint: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let median = |k: &str| {
            let mut v: Vec<u64> = paint[k]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        println!(
            "  runs list over {stored} runs: first paint p50 {} ms (counts by status shown at {} ms)  (target <= 1,000 ms)",
            median("runs_list"),
            median("runs_counts")
        );
        println!(
            "  run page with {}: first paint p50 {} ms, every event loaded at {} ms  (target <= 1,000 ms)",
            paint["events"].as_str().unwrap_or("?"),
            median("run_page"),
            median("run_all_events")
        );
    }
    // The feed: 50 consoles, runs at 1,000 a second for 10 seconds.
    let consoles = 50;
    let secs = if quick() { 2 } else { 10 };
    let total = 1_000 * secs;
    let mut watchers = tokio::task::JoinSet::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(consoles);
    for _ in 0..consoles {
        let url = format!("{}/v1/runs/stream?workflow=hello", server.base);
        let ready = ready_tx.clone();
        watchers.spawn(async move {
            use futures_util::StreamExt;
            let res = reqwest::Client::new().get(&url).send().await.unwrap();
            let _ = ready.send(()).await;
            let mut body = res.bytes_stream();
            let mut buf = String::new();
            let mut lags = Vec::new();
            let mut resets = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs as u64 + 20);
            while lags.len() < total {
                let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await
                else {
                    break;
                };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    if frame.contains("event: reset") {
                        resets += 1;
                    }
                    let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                        continue;
                    };
                    let v: serde_json::Value = serde_json::from_str(data).unwrap();
                    if v["status"] != "completed" {
                        continue;
                    }
                    let ended = time::OffsetDateTime::parse(
                        v["finished_at"].as_str().unwrap(),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap();
                    let lag = time::OffsetDateTime::now_utc() - ended;
                    lags.push(Duration::from_secs_f64(lag.as_seconds_f64().max(0.0)));
                }
            }
            (lags, resets)
        });
    }
    drop(ready_tx);
    for _ in 0..consoles {
        ready_rx.recv().await;
    }
    // Paced: one start each millisecond, answered when the run has ended.
    let t = Instant::now();
    let mut starts = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let url = format!("{}/v1/workflows/hello/runs?wait=10", server.base);
    for i in 0..total {
        tick.tick().await;
        let http = http.clone();
        let url = url.clone();
        starts.spawn(async move {
            let res = http
                .post(&url)
                .header("content-type", "application/json")
                .body(format!(r#"{{"name":"f{i}"}}"#))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), reqwest::StatusCode::OK);
        });
    }
    starts.join_all().await;
    let rate = total as f64 / t.elapsed().as_secs_f64();
    let results = watchers.join_all().await;
    let mut lags: Vec<Duration> = results
        .iter()
        .flat_map(|(l, _)| l.iter().copied())
        .collect();
    lags.sort();
    let short = results.iter().filter(|(l, _)| l.len() < total).count();
    let resets: usize = results.iter().map(|(_, r)| r).sum();
    println!(
        "  feed: {consoles} consoles, {total} runs at {rate:.0} runs/s: {} of {} run ends delivered ({short} consoles short, {resets} resets); delay after the run ended p50 {} p99 {} max {}",
        lags.len(),
        consoles * total,
        ms(pct(&lags, 0.5)),
        ms(pct(&lags, 0.99)),
        ms(*lags.last().unwrap()),
    );
}

/// p50 of `n` sequential GETs of `path` with `bearer`.
async fn get_p50(base: &str, path: &str, bearer: &str, n: usize) -> Duration {
    let http = reqwest::Client::new();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let res = http
            .get(format!("{base}{path}"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let _ = res.bytes().await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    pct(&lat, 0.5)
}

/// Figure 21: what verifying a JWT costs a request (RS256, keys from a
/// JWKS file, so cached), against a named token, on `GET /v1/whoami`;
/// then `GET /v1/approvals?status=pending` with 10,000 runs waiting for
/// an approval among 100,000.
async fn identity_figures() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use sha2::Digest;
    let fixtures = support::root().join("tests/fixtures/jwt");
    let config = format!(
        "[server.jwt]\nissuer = \"https://idp.bench\"\naudience = \"runway\"\njwks_file = {:?}\n",
        fixtures.join("jwks-rsa.json")
    );
    let named = "bench-admin-token";
    let tokens = format!(
        "bench:admin:{}",
        hex::encode(sha2::Sha256::digest(named.as_bytes()))
    );
    let server =
        ServerProcess::start_with(&[("RUNWAY_API_TOKENS", tokens.as_str())], Some(&config)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixtures.join("rsa.pem")).unwrap()).unwrap();
    let jwt = jsonwebtoken::encode(
        &header,
        &json!({ "sub": "bench", "iss": "https://idp.bench", "aud": "runway", "exp": now + 3600, "scope": "admin" }),
        &key,
    )
    .unwrap();
    let n = scale(2_000);
    // Warm both paths, then alternate rounds.
    get_p50(&server.base, "/v1/whoami", named, 100).await;
    get_p50(&server.base, "/v1/whoami", &jwt, 100).await;
    let (mut tok, mut jw) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        tok.push(get_p50(&server.base, "/v1/whoami", named, n).await);
        jw.push(get_p50(&server.base, "/v1/whoami", &jwt, n).await);
    }
    tok.sort();
    jw.sort();
    let (tok, jw) = (tok[1], jw[1]);
    println!(
        "  GET /v1/whoami p50: named token {}, RS256 JWT {} — verification adds {} per request (median of 3 rounds of {n})",
        us(tok),
        us(jw),
        us(jw.saturating_sub(tok))
    );
    // 100,000 runs, 10,000 of them waiting for an approval.
    server.deploy_as("hello", Some(named)).await;
    server.deploy_as("release", Some(named)).await;
    let pending = scale(10_000);
    let others = scale(100_000) - pending;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..32 {
        let addr = addr.clone();
        tasks.spawn(async move {
            let mut hello = RawClient::connect_with(
                &addr,
                "/v1/workflows/hello/runs?wait=10",
                r#"{"name":"x"}"#,
                Some(named),
            )
            .await;
            for _ in 0..others.div_ceil(32) {
                assert_eq!(hello.call().await, 200);
            }
            let body = format!(r#"{{"kind":"gate","name":"ship{c}"}}"#);
            let mut release = RawClient::connect_with(
                &addr,
                "/v1/workflows/release/runs?wait=10",
                &body,
                Some(named),
            )
            .await;
            for _ in 0..pending.div_ceil(32) {
                // Answered once the run waits for its approval.
                assert_eq!(release.call().await, 202);
            }
        });
    }
    tasks.join_all().await;
    println!(
        "  {} runs stored ({} waiting for an approval) in {:.1} s",
        others.div_ceil(32) * 32 + pending.div_ceil(32) * 32,
        pending.div_ceil(32) * 32,
        t.elapsed().as_secs_f64()
    );
    let p = get_p50(
        &server.base,
        "/v1/approvals?status=pending",
        named,
        scale(200),
    )
    .await;
    let mine = get_p50(
        &server.base,
        "/v1/approvals?status=pending&decidable=me",
        named,
        scale(200),
    )
    .await;
    let deep = get_p50(
        &server.base,
        "/v1/approvals?status=pending&limit=1000",
        named,
        scale(50),
    )
    .await;
    println!(
        "  GET /v1/approvals?status=pending (a page of 100): p50 {}; &decidable=me {}; limit=1000 {}  (target p50 <= 20 ms)",
        ms(p),
        ms(mine),
        ms(deep)
    );
}

/// A plain rmcp client's `get_issue` round trip to `url`, `n` times: p50.
async fn bare_mcp_round_trip(url: &str, n: usize) -> Duration {
    use rmcp::ServiceExt;
    use rmcp::model::{CallToolRequestParams, ClientConfig};
    use rmcp::transport::StreamableHttpClientTransport;
    let client = ClientConfig::default()
        .serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .unwrap();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let args = json!({ "number": i }).as_object().cloned().unwrap();
        let t = Instant::now();
        client
            .call_tool(CallToolRequestParams::new("get_issue").with_arguments(args))
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    let _ = client.cancel().await;
    pct(&lat, 0.5)
}

/// Figure 22.
async fn agent_figures() {
    use support::mcp::{McpOptions, McpServer};
    use support::provider::Behavior;
    let mcp = McpServer::start(McpOptions::default()).await;
    let provider = support::provider::Provider::start(MODEL_KEY).await;
    bare_mcp_round_trip(&mcp.url, 50).await;
    let n = scale(1_000);
    let bare = bare_mcp_round_trip(&mcp.url, n).await;
    println!(
        "  a plain rmcp client's tool call round trip: p50 {}",
        us(bare)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secrets.toml"),
        format!("KEY = \"{MODEL_KEY}\"\n"),
    )
    .unwrap();
    let config = dir.path().join("runway-host.toml");
    std::fs::write(
        &config,
        format!(
            "[models.aliases]\ndefault = \"bench/gpt-bench\"\n[models.providers.bench]\nkind = \"openai\"\nbase_url = \"{}\"\nkey_secret = \"KEY\"\n\
             [egress]\nallow = [\"http://127.0.0.1:*\"]\nallow_private = [\"127.0.0.0/8\"]\n[mcp.servers.tracker]\nurl = \"{}\"\n",
            provider.openai_url(),
            mcp.url
        ),
    )
    .unwrap();
    let host = Host::open(HostConfig::new(dir.path()).apply_file(&config).unwrap())
        .await
        .unwrap();
    host.deploy(
        support::wasm_bytes("hostile"),
        "slug = \"hostile\"\nmcp = [\"tracker\"]\n[budget]\nmax_duration = \"10m\"\nmax_events = 1000000\n",
    )
    .await
    .unwrap();
    let flood = |n: usize| {
        let host = host.clone();
        async move {
            let r = host
                .run("hostile", json!({ "attack": "mcp_flood", "n": n }))
                .await
                .unwrap();
            assert_eq!(r.status, RunStatus::Completed, "{r:?}");
            let at: Vec<time::OffsetDateTime> = host
                .store()
                .events(r.id, 0, usize::MAX)
                .unwrap()
                .into_iter()
                .filter(|e| e.body.kind() == "tool_call")
                .map(|e| e.at)
                .collect();
            let mut gaps: Vec<Duration> = at.windows(2).map(|w| between(w[0], w[1])).collect();
            gaps.sort();
            gaps
        }
    };
    flood(50).await;
    let gaps = flood(n).await;
    let p50 = pct(&gaps, 0.5);
    println!(
        "  through a workflow ({n} calls, each journaled and durable before the next): call to call p50 {} p99 {}; host overhead p50 {}",
        us(p50),
        us(pct(&gaps, 0.99)),
        us(p50.saturating_sub(bare))
    );

    host.deploy(support::wasm_bytes("triage"), &support::manifest("triage"))
        .await
        .unwrap();
    let agent = || {
        let host = host.clone();
        let provider = &provider;
        async move {
            let mut turns: Vec<Behavior> = (0..9)
                .map(|i| {
                    Behavior::ToolCalls(vec![("tracker__get_issue".into(), json!({ "number": i }))])
                })
                .collect();
            turns.push(Behavior::Success {
                text: Some("done".into()),
                input_tokens: 100,
                output_tokens: 20,
                cached_tokens: 0,
            });
            provider.script(turns);
            let t = Instant::now();
            let r = host
                .run("triage", json!({ "issue": 7, "max_turns": 10 }))
                .await
                .unwrap();
            let took = t.elapsed();
            assert_eq!(r.status, RunStatus::Completed, "{r:?}");
            assert_eq!(r.output.unwrap()["turns"], 10);
            took
        }
    };
    agent().await;
    let runs = scale(30);
    let mut lat = Vec::with_capacity(runs);
    for _ in 0..runs {
        lat.push(agent().await);
    }
    lat.sort();
    println!(
        "  a 10-turn agent (10 model calls, 9 MCP tool calls, a tools/list, an artifact), end to end: p50 {} p99 {} over {runs} runs",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );
    host.shutdown().await.unwrap();
}
