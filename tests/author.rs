//! Authoring from an empty directory, outside this repository: `runway
//! new` writes a crate for each template that `runway build` turns into
//! `dist/SLUG.wasm` beside its manifest, which deploys without
//! `--manifest` and runs.

mod support;

use support::ok;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn runway(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
    cmd.current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("RUNWAY_DATA_DIR")
        .env_remove("RUNWAY_SERVER")
        // The new crates' dependencies compile once for all of them.
        .env(
            "CARGO_TARGET_DIR",
            support::root().join("target").join("author"),
        );
    cmd
}

/// `cargo test` in a workflow crate, with this build's `runway` first on
/// the PATH.
fn cargo_test(crate_dir: &Path) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_runway")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut cmd = runway(crate_dir);
    cmd.env("PATH", path);
    let mut cargo = Command::new(env!("CARGO"));
    cargo.arg("test").current_dir(crate_dir);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => cargo.env(k, v),
            None => cargo.env_remove(k),
        };
    }
    cargo
}

/// How many tests the runner's summaries say passed.
fn passed_tests(out: &str) -> usize {
    out.lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum()
}

#[test]
fn every_template_builds_deploys_and_runs_from_an_empty_directory() {
    // A directory outside the repository: nothing to find by path.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    assert!(!home.starts_with(support::root()));
    let data = home.join("data");
    for template in ["hello", "approval", "http", "agent"] {
        let name = format!("my-{template}");
        let out = ok(runway(home)
            .args(["new", &name, "--template", template])
            .output()
            .unwrap());
        assert!(
            out.contains(&format!("runway deploy dist/{name}.wasm")),
            "{out}"
        );
        let crate_dir = home.join(&name);
        let built: Value = serde_json::from_str(&ok(runway(&crate_dir)
            .args(["build", "--json"])
            .output()
            .unwrap()))
        .unwrap();
        assert_eq!(built["slug"], name.as_str());
        let wasm = crate_dir.join("dist").join(format!("{name}.wasm"));
        assert!(wasm.is_file() && crate_dir.join("dist/runway.toml").is_file());
        // Deploy needs no --manifest: it is beside the .wasm.
        let out = ok(runway(home)
            .arg("--data-dir")
            .arg(&data)
            .arg("deploy")
            .arg(&wasm)
            .output()
            .unwrap());
        assert!(out.contains(&format!("deployed {name} v1")), "{out}");
        // The template's own tests pass with a plain `cargo test` (the
        // crate's config names `runway test-runner`, found on the PATH).
        let out = ok(cargo_test(&crate_dir).output().unwrap());
        let passed = passed_tests(&out);
        assert!(passed >= 1, "{name}: {out}");
    }
    let run = |slug: &str, input: &str| -> Value {
        let out = runway(home)
            .arg("--data-dir")
            .arg(&data)
            .args(["run", slug, "--input", input, "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let hello = run("my-hello", r#"{"name":"Ada"}"#);
    assert_eq!(hello["status"], "completed", "{hello}");
    assert_eq!(hello["output"]["greeting"], "Hello, Ada!");
    // The template's input schema holds before a run exists.
    let out = runway(home)
        .arg("--data-dir")
        .arg(&data)
        .args(["run", "my-hello", "--input", "{}"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid input") && err.contains("\"name\" is a required property"),
        "{err}"
    );
    // The approval waits for its signal, then decides.
    let waiting = run("my-approval", r#"{"request":"ship it"}"#);
    assert_eq!(waiting["status"], "waiting_signal", "{waiting}");
    let id = waiting["run_id"].as_str().unwrap();
    ok(runway(home)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "signal",
            id,
            "approve",
            "--data",
            r#"{"by":"ada","approved":true}"#,
        ])
        .output()
        .unwrap());
    let events = ok(runway(home)
        .arg("--data-dir")
        .arg(&data)
        .args(["events", id, "--json"])
        .output()
        .unwrap());
    assert!(events.contains("completed"), "{events}");
    // A directory that is no workflow crate is said so.
    let out = runway(home).args(["build", "data"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no Cargo.toml"));
}

/// `runway dev`: a one-line edit is rebuilt and redeployed as the next
/// version while serving; a run started before the edit finishes on the
/// version it started on, a run started after runs the new code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runway_dev_redeploys_on_change_and_old_runs_keep_their_version() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    ok(runway(home)
        .args(["new", "flow", "--template", "approval"])
        .output()
        .unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut dev = runway(home)
        .arg("--data-dir")
        .arg(home.join("data"))
        .args(["dev", "flow", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let version = async || -> u64 {
        match http.get(format!("{base}/v1/workflows/flow")).send().await {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.unwrap();
                v["latest"]["version"].as_u64().unwrap_or(0)
            }
            _ => 0,
        }
    };
    let t0 = Instant::now();
    while version().await != 1 {
        assert!(t0.elapsed() < Duration::from_secs(120), "never deployed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = async |request: &str| -> String {
        let r: Value = http
            .post(format!("{base}/v1/workflows/flow/runs?wait=10"))
            .json(&serde_json::json!({ "request": request }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], "waiting_signal", "{r}");
        r["id"].as_str().unwrap().to_owned()
    };
    let old = start("old").await;

    // A one-line change.
    let lib = home.join("flow/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let edited = source.replace(
        "request: input.request,",
        "request: format!(\"v2: {}\", input.request),",
    );
    assert_ne!(source, edited);
    std::fs::write(&lib, edited).unwrap();
    let t0 = Instant::now();
    while version().await != 2 {
        assert!(t0.elapsed() < Duration::from_secs(120), "never redeployed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "redeployed after a one-line change in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let new = start("new").await;

    for id in [&old, &new] {
        let res = http
            .post(format!("{base}/v1/runs/{id}/signals/approve"))
            .json(&serde_json::json!({ "by": "ada", "approved": true }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    let output = async |id: &str| -> Value {
        let t0 = Instant::now();
        loop {
            let r: Value = http
                .get(format!("{base}/v1/runs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["status"] == "completed" {
                return r;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "{r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (o, n) = (output(&old).await, output(&new).await);
    assert_eq!(
        (o["version"].as_u64(), o["output"]["request"].as_str()),
        (Some(1), Some("old"))
    );
    assert_eq!(
        (n["version"].as_u64(), n["output"]["request"].as_str()),
        (Some(2), Some("v2: new"))
    );
    let _ = dev.kill();
    let _ = dev.wait();
}

/// The README's "Writing a workflow" commands, run as written (with
/// `runway` on the PATH) from an empty directory outside the repository:
/// every one succeeds and the run prints its greeting. `runway dev` keeps
/// serving, so it is left to its own test.
#[test]
fn the_readmes_first_workflow_commands_work_as_written() {
    let readme = std::fs::read_to_string(support::root().join("README.md")).unwrap();
    let section = readme
        .split("## Writing a workflow")
        .nth(1)
        .expect("the README has a Writing a workflow section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in it");
    let bin = Path::new(env!("CARGO_BIN_EXE_runway")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cwd = dir.path().to_path_buf();
    let mut ran = Vec::new();
    for line in block.lines() {
        // Comments start at " #" (no command here has a '#' of its own).
        let command = line.split(" #").next().unwrap().trim();
        if command.is_empty() || command.starts_with("runway dev") {
            continue;
        }
        if let Some(to) = command.strip_prefix("cd ") {
            cwd = cwd.join(to);
            continue;
        }
        let out = Command::new("bash")
            .args(["-c", command])
            .current_dir(&cwd)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("RUNWAY_DATA_DIR")
            .env_remove("RUNWAY_SERVER")
            .env(
                "CARGO_TARGET_DIR",
                support::root().join("target").join("author"),
            )
            .output()
            .unwrap();
        ran.push((command.to_owned(), ok(out)));
    }
    let commands: Vec<&str> = ran.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(commands.len(), 5, "{commands:?}");
    let (_, tested) = ran.iter().find(|(c, _)| c == "runway test").unwrap();
    assert_eq!(passed_tests(tested), 2, "{tested}");
    let (last, printed) = ran.last().unwrap();
    assert!(last.starts_with("runway run"), "{last}");
    assert!(printed.contains("Hello, Ada!"), "{printed}");
}

/// The test harness (`runway_sdk::testing` through `runway test`): a
/// crate's tests run its component on the engine in a scripted world — a
/// day's sleep and a signal in well under a second, scripted secrets,
/// model, HTTP and child answers as the guest sees them, the manifest's
/// egress rules still in force — and an unscripted call fails its test
/// with a message naming the call.
#[test]
fn the_harness_runs_a_crate_s_tests_on_the_engine_in_a_scripted_world() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("harness-demo");
    copy_dir(&support::root().join("tests/harness-crate"), &crate_dir);
    let cargo_toml = crate_dir.join("Cargo.toml");
    let sdk = support::root().join("guest-sdk");
    let text = std::fs::read_to_string(&cargo_toml)
        .unwrap()
        .replace("../../guest-sdk", sdk.to_str().unwrap());
    std::fs::write(&cargo_toml, text).unwrap();

    let out = ok(runway(&crate_dir).arg("test").output().unwrap());
    assert_eq!(passed_tests(&out), 6, "{out}");
    let took = |test: &str| -> u64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("test {test} ... ok (")))
            .unwrap_or_else(|| panic!("no {test} in {out}"));
        line.rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(" ms)")
            .parse()
            .unwrap()
    };
    let slept = took("a_day_of_sleep_and_a_signal_take_no_time");
    // A day of durable sleep was skipped: seconds at most (a cold compile
    // cache and a busy machine included), never the day.
    assert!(slept < 20_000, "a day's sleep took {slept} ms");
    assert!(
        out.contains("test unscripted_model_call ... ignored"),
        "{out}"
    );

    // The one that fails on purpose: its panic names the call.
    let out = runway(&crate_dir)
        .args(["test", ".", "--", "unscripted", "--", "--ignored"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("test unscripted_model_call ... FAILED")
            && stdout.contains("the run made calls this World has no answer for")
            && stdout.contains(r#"model call to "default", last message "Say something.""#)
            && stdout.contains("tests/workflow.rs"),
        "{stdout}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
