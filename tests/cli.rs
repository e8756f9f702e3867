//! End-to-end tests of the `runway` binary in embedded mode: real
//! components, a real data directory, the process's exit codes and output.

mod support;

use runway::store::Store;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Cli {
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Cli {
    fn new() -> Cli {
        support::guest_dir();
        Cli {
            data: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    fn dir(&self) -> &Path {
        self.data.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
        cmd.args(args)
            .env("RUNWAY_DATA_DIR", self.dir())
            .env("NO_COLOR", "1")
            .env_remove("RUNWAY_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("running runway")
    }

    /// `runway exec` of an example with its manifest and `input`, then `extra`.
    fn exec(&self, example: &str, input: &str, extra: &[&str]) -> Output {
        let wasm = support::wasm(example);
        let manifest = support::manifest_path(example);
        let mut args = vec![
            "exec",
            s(&wasm),
            "--manifest",
            s(&manifest),
            "--input",
            input,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `exec ... --json`, parsed.
    fn exec_json(&self, example: &str, input: &str) -> Value {
        let out = self.exec(example, input, &["--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("exec {example} printed no JSON ({e}): {}", text(&out)))
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?} printed no JSON ({e}): stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn exec_hello_prints_the_greeting_and_logs_queued_running_completed() {
    let cli = Cli::new();
    let out = cli.exec("hello", r#"{"name":"Ada"}"#, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json!({"greeting": "Hello, Ada!"}));

    let out = cli.exec("hello", r#"{"name":"Ada"}"#, &["--json"]);
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.lines().count(), 1, "{printed}");
    let at: Vec<usize> = ["\"run_id\"", "\"status\"", "\"output\"", "\"error\""]
        .iter()
        .map(|k| {
            printed
                .find(k)
                .unwrap_or_else(|| panic!("{k} missing in {printed}"))
        })
        .collect();
    assert!(at.is_sorted(), "keys out of order: {printed}");
    let run: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"]["greeting"], "Hello, Ada!");
    assert_eq!(run["error"], Value::Null);

    let id = run["run_id"].as_str().unwrap();
    let events = cli.json(&["events", id, "--json"]);
    let events = events.as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(kinds, ["queued", "running", "completed"]);

    // The same component and manifest again is the same version.
    let wfs = cli.json(&["workflows", "--json"]);
    assert_eq!(wfs.as_array().unwrap().len(), 1);
    assert_eq!(wfs[0]["version"], 1);

    let human = cli.run(&["events", id]);
    let table = String::from_utf8_lossy(&human.stdout);
    assert!(table.starts_with("SEQ  TIME"), "{table}");
    assert!(!table.contains('\u{1b}'), "colors in a pipe: {table:?}");
}

#[test]
fn run_exit_codes_say_whether_the_run_completed() {
    let cli = Cli::new();
    let out = cli.run(&[
        "deploy",
        s(&support::wasm("hello")),
        "--manifest",
        s(&support::manifest_path("hello")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deployed hello v1"));

    let ok = cli.run(&["run", "hello", "--input", r#"{"name":"Bo"}"#]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let bad_input = cli.run(&["run", "hello", "--input", r#"{"nom":"Bo"}"#, "--json"]);
    assert_eq!(bad_input.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&bad_input.stdout).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error"]["code"], "INVALID_INPUT");

    let not_json = cli.run(&["run", "hello", "--input", "{nope"]);
    assert_eq!(not_json.status.code(), Some(2));
    assert!(
        text(&not_json).contains("invalid input"),
        "{}",
        text(&not_json)
    );
    let unknown = cli.run(&["run", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("no workflow \"nobody\""),
        "{}",
        text(&unknown)
    );

    let failed = cli.json(&["runs", "--status", "failed", "--json"]);
    assert_eq!(failed.as_array().unwrap().len(), 1);
    let all = cli.json(&["runs", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    // The whole record, as the API shows it: never the seed.
    let run = &all[0];
    assert_eq!(run["workflow"], "hello");
    assert!(
        run["created_at"].is_string() && run["usage"].is_object(),
        "{run}"
    );
    assert_eq!(run["run_id"], run["id"]);
    assert!(run.get("seed").is_none(), "{run}");
    // JSON lines: the same records, one per line.
    let lines = cli.run(&["runs", "--output", "jsonl"]);
    let lines: Vec<Value> = String::from_utf8(lines.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all.as_array().unwrap().clone());
    let id = run["id"].as_str().unwrap();
    let events = cli.run(&["events", id, "--output", "jsonl"]);
    let kinds: Vec<String> = String::from_utf8(events.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("\"queued\""),
        "{kinds:?}"
    );
    assert!(kinds.len() >= 3, "{kinds:?}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let cli = Cli::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = cli.run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["runway", "deploy", "purge", "backup", "new"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    assert!(
        !cli.dir().join("runway.redb").exists(),
        "no data directory made"
    );
}

fn assert_nothing_stored(dir: &Path, rejected: &[Vec<u8>]) {
    let store = Store::open(dir).unwrap();
    assert!(store.workflows().unwrap().is_empty());
    for bytes in rejected {
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(bytes))
        };
        assert!(store.component(&digest).unwrap().is_none());
    }
}

#[test]
fn deploy_rejects_bad_components_and_manifests_and_stores_nothing() {
    let cli = Cli::new();
    let tmp = cli.dir().join("inputs");
    std::fs::create_dir_all(&tmp).unwrap();
    let hello_manifest = support::manifest_path("hello");
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = tmp.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    // The smallest valid core module: magic and version 1.
    let core = b"\0asm\x01\0\0\0".to_vec();
    let command = std::fs::read(support::wasm("not-a-workflow")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random.wasm", random.clone(), "not a WebAssembly binary"),
        (
            "core.wasm",
            core.clone(),
            "core WebAssembly module, not a component",
        ),
        (
            "command.wasm",
            command.clone(),
            "does not fit the runway:workflow world",
        ),
        (
            "broken.wasm",
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
            "not a valid component",
        ),
    ];
    for (name, bytes, expect) in &cases {
        let p = write(name, bytes);
        let out = cli.run(&["deploy", s(&p), "--manifest", s(&hello_manifest)]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(text(&out).contains(expect), "{name}: {}", text(&out));
    }

    let hello = support::wasm("hello");
    let manifests = [
        ("slug = \"hello\"\ncolour = \"blue\"\n", "colour"),
        (
            "slug = \"hello\"\n[budget]\nmax_memory = \"lots\"\n",
            "budget.max_memory",
        ),
        ("slug = \"hello\"\n[budget]\nmax_fuell = 1\n", "max_fuell"),
        ("slug = \"Hello World\"\n", "slug"),
        ("slug = \n", "manifest"),
    ];
    for (i, (toml, expect)) in manifests.iter().enumerate() {
        let p = write(&format!("m{i}.toml"), toml.as_bytes());
        let out = cli.run(&["deploy", s(&hello), "--manifest", s(&p)]);
        assert_eq!(out.status.code(), Some(2), "{toml}: {}", text(&out));
        assert!(text(&out).contains(expect), "{toml}: {}", text(&out));
    }
    assert_eq!(cli.json(&["workflows", "--json"]), json!([]));
    let mut rejected: Vec<Vec<u8>> = cases.into_iter().map(|c| c.1).collect();
    rejected.push(std::fs::read(&hello).unwrap());
    assert_nothing_stored(cli.dir(), &rejected);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_secret_value_never_reaches_the_store_or_the_cli_output() {
    let mut cli = Cli::new();
    let secret = format!("s3cr3t-{}", ulid_like());
    cli.env
        .push(("RUNWAY_SECRET_LEAK_ME".into(), secret.clone()));
    cli.env
        .push(("RUNWAY_SECRET_REPORT_TOKEN".into(), secret.clone()));

    let out = cli.exec("hostile", r#"{"attack":"leak_secret"}"#, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !text(&out).contains(&secret),
        "leaked to the CLI: {}",
        text(&out)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["error"]["code"], "PROGRAM_ERROR");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("********")
    );

    let report = cli.exec(
        "report",
        r#"{"title":"T","sections":[{"heading":"A"},{"heading":"B"}]}"#,
        &[],
    );
    assert!(report.status.success(), "{}", text(&report));
    assert!(!text(&report).contains(&secret));

    let human = cli.run(&["events", run["run_id"].as_str().unwrap()]);
    assert!(!text(&human).contains(&secret));

    // Read every event back through the store and search it...
    let store = Store::open(cli.dir()).unwrap();
    let runs = store.runs(None, None, 100).unwrap();
    assert_eq!(runs.len(), 2);
    let mut kinds = Vec::new();
    for r in &runs {
        for e in store.events(r.id, 0, usize::MAX).unwrap() {
            let json = serde_json::to_string(&e).unwrap();
            assert!(!json.contains(&secret), "secret in event {json}");
            kinds.push(e.body.kind());
        }
        for j in store.journal(r.id).unwrap() {
            assert!(!serde_json::to_string(&j).unwrap().contains(&secret));
        }
        assert!(!serde_json::to_string(r).unwrap().contains(&secret));
    }
    // ...the leak attempts were recorded, masked.
    for k in ["secret_read", "program_output", "log", "custom"] {
        assert!(kinds.contains(&k), "no {k} event in {kinds:?}");
    }
    drop(store);
    // ...and no byte of any file in the data directory holds it.
    for f in support::files(cli.dir()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "secret in {}",
            f.display()
        );
    }
}

fn ulid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{n:x}")
}

#[test]
fn artifact_names_that_could_escape_are_refused_and_nothing_lands_outside() {
    let cli = Cli::new();
    let run = cli.exec_json("hostile", r#"{"attack":"artifact_escape"}"#);
    assert_eq!(run["status"], "completed", "{run}");
    let refused = run["output"]["refused"].as_array().unwrap();
    let names: Vec<&str> = refused
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for must in ["../x", "a/b", "", "x\0y"] {
        assert!(names.contains(&must), "{must:?} not refused: {run}");
    }
    assert!(refused.iter().all(|r| r["code"] == "ARTIFACT_NAME_INVALID"));

    // The only artifact body is the accepted one, inside artifacts/.
    let artifacts = cli.dir().join("artifacts");
    let blobs: Vec<PathBuf> = support::files(&artifacts);
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), b"safe");
    for f in support::files(cli.dir()) {
        let rel = f.strip_prefix(cli.dir()).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        assert!(
            ["runway.redb", "artifacts", "cache"].contains(&top),
            "unexpected file {}",
            rel.display()
        );
        assert!(!f.ends_with("x") && !f.ends_with("b") && !f.ends_with("passwd"));
    }
    let parent = cli.dir().parent().unwrap();
    assert!(!parent.join("x").exists());
    let store = Store::open(cli.dir()).unwrap();
    let id = run["run_id"].as_str().unwrap().parse().unwrap();
    let metas = store.artifacts(id).unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].name, "inside.txt");
}

#[test]
fn report_writes_its_artifact_and_emits_progress() {
    let mut cli = Cli::new();
    cli.env
        .push(("RUNWAY_SECRET_REPORT_TOKEN".into(), "tok".into()));
    let run = cli.exec_json(
        "report",
        r#"{"title":"Weekly","sections":[{"heading":"Wins","body":"many"},{"heading":"Risks"}]}"#,
    );
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["artifact"], "report.md");
    assert_eq!(run["output"]["sections"], 2);
    let id = run["run_id"].as_str().unwrap();
    let events = cli.json(&["events", id, "--json"]);
    let progress: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "custom" && e["name"] == "progress")
        .collect();
    assert_eq!(progress.len(), 2);
    assert_eq!(progress[1]["payload"]["section"], 2);
    let store = Store::open(cli.dir()).unwrap();
    let metas = store.artifacts(id.parse().unwrap()).unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].content_type, "text/markdown; charset=utf-8");
    assert_eq!(metas[0].metadata, Some(json!({"title": "Weekly"})));
    let digest = run["output"]["digest"].as_str().unwrap();
    let body = std::fs::read(cli.dir().join("artifacts").join(&digest[..2]).join(digest)).unwrap();
    assert!(String::from_utf8(body).unwrap().starts_with("# Weekly"));
}

#[test]
fn a_missing_manifest_is_a_clear_error() {
    let cli = Cli::new();
    let out = cli.run(&["exec", s(&support::wasm("hello"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("runway.toml"), "{}", text(&out));
}

#[test]
fn signal_cancel_detach_and_resume_from_the_command_line() {
    let cli = Cli::new();
    // A run waiting for a signal: `run` returns (exit 1) and says how to go on.
    let out = cli.exec("approval", r#"{"request":"ship"}"#, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("runway signal"), "{}", text(&out));
    let waiting = cli.json(&["runs", "--status", "waiting_signal", "--json"]);
    let id = waiting[0]["run_id"].as_str().unwrap().to_owned();

    let v = cli.json(&[
        "signal",
        &id,
        "approve",
        "--data",
        r#"{"by":"ada"}"#,
        "--id",
        "s1",
        "--json",
    ]);
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["duplicate"], false);
    let out = cli.run(&["signal", &id, "approve", "--id", "s1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a signal to an ended run: {}",
        text(&out)
    );
    assert!(text(&out).contains("already ended"), "{}", text(&out));

    // Queued with --detach, cancelled before anything ran.
    let v = cli.json(&["run", "approval", "--detach", "--json"]);
    assert_eq!(v["status"], "queued");
    let queued = v["run_id"].as_str().unwrap().to_owned();
    let v = cli.json(&["cancel", &queued, "--json"]);
    assert_eq!(v["status"], "cancelled", "{v}");
    let v = cli.json(&["cancel", &queued, "--json"]);
    assert_eq!(v["outcome"]["already_ended"], "cancelled", "{v}");

    // Queued with --detach, executed by resume.
    let v = cli.json(&[
        "run",
        "approval",
        "--detach",
        "--json",
        "--input",
        r#"{"timeout_ms":10}"#,
    ]);
    let later = v["run_id"].as_str().unwrap().to_owned();
    let list = cli.json(&["resume", "--json"]);
    assert_eq!(list[0]["run_id"], json!(later), "{list}");
    assert_eq!(list[0]["status"], "completed", "{list}");
    assert_eq!(list[0]["output"]["approved"], false, "{list}");
    let out = cli.run(&["resume"]);
    assert!(out.status.success());
    assert!(text(&out).contains("nothing to resume"), "{}", text(&out));
}

/// A store file emptied or damaged beside the data it describes: refused
/// with a message naming the file and what to do, never a panic, never an
/// empty host that silently lost every run.
#[test]
fn a_missing_or_damaged_store_is_refused_with_a_clear_message() {
    let cli = Cli::new();
    let out = cli.exec("hello", r#"{"name":"Ada"}"#, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let store = cli.dir().join("runway.redb");
    let good = std::fs::read(&store).unwrap();

    std::fs::write(&store, b"").unwrap();
    let out = cli.run(&["runs"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("runway.redb"), "{}", text(&out));
    assert!(
        text(&out).contains("RUNWAY_ALLOW_EMPTY_STORE"),
        "{}",
        text(&out)
    );
    // Told otherwise, it starts empty.
    let told = Cli {
        data: cli.data,
        env: vec![("RUNWAY_ALLOW_EMPTY_STORE".into(), "1".into())],
    };
    let out = told.run(&["runs", "--json"]);
    assert!(out.status.success(), "{}", text(&out));

    // Random bytes over the file: refused or served, never a panic.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..6 {
        let mut bytes = good.clone();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = (rng as usize) % bytes.len().saturating_sub(64).max(1);
        for (i, b) in bytes[at..at + 64.min(good.len() - at)]
            .iter_mut()
            .enumerate()
        {
            *b = (rng >> (i % 8 * 8)) as u8 ^ 0x5a;
        }
        std::fs::write(told.dir().join("runway.redb"), &bytes).unwrap();
        let out = told.run(&["runs", "--json"]);
        let t = text(&out);
        assert_ne!(
            out.status.code(),
            Some(101),
            "round {round} at {at}: a panic: {t}"
        );
        assert!(!t.contains("panicked"), "round {round} at {at}: {t}");
        assert!(
            out.status.success() || t.contains("runway.redb") || t.contains("store"),
            "round {round} at {at}: an unclear refusal: {t}"
        );
    }
}

/// A command that only reads never creates a data directory: pointed at
/// nothing (a typo, a forgotten --server), it says so.
#[test]
fn reading_commands_on_a_missing_data_dir_say_so_and_create_nothing() {
    let cli = Cli::new();
    let missing = cli.dir().join("not-here");
    for args in [
        &["runs"][..],
        &["workflows"],
        &["events", "run_01m8nt1cqqxj77xretrd6v3j4y"],
    ] {
        let mut full = vec!["--data-dir", s(&missing)];
        full.extend_from_slice(args);
        let out = cli.run(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out).contains("--server"), "{}", text(&out));
        assert!(!missing.exists(), "{args:?} created the data directory");
    }
}
