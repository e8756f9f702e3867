//! Agents: tool calling in both providers' wire formats (the loopback
//! provider checks tool turns as the real APIs do), MCP tools of a
//! loopback server built with rmcp, the manifest's grants, budgets across
//! an agent loop, and SIGKILL of the real server while the model thinks.

mod support;

use runway::types::{RunRecord, RunStatus};
use runway::{Host, HostConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::mcp::{McpOptions, McpServer};
use support::provider::{Behavior, Format, Provider};

const KEY: &str = "sk-agents-test-key";
/// The bearer the MCP server wants; nothing but the server may see it.
const TRACKER_TOKEN: &str = "mcp-tok-5d1e9a7c3b";

/// The host's config: the provider in `format` as `default`, loopback
/// egress, and the tracker MCP server with its bearer.
fn host_toml(format: Format, provider: &Provider, mcp: &McpServer) -> String {
    let (kind, url) = match format {
        Format::OpenAi => ("openai", provider.openai_url()),
        Format::Anthropic => ("anthropic", provider.anthropic_url()),
    };
    format!(
        "[models.aliases]\ndefault = \"p/model-x\"\n[models.providers.p]\nkind = \"{kind}\"\nbase_url = \"{url}\"\nkey_secret = \"PROVIDER_KEY\"\nretries = 0\n\
         [egress]\nallow = [\"http://127.0.0.1:*\"]\nallow_private = [\"127.0.0.0/8\"]\n\
         [mcp.servers.tracker]\nurl = \"{}\"\nbearer_secret = \"TRACKER_TOKEN\"\ntimeout = \"10s\"\n",
        mcp.url
    )
}

/// The loopback tracker, wanting [`TRACKER_TOKEN`].
async fn tracker() -> McpServer {
    McpServer::start(McpOptions {
        bearer: Some(TRACKER_TOKEN.into()),
        ..McpOptions::default()
    })
    .await
}

fn write_data(dir: &Path, toml: &str) {
    std::fs::write(
        dir.join("secrets.toml"),
        format!("PROVIDER_KEY = \"{KEY}\"\nTRACKER_TOKEN = \"{TRACKER_TOKEN}\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("runway-host.toml"), toml).unwrap();
}

async fn host(dir: &Path, toml: &str) -> Host {
    write_data(dir, toml);
    let config = HostConfig::new(dir)
        .apply_file(&dir.join("runway-host.toml"))
        .expect("the config");
    Host::open(config).await.expect("opening a host")
}

/// The model's script for a triage of issue 7: look it up, search and rate
/// it, label it, answer.
fn script() -> Vec<Behavior> {
    vec![
        Behavior::ToolCalls(vec![("tracker__get_issue".into(), json!({ "number": 7 }))]),
        Behavior::ToolCalls(vec![
            (
                "tracker__search_issues".into(),
                json!({ "query": "emoji encoder" }),
            ),
            (
                "severity".into(),
                json!({ "text": "Saving panics in the encoder" }),
            ),
        ]),
        Behavior::ToolCalls(vec![(
            "tracker__add_label".into(),
            json!({ "number": 7, "label": "bug" }),
        )]),
        answer(),
    ]
}

const SUMMARY: &str =
    "Bug: saving a file with an emoji name panics.\nLabelled bug; #31 looks like a duplicate.";

fn answer() -> Behavior {
    Behavior::Success {
        text: Some(SUMMARY.into()),
        input_tokens: 100,
        output_tokens: 20,
        cached_tokens: 0,
    }
}

fn kinds(host: &Host, run: &RunRecord, kind: &str) -> Vec<Value> {
    host.events(run.id, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.body.kind() == kind)
        .map(|e| serde_json::to_value(&e).unwrap())
        .collect()
}

/// The tool results a request carried, by call id, in its format.
fn results(format: Format, body: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in body["messages"].as_array().unwrap() {
        match format {
            Format::OpenAi if m["role"] == "tool" => out.push((
                m["tool_call_id"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )),
            Format::Anthropic => {
                for b in m["content"].as_array().into_iter().flatten() {
                    if b["type"] == "tool_result" {
                        out.push((
                            b["tool_use_id"].as_str().unwrap().to_owned(),
                            b["content"].as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `triage` against each format: the exact tool turns each request
/// carried, each MCP tool called once with the model's arguments, the
/// events reading as the transcript, and the bearer nowhere but the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_calls_each_tool_once_in_both_wire_formats() {
    support::guest_dir();
    for format in [Format::OpenAi, Format::Anthropic] {
        let mcp = tracker().await;
        let provider = Provider::start(KEY).await;
        provider.script(script());
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path(), &host_toml(format, &provider, &mcp)).await;
        host.deploy(support::wasm_bytes("triage"), &support::manifest("triage"))
            .await
            .unwrap();
        let r = host.run("triage", json!({ "issue": 7 })).await.unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{format:?}: {r:?}");
        let out = r.output.clone().unwrap();
        assert_eq!(out["summary"], SUMMARY);
        assert_eq!(
            (out["turns"].as_u64(), out["tool_calls"].as_u64()),
            (Some(4), Some(4))
        );

        // The server saw each tool once, with the model's arguments.
        assert_eq!(
            mcp.calls(),
            vec![
                ("get_issue".to_owned(), json!({ "number": 7 })),
                (
                    "search_issues".to_owned(),
                    json!({ "query": "emoji encoder" })
                ),
                (
                    "add_label".to_owned(),
                    json!({ "number": 7, "label": "bug" })
                ),
            ],
            "{format:?}"
        );
        assert_eq!(
            mcp.list_calls(),
            1,
            "{format:?}: the tools were listed once"
        );

        // The requests, exactly.
        let asked = provider.requests();
        assert_eq!(asked.len(), 4, "{format:?}");
        let first = &asked[0].body;
        let offered: Vec<&str> = first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| match format {
                Format::OpenAi => t["function"]["name"].as_str().unwrap(),
                Format::Anthropic => t["name"].as_str().unwrap(),
            })
            .collect();
        assert_eq!(
            offered,
            // The server's tools as it lists them, then the workflow's.
            [
                "tracker__add_label",
                "tracker__fail_always",
                "tracker__get_issue",
                "tracker__search_issues",
                "severity"
            ],
            "{format:?}"
        );
        let (call, id) = match format {
            Format::OpenAi => (
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": "call_1",
                        "type": "function",
                        "function": { "name": "tracker__get_issue", "arguments": "{\"number\":7}" },
                    }],
                }),
                "call_1",
            ),
            Format::Anthropic => (
                json!({
                    "role": "assistant",
                    "content": [{ "type": "tool_use", "id": "toolu_1", "name": "tracker__get_issue", "input": { "number": 7 } }],
                }),
                "toolu_1",
            ),
        };
        let second = &asked[1].body;
        let msgs = second["messages"].as_array().unwrap();
        assert!(msgs.contains(&call), "{format:?}: {second}");
        let got = results(format, second);
        assert_eq!(got.len(), 1, "{format:?}: {second}");
        assert_eq!(got[0].0, id);
        let issue: Value = serde_json::from_str(&got[0].1).unwrap();
        assert_eq!(issue, support::mcp::issue(7));
        // Both calls of the second turn answered in the third request: the
        // search's text and the workflow's own tool.
        let third = results(format, &asked[2].body);
        assert_eq!(third.len(), 3, "{format:?}");
        assert_eq!(
            serde_json::from_str::<Value>(&third[1].1).unwrap(),
            support::mcp::similar_issues()
        );
        assert_eq!(third[2].1, "{\"severity\":3}");
        assert_eq!(results(format, &asked[3].body).len(), 4);

        // The log reads as the transcript.
        let models = kinds(&host, &r, "model_call");
        let asked_for: Vec<Value> = models.iter().map(|m| m["tool_calls"].clone()).collect();
        assert_eq!(
            asked_for,
            [
                json!(["tracker__get_issue"]),
                json!(["tracker__search_issues", "severity"]),
                json!(["tracker__add_label"]),
                Value::Null,
            ],
            "{format:?}"
        );
        let tools = kinds(&host, &r, "tool_call");
        let named: Vec<(&str, &str)> = tools
            .iter()
            .map(|t| (t["tool"].as_str().unwrap(), t["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(
            named,
            [
                ("get_issue", "ok"),
                ("search_issues", "ok"),
                ("add_label", "ok")
            ]
        );
        let md = host.artifact(r.id, "triage.md").await.unwrap();
        assert!(String::from_utf8_lossy(&md.1).contains(SUMMARY));

        host.shutdown().await.unwrap();
        drop(host);
        for f in support::files(dir.path()) {
            if f.file_name().is_some_and(|n| n == "secrets.toml") {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes
                    .windows(TRACKER_TOKEN.len())
                    .any(|w| w == TRACKER_TOKEN.as_bytes()),
                "the bearer in {}",
                f.display()
            );
        }
    }
}

/// A manifest without the grant reaches nothing; one that grants a single
/// tool lists only it and is refused the others, typed, before the server
/// sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_keep_a_workflow_to_its_servers_and_tools() {
    support::guest_dir();
    let mcp = tracker().await;
    let provider = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), &host_toml(Format::OpenAi, &provider, &mcp)).await;
    let deploy = |grants: &str| {
        let manifest = format!("slug = \"hostile\"\n{grants}\n[budget]\nmax_duration = \"20s\"\n");
        let host = host.clone();
        async move {
            host.deploy(support::wasm_bytes("hostile"), &manifest)
                .await
                .unwrap()
        }
    };
    let attack = || async {
        let r = host
            .run("hostile", json!({ "attack": "mcp_ungranted" }))
            .await
            .unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        r.output.unwrap()
    };
    deploy("").await;
    let out = attack().await;
    for key in ["list", "call", "elsewhere"] {
        assert_eq!(
            out[key],
            json!({ "err": "MCP_SERVER_NOT_ALLOWED" }),
            "{out}"
        );
    }
    assert_eq!(mcp.requests_seen(), 0, "nothing reached the server");

    deploy("mcp = [\"tracker/get_issue\"]").await;
    let out = attack().await;
    assert_eq!(out["list"], json!({ "ok": ["get_issue"] }));
    assert_eq!(out["call"], json!({ "err": "MCP_SERVER_NOT_ALLOWED" }));
    assert_eq!(out["elsewhere"], json!({ "err": "MCP_SERVER_NOT_ALLOWED" }));
    assert_eq!(mcp.count("add_label"), 0);

    // A manifest naming a tool badly is refused at deploy.
    let bad = host
        .deploy(
            support::wasm_bytes("hostile"),
            "slug = \"hostile\"\nmcp = [\"tracker/../x\"]\n",
        )
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("mcp[0]"), "{bad}");
}

/// `max_tokens` across an agent loop: the call that crosses it ends the
/// run with `BUDGET_EXCEEDED`, and no model call or tool call follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_loop_stops_at_the_call_that_crosses_its_budget() {
    support::guest_dir();
    let mcp = tracker().await;
    let provider = Provider::start(KEY).await;
    provider.script(script());
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), &host_toml(Format::Anthropic, &provider, &mcp)).await;
    // Each tool turn costs 100 in + 10 out per call: the second crosses 150.
    let manifest = support::manifest("triage").replace("max_tokens = 100000", "max_tokens = 150");
    host.deploy(support::wasm_bytes("triage"), &manifest)
        .await
        .unwrap();
    let r = host.run("triage", json!({ "issue": 7 })).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(r.error.as_ref().unwrap().code.as_str(), "BUDGET_EXCEEDED");
    assert_eq!(provider.count(), 2, "the crossing call is the last");
    assert_eq!(mcp.calls().len(), 1, "no tool is called after the crossing");
    let budget: Vec<Value> = kinds(&host, &r, "budget_exceeded");
    assert_eq!(budget.len(), 1);
    assert_eq!(budget[0]["budget"], "max_tokens");

    // In a child run: the parent's budget binds the tree; the agent stops
    // at the crossing call and the parent fails with it.
    provider.script(script());
    let before = (provider.count(), mcp.calls().len());
    host.deploy(support::wasm_bytes("triage"), &support::manifest("triage"))
        .await
        .unwrap();
    host.deploy(
        support::wasm_bytes("hostile"),
        "slug = \"hostile\"\n[budget]\nmax_duration = \"20s\"\nmax_tokens = 150\n",
    )
    .await
    .unwrap();
    let parent = host
        .run(
            "hostile",
            json!({ "attack": "child", "workflow": "triage", "args": { "issue": 7 } }),
        )
        .await
        .unwrap();
    assert_eq!(parent.status, RunStatus::Failed, "{parent:?}");
    assert_eq!(
        parent.error.as_ref().unwrap().code.as_str(),
        "BUDGET_EXCEEDED",
        "{parent:?}"
    );
    let child = host.store().children(parent.id).unwrap();
    assert_eq!(child.len(), 1);
    let child = host.run_record(child[0]).await.unwrap();
    assert_eq!(child.status, RunStatus::Failed, "{child:?}");
    assert_eq!(
        child.error.as_ref().unwrap().code.as_str(),
        "BUDGET_EXCEEDED"
    );
    assert_eq!(
        provider.count() - before.0,
        2,
        "the crossing call is the last"
    );
    assert_eq!(mcp.calls().len() - before.1, 1);
}

/// SIGKILL of `runway serve` while the model thinks about its second
/// turn: after a restart the run completes as an undisturbed one does;
/// each answered model call and each tool call happened exactly once (the
/// call in flight at the kill is asked again, once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_model_thinks_repeats_nothing_answered() {
    support::guest_dir();
    let mcp = tracker().await;
    let provider = Provider::start(KEY).await;
    let mut turns = script();
    // The second turn thinks long enough to be killed; asked again after
    // the restart, it answers the same at once.
    let second = turns[1].clone();
    turns.insert(
        1,
        Behavior::Delayed(Duration::from_secs(30), Box::new(second)),
    );
    provider.script(turns);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_data(&data, &host_toml(Format::OpenAi, &provider, &mcp));
    let manifest = dir.path().join("triage.toml");
    std::fs::write(&manifest, support::manifest("triage")).unwrap();
    support::ok(
        support::runway_on(&data)
            .arg("deploy")
            .arg(support::wasm("triage"))
            .arg("--manifest")
            .arg(&manifest)
            .output()
            .unwrap(),
    );
    let port = support::free_port();
    let log = dir.path().join("serve.log");
    let base = format!("http://127.0.0.1:{port}");
    let mut server = support::serve_on(&data, port, &log).await;
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{base}/v1/workflows/triage/runs"))
        .json(&json!({ "issue": 7 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    while provider.count() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(30), "never asked twice");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().unwrap();
    let _ = server.wait();
    assert_eq!(mcp.calls().len(), 1, "only get_issue before the kill");

    let mut server = support::serve_on(&data, port, &log).await;
    let t0 = Instant::now();
    let run = loop {
        let r: Value = http
            .get(format!("{base}/v1/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] == "completed" || r["status"] == "failed" {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never ended: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.kill().unwrap();
    let _ = server.wait();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["summary"], SUMMARY);
    assert_eq!(run["output"]["tool_calls"], 4);
    // 4 answered calls, and the one killed in flight asked again.
    assert_eq!(provider.count(), 5);
    for tool in ["get_issue", "search_issues", "add_label"] {
        assert_eq!(mcp.count(tool), 1, "{tool}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(TRACKER_TOKEN) && !text.contains(KEY));
}

/// OAuth: `runway mcp login` runs the code flow with PKCE against a loopback
/// authorization server; the host signs its MCP requests with the grant,
/// refreshes once when the access token expires, persists the rotated
/// refresh token and uses it after a restart; a revoked grant is
/// `MCP_AUTH_REQUIRED`; no token is anywhere but the grant store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_grant_is_refreshed_rotated_kept_and_refused_once_revoked() {
    use support::oauth::AuthServer;
    support::guest_dir();
    let auth = AuthServer::start("runway-test", Duration::from_secs(3)).await;
    let mcp = McpServer::start(McpOptions {
        check: Some(auth.check()),
        ..McpOptions::default()
    })
    .await;
    let provider = Provider::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let toml = host_toml(Format::OpenAi, &provider, &mcp).replace(
        "bearer_secret = \"TRACKER_TOKEN\"",
        &format!(
            "oauth = {{ client_id = \"runway-test\", authorization_url = \"{0}/authorize\", token_url = \"{0}/token\", scopes = [\"issues\"] }}",
            auth.base
        ),
    );
    write_data(data, &toml);

    // Before a login: typed, and the command to run is named.
    let listed = support::ok(
        support::runway_on(data)
            .args(["mcp", "list"])
            .output()
            .unwrap(),
    );
    assert!(
        listed.contains("tracker") && listed.contains("none (runway mcp login)"),
        "{listed}"
    );

    // The login: the URL it prints is opened (the authorization server
    // redirects back to the command's loopback listener at once).
    let mut login = support::runway_on(data)
        .args(["mcp", "login", "tracker", "--wait", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = login.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the login's URL");
        if line.starts_with("http") {
            break line;
        }
    };
    assert!(
        url.contains("code_challenge=") && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = browser.get(&url).send().await.unwrap();
    assert_eq!(back.status(), reqwest::StatusCode::FOUND);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), reqwest::StatusCode::OK);
    let status = login.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut login.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    let said: Vec<String> = rx.try_iter().collect();
    assert!(
        said.iter().any(|l| l.starts_with("signed in to tracker")),
        "{said:?}"
    );
    let grant = data.join("mcp-grants").join("tracker.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&grant).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the grant is its owner's only");
    }

    let manifest = "slug = \"hostile\"\nmcp = [\"tracker\"]\n[budget]\nmax_duration = \"20s\"\n";
    let probe = |host: Host| async move {
        let r = host
            .run("hostile", json!({ "attack": "mcp_ungranted" }))
            .await
            .unwrap();
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        (r.output.clone().unwrap()["call"].clone(), r)
    };
    let open = || async {
        let config = HostConfig::new(data)
            .apply_file(&data.join("runway-host.toml"))
            .unwrap();
        Host::open(config).await.unwrap()
    };
    let host = open().await;
    host.deploy(support::wasm_bytes("hostile"), manifest)
        .await
        .unwrap();
    let (call, _) = probe(host.clone()).await;
    assert_eq!(call, json!({ "ok": "labelled #7 with pwned" }));
    assert_eq!(auth.refreshes(), 0);

    // Past the access token's life: one refresh, and the new refresh token
    // is in the grant store (the old one is spent).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (call, _) = probe(host.clone()).await;
    assert_eq!(call, json!({ "ok": "labelled #7 with pwned" }));
    assert_eq!(auth.refreshes(), 1, "one refresh");
    let stored = std::fs::read_to_string(&grant).unwrap();
    assert!(stored.contains(&auth.refresh_token().unwrap()));
    host.shutdown().await.unwrap();
    drop(host);

    // After a restart, past the life again: the stored (rotated) refresh
    // token works.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let host = open().await;
    let (call, _) = probe(host.clone()).await;
    assert_eq!(call, json!({ "ok": "labelled #7 with pwned" }));
    assert_eq!((auth.refreshes(), auth.refused()), (2, 0));

    // Revoked: typed, naming the command.
    auth.revoke();
    let (call, run) = probe(host.clone()).await;
    assert_eq!(call, json!({ "err": "MCP_AUTH_REQUIRED" }));
    let text = serde_json::to_string(&host.events(run.id, 0, usize::MAX).unwrap()).unwrap();
    assert!(text.contains("runway mcp login tracker"), "{text}");
    let listed = support::ok(
        support::runway_on(data)
            .args(["mcp", "list"])
            .output()
            .unwrap(),
    );
    assert!(listed.contains("tracker"), "{listed}");
    host.shutdown().await.unwrap();
    drop(host);

    // No token anywhere but the grant store (and the login's own output).
    let issued = auth.issued();
    assert!(issued.len() >= 6);
    for f in support::files(data) {
        if f.starts_with(data.join("mcp-grants")) {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        for t in &issued {
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "a token in {}",
                f.display()
            );
        }
    }
    for t in &issued {
        assert!(!err.contains(t.as_str()) && !said.iter().any(|l| l.contains(t.as_str())));
    }
}

/// A server the operator runs as a command, over stdio: listed and called
/// like any other, each call once; a command that is not there is
/// `MCP_UNAVAILABLE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_server_the_operator_names_is_called_once_per_call() {
    support::guest_dir();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("echo.log");
    let script = support::root().join("tests/fixtures/mcp/stdio_server.py");
    let toml = format!(
        "[mcp.servers.echo]\ncommand = \"python3\"\nargs = [{:?}]\nenv = {{ ECHO_LOG = {:?} }}\n\
         [mcp.servers.gone]\ncommand = \"/nonexistent/mcp-server\"\n",
        script.display().to_string(),
        log.display().to_string()
    );
    let host = host(dir.path(), &toml).await;
    host.deploy(
        support::wasm_bytes("hostile"),
        "slug = \"hostile\"\nmcp = [\"echo\", \"gone\"]\n[budget]\nmax_duration = \"20s\"\n",
    )
    .await
    .unwrap();
    let call = |server: &str, text: &str| {
        let input = json!({ "attack": "mcp_call", "server": server, "tool": "echo", "args": { "text": text } });
        let host = host.clone();
        async move {
            let r = host.run("hostile", input).await.unwrap();
            assert_eq!(r.status, RunStatus::Completed, "{r:?}");
            r.output.unwrap()
        }
    };
    assert_eq!(call("echo", "stressed").await, json!({ "ok": "desserts" }));
    assert_eq!(call("echo", "drawer").await, json!({ "ok": "reward" }));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "stressed\ndrawer\n");
    let gone = call("gone", "x").await;
    assert_eq!(gone["err"], "MCP_UNAVAILABLE", "{gone}");
}
