//! In-process end-to-end tests: one `Host`, real components, many runs at
//! once. Each hostile guest must fail its own run with the right code while
//! a concurrent `hello` completes.

mod support;

use runway::types::{BudgetKind, ErrorCode, EventBody, RunRecord, RunStatus};
use runway::{Host, HostConfig};
use serde_json::json;
use std::time::{Duration, Instant};

async fn host(dir: &std::path::Path) -> Host {
    Host::open(HostConfig::new(dir))
        .await
        .expect("opening a host")
}

/// The hostile manifest with extra budget lines.
fn hostile_manifest(budget: &str) -> String {
    format!(
        "slug = \"hostile\"\nsecrets = [\"LEAK_ME\", \"DECLARED_NOT_SET\"]\n[budget]\n{budget}\n"
    )
}

async fn deploy_examples(host: &Host, hostile_budget: &str) {
    host.deploy(support::wasm_bytes("hello"), &support::manifest("hello"))
        .await
        .expect("deploying hello");
    host.deploy(
        support::wasm_bytes("hostile"),
        &hostile_manifest(hostile_budget),
    )
    .await
    .expect("deploying hostile");
}

fn budget_event(host: &Host, run: &RunRecord) -> (BudgetKind, u64, u64) {
    let events = host.store().events(run.id, 0, usize::MAX).unwrap();
    events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::BudgetExceeded {
                budget,
                limit,
                used,
                ..
            } => Some((*budget, *limit, *used)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no budget_exceeded event in {events:#?}"))
}

/// Runs `attack` while `hello` runs start alongside it; returns the hostile
/// run after checking every hello completed before it ended.
async fn attack_beside_hello(host: &Host, attack: &str) -> RunRecord {
    let bad = host
        .start("hostile", json!({ "attack": attack }))
        .await
        .unwrap();
    let mut hellos = Vec::new();
    for i in 0..5 {
        hellos.push(
            host.start("hello", json!({ "name": format!("n{i}") }))
                .await
                .unwrap(),
        );
    }
    for id in hellos {
        let r = host.wait(id).await.unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        assert_eq!(
            r.output.unwrap()["greeting"],
            json!(format!("Hello, {}!", r.input["name"].as_str().unwrap()))
        );
    }
    let r = host.wait(bad).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed, "{attack}: {r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_is_stopped_by_max_fuel() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "max_fuel = 50_000_000").await;
    let r = attack_beside_hello(&host, "loop").await;
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::BudgetExceeded, "{e:?}");
    let (budget, limit, used) = budget_event(&host, &r);
    assert_eq!(budget, BudgetKind::MaxFuel);
    assert_eq!(limit, 50_000_000);
    assert!(used >= limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_with_unlimited_fuel_is_stopped_by_max_duration_on_time() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "max_fuel = \"unlimited\"\nmax_duration = \"400ms\"").await;
    // Warm the component so the measured run is only the run.
    host.run("hello", json!({"name": "warm"})).await.unwrap();
    let started = Instant::now();
    let r = attack_beside_hello(&host, "loop").await;
    let wall = started.elapsed();
    assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::BudgetExceeded);
    let (budget, limit, used) = budget_event(&host, &r);
    assert_eq!(budget, BudgetKind::MaxDuration);
    assert_eq!(limit, 400);
    assert!(
        (400..500).contains(&used),
        "stopped {used} ms into a 400 ms budget"
    );
    assert!(
        wall < Duration::from_millis(400 + 250),
        "the caller waited {wall:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_is_stopped_by_max_memory() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "max_memory = \"48 MiB\"").await;
    let r = attack_beside_hello(&host, "memory").await;
    assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::BudgetExceeded);
    let (budget, limit, used) = budget_event(&host, &r);
    assert_eq!(budget, BudgetKind::MaxMemory);
    assert_eq!(limit, 48 << 20);
    assert!(used > limit);
    assert!(r.usage.peak_memory_bytes <= limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_is_a_trap_with_a_backtrace() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "").await;
    let r = attack_beside_hello(&host, "recursion").await;
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::Trap, "{e:?}");
    assert!(
        e.message.contains("recurse"),
        "no backtrace in {}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_that_quotes_the_panic_message() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "").await;
    let r = attack_beside_hello(&host, "panic").await;
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::Trap);
    // The panic heads the message, the trap second.
    let headline = e.message.lines().next().unwrap();
    assert!(headline.starts_with("panicked at "), "{}", e.message);
    assert!(headline.ends_with(": the guest gave up"), "{}", e.message);
    assert!(
        e.message.lines().nth(1).unwrap().starts_with("wasm trap"),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_flood_is_stopped_by_output_budgets() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    // Bytes run out first here...
    deploy_examples(&host, "max_output_bytes = \"64 KiB\"").await;
    let r = attack_beside_hello(&host, "flood").await;
    let (budget, limit, _) = budget_event(&host, &r);
    assert_eq!((budget, limit), (BudgetKind::MaxOutputBytes, 64 << 10));
    // ...and events here, for output and for logs alike.
    deploy_examples(&host, "max_events = 500").await;
    for attack in ["flood", "log_flood"] {
        let r = attack_beside_hello(&host, attack).await;
        assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::BudgetExceeded);
        let (budget, limit, _) = budget_event(&host, &r);
        assert_eq!((budget, limit), (BudgetKind::MaxEvents, 500), "{attack}");
        let stored = host.store().events(r.id, 0, usize::MAX).unwrap();
        // queued, running, 500 guest events, budget_exceeded, failed.
        assert_eq!(stored.len(), 504, "{attack}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_access_is_fail_closed() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "").await;
    let r = attack_beside_hello(&host, "undeclared_secret").await;
    assert_eq!(r.error.unwrap().code, ErrorCode::SecretUndeclared);
    let r = attack_beside_hello(&host, "missing_secret").await;
    assert_eq!(r.error.unwrap().code, ErrorCode::SecretMissing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_filesystem_network_or_host_environment() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    host.deploy(
        support::wasm_bytes("hostile"),
        "slug = \"hostile\"\n[env]\nONLY_THIS = \"1\"\n",
    )
    .await
    .unwrap();
    let out = |r: RunRecord| {
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        r.output.unwrap()
    };
    let fs = out(host
        .run("hostile", json!({"attack": "filesystem"}))
        .await
        .unwrap());
    assert_eq!(fs, json!({"read": false, "write": false}));
    let net = out(host
        .run("hostile", json!({"attack": "network"}))
        .await
        .unwrap());
    assert_eq!(net, json!({"connected": false}));
    let env = out(host.run("hostile", json!({"attack": "env"})).await.unwrap());
    assert_eq!(env, json!([["ONLY_THIS", "1"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_the_workflow_cannot_decode_fails_with_invalid_input() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "").await;
    let r = host.run("hello", json!({"nom": 1})).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.error.unwrap().code, ErrorCode::InvalidInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_runs_each_get_a_gap_free_log() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "").await;
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(
            host.start("hello", json!({ "name": i.to_string() }))
                .await
                .unwrap(),
        );
    }
    for id in ids {
        let r = host.wait(id).await.unwrap();
        assert_eq!(r.status, RunStatus::Completed);
        let events = host.store().events(id, 0, usize::MAX).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        let kinds: Vec<&str> = events.iter().map(|e| e.body.kind()).collect();
        assert_eq!(kinds, vec!["queued", "running", "completed"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_host_runs_from_the_compile_cache_on_disk() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    {
        let host = host(dir.path()).await;
        deploy_examples(&host, "").await;
        host.flush().await.unwrap();
    }
    let cached: Vec<_> = support::files(&dir.path().join("cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    // Wait for the first host's writer thread to let go of the file lock.
    let host = loop {
        match Host::open(HostConfig::new(dir.path())).await {
            Ok(h) => break h,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let r = host.run("hello", json!({"name": "again"})).await.unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(r.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_run_can_be_cancelled_at_once() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "max_fuel = \"unlimited\"\nmax_duration = \"60s\"").await;
    let id = host
        .start("hostile", json!({"attack": "loop"}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    assert_eq!(
        host.cancel(id).await.unwrap(),
        runway::host::CancelOutcome::Cancelling
    );
    let r = host.wait(id).await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(r.error.unwrap().code, ErrorCode::Cancelled);
    let events = host.store().events(id, 0, usize::MAX).unwrap();
    assert_eq!(events.last().unwrap().body.kind(), "cancelled");
    assert_eq!(
        host.cancel(id).await.unwrap(),
        runway::host::CancelOutcome::AlreadyEnded(RunStatus::Cancelled),
        "a finished run is not cancellable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_readings_are_journaled_before_the_run_commits() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy_examples(&host, "").await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = host
        .run("hostile", json!({"attack": "clock"}))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    let wall = r.output.unwrap()["wall_ms"].as_u64().unwrap();
    assert!(
        wall >= before && wall < before + 5_000,
        "{wall} vs {before}"
    );
    let journal = host.store().journal(r.id).unwrap();
    let clock = journal
        .iter()
        .find(|e| e.call == "wasi:clocks/wall-clock.now")
        .expect("the wall clock reading is journaled");
    assert_eq!(clock.result.get().parse::<u64>().unwrap() / 1_000_000, wall);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_refuses_an_oversized_component_before_compiling_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    let mut huge = b"\0asm\x0d\0\x01\0".to_vec();
    huge.resize(runway::sandbox::engine::MAX_COMPONENT_BYTES + 1, 0);
    let err = host
        .deploy(huge, "slug = \"huge\"\n")
        .await
        .expect_err("a 64 MiB + 1 component must be refused");
    assert_eq!(err.code(), "COMPONENT_TOO_LARGE");
    assert!(host.store().workflows().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_run_leaves_in_memory_is_seen_by_the_next_run_in_its_slot() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let mut config = HostConfig::new(dir.path());
    // One slot: every run reuses the memory the previous one dirtied.
    config.max_concurrent_runs = 1;
    config.engine.pool_size = 1;
    let host = Host::open(config).await.unwrap();
    deploy_examples(&host, "").await;
    for i in 0..10 {
        let r = host
            .run("hostile", json!({"attack": "residue"}))
            .await
            .unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        assert_eq!(
            r.output.unwrap(),
            json!({"mark_was": 0, "dirty_bytes": 0}),
            "run {i} saw what an earlier run left"
        );
    }
}
