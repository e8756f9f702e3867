//! The web console in a real browser: Debian's Chromium, driven by
//! playwright-core (tests/console/console.mjs), against the real `runway
//! serve` with real components — a run started from the form and watched
//! live, a signal and a cancel from the page, a fan-out's tree walked both
//! ways, artifacts downloaded and previewed (HTML never rendered), a read
//! token without controls, and the runs list following a run the CLI
//! started. Screenshots land in target/console-screenshots.
//!
//! Set up by `scripts/setup-browser.sh` (which `scripts/test.sh` runs).

mod support;

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const ADMIN: &str = "console-admin-7e2c9b";
const READ: &str = "console-read-41d8a6";

/// A `runway serve` child process, killed when dropped.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &std::path::Path, log: &std::path::Path) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tokens = format!(
        "admin:admin:{},reader:read:{}",
        hex::encode(Sha256::digest(ADMIN.as_bytes())),
        hex::encode(Sha256::digest(READ.as_bytes()))
    );
    let child = Command::new(env!("CARGO_BIN_EXE_runway"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUNWAY_API_TOKENS", tokens)
        .env("RUNWAY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Serve { child, base }
}

fn deploy(base: &str, example: &str) {
    support::ok(
        Command::new(env!("CARGO_BIN_EXE_runway"))
            .args(["--server", base, "--token", ADMIN, "deploy"])
            .arg(support::wasm(example))
            .arg("--manifest")
            .arg(support::manifest_path(example))
            .output()
            .unwrap(),
    );
}

/// Chromium and playwright-core, or a panic that says how to get them.
fn browser_tools() -> PathBuf {
    let root = support::root();
    let chromium =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        chromium.exists()
            && root
                .join("tests/console/node_modules/playwright-core")
                .exists(),
        "the console tests need Chromium and playwright-core: run ./scripts/setup-browser.sh"
    );
    chromium
}

#[test]
fn the_console_in_a_real_browser() {
    let chromium = browser_tools();
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let s = serve(&dir.path().join("data"), &log);
    for example in ["steps", "sleepy", "approval", "fanout", "hello", "release"] {
        deploy(&s.base, example);
    }
    let shots = support::root().join("target/console-screenshots");
    let out = Command::new("node")
        .arg(support::root().join("tests/console/console.mjs"))
        .env("RUNWAY_BASE", &s.base)
        .env("RUNWAY_ADMIN_TOKEN", ADMIN)
        .env("RUNWAY_READ_TOKEN", READ)
        .env("RUNWAY_BIN", env!("CARGO_BIN_EXE_runway"))
        .env("RUNWAY_SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("running node");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{printed}");
    assert!(
        out.status.success(),
        "{printed}\nserver log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Every scenario ran (a filter left in by mistake would skip some).
    assert_eq!(
        printed.matches("\nok ").count() + usize::from(printed.starts_with("ok ")),
        7,
        "{printed}"
    );
    for name in [
        "run-1280x800",
        "run-390x844",
        "runs-1280x800",
        "runs-390x844",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}");
    }
    // Tokens never reach the server's log.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!logged.contains(ADMIN) && !logged.contains(READ));
}
