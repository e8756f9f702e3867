//! `cargo bench -p runway` — the host's headline figures, printed with their
//! conditions. Medians and percentiles over many samples; these machines
//! are noisy, so read ratios rather than single numbers.
//!
//! 1. instantiate-to-first-guest-instruction of `hello`, warm compile cache
//! 2. `hello` runs per second in one host process, every run durable
//! 3. event appends per second with group commit, every append durable
//! 4. first run after a host restart, compile cache on disk
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
    });
}
