//! Shared by the end-to-end tests and the benchmarks: builds the example
//! guests for wasm32-wasip2 once per process, and finds them.

#![allow(dead_code)]

pub mod mcp;
pub mod oauth;
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
    "release",
    "fanout",
    "steps",
    "collect",
    "summarize",
    "review",
    "pr-review",
    "fetch",
    "steps-reordered",
    "triage",
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

/// Which store the suites run on: `RUNWAY_TEST_STORE=postgres` runs them
/// on PostgreSQL (`scripts/test.sh` runs the durable, server and models
/// suites both ways), anything else on redb in the data directory.
pub fn on_postgres() -> bool {
    std::env::var("RUNWAY_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// A host configuration on `dir`, with the tables in the store under test:
/// on PostgreSQL, a database of the data directory's own (the same one
/// every time the directory is opened again, as a restart would).
pub fn host_config(dir: &Path) -> runway::HostConfig {
    let mut config = runway::HostConfig::new(dir);
    if on_postgres() {
        config.store_url = Some(postgres_database(dir));
    }
    config
}

/// The URL of an empty database made for `dir` (made once per directory).
pub fn postgres_database(dir: &Path) -> String {
    use sha2::Digest;
    static MADE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let digest = sha2::Sha256::digest(dir.to_string_lossy().as_bytes());
    let name = format!("runway_test_{}", hex::encode(&digest[..10]));
    let base = postgres_server();
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !made.iter().any(|d| d == dir) {
        let (base_url, db) = (base.clone(), name.clone());
        // The client blocks on a runtime of its own: not on a test's.
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&base_url, postgres::NoTls)
                .expect("connecting to the test PostgreSQL");
            for sql in [
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                format!("CREATE DATABASE {db}"),
            ] {
                client
                    .batch_execute(&sql)
                    .expect("creating a test database");
            }
        })
        .join()
        .expect("creating a test database");
        made.push(dir.to_path_buf());
    }
    format!(
        "{}/{name}",
        base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b)
    )
}

/// The test PostgreSQL server's URL (its `postgres` database):
/// `RUNWAY_TEST_POSTGRES`, or a cluster `scripts/postgres.sh` starts for
/// this checkout in the temp directory, on a port of its own (left running
/// for the next test process; `scripts/test.sh` stops it).
pub fn postgres_server() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("RUNWAY_TEST_POSTGRES") {
            return url;
        }
        let root = root();
        let (dir, port) = test_cluster();
        let out = Command::new(root.join("scripts/postgres.sh"))
            .arg("start")
            .arg(dir)
            .arg(port.to_string())
            .output()
            .expect("running scripts/postgres.sh");
        assert!(
            out.status.success(),
            "starting PostgreSQL failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
    .clone()
}

/// Where this checkout's test cluster lives (somewhere the `postgres` user
/// can reach) and its port.
pub fn test_cluster() -> (PathBuf, u16) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(root().to_string_lossy().as_bytes());
    let tag = hex::encode(&digest[..6]);
    let port = 40000 + u16::from_le_bytes([digest[6], digest[7]]) % 20000;
    (
        std::env::temp_dir().join(format!("runway-test-pg-{tag}")),
        port,
    )
}

/// The stdout of a command that must have succeeded (else its output, in
/// the panic).
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The `runway` binary, with no colour and nothing from the caller's
/// environment choosing a data directory, a server, a token or a store.
pub fn runway_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUNWAY_LOG")
        .env_remove("RUNWAY_DATA_DIR")
        .env_remove("RUNWAY_SERVER")
        .env_remove("RUNWAY_TOKEN")
        .env_remove("RUNWAY_STORE");
    cmd
}

/// `runway` on data directory `dir` with its `runway-host.toml`, logging
/// at `info` (stderr).
pub fn runway_on(dir: &Path) -> Command {
    let mut cmd = runway_cmd(&[]);
    cmd.arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(dir.join("runway-host.toml"))
        .env("RUNWAY_LOG", "info");
    cmd
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `runway serve` on data directory `dir` at `127.0.0.1:port`, its stderr
/// appended to `log`; returns once `/healthz` answers.
pub async fn serve_on(dir: &Path, port: u16, log: &Path) -> std::process::Child {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = runway_on(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .is_err()
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the server never came up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child
}

/// A temporary data directory, driven by the `runway` binary in embedded
/// mode.
pub struct DataDir {
    dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl DataDir {
    pub fn new() -> DataDir {
        guest_dir();
        DataDir {
            dir: tempfile::tempdir().unwrap(),
            envs: Vec::new(),
        }
    }

    /// Every command on it also gets `key=value` in its environment.
    pub fn with_env(mut self, key: &str, value: &str) -> DataDir {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `runway ARGS` on this data directory.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        runway_cmd(args)
            .env("RUNWAY_DATA_DIR", self.path())
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("running runway")
    }
}
