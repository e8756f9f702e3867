//! First-class approvals through the real server: each kind decided
//! validly and invalidly (nothing recorded for a refused decision), who may
//! decide, a decision surviving SIGKILL of the server before and after the
//! run took it, a timeout's default outcome, and a human wait outliving
//! the execution-time budget.

mod support;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKENS: &[(&str, &str)] = &[
    ("admin", "admin"),
    ("alice", "approve"),
    ("bob", "approve:release"),
    ("carol", "approve:other"),
    ("ops", "execute"),
];

/// A `runway serve` on a data directory, killed when dropped.
struct Serve {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start(data: &std::path::Path, config: Option<&std::path::Path>) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tokens: Vec<String> = TOKENS
            .iter()
            .map(|(t, s)| format!("{t}:{s}:{}", hex::encode(Sha256::digest(t.as_bytes()))))
            .collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
        cmd.arg("--data-dir").arg(data);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let child = cmd
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUNWAY_API_TOKENS", tokens.join(","))
            .env("RUNWAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let t0 = Instant::now();
        while s
            .http
            .get(format!("{}/readyz", s.base))
            .send()
            .await
            .is_err()
        {
            assert!(t0.elapsed() < Duration::from_secs(20), "serve never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        s
    }

    async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (st, v) = self.call(reqwest::Method::GET, "admin", path, None).await;
        assert_eq!(st, 200, "{path}: {v}");
        v
    }

    async fn decide(&self, token: &str, run: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            token,
            &format!("/v1/runs/{run}/approvals/ship"),
            Some(body),
        )
        .await
    }

    async fn start_release(&self, input: Value) -> String {
        let (st, v) = self
            .call(
                reqwest::Method::POST,
                "admin",
                "/v1/workflows/release/runs",
                Some(input),
            )
            .await;
        assert!(st < 300, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    async fn until(&self, run: &str, status: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let r = self.get(&format!("/v1/runs/{run}")).await;
            if r["status"] == status {
                return r;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "never {status}: {r}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kinds(&self, run: &str) -> Vec<String> {
        let ev = self.get(&format!("/v1/runs/{run}/events?limit=1000")).await;
        ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn deploy(base: &str) {
    support::ok(
        Command::new(env!("CARGO_BIN_EXE_runway"))
            .args(["--server", base, "--token", "admin", "deploy"])
            .arg(support::wasm("release"))
            .arg("--manifest")
            .arg(support::manifest_path("release"))
            .output()
            .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_is_decided_validly_and_invalid_decisions_record_nothing() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(&dir.path().join("data"), None).await;
    deploy(&s.base);
    let cases = [
        (
            "gate",
            vec![
                json!({ "option": "a" }),
                json!({ "approved": "yes" }),
                json!({}),
            ],
            json!({ "approved": true, "comment": "ship it" }),
        ),
        (
            "decision",
            vec![
                json!({ "option": "z" }),
                json!({ "options": ["a"] }),
                json!({ "approved": true }),
            ],
            json!({ "option": "b" }),
        ),
        (
            "select",
            vec![
                json!({ "options": ["a"] }),
                json!({ "options": ["a", "a"] }),
                json!({ "options": ["a", "z"] }),
                json!({ "options": ["a", "b", "c"] }),
            ],
            json!({ "options": ["c", "a"] }),
        ),
        (
            "rank",
            vec![
                json!({ "options": ["a", "b"] }),
                json!({ "options": ["a", "b", "b"] }),
                json!({ "options": ["a", "b", "z"] }),
                json!({ "option": "a" }),
            ],
            json!({ "options": ["c", "a", "b"] }),
        ),
    ];
    for (kind, invalid, valid) in cases {
        let run = s.start_release(json!({ "kind": kind })).await;
        let waiting = s.until(&run, "waiting_approval").await;
        assert_eq!(waiting["wait"]["for"], "approval", "{waiting}");
        let pending = s
            .get(&format!("/v1/approvals?status=pending&run={run}"))
            .await;
        let a = &pending["approvals"][0];
        assert_eq!(
            (a["name"].as_str(), a["spec"]["kind"].as_str()),
            (Some("ship"), Some(kind)),
            "{pending}"
        );
        assert_eq!(a["spec"]["payload"], json!({ "version": 42 }));
        for bad in invalid {
            let (st, v) = s.decide("alice", &run, bad.clone()).await;
            assert_eq!(st, 422, "{kind} {bad}: {v}");
            assert_eq!(v["error"]["code"], "INVALID_DECISION", "{v}");
        }
        // Nothing was recorded: the run still waits, its inbox is empty.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            s.get(&format!("/v1/runs/{run}")).await["status"],
            "waiting_approval"
        );
        let (st, first) = s.decide("alice", &run, valid.clone()).await;
        assert_eq!(st, 202, "{kind}: {first}");
        assert_eq!(first["by"], "token:alice");
        let done = s.until(&run, "completed").await;
        let d = &done["output"]["decision"];
        assert_eq!(d["by"], "token:alice", "{done}");
        assert_eq!(d["timed_out"], false);
        for field in ["approved", "option", "options"] {
            if let Some(v) = valid.get(field) {
                assert_eq!(&d[field], v, "{kind}: {done}");
            }
        }
        // The same decision again is a duplicate; another one is refused.
        let (st, again) = s.decide("alice", &run, valid.clone()).await;
        assert_eq!(
            (st, again["duplicate"].clone()),
            (200, json!(true)),
            "{again}"
        );
        let other = match kind {
            "gate" => json!({ "approved": false }),
            "decision" => json!({ "option": "a" }),
            "select" => json!({ "options": ["a", "b"] }),
            _ => json!({ "options": ["a", "b", "c"] }),
        };
        let (st, v) = s.decide("admin", &run, other).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (409, Some("APPROVAL_DECIDED")),
            "{v}"
        );
        let kinds = s.kinds(&run).await;
        assert_eq!(
            kinds.iter().filter(|k| *k == "approval_requested").count(),
            1
        );
        assert_eq!(
            kinds.iter().filter(|k| *k == "approval_decided").count(),
            1,
            "{kinds:?}"
        );
        let decided = s.get(&format!("/v1/approvals?run={run}")).await;
        assert_eq!(decided["approvals"][0]["status"], "decided", "{decided}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_whom_an_approval_allows_may_decide_it() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(&dir.path().join("data"), None).await;
    deploy(&s.base);
    // Only bob by name, or holders of approve:release-managers' scope.
    let run = s
        .start_release(json!({ "kind": "gate", "allow": ["token:bob"] }))
        .await;
    s.until(&run, "waiting_approval").await;
    // ops may start runs but not approve; carol approves another workflow;
    // alice approves anything but is not among those allowed.
    let (st, v) = s.decide("ops", &run, json!({ "approved": true })).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{v}"
    );
    let (st, v) = s.decide("carol", &run, json!({ "approved": true })).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{v}"
    );
    let (st, v) = s.decide("alice", &run, json!({ "approved": true })).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("APPROVAL_NOT_ALLOWED")),
        "{v}"
    );
    // What each may decide.
    let mine = |token: &'static str| {
        let s = &s;
        async move {
            let (st, v) = s
                .call(
                    reqwest::Method::GET,
                    token,
                    "/v1/approvals?status=pending&decidable=me",
                    None,
                )
                .await;
            assert_eq!(st, 200, "{v}");
            v["approvals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["run_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(mine("bob").await, vec![run.clone()]);
    assert!(mine("alice").await.is_empty());
    // Nothing was recorded by the refusals.
    assert_eq!(
        s.get(&format!("/v1/runs/{run}")).await["status"],
        "waiting_approval"
    );
    let (st, v) = s
        .decide(
            "bob",
            &run,
            json!({ "approved": false, "comment": "not today" }),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let done = s.until(&run, "completed").await;
    assert_eq!(done["output"]["decision"]["approved"], false);
    assert_eq!(done["output"]["decision"]["comment"], "not today");
    // The refusals are in the audit trail with who was refused.
    let audit = s.get("/v1/audit?limit=100").await;
    let refused: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .collect();
    for who in ["token:ops", "token:carol", "token:alice"] {
        assert!(
            refused
                .iter()
                .any(|e| e["principal"] == who && e["status"] == 403),
            "{who}: {audit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_survives_sigkill_before_and_after_the_run_took_it() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = Serve::start(&data, None).await;
    deploy(&s.base);
    // Killed right after the decision was acknowledged.
    let before = s.start_release(json!({ "kind": "decision" })).await;
    s.until(&before, "waiting_approval").await;
    let (st, v) = s.decide("alice", &before, json!({ "option": "c" })).await;
    assert_eq!(st, 202, "{v}");
    let _ = s.child.kill();
    let _ = s.child.wait();
    drop(s);
    s = Serve::start(&data, None).await;
    let done = s.until(&before, "completed").await;
    assert_eq!(done["output"]["decision"]["option"], "c", "{done}");
    let kinds = s.kinds(&before).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "approval_decided").count(),
        1,
        "{kinds:?}"
    );
    // Killed after the run took it: nothing is decided or done twice, and
    // the decision, sent again, is answered as the one already made.
    let after = s.start_release(json!({ "kind": "gate" })).await;
    s.until(&after, "waiting_approval").await;
    let (st, _) = s.decide("alice", &after, json!({ "approved": true })).await;
    assert_eq!(st, 202);
    s.until(&after, "completed").await;
    let _ = s.child.kill();
    let _ = s.child.wait();
    drop(s);
    let s = Serve::start(&data, None).await;
    let r = s.get(&format!("/v1/runs/{after}")).await;
    assert_eq!(r["status"], "completed");
    let (st, v) = s.decide("alice", &after, json!({ "approved": true })).await;
    assert_eq!((st, v["duplicate"].clone()), (200, json!(true)), "{v}");
    let kinds = s.kinds(&after).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "approval_decided").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "completed").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_applies_the_default_and_waiting_does_not_spend_max_duration() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    // An execution budget far shorter than the waits below: waiting for
    // people (or a timer, or a signal) is not execution.
    let config = dir.path().join("runway-host.toml");
    std::fs::write(&config, "[budget]\nmax_duration = \"1s\"\n").unwrap();
    let s = Serve::start(&dir.path().join("data"), Some(&config)).await;
    deploy(&s.base);
    let timed = s
        .start_release(json!({ "kind": "rank", "timeout_ms": 2500 }))
        .await;
    let human = s.start_release(json!({ "kind": "gate" })).await;
    let t0 = Instant::now();
    let done = s.until(&timed, "completed").await;
    assert!(
        t0.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        t0.elapsed()
    );
    let d = &done["output"]["decision"];
    assert_eq!(
        (
            d["timed_out"].clone(),
            d["options"].clone(),
            d["by"].clone()
        ),
        (json!(true), json!(["a", "b", "c"]), Value::Null),
        "{done}"
    );
    let a = s.get(&format!("/v1/approvals?run={timed}")).await;
    assert_eq!(a["approvals"][0]["status"], "timed_out", "{a}");
    // The other has waited past its 1 s execution budget, and is fine.
    let r = s.get(&format!("/v1/runs/{human}")).await;
    assert_eq!(r["status"], "waiting_approval", "{r}");
    let (st, _) = s.decide("alice", &human, json!({ "approved": true })).await;
    assert_eq!(st, 202);
    let r = s.until(&human, "completed").await;
    assert_eq!(r["output"]["decision"]["approved"], true);
}
