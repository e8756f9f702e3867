//! Durable execution in one process: timers, signals, child runs and
//! cancellation, each run both ways — with parked instances kept warm, and
//! with every park evicted and rebuilt by replay. The answers must match.

mod support;

use runway::Host;
use runway::types::{ErrorCode, EventBody, RunId, RunRecord, RunStatus};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Warm slots for each mode: every park evicted, or all kept in memory.
const MODES: [(&str, usize); 2] = [("evicted", 0), ("warm", 64)];

async fn host(dir: &std::path::Path, warm: usize) -> Host {
    let mut config = support::host_config(dir);
    config.max_warm_instances = warm;
    let host = Host::open(config).await.expect("opening a host");
    for name in ["hello", "sleepy", "collect", "fanout", "steps"] {
        host.deploy(support::wasm_bytes(name), &support::manifest(name))
            .await
            .unwrap_or_else(|e| panic!("deploying {name}: {e}"));
    }
    host
}

async fn finish(host: &Host, id: RunId) -> RunRecord {
    tokio::time::timeout(Duration::from_secs(60), host.wait(id))
        .await
        .expect("the run ended in time")
        .expect("waiting for a run")
}

/// Polls until the run has the status.
async fn until_status(host: &Host, id: RunId, status: RunStatus) {
    let t0 = Instant::now();
    loop {
        let r = host.run_record(id).await.unwrap();
        if r.status == status {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "run stayed {:?}, never {status:?}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn events(host: &Host, id: RunId) -> Vec<runway::types::Event> {
    host.store().events(id, 0, usize::MAX).unwrap()
}

/// The log is gap-free from 1, and holds each kind as often as expected.
fn assert_log(host: &Host, id: RunId) -> Vec<runway::types::Event> {
    let ev = events(host, id);
    let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=ev.len() as u64).collect::<Vec<_>>(), "{ev:#?}");
    ev
}

fn count(ev: &[runway::types::Event], kind: &str) -> usize {
    ev.iter().filter(|e| e.body.kind() == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_run_wakes_on_time_and_replays_clock_and_random() {
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        let id = host.start("sleepy", json!({ "ms": 200 })).await.unwrap();
        until_status(&host, id, RunStatus::Sleeping).await;
        let r = finish(&host, id).await;
        assert_eq!(r.status, RunStatus::Completed, "{mode}: {r:?}");
        let out = r.output.unwrap();
        let late =
            out["after_ms"].as_u64().unwrap() as i64 - out["until_ms"].as_u64().unwrap() as i64;
        assert!(
            (0..100).contains(&late),
            "{mode}: woke {late} ms after its deadline"
        );
        // What the guest saw before parking is what it returns after: in
        // evicted mode that is a replay answering from the journal.
        let ev = assert_log(&host, id);
        let before = ev
            .iter()
            .find_map(|e| match &e.body {
                EventBody::Custom { name, payload } if name == "before" => Some(payload.clone()),
                _ => None,
            })
            .expect("a before event");
        assert_eq!(before["clock_ms"], out["before_ms"], "{mode}");
        assert_eq!(before["random"], out["random"], "{mode}");
        assert_eq!(count(&ev, "custom"), 1, "{mode}: replay repeated an event");
        assert_eq!(count(&ev, "sleeping"), 1, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_buffered_taken_in_order_once_deduplicated_and_time_out() {
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        // Queued, not started: these signals arrive before any wait.
        let id = host
            .enqueue(
                "collect",
                None,
                json!({ "name": "x", "count": 4, "timeout_ms": 400 }),
            )
            .await
            .unwrap();
        let a = host
            .signal(id, "x", json!(1), Some("a".into()))
            .await
            .unwrap();
        host.signal(id, "other", json!("no"), None).await.unwrap();
        let b = host
            .signal(id, "x", json!(2), Some("b".into()))
            .await
            .unwrap();
        let dup = host
            .signal(id, "x", json!(99), Some("a".into()))
            .await
            .unwrap();
        assert!(!a.duplicate && !b.duplicate && dup.duplicate, "{mode}");
        assert_eq!(dup.seq, a.seq, "{mode}");
        assert!(host.resume(id));
        // The third arrives while the run waits.
        until_status(&host, id, RunStatus::WaitingSignal).await;
        host.signal(id, "x", json!(3), None).await.unwrap();
        let r = finish(&host, id).await;
        assert_eq!(r.status, RunStatus::Completed, "{mode}: {r:?}");
        assert_eq!(
            r.output.unwrap(),
            json!({ "signals": [1, 2, 3, null] }),
            "{mode}"
        );
        let ev = assert_log(&host, id);
        assert_eq!(count(&ev, "signal_received"), 3, "{mode}: {ev:#?}");
        // A signal to a run that has ended is refused.
        let e = host.signal(id, "x", json!(4), None).await.unwrap_err();
        assert_eq!(e.code(), "RUN_ENDED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_starts_each_child_once_and_joins_their_outputs() {
    let mut outputs = Vec::new();
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        let names = ["ada", "bob", "cy", "dee", "eve"];
        let id = host
            .start("fanout", json!({ "names": names }))
            .await
            .unwrap();
        let r = finish(&host, id).await;
        assert_eq!(r.status, RunStatus::Completed, "{mode}: {r:?}");
        let children = host.store().children(id).unwrap();
        assert_eq!(children.len(), names.len(), "{mode}");
        let hellos = host.store().runs(None, Some("hello"), 100).unwrap();
        assert_eq!(
            hellos.len(),
            names.len(),
            "{mode}: a child was started twice"
        );
        for c in &hellos {
            assert_eq!(c.parent, Some(id), "{mode}");
            assert_eq!(c.depth, 1, "{mode}");
            assert_eq!(c.status, RunStatus::Completed, "{mode}");
        }
        let ev = assert_log(&host, id);
        assert_eq!(count(&ev, "child_started"), names.len(), "{mode}");
        outputs.push(r.output.unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "evicted and warm runs disagree");
    assert_eq!(
        outputs[0]["greetings"][4],
        json!("Hello, eve!"),
        "{:?}",
        outputs[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_with_parks_write_each_artifact_and_event_once() {
    let mut outputs = Vec::new();
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        let id = host
            .start("steps", json!({ "count": 6, "pause_ms": 5, "print": true }))
            .await
            .unwrap();
        let r = finish(&host, id).await;
        assert_eq!(r.status, RunStatus::Completed, "{mode}: {r:?}");
        let ev = assert_log(&host, id);
        assert_eq!(count(&ev, "artifact_written"), 6, "{mode}");
        assert_eq!(count(&ev, "custom"), 6, "{mode}");
        // Stdout printed before a park is not printed again by the replay.
        assert_eq!(count(&ev, "program_output"), 6, "{mode}: {ev:#?}");
        assert_eq!(host.store().artifacts(id).unwrap().len(), 6, "{mode}");
        // Usage counts the whole run once, however often it was rebuilt:
        // 6 artifacts, 6 custom events, 6 lines of output and 6 parks.
        assert_eq!(r.usage.events, 24, "{mode}: {:?}", r.usage);
        outputs.push(r.output.unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
}

/// A reset after the second of four steps: the fork keeps the original's
/// first events, artifacts and printed lines, does steps 3 and 4 live, and
/// ends with the same output and each step's event, artifact and line
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_fork_keeps_the_prefix_and_does_the_rest_once() {
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        let input = json!({ "count": 4, "pause_ms": 5, "print": true });
        let id = host.start("steps", input).await.unwrap();
        let original = finish(&host, id).await;
        assert_eq!(
            original.status,
            RunStatus::Completed,
            "{mode}: {original:?}"
        );
        let ev = events(&host, id);
        let second = ev
            .iter()
            .filter(|e| matches!(&e.body, EventBody::Custom { .. }))
            .nth(1)
            .unwrap()
            .seq;
        let fork = host.reset(id, second, "test".into()).await.unwrap().id;
        let r = finish(&host, fork).await;
        assert_eq!(r.status, RunStatus::Completed, "{mode}: {r:?}");
        assert_eq!(r.output, original.output, "{mode}");
        let trigger = r.trigger.clone().unwrap();
        assert_eq!(
            (trigger.kind.as_str(), trigger.rerun_of),
            ("reset", Some(id))
        );
        let at = trigger.reset_to.unwrap();
        assert!(at <= second && at > 0, "{mode}: forked at {at}");
        let fev = assert_log(&host, fork);
        assert_eq!(ev[..at as usize], fev[..at as usize], "{mode}");
        assert_eq!(count(&fev, "custom"), 4, "{mode}: {fev:#?}");
        assert_eq!(count(&fev, "artifact_written"), 4, "{mode}");
        assert_eq!(count(&fev, "program_output"), 4, "{mode}: {fev:#?}");
        assert_eq!(host.store().artifacts(fork).unwrap().len(), 4, "{mode}");
        assert_eq!(host.reruns(id).unwrap(), vec![fork]);
        // Forking a run mid-way through its own fork's history works too.
        let again = host.reset(fork, at, "test".into()).await.unwrap().id;
        assert_eq!(finish(&host, again).await.output, original.output);
    }
}

/// `[retry]` on a guest that always traps: each attempt starts from the
/// top after the backoff, the last failure is the run's, and each retry is
/// an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_retried_as_its_policy_says_then_fails() {
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        host.deploy(
            support::wasm_bytes("hostile"),
            "slug = \"hostile\"\n[retry]\nmax_attempts = 3\nbackoff = \"20ms\"\non = [\"TRAP\"]\n",
        )
        .await
        .unwrap();
        let t0 = Instant::now();
        let id = host
            .start("hostile", json!({ "attack": "panic" }))
            .await
            .unwrap();
        let r = finish(&host, id).await;
        assert_eq!(r.status, RunStatus::Failed, "{mode}: {r:?}");
        assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::Trap);
        assert_eq!(r.attempt, 3, "{mode}");
        // 20 ms, then 40 ms.
        assert!(t0.elapsed() >= Duration::from_millis(60), "{mode}");
        let ev = assert_log(&host, id);
        assert_eq!(count(&ev, "retrying"), 2, "{mode}: {ev:#?}");
        assert_eq!(count(&ev, "running"), 3, "{mode}");
        assert_eq!(count(&ev, "failed"), 1, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_failures_are_typed_and_fan_out_is_budgeted() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), 0).await;
    // A child that fails: hello without a name.
    let id = host
        .start("fanout", json!({ "names": ["ok"] }))
        .await
        .unwrap();
    assert_eq!(finish(&host, id).await.status, RunStatus::Completed);
    host.deploy(
        support::wasm_bytes("hostile"),
        "slug = \"hello\"\n[budget]\nmax_duration = \"5s\"\n",
    )
    .await
    .unwrap();
    let id = host
        .start("fanout", json!({ "names": ["x"] }))
        .await
        .unwrap();
    let r = finish(&host, id).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::ProgramError);
    assert!(
        e.message.contains("CHILD_FAILED") && e.message.contains("INVALID_INPUT"),
        "{}",
        e.message
    );

    // max_children stops a run at the start that crosses it.
    let manifest = format!(
        "{}\nmax_children = 2\n",
        support::manifest("fanout").trim_end()
    );
    host.deploy(support::wasm_bytes("fanout"), &manifest)
        .await
        .unwrap();
    let id = host
        .start("fanout", json!({ "names": ["a", "b", "c"] }))
        .await
        .unwrap();
    let r = finish(&host, id).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(r.error.unwrap().code, ErrorCode::BudgetExceeded);
    assert_eq!(host.store().children(id).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_its_waiting_children() {
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        // Children that wait for a signal: `approval`, deployed as "hello".
        host.deploy(
            support::wasm_bytes("approval"),
            "slug = \"hello\"\n[budget]\nmax_duration = \"1h\"\n",
        )
        .await
        .unwrap();
        let id = host
            .start("fanout", json!({ "names": ["a", "b"] }))
            .await
            .unwrap();
        until_status(&host, id, RunStatus::WaitingChild).await;
        let children = host.store().children(id).unwrap();
        assert_eq!(children.len(), 2);
        for c in &children {
            until_status(&host, *c, RunStatus::WaitingSignal).await;
        }
        host.cancel(id).await.unwrap();
        let r = finish(&host, id).await;
        assert_eq!(r.status, RunStatus::Cancelled, "{mode}: {r:?}");
        assert_eq!(r.error.unwrap().code, ErrorCode::Cancelled);
        for c in children {
            let child = finish(&host, c).await;
            assert_eq!(child.status, RunStatus::Cancelled, "{mode}: {child:?}");
            let ev = assert_log(&host, c);
            assert_eq!(ev.last().unwrap().body.kind(), "cancelled");
        }
        // Cancelling again says it had ended.
        let again = host.cancel(id).await.unwrap();
        assert_eq!(
            again,
            runway::host::CancelOutcome::AlreadyEnded(RunStatus::Cancelled)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_run_is_cancelled_at_once_and_idle_returns() {
    for (mode, warm) in MODES {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), warm).await;
        let id = host.start("sleepy", json!({ "ms": 60_000 })).await.unwrap();
        until_status(&host, id, RunStatus::Sleeping).await;
        let t0 = Instant::now();
        host.cancel(id).await.unwrap();
        let r = finish(&host, id).await;
        assert!(t0.elapsed() < Duration::from_secs(2), "{mode}");
        assert_eq!(r.status, RunStatus::Cancelled, "{mode}: {r:?}");

        // A run waiting for a signal without a timeout leaves the host idle.
        let id = host
            .start("collect", json!({ "name": "go", "count": 1 }))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), host.idle())
            .await
            .expect("idle while waiting for outside input");
        let r = host.run_record(id).await.unwrap();
        assert_eq!(r.status, RunStatus::WaitingSignal, "{mode}");
        host.signal(id, "go", Value::Bool(true), None)
            .await
            .unwrap();
        assert_eq!(
            finish(&host, id).await.output.unwrap(),
            json!({ "signals": [true] })
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_replays_on_the_version_it_started_on() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), 0).await;
    let id = host.start("sleepy", json!({ "ms": 300 })).await.unwrap();
    until_status(&host, id, RunStatus::Sleeping).await;
    // A different component becomes the newest "sleepy" while it sleeps.
    let v2 = host
        .deploy(
            support::wasm_bytes("hello"),
            "slug = \"sleepy\"\n[budget]\nmax_duration = \"5s\"\n",
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let r = finish(&host, id).await;
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert_eq!(r.version, 1);
    assert!(r.output.unwrap().get("random").is_some());
    // New runs get the new version.
    let r = host.run("sleepy", json!({ "name": "v2" })).await.unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.output.unwrap()["greeting"], "Hello, v2!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_finishes_an_interrupted_cancel_and_runs_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), 0).await;
    let queued = host
        .enqueue("hello", None, json!({ "name": "later" }))
        .await
        .unwrap();
    let doomed = host
        .enqueue("sleepy", None, json!({ "ms": 60_000 }))
        .await
        .unwrap();
    // What a host that died right after accepting a cancel leaves behind.
    host.store()
        .commit(vec![runway::store::Write::RequestCancel(doomed, None)])
        .await
        .unwrap();
    assert_eq!(
        host.store().run(doomed).unwrap().unwrap().status,
        RunStatus::Cancelling
    );
    assert_eq!(host.recover().await.unwrap(), 2);
    host.idle().await;
    assert_eq!(finish(&host, doomed).await.status, RunStatus::Cancelled);
    let r = finish(&host, queued).await;
    assert_eq!(r.output.unwrap()["greeting"], "Hello, later!");
    assert!(host.store().active_runs().unwrap().is_empty());
}

/// Capacity is a wait, never a failure: many short runs with pauses on a
/// host with few execution slots and many warm ones (woken runs wait for
/// a slot while their instance lives) all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_parked_runs_never_fail_for_host_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::host_config(dir.path());
    config.max_concurrent_runs = 8;
    config.max_warm_instances = 300;
    let host = Host::open(config).await.expect("opening a host");
    host.deploy(support::wasm_bytes("steps"), &support::manifest("steps"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..1200 {
        ids.push(
            host.start("steps", json!({ "count": 3, "pause_ms": 20 }))
                .await
                .unwrap(),
        );
    }
    let mut failed = Vec::new();
    for id in ids {
        let r = tokio::time::timeout(Duration::from_secs(120), host.wait(id))
            .await
            .expect("a run ended in time")
            .unwrap();
        if r.status != RunStatus::Completed {
            failed.push(r.error);
        }
    }
    assert!(
        failed.is_empty(),
        "{} runs failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
}

/// A workflow's own `max_concurrent_runs`: never more of its runs execute
/// at once, the rest wait their turn, and other workflows are not held
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflows_concurrency_limit_holds_and_the_rest_wait() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), 64).await;
    // Each run spins until its fuel runs out (some tens of ms).
    let manifest = "slug = \"spin\"\nmax_concurrent_runs = 2\n[budget]\nmax_fuel = 150000000\n";
    host.deploy(support::wasm_bytes("hostile"), manifest)
        .await
        .unwrap();
    host.deploy(support::wasm_bytes("hello"), &support::manifest("hello"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(
            host.start("spin", json!({ "attack": "loop" }))
                .await
                .unwrap(),
        );
    }
    // Another workflow is not held back by this one's limit.
    let hello = host.run("hello", json!({ "name": "x" })).await.unwrap();
    assert_eq!(hello.status, RunStatus::Completed);
    let runs: Vec<RunRecord> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(finish(&host, *id).await);
        }
        v
    };
    // Each spin executes without a park: its start-to-end is its execution.
    // The most that overlap at any start:
    let most = runs
        .iter()
        .map(|a| {
            let at = a.started_at.unwrap();
            runs.iter()
                .filter(|b| b.started_at.unwrap() <= at && at < b.finished_at.unwrap())
                .count()
        })
        .max()
        .unwrap();
    assert!(most <= 2, "{most} runs of spin executed at once");
    assert_eq!(most, 2, "the limit is 2, not 1");
    assert!(runs.iter().all(|r| r.status.is_terminal()));
}

/// `runway verify`: recorded runs of `steps` (ended and one asleep) replayed
/// against the same code make the same calls; against code whose calls come
/// in another order, or that makes none, the first divergent call is named,
/// with both sides; nothing the replays do reaches the store.
#[test]
fn verify_names_the_first_divergent_call_on_ended_and_waiting_runs() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let runway = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUNWAY_DATA_DIR")
            .output()
            .unwrap()
    };
    let steps = support::wasm("steps");
    let steps = steps.to_str().unwrap();
    let manifest = support::manifest_path("steps");
    let out = runway(&["deploy", steps, "--manifest", manifest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..2 {
        assert!(
            runway(&["run", "steps", "--input", r#"{"count":2}"#])
                .status
                .success()
        );
    }
    // One asleep after its steps: the host holding it is killed.
    let mut asleep = std::process::Command::new(env!("CARGO_BIN_EXE_runway"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "run",
            "steps",
            "--input",
            r#"{"count":2,"end_sleep_ms":600000}"#,
        ])
        .env_remove("RUNWAY_DATA_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    asleep.kill().unwrap();
    asleep.wait().unwrap();
    let store_before = std::fs::read(dir.path().join("runway.redb")).unwrap().len();

    let verify = |wasm: &str| -> (Option<i32>, Value) {
        let out = runway(&["verify", "steps", wasm, "--json"]);
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    };
    let (code, same) = verify(steps);
    assert_eq!(code, Some(0), "{same}");
    let same = same.as_array().unwrap();
    assert_eq!(same.len(), 3);
    assert!(same.iter().all(|v| v["outcome"] == "same"), "{same:?}");
    assert!(same.iter().any(|v| v["status"] == "sleeping"));

    let reordered = support::wasm("steps-reordered");
    let (code, v) = verify(reordered.to_str().unwrap());
    assert_eq!(code, Some(1));
    for run in v.as_array().unwrap() {
        assert_eq!(run["outcome"], "diverges", "{run}");
        let d = &run["divergence"];
        assert_eq!(d["seq"], 1, "{d}");
        assert!(
            d["recorded"]
                .as_str()
                .unwrap()
                .starts_with("runway:workflow/artifacts.write("),
            "{d}"
        );
        assert!(
            d["new"]
                .as_str()
                .unwrap()
                .starts_with("runway:workflow/runtime.emit("),
            "{d}"
        );
    }
    // Code that makes no call at all: fewer calls, said so.
    let hello = support::wasm("hello");
    let (code, v) = verify(hello.to_str().unwrap());
    assert_eq!(code, Some(1));
    assert!(
        v.as_array().unwrap().iter().all(|r| r["outcome"] != "same"),
        "{v}"
    );
    // A deploy that requires it: refused, naming the first divergent call.
    let reordered_manifest = support::manifest_path("steps-reordered");
    let out = runway(&[
        "deploy",
        reordered.to_str().unwrap(),
        "--manifest",
        reordered_manifest.to_str().unwrap(),
        "--verify",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("replay differently") && err.contains("call #1"),
        "{err}"
    );
    let wfs: Value = serde_json::from_slice(&runway(&["workflows", "--json"]).stdout).unwrap();
    assert_eq!(wfs[0]["version"], 1, "not deployed");
    // Nothing was written to the store, nothing left beside it.
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        entries
            .iter()
            .all(|n| !n.to_string_lossy().starts_with("verify-")),
        "{entries:?}"
    );
    let runs = runway(&["runs", "--json"]);
    let listed: Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert!(std::fs::read(dir.path().join("runway.redb")).unwrap().len() >= store_before);
}
