//! End-to-end tests of `runway approvals`, `runway approve` and `runway
//! audit` (and of the `trigger` line of `runway show`): the real binary on
//! a real data directory, then through a real `runway serve` with tokens
//! (`--server`), against what its API answers.

mod support;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The local user the embedded commands act as (`user:NAME`).
const USER: &str = "ada-approvals-test";
/// An `admin` token: deploys, starts runs, reads the audit trail.
const ROOT: &str = "tok-approvals-root-5c2e1b";
/// An `approve` token: lists and decides approvals.
const ALICE: &str = "tok-approvals-alice-9d41f0";
/// A `read` token: lists approvals, decides none.
const BOB: &str = "tok-approvals-bob-07ac3e";

/// The binary, with a known local user, and nothing from the caller's
/// environment choosing a data directory or a server.
fn runway(args: &[&str]) -> Command {
    let mut cmd = support::runway_cmd(args);
    cmd.env("USER", USER);
    cmd
}

/// A data directory the binary drives as the known local user.
fn data_dir() -> support::DataDir {
    support::DataDir::new().with_env("USER", USER)
}

/// `runway serve` on a fresh data directory with the three tokens, killed
/// when dropped (also when a test fails).
struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
    _data: support::DataDir,
}

impl Server {
    async fn start() -> Server {
        let data = data_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sha = |t: &str| hex::encode(Sha256::digest(t));
        let tokens = format!(
            "root:admin:{},alice:approve:{},bob:read:{}",
            sha(ROOT),
            sha(ALICE),
            sha(BOB)
        );
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
            _data: data,
        };
        let t0 = Instant::now();
        loop {
            let up = server
                .http
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if up {
                break server;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the server never came up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `runway --server BASE --token TOKEN ARGS`.
    fn run(&self, token: &str, args: &[&str]) -> Output {
        runway(&["--server", &self.base, "--token", token])
            .args(args)
            .output()
            .expect("running runway")
    }

    async fn get(&self, path: &str) -> Value {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ROOT)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    /// Starts a run of `release` with `input` as ROOT; its id.
    async fn start_run(&self, input: Value) -> String {
        let res = self
            .http
            .post(format!("{}/v1/workflows/release/runs", self.base))
            .bearer_auth(ROOT)
            .json(&input)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "start: {}", res.status());
        let v: Value = res.json().await.unwrap();
        v["id"].as_str().expect("a run id").to_owned()
    }

    /// The run once its status is `status` (within 30 s).
    async fn until(&self, id: &str, status: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let run = self.get(&format!("/v1/runs/{id}")).await;
            if run["status"] == status {
                return run;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "run {id} never reached {status}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8 output")
}

fn text(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// stdout parsed as JSON.
fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON printed ({e}): {}", text(out)))
}

/// The output of a command that must have exited 0.
fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

/// stderr of a command that must have failed as a command (exit 2) with
/// `error: CODE: …`.
fn refused(out: Output, code: &str) -> String {
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        err.starts_with(&format!("error: {code}: ")),
        "expected {code}: {err}"
    );
    err
}

/// Each line's whitespace-separated words.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// The value of `show`'s `label` line (the label, spaces, the value).
fn field<'a>(shown: &'a str, label: &str) -> Option<&'a str> {
    shown.lines().find_map(|l| {
        let rest = l.strip_prefix(label)?;
        rest.starts_with("  ").then(|| rest.trim())
    })
}

#[test]
fn embedded_approvals_are_listed_checked_and_decided() {
    let data = data_dir();
    let wasm = support::wasm("release");
    let manifest = support::manifest_path("release");
    ok(data.run(&["deploy", s(&wasm), "--manifest", s(&manifest)]));

    // The run asks, and the command comes back with it waiting.
    let out = data.run(&[
        "run",
        "release",
        "--input",
        r#"{"kind":"decision"}"#,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let started = json_of(&out);
    assert_eq!(started["status"], "waiting_approval", "{started}");
    let id = started["run_id"].as_str().unwrap().to_owned();

    let listed = json_of(&ok(data.run(&["approvals", "--json"])));
    let list = listed.as_array().expect("an array");
    assert_eq!(list.len(), 1, "{listed}");
    let a = &list[0];
    assert_eq!(a["run_id"], json!(id));
    assert_eq!(
        (&a["workflow"], &a["name"], &a["status"]),
        (&json!("release"), &json!("ship"), &json!("pending"))
    );
    assert_eq!(a["spec"]["kind"], "decision");
    assert_eq!(a["spec"]["options"], json!(["a", "b", "c"]));
    assert!(a.get("decision").is_none(), "{a}");
    // The filters filter.
    for args in [
        &["--status", "decided"][..],
        &["--status", "timed_out"],
        &["--workflow", "hello"],
    ] {
        let mut all = vec!["approvals", "--json"];
        all.extend_from_slice(args);
        assert_eq!(json_of(&ok(data.run(&all))), json!([]), "{args:?}");
    }
    let mine = json_of(&ok(data.run(&[
        "approvals",
        "--status",
        "pending",
        "--run",
        &id,
        "--mine",
        "--json",
    ])));
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");

    let out = ok(data.run(&["approvals"]));
    let table = stdout(&out);
    let table = rows(&table);
    assert_eq!(
        table[0],
        [
            "RUN", "WORKFLOW", "NAME", "KIND", "STATUS", "ASKED", "PROMPT", "BY"
        ]
    );
    assert_eq!(table.len(), 2, "{table:?}");
    assert_eq!(
        table[1][..5],
        [id.as_str(), "release", "ship", "decision", "pending"]
    );
    // ASKED is a date and a time; then the prompt, and no one decided it.
    assert_eq!(table[1][7..], ["Release", "v42", "(decision)?"]);

    let shown = stdout(&data.run(&["show", &id]));
    assert_eq!(
        field(&shown, "waits for"),
        Some("approval \"ship\""),
        "{shown}"
    );
    let trigger = format!("cli (user:{USER})");
    assert_eq!(field(&shown, "trigger"), Some(trigger.as_str()), "{shown}");

    // An answer that is not among the options, or of another kind: refused,
    // nothing decided.
    let err = refused(
        data.run(&["approve", &id, "ship", "--option", "z"]),
        "INVALID_DECISION",
    );
    assert!(err.contains("\"z\" is not one of the options"), "{err}");
    refused(
        data.run(&["approve", &id, "ship", "--approve"]),
        "INVALID_DECISION",
    );
    refused(
        data.run(&["approve", &id, "nope", "--option", "a"]),
        "APPROVAL_NOT_FOUND",
    );
    // Exactly one choice flag.
    for args in [
        &["approve", &id, "ship"][..],
        &["approve", &id, "ship", "--option", "a", "--approve"],
    ] {
        let out = data.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains("Usage"), "{}", text(&out));
    }
    let still = json_of(&ok(data.run(&[
        "approvals",
        "--status",
        "pending",
        "--json",
    ])));
    assert_eq!(still.as_array().map(Vec::len), Some(1), "{still}");

    // The answer: decided, and the run goes on to its end.
    let out = ok(data.run(&[
        "approve",
        &id,
        "ship",
        "--option",
        "b",
        "--comment",
        "looks good",
    ]));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "decided ship of {id}: b (by user:{USER}, comment \"looks good\")"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{id} completed")), "{err}");
    let output: Value = serde_json::from_slice(&out.stdout).expect("the run's output");
    assert_eq!(output["decision"]["option"], "b", "{output}");
    assert_eq!(output["decision"]["by"], json!(format!("user:{USER}")));
    assert_eq!(output["decision"]["comment"], "looks good");

    let shown = json_of(&data.run(&["show", &id, "--json"]));
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["output"], output);
    assert_eq!(
        shown["trigger"],
        json!({"kind": "cli", "by": format!("user:{USER}")})
    );

    let decided = json_of(&ok(data.run(&[
        "approvals",
        "--status",
        "decided",
        "--json",
    ])));
    assert_eq!(decided[0]["run_id"], json!(id), "{decided}");
    assert_eq!(decided[0]["decision"]["option"], "b", "{decided}");
    let table = stdout(&ok(data.run(&["approvals", "--status", "decided"])));
    let by = format!("user:{USER}");
    assert_eq!(rows(&table)[1].last(), Some(&by.as_str()), "{table}");
    assert_eq!(
        json_of(&ok(data.run(&[
            "approvals",
            "--status",
            "pending",
            "--json"
        ]))),
        json!([])
    );

    // The same answer again is a duplicate; another one is refused.
    let out = ok(data.run(&["approve", &id, "ship", "--option", "b"]));
    assert!(
        stderr(&out).contains("was already decided that way: b"),
        "{}",
        text(&out)
    );
    let again = json_of(&ok(
        data.run(&["approve", &id, "ship", "--option", "b", "--json"])
    ));
    assert_eq!(
        (&again["duplicate"], &again["option"], &again["status"]),
        (&json!(true), &json!("b"), &json!("completed")),
        "{again}"
    );
    refused(
        data.run(&["approve", &id, "ship", "--option", "c"]),
        "APPROVAL_DECIDED",
    );

    // A selection takes its options comma-separated, in order.
    let out = data.run(&[
        "run",
        "release",
        "--input",
        r#"{"kind":"select"}"#,
        "--json",
    ]);
    let id = json_of(&out)["run_id"].as_str().unwrap().to_owned();
    let picked = json_of(&ok(data.run(&[
        "approve",
        &id,
        "ship",
        "--options",
        "c,a",
        "--json",
    ])));
    assert_eq!(
        (&picked["options"], &picked["duplicate"], &picked["status"]),
        (&json!(["c", "a"]), &json!(false), &json!("completed")),
        "{picked}"
    );
    let shown = json_of(&data.run(&["show", &id, "--json"]));
    assert_eq!(shown["output"]["decision"]["options"], json!(["c", "a"]));

    // The audit trail is a server's.
    let out = data.run(&["audit"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--server"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_through_a_server_are_decided_once_and_audited() {
    let server = Server::start().await;
    let wasm = support::wasm("release");
    let manifest = support::manifest_path("release");
    ok(server.run(ROOT, &["deploy", s(&wasm), "--manifest", s(&manifest)]));
    let id = server.start_run(json!({"kind": "gate"})).await;
    server.until(&id, "waiting_approval").await;

    // Listed as the API lists it.
    let out = ok(server.run(ALICE, &["approvals", "--status", "pending"]));
    let table = stdout(&out);
    let table = rows(&table);
    assert_eq!(table.len(), 2, "{table:?}");
    assert_eq!(
        table[1][..5],
        [id.as_str(), "release", "ship", "gate", "pending"]
    );
    assert_eq!(table[1][7..], ["Release", "v42", "(gate)?"]);
    let listed = json_of(&ok(server.run(ALICE, &["approvals", "--json"])));
    let api = server.get("/v1/approvals").await;
    assert_eq!(listed, api["approvals"], "{listed}");
    assert_eq!(listed[0]["run_id"], json!(id));
    // --mine: alice may decide it, bob (read) may only see it.
    let mine = json_of(&ok(server.run(ALICE, &["approvals", "--mine", "--json"])));
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    let bobs = json_of(&ok(server.run(BOB, &["approvals", "--mine", "--json"])));
    assert_eq!(bobs, json!([]));
    let seen = json_of(&ok(server.run(BOB, &["approvals", "--json"])));
    assert_eq!(seen.as_array().map(Vec::len), Some(1), "{seen}");
    let none = json_of(&ok(
        server.run(ALICE, &["approvals", "--status", "decided", "--json"])
    ));
    assert_eq!(none, json!([]));

    // Refusals carry the API's code.
    refused(
        server.run(ALICE, &["approve", &id, "ship", "--option", "a"]),
        "INVALID_DECISION",
    );
    refused(
        server.run(ALICE, &["approve", &id, "nope", "--approve"]),
        "APPROVAL_NOT_FOUND",
    );
    let out = server.run(BOB, &["approve", &id, "ship", "--approve"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Decided once; the same again is a duplicate, another answer refused.
    let out = ok(server.run(
        ALICE,
        &["approve", &id, "ship", "--approve", "--comment", "ok"],
    ));
    assert_eq!(
        stderr(&out).trim_end(),
        format!("decided ship of {id}: approved (by token:alice, comment \"ok\")"),
    );
    let out = ok(server.run(ALICE, &["approve", &id, "ship", "--approve"]));
    assert!(
        stderr(&out).contains(&format!(
            "ship of {id} was already decided that way: approved (by token:alice, comment \"ok\"); nothing changed"
        )),
        "{}",
        text(&out)
    );
    let again = json_of(&ok(
        server.run(ALICE, &["approve", &id, "ship", "--approve", "--json"])
    ));
    assert_eq!(
        (&again["duplicate"], &again["approved"], &again["by"]),
        (&json!(true), &json!(true), &json!("token:alice")),
        "{again}"
    );
    refused(
        server.run(ALICE, &["approve", &id, "ship", "--deny"]),
        "APPROVAL_DECIDED",
    );

    let run = server.until(&id, "completed").await;
    assert_eq!(run["output"]["decision"]["approved"], true, "{run}");
    assert_eq!(run["output"]["decision"]["comment"], "ok", "{run}");
    let decided = stdout(&ok(server.run(ALICE, &["approvals", "--status", "decided"])));
    assert_eq!(rows(&decided)[1].last(), Some(&"token:alice"), "{decided}");

    // `show` says who started the run, and who asked to cancel one.
    let shown = stdout(&server.run(BOB, &["show", &id]));
    assert_eq!(
        field(&shown, "trigger"),
        Some("api (token:root)"),
        "{shown}"
    );
    assert_eq!(field(&shown, "cancel"), None, "{shown}");
    let other = server
        .start_run(json!({"kind": "gate", "name": "other"}))
        .await;
    server.until(&other, "waiting_approval").await;
    ok(server.run(ROOT, &["cancel", &other]));
    server.until(&other, "cancelled").await;
    let shown = stdout(&server.run(BOB, &["show", &other]));
    assert_eq!(
        field(&shown, "cancel"),
        Some("requested by token:root"),
        "{shown}"
    );

    // The audit trail: each decision with its principal and outcome.
    let path = format!("/v1/runs/{id}/approvals/ship");
    let out = ok(server.run(ROOT, &["audit", "--limit", "1000"]));
    let table = stdout(&out);
    let lines = rows(&table);
    assert_eq!(
        lines[0],
        [
            "SEQ",
            "TIME",
            "PRINCIPAL",
            "METHOD",
            "PATH",
            "STATUS",
            "OUTCOME"
        ]
    );
    // SEQ, a date and a time, then the rest.
    let posts: Vec<&[&str]> = lines[1..]
        .iter()
        .filter(|l| l.get(5) == Some(&path.as_str()))
        .map(|l| &l[3..])
        .collect();
    assert_eq!(
        posts,
        [
            // Newest first: --deny, the two repeats, the decision, the
            // refused ones before it.
            &["token:alice", "POST", &path, "409", "failed"][..],
            &["token:alice", "POST", &path, "200", "ok"],
            &["token:alice", "POST", &path, "200", "ok"],
            &["token:alice", "POST", &path, "202", "ok"],
            &["token:bob", "POST", &path, "403", "refused"],
            &["token:alice", "POST", &path, "422", "failed"],
        ],
        "{table}"
    );
    let api = server.get("/v1/audit?limit=1000").await;
    let entries = json_of(&ok(
        server.run(ROOT, &["audit", "--limit", "1000", "--json"])
    ));
    assert_eq!(entries, api["entries"]);
    let first = json_of(&ok(server.run(ROOT, &["audit", "--limit", "2", "--json"])));
    assert_eq!(first.as_array().map(Vec::len), Some(2), "{first}");
    assert_eq!(first[0], api["entries"][0]);
    // The next page starts where the first ended.
    let out = ok(server.run(ROOT, &["audit", "--limit", "2"]));
    let hint = format!("--before {}", api["entries"][1]["seq"]);
    assert!(stderr(&out).contains(&hint), "{}", text(&out));
    let before = api["entries"][1]["seq"].to_string();
    let next = json_of(&ok(server.run(
        ROOT,
        &["audit", "--limit", "1", "--before", &before, "--json"],
    )));
    assert_eq!(next, json!([api["entries"][2]]));
    // Only an admin reads it.
    let out = server.run(ALICE, &["audit"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!stdout(&out).contains("PRINCIPAL"), "{}", text(&out));
}
