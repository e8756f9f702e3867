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
    assert_eq!(waiting["status"], "waiting-signal", "{waiting}");
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
