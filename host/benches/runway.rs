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
//!
//! 1 and 2 run once per instance allocator (pooling, on-demand) to show
//! which pays. `RUNWAY_BENCH_QUICK=1` shrinks every sample count.

#[path = "../../tests/support/mod.rs"]
mod support;

use runway::engine::Allocator;
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
