//! Authoring from an empty directory, outside this repository: `runway
//! new` writes a crate for each template that `runway build` turns into
//! `dist/SLUG.wasm` beside its manifest, which deploys without
//! `--manifest` and runs.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

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

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
    assert_eq!(commands.len(), 4, "{commands:?}");
    let (last, printed) = ran.last().unwrap();
    assert!(last.starts_with("runway run"), "{last}");
    assert!(printed.contains("Hello, Ada!"), "{printed}");
}
