//! Shared by the end-to-end tests and the benchmarks: builds the example
//! guests for wasm32-wasip2 once per process, and finds them.

#![allow(dead_code)]

pub mod provider;
pub mod service;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

const GUESTS: &[&str] = &[
    "hello",
    "report",
    "hostile",
    "not-a-workflow",
    "sleepy",
    "approval",
    "fanout",
    "steps",
    "collect",
    "summarize",
    "review",
    "pr-review",
    "fetch",
    "steps-reordered",
];

/// Builds every example guest (once per process) and returns the directory
/// holding the `.wasm` files.
pub fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = root();
        // A target directory of its own: the outer cargo holds the lock on
        // the default one while tests run.
        let target = root.join("target").join("guest");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root).args([
            "build",
            "--quiet",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ]);
        cmd.arg(&target);
        for g in GUESTS {
            cmd.args(["-p", g]);
        }
        let status = cmd.status().expect("running cargo to build the example guests");
        assert!(
            status.success(),
            "building the example guests failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)"
        );
        target.join("wasm32-wasip2").join("guest")
    })
}

/// Path of an example's component (a library crate's `-` becomes `_`).
pub fn wasm(name: &str) -> PathBuf {
    let path = guest_dir().join(format!("{name}.wasm"));
    if path.exists() {
        return path;
    }
    guest_dir().join(format!("{}.wasm", name.replace('-', "_")))
}

/// Bytes of an example's component.
pub fn wasm_bytes(name: &str) -> Vec<u8> {
    std::fs::read(wasm(name)).expect("reading an example component")
}

/// Path of an example's manifest.
pub fn manifest_path(name: &str) -> PathBuf {
    root().join("examples").join(name).join("runway.toml")
}

/// Text of an example's manifest.
pub fn manifest(name: &str) -> String {
    std::fs::read_to_string(manifest_path(name)).expect("reading an example manifest")
}

/// Every file under `dir`, recursively (none if `dir` does not exist).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
