//! End-to-end tests of `runway show` and `runway artifacts`: the real
//! binary on a real data directory, then the same runs through a real
//! `runway serve` on that directory (`--server`), against what its API
//! answers.

mod support;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A token of the `read` scope: both commands only read.
const READER: &str = "tok-show-reader-3f9a1c";

use support::DataDir as Data;

/// Helpers over a data directory.
trait Examples {
    fn exec(&self, example: &str, input: &str) -> (String, Option<i32>);
    fn deploy(&self, example: &str);
}

impl Examples for Data {
    /// `runway exec` of an example with `input`; the run's id and the exit code.
    fn exec(&self, example: &str, input: &str) -> (String, Option<i32>) {
        let wasm = support::wasm(example);
        let manifest = support::manifest_path(example);
        let out = self.run(&[
            "exec",
            s(&wasm),
            "--manifest",
            s(&manifest),
            "--input",
            input,
            "--json",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("exec {example} printed no JSON ({e}): {}", text(&out)));
        (v["run_id"].as_str().unwrap().to_owned(), out.status.code())
    }

    fn deploy(&self, example: &str) {
        let wasm = support::wasm(example);
        let manifest = support::manifest_path(example);
        support::ok(self.run(&["deploy", s(&wasm), "--manifest", s(&manifest)]));
    }
}

/// The binary, with nothing from the caller's environment choosing a
/// data directory or a server.
fn runway(args: &[&str]) -> Command {
    support::runway_cmd(args)
}

/// `runway serve` on a data directory, killed when dropped (also when a
/// test fails).
struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(data: &Data) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tokens = format!("reader:read:{}", hex::encode(Sha256::digest(READER)));
        let child = runway(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data.path())
            .env("RUNWAY_API_TOKENS", tokens)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let t0 = Instant::now();
        while server.get("/readyz").await.status() != 200 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the server never came up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    /// `runway --server BASE --token READER ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        runway(&["--server", &self.base, "--token", READER])
            .args(args)
            .output()
            .expect("running runway")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        loop {
            match self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(READER)
                .send()
                .await
            {
                Ok(res) => return res,
                // Not listening yet.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// stdout parsed as JSON.
fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON printed ({e}): {}", text(out)))
}

/// The value of `show`'s `label` line (the label, spaces, the value).
fn field<'a>(shown: &'a str, label: &str) -> Option<&'a str> {
    shown.lines().find_map(|l| {
        let rest = l.strip_prefix(label)?;
        rest.starts_with("  ").then(|| rest.trim())
    })
}

/// The lines of `shown` after the heading `title`, up to the next blank line.
fn section<'a>(shown: &'a str, title: &str) -> Vec<&'a str> {
    shown
        .lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

/// Each line's whitespace-separated words.
fn words(lines: &[&str]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_of_a_completed_run_is_the_same_embedded_and_from_a_server() {
    let data = Data::new();
    let (id, code) = data.exec("steps", r#"{"count":3}"#);
    assert_eq!(code, Some(0));

    let out = data.run(&["show", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = stdout(&out);
    assert_eq!(field(&shown, "run"), Some(id.as_str()), "{shown}");
    assert_eq!(field(&shown, "workflow"), Some("steps v1"), "{shown}");
    assert_eq!(field(&shown, "status"), Some("completed"), "{shown}");
    for label in ["created", "started", "finished"] {
        let at = field(&shown, label).unwrap_or_else(|| panic!("no {label}: {shown}"));
        assert!(at.starts_with("20") && at.len() == 23, "{label} {at:?}");
    }
    let took = field(&shown, "duration").unwrap();
    assert!(took.ends_with(" ms") && took != "-", "{took:?}");
    let usage = field(&shown, "usage").unwrap();
    assert!(
        usage.starts_with("fuel ") && usage.contains("peak memory"),
        "{usage}"
    );
    assert!(!usage.starts_with("fuel 0,"), "{usage}");
    assert_eq!(field(&shown, "models"), Some("none"));
    assert_eq!(field(&shown, "parent"), None, "{shown}");
    assert_eq!(field(&shown, "waits for"), None, "{shown}");
    assert_eq!(section(&shown, "input"), ["  {", "    \"count\": 3", "  }"]);
    let output = section(&shown, "output").join("\n");
    let output: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(output["count"], 3, "{shown}");
    assert!(!shown.contains("\nerror"), "{shown}");
    assert!(!shown.contains("\nchildren"), "{shown}");
    assert_eq!(
        words(&section(&shown, "artifacts (3)")),
        [
            vec!["NAME", "CONTENT", "TYPE", "SIZE"],
            vec!["step-0001.txt", "text/plain", "12", "B"],
            vec!["step-0002.txt", "text/plain", "12", "B"],
            vec!["step-0003.txt", "text/plain", "12", "B"],
        ]
    );

    let out = data.run(&["show", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let local = json_of(&out);
    assert_eq!(local["id"], json!(id));
    assert_eq!(local["status"], "completed");
    assert_eq!(local["output"], output);
    assert!(local.get("seed").is_none(), "the seed is never shown");
    assert_eq!(local["children"], json!([]));
    assert_eq!(local["children_detail"], json!([]));
    let names: Vec<&str> = local["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["step-0001.txt", "step-0002.txt", "step-0003.txt"]);

    // The same run through a server on the same directory: the same text,
    // the same object, and that object is the API's run plus two fields.
    let server = Server::start(&data).await;
    let out = server.run(&["show", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout(&out), shown);
    let out = server.run(&["show", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let remote = json_of(&out);
    assert_eq!(remote, local);
    let mut api = server.get_json(&format!("/v1/runs/{id}")).await;
    let artifacts = server.get_json(&format!("/v1/runs/{id}/artifacts")).await;
    assert_eq!(remote["artifacts"], artifacts);
    let api = api.as_object_mut().unwrap();
    api.insert("artifacts".into(), artifacts);
    api.insert("children_detail".into(), json!([]));
    assert_eq!(remote, Value::Object(api.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_listed_and_downloaded_byte_for_byte_as_the_api_serves_them() {
    let data = Data::new();
    let (id, _) = data.exec("steps", r#"{"count":2}"#);
    let out = data.run(&["artifacts", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = stdout(&out);
    let rows = words(&listed.lines().collect::<Vec<_>>());
    assert_eq!(
        rows[0],
        ["NAME", "CONTENT", "TYPE", "SIZE", "DIGEST", "CREATED"]
    );
    assert_eq!(rows.len(), 3, "{listed}");
    let local = json_of(&data.run(&["artifacts", &id, "--json"]));
    for (row, meta) in rows[1..].iter().zip(local.as_array().unwrap()) {
        let digest = meta["digest"].as_str().unwrap();
        assert_eq!(
            row[..4],
            [meta["name"].as_str().unwrap(), "text/plain", "12", "B"]
        );
        assert_eq!(row[4], digest[..12]);
        assert_eq!(meta["size"], 12);
    }

    let dir = tempfile::tempdir().unwrap();
    let to = |name: &str| -> PathBuf { dir.path().join(name) };
    let out = data.run(&["artifacts", &id, "step-0002.txt", "-o", s(&to("local.txt"))]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stdout.is_empty(), "the body went to the file only");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrote step-0002.txt (12 B, text/plain)"),
        "{}",
        text(&out)
    );
    let out = data.run(&["artifacts", &id, "step-0002.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let local_stdout = out.stdout;

    let server = Server::start(&data).await;
    let res = server
        .get(&format!("/v1/runs/{id}/artifacts/step-0002.txt"))
        .await;
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.unwrap().to_vec();
    assert_eq!(body, b"step 2 of 2\n");
    let api = server.get_json(&format!("/v1/runs/{id}/artifacts")).await;
    assert_eq!(api, local);
    assert_eq!(json_of(&server.run(&["artifacts", &id, "--json"])), api);
    assert_eq!(stdout(&server.run(&["artifacts", &id])), listed);

    let out = server.run(&[
        "artifacts",
        &id,
        "step-0002.txt",
        "-o",
        s(&to("remote.txt")),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let wrote = json_of(&out);
    assert_eq!(wrote["name"], "step-0002.txt");
    assert_eq!(wrote["path"], s(&to("remote.txt")));
    let out = server.run(&["artifacts", &id, "step-0002.txt", "-o", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (how, got) in [
        ("embedded -o FILE", std::fs::read(to("local.txt")).unwrap()),
        ("embedded to stdout", local_stdout),
        ("--server -o FILE", std::fs::read(to("remote.txt")).unwrap()),
        ("--server -o -", out.stdout),
    ] {
        assert_eq!(got, body, "{how}");
    }
    // The body on stdout leaves no room for a JSON report.
    let out = server.run(&["artifacts", &id, "step-0002.txt", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("-o FILE"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_for_a_signal_shows_what_it_waits_for_and_exits_1() {
    let data = Data::new();
    let (id, code) = data.exec("approval", r#"{"request":"ship"}"#);
    assert_eq!(code, Some(1));
    let out = data.run(&["show", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = stdout(&out);
    assert_eq!(field(&shown, "status"), Some("waiting_signal"), "{shown}");
    assert_eq!(field(&shown, "waits for"), Some("signal \"approve\""));
    assert!(
        shown.contains(&format!("send it with `runway signal {id} approve`")),
        "{shown}"
    );
    assert_eq!(field(&shown, "finished"), Some("-"));
    assert_eq!(field(&shown, "duration"), Some("-"));
    assert!(!shown.contains("\noutput"), "{shown}");
    assert_eq!(section(&shown, "artifacts (0)"), ["  none"]);
    let local = json_of(&data.run(&["show", &id, "--json"]));
    assert_eq!(local["wait"], json!({"for": "signal", "name": "approve"}));
    assert_eq!(local["status"], "waiting_signal");

    let server = Server::start(&data).await;
    let out = server.run(&["show", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let remote = stdout(&out);
    assert_eq!(field(&remote, "waits for"), Some("signal \"approve\""));
    // The hint names the server, so it reaches the same run when pasted.
    assert!(
        remote.contains(&format!(
            "send it with `runway --server {} signal {id} approve`",
            server.base
        )),
        "{remote}"
    );
    let out = server.run(&["show", &id, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json_of(&out)["wait"], local["wait"]);
}

#[test]
fn a_failed_run_shows_its_whole_error_message() {
    let data = Data::new();
    let (id, code) = data.exec("hostile", r#"{"attack":"panic"}"#);
    assert_eq!(code, Some(1));
    let out = data.run(&["show", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = stdout(&out);
    assert_eq!(field(&shown, "status"), Some("failed"));
    let error = section(&shown, "error TRAP").join("\n");
    // The stored message, every line of it (a blank one ends `section`).
    let stored = json_of(&data.run(&["show", &id, "--json"]))["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stored.lines().count() > 3, "{stored}");
    let first_part = stored.split("\n\n").next().unwrap();
    let indented: Vec<String> = first_part.lines().map(|l| format!("  {l}")).collect();
    assert_eq!(error, indented.join("\n"), "{shown}");
    for line in stored.lines().filter(|l| !l.is_empty()) {
        assert!(
            shown.contains(&format!("  {line}\n")),
            "{line:?} missing: {shown}"
        );
    }
    assert!(shown.contains("hostile.wasm!"), "the backtrace: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_lists_children_with_their_workflow_and_status_and_names_the_parent() {
    let data = Data::new();
    data.deploy("hello");
    let (id, code) = data.exec("fanout", r#"{"names":["Ada","Grace"]}"#);
    assert_eq!(code, Some(0));
    let local = json_of(&data.run(&["show", &id, "--json"]));
    let children = local["children"].as_array().unwrap().clone();
    assert_eq!(children.len(), 2, "{local}");
    let detail: Vec<Value> = children
        .iter()
        .map(|c| json!({"id": c, "workflow": "hello", "status": "completed"}))
        .collect();
    assert_eq!(local["children_detail"], json!(detail));

    let shown = stdout(&data.run(&["show", &id]));
    let rows = words(&section(&shown, "children (2)"));
    assert_eq!(rows[0], ["RUN", "WORKFLOW", "STATUS"]);
    for (row, child) in rows[1..].iter().zip(&children) {
        assert_eq!(row, &[child.as_str().unwrap(), "hello", "completed"]);
    }
    let child = children[0].as_str().unwrap();
    let out = data.run(&["show", child]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(field(&stdout(&out), "parent"), Some(id.as_str()));
    assert_eq!(field(&stdout(&out), "workflow"), Some("hello v1"));

    let server = Server::start(&data).await;
    assert_eq!(json_of(&server.run(&["show", &id, "--json"])), local);
    assert_eq!(stdout(&server.run(&["show", &id])), shown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_and_artifacts_are_command_errors_naming_them() {
    let data = Data::new();
    let (id, _) = data.exec("steps", r#"{"count":1}"#);
    let nobody = "run_01m8nt1cqqxj77xretrd6v3j4y";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("never.txt");
    let server = Server::start(&data).await;
    let cases: [(&[&str], &str); 5] = [
        (&["show", nobody], nobody),
        (&["show", nobody, "--json"], nobody),
        (&["artifacts", nobody], nobody),
        (&["artifacts", nobody, "step-0001.txt"], nobody),
        (
            &["artifacts", &id, "nope.txt", "-o", s(&file)],
            "has no artifact \"nope.txt\"",
        ),
    ];
    for (args, says) in cases {
        let out = server.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--server {args:?}: {}",
            text(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "--server {args:?}: {err}");
    }
    assert!(!file.exists(), "an unknown artifact leaves no file");
    drop(server);
    for (args, says) in cases {
        let out = data.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
    assert!(!file.exists(), "an unknown artifact leaves no file");
    // The id is checked before anything is read.
    let out = data.run(&["show", "not-a-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn show_and_artifacts_on_a_missing_data_dir_say_so_and_create_nothing() {
    let data = Data::new();
    let missing = data.path().join("not-here");
    for args in [
        &["show", "run_01m8nt1cqqxj77xretrd6v3j4y"][..],
        &["artifacts", "run_01m8nt1cqqxj77xretrd6v3j4y"],
    ] {
        let out = runway(&["--data-dir", s(&missing)])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out).contains("--server"), "{}", text(&out));
        assert!(!missing.exists(), "{args:?} created the data directory");
    }
}
