//! Containment: a hostile guest, written against the SDK's raw imports, may
//! end its own run — with a typed code, within its budgets — and nothing
//! else. Beside each attack a stream of `hello` runs must complete, and
//! afterwards (and after a restart) every read, listing, cancel and delete
//! must still answer.

mod support;

use runway::types::{BudgetKind, ErrorCode, EventBody, RunRecord, RunStatus};
use runway::{Host, HostConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// A secret with a quote and a backslash: JSON escapes both.
const SECRET: &str = "s3cr\"et\\val-7Qx9";

async fn host(dir: &Path) -> Host {
    std::fs::write(
        dir.join("secrets.toml"),
        format!("LEAK_ME = {}\n", toml_string(SECRET)),
    )
    .unwrap();
    Host::open(HostConfig::new(dir))
        .await
        .expect("opening a host")
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

async fn deploy(host: &Host, budget: &str) {
    host.deploy(support::wasm_bytes("hello"), &support::manifest("hello"))
        .await
        .expect("deploying hello");
    let manifest = format!(
        "slug = \"hostile\"\nsecrets = [\"LEAK_ME\"]\n[budget]\nmax_duration = \"20s\"\n{budget}\n"
    );
    host.deploy(support::wasm_bytes("hostile"), &manifest)
        .await
        .expect("deploying hostile");
}

/// Runs `input` on `hostile` while `hello` runs go on beside it; every
/// hello completes, none waits long. Returns the hostile run.
async fn attack(host: &Host, input: Value) -> RunRecord {
    let bad = host.start("hostile", input.clone()).await.unwrap();
    let mut worst = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = Instant::now();
        let r = host.run("hello", json!({ "name": "n" })).await.unwrap();
        worst = worst.max(t.elapsed());
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        let done = host.run_record(bad).await.unwrap();
        if done.status.is_terminal() {
            break;
        }
        assert!(Instant::now() < deadline, "{input}: the attack never ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        worst < Duration::from_secs(2),
        "{input}: a neighbour hello waited {worst:?}"
    );
    host.wait(bad).await.unwrap()
}

fn budget_of(host: &Host, run: &RunRecord) -> Option<BudgetKind> {
    host.events(run.id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.body {
            EventBody::BudgetExceeded { budget, .. } => Some(budget),
            _ => None,
        })
}

/// Every read the API and CLI make still answers, for every run.
async fn every_read_answers(host: &Host) {
    let runs = host.runs(&Default::default(), 1000).unwrap();
    assert!(!runs.is_empty());
    for r in &runs {
        host.run_record(r.id).await.unwrap();
        host.events(r.id, 0, usize::MAX).unwrap();
        host.children(r.id).unwrap();
        host.artifacts(r.id).unwrap();
        // Every run here has ended: a cancel says so, and changes nothing.
        assert!(matches!(
            host.cancel(r.id).await.unwrap(),
            runway::host::CancelOutcome::AlreadyEnded(_)
        ));
    }
    host.active_runs().unwrap();
    host.workflows().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_json_nested_to_the_parsers_limit_never_reaches_the_store() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy(&host, "").await;

    // A result 127 deep: refused (it would be unreadable inside its record).
    let r = attack(&host, json!({ "attack": "deep_result" })).await;
    let e = r.error.clone().unwrap();
    assert_eq!(e.code, ErrorCode::ProgramError, "{e:?}");
    assert!(e.message.contains("deeper than 64"), "{}", e.message);
    // 64 levels are admitted, and read back.
    let r = host
        .run("hostile", json!({ "attack": "deep_result", "n": 64 }))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert!(r.output.unwrap().is_array());
    // A child input, artifact metadata: typed failures the guest handles.
    for attack_name in ["deep_child", "deep_metadata"] {
        let r = host
            .run("hostile", json!({ "attack": attack_name }))
            .await
            .unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{attack_name}: {r:?}");
        let refused = r.output.unwrap()["refused"].as_str().unwrap().to_owned();
        assert!(
            refused == "INVALID_INPUT" || refused == "ARTIFACT_METADATA_INVALID",
            "{attack_name}: {refused}"
        );
    }
    // An event payload too deep is kept as a string: it has no depth.
    let r = host
        .run("hostile", json!({ "attack": "deep_event" }))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    let custom = host
        .events(r.id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.body {
            EventBody::Custom { payload, .. } => Some(payload),
            _ => None,
        })
        .unwrap();
    assert!(custom.is_string(), "{custom}");

    every_read_answers(&host).await;
    host.delete_workflow("hello").await.unwrap();
    // ...and after a restart.
    drop(host);
    let host = reopen(dir.path()).await;
    host.recover().await.unwrap();
    every_read_answers(&host).await;
    host.delete_workflow("hostile").await.unwrap();
}

async fn reopen(dir: &Path) -> Host {
    for _ in 0..400 {
        if let Ok(h) = Host::open(HostConfig::new(dir)).await {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the data directory stayed locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_calls_are_budgeted_and_flushed_as_the_run_goes() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy(
        &host,
        "max_journal_entries = 20000\nmax_fuel = \"unlimited\"",
    )
    .await;
    for attack_name in ["clock_flood", "sleep_flood", "signal_flood"] {
        let r = attack(&host, json!({ "attack": attack_name })).await;
        assert_eq!(
            r.error.as_ref().map(|e| e.code),
            Some(ErrorCode::BudgetExceeded),
            "{attack_name}: {r:?}"
        );
        assert_eq!(
            budget_of(&host, &r),
            Some(BudgetKind::MaxJournalEntries),
            "{attack_name}"
        );
        // Written as it went, and no further than the budget.
        let journal = host.store().journal(r.id).unwrap();
        assert!(
            (20_000..=20_001).contains(&journal.len()),
            "{attack_name}: {} entries",
            journal.len()
        );
    }
    // Bytes too.
    deploy(
        &host,
        "max_journal_bytes = \"256 KiB\"\nmax_fuel = \"unlimited\"",
    )
    .await;
    let r = attack(&host, json!({ "attack": "clock_flood" })).await;
    assert_eq!(budget_of(&host, &r), Some(BudgetKind::MaxJournalBytes));
    every_read_answers(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_values_are_size_checked_before_they_are_parsed() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy(&host, "max_memory = \"128 MiB\"").await;
    // 8 MiB of event payload against a 1 MiB output budget.
    let r = attack(&host, json!({ "attack": "big_event" })).await;
    assert_eq!(budget_of(&host, &r), Some(BudgetKind::MaxOutputBytes));
    assert!(r.usage.output_bytes <= 1 << 20, "{:?}", r.usage);
    // Metadata: a typed failure; a failure message: charged as output.
    let r = host
        .run("hostile", json!({ "attack": "big_metadata" }))
        .await
        .unwrap();
    assert_eq!(r.output.unwrap()["refused"], "ARTIFACT_METADATA_INVALID");
    let r = attack(&host, json!({ "attack": "long_failure" })).await;
    assert_eq!(budget_of(&host, &r), Some(BudgetKind::MaxOutputBytes));
    // Under a larger budget it is stored, capped.
    deploy(
        &host,
        "max_memory = \"128 MiB\"\nmax_output_bytes = \"16 MiB\"",
    )
    .await;
    let r = attack(&host, json!({ "attack": "long_failure" })).await;
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::ProgramError);
    assert!(e.message.len() <= 70 * 1024, "{} bytes", e.message.len());
    // A signal name and a child's key have limits of their own.
    let r = attack(&host, json!({ "attack": "long_signal_name" })).await;
    assert_eq!(r.error.unwrap().code, ErrorCode::InvalidCall);
    let r = host
        .run("hostile", json!({ "attack": "long_key" }))
        .await
        .unwrap();
    assert_eq!(r.output.unwrap()["refused"], "INVALID_INPUT");
    every_read_answers(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_the_guest_causes_counts_against_max_events() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy(&host, "max_events = 100").await;
    let r = attack(&host, json!({ "attack": "secret_flood" })).await;
    assert_eq!(budget_of(&host, &r), Some(BudgetKind::MaxEvents));
    let stored = host.events(r.id, 0, usize::MAX).unwrap();
    // queued, running, 100 reads, budget_exceeded, failed.
    assert_eq!(stored.len(), 104, "{stored:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_tree_is_bounded_by_its_roots_budget() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy(&host, "max_tree_runs = 40\nmax_children = 5").await;
    let started = Instant::now();
    let root = host
        .start("hostile", json!({ "attack": "fork_bomb" }))
        .await
        .unwrap();
    // Every run of the tree ends (each stops at its budget or a refusal).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        host.idle().await;
        let live = host.active_runs().unwrap();
        if live.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{} runs still live", live.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = host.runs(&Default::default(), 10_000).unwrap();
    assert!(
        all.len() <= 40,
        "{} runs in a tree of at most 40",
        all.len()
    );
    let root = host.run_record(root).await.unwrap();
    assert!(root.status.is_terminal());
    let crossed: Vec<_> = all
        .iter()
        .filter_map(|r| budget_of(&host, r))
        .filter(|b| *b == BudgetKind::MaxTreeRuns)
        .collect();
    assert!(!crossed.is_empty(), "no run met max_tree_runs");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_secret_reaches_the_store() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy(&host, "").await;
    let r = host
        .run("hostile", json!({ "attack": "leak_disguised" }))
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    host.idle().await;
    // Output cut at 8 KiB is searched as one text: no value spans two events.
    let output: String = host
        .events(r.id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::ProgramOutput { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert!(
        !output.contains(SECRET),
        "the value spans two output events"
    );
    assert!(output.contains("********"));
    let shown = serde_json::to_string(&host.run_record(r.id).await.unwrap()).unwrap();
    host.shutdown().await.unwrap();
    drop(host);
    let escaped = serde_json::to_string(SECRET).unwrap();
    let escaped = escaped.trim_matches('"').to_owned();
    let unicode: String = SECRET
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    for form in [SECRET, escaped.as_str(), unicode.as_str()] {
        assert!(!shown.contains(form), "{form:?} in the run record");
        for f in support::files(dir.path()) {
            if f.file_name().is_some_and(|n| n == "secrets.toml") {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                "{form:?} in {}",
                f.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_stored_unreadable_breaks_only_its_own_run() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path()).await;
    deploy(&host, "").await;
    let good = host.run("hello", json!({ "name": "a" })).await.unwrap();
    // As an older host could store it: an active run whose input nests to
    // the parser's limit, so its record can no longer be read back.
    let mut bad = good.clone();
    bad.id = runway::types::RunId::generate();
    bad.status = RunStatus::Queued;
    bad.output = None;
    bad.finished_at = None;
    bad.input = (0..127).fold(json!(1), |v, _| json!([v]));
    host.store()
        .commit(vec![runway::store::Write::PutRun(Box::new(bad.clone()))])
        .await
        .unwrap();
    assert!(host.store().run(bad.id).is_err(), "the record reads back");
    // Listings and scans leave it out; its own reads fail; nothing else does.
    let listed = host.runs(&Default::default(), 100).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, good.id);
    assert!(host.active_runs().unwrap().is_empty());
    assert!(host.run_record(bad.id).await.is_err());
    host.run_record(good.id).await.unwrap();
    // Recovery skips it; the workflow can still be deleted.
    drop(host);
    let host = reopen(dir.path()).await;
    host.recover().await.unwrap();
    let r = host.run("hello", json!({ "name": "b" })).await.unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    host.delete_workflow("hello").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_memory_is_bounded_and_a_full_host_fails_no_run() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secrets.toml"), "LEAK_ME = \"x\"\n").unwrap();
    let mut config = HostConfig::new(dir.path());
    config.max_host_memory = 100 << 20;
    let host = Host::open(config).await.unwrap();
    deploy(&host, "max_memory = \"64 MiB\"").await;
    // Six runs of 40 MiB each, parked while they hold it: 240 MiB asked
    // of a host that has 100 for runs.
    let mut holders = Vec::new();
    for _ in 0..6 {
        holders.push(
            host.start("hostile", json!({ "attack": "hold", "n": 40, "ms": 150 }))
                .await
                .unwrap(),
        );
    }
    let hello = host
        .run("hello", json!({ "name": "beside" }))
        .await
        .unwrap();
    assert_eq!(hello.status, RunStatus::Completed);
    for id in holders {
        let r = tokio::time::timeout(Duration::from_secs(60), host.wait(id))
            .await
            .expect("a holder ended in time")
            .unwrap();
        assert_eq!(
            r.status,
            RunStatus::Completed,
            "capacity failed a run: {r:?}"
        );
        assert_eq!(r.output.unwrap()["held"], 40 << 20);
    }
    let (in_use, peak, limit) = host.run_memory();
    assert_eq!(limit, 100 << 20);
    assert!(peak <= limit, "peak {peak} over the budget {limit}");
    assert!(peak > 80 << 20, "the host never filled up (peak {peak})");
    assert_eq!(in_use, 0, "memory of ended runs is given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_starts_past_the_queue_bound_get_a_failure_the_parent_handles() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secrets.toml"), "LEAK_ME = \"x\"\n").unwrap();
    let mut config = HostConfig::new(dir.path());
    // The root holds the only execution slot: its children queue.
    config.max_concurrent_runs = 1;
    config.server.max_queued_runs = 3;
    let host = Host::open(config).await.unwrap();
    deploy(&host, "max_children = 100\nmax_tree_runs = 100").await;
    let root = host
        .run("hostile", json!({ "attack": "fork_bomb" }))
        .await
        .unwrap();
    // The start that found the queue full returned a failure, which the
    // guest handled: it stopped and completed.
    assert_eq!(root.status, RunStatus::Completed, "{root:?}");
    assert_eq!(root.output.unwrap()["stopped"], true);
    let children = host.children(root.id).unwrap().len();
    assert!((3..50).contains(&children), "{children} children");
}
