//! A guest that misbehaves on request. The host's tests deploy it to prove
//! that each attack ends only its own run, with the right failure code.
//!
//! Input: `{"attack": "<name>"}` with one of the names below; `diverge`
//! and `hold` also take `"ms"`, the containment attacks `"n"` (a size or a
//! depth). The containment attacks call the raw WIT imports, to send the
//! host exactly what an attacker would.

use runway_sdk::{Error, Level, Result, artifacts, log, secrets, sleep};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    attack: String,
    ms: Option<u64>,
    /// A size or depth for the containment attacks.
    n: Option<u64>,
    /// `mcp_call`: which server's tool, with what arguments.
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    args: Option<Value>,
    /// `child`: the workflow to call as a child, with `args`.
    #[serde(default)]
    workflow: Option<String>,
}

/// The raw WIT imports, to send the host exactly the bytes an attacker would.
use runway_sdk::bindings::runway::workflow as raw;

/// `[[[...1...]]]`, `depth` levels deep.
fn nested_text(depth: u64) -> String {
    let d = depth as usize;
    format!("{}1{}", "[".repeat(d), "]".repeat(d))
}

fn nested(depth: u64) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

fn hostile(input: Input) -> Result<Value> {
    match input.attack.as_str() {
        "loop" => endless_loop(),
        "memory" => memory_bomb(),
        "recursion" => Ok(json!(recurse(std::hint::black_box(1)))),
        "flood" => loop {
            println!("flooding the host with output, line after line after line");
        },
        "log_flood" => loop {
            log(Level::Info, "flooding the host with log events");
        },
        "undeclared_secret" => Ok(json!(secrets::get("NOT_DECLARED")?)),
        "missing_secret" => Ok(json!(secrets::get("DECLARED_NOT_SET")?)),
        "artifact_escape" => artifact_escape(),
        "leak_secret" => leak_secret(),
        "panic" => panic!("the guest gave up"),
        // A child of any workflow; its failure is passed on.
        "child" => {
            let workflow = input.workflow.unwrap_or_default();
            runway_sdk::call::<Value, Value>(&workflow, &input.args.unwrap_or_else(|| json!({})))
        }
        // One MCP call, whatever it gets.
        "mcp_call" => {
            let server = input.server.unwrap_or_default();
            let tool = input.tool.unwrap_or_default();
            let args = input.args.unwrap_or_else(|| json!({}));
            Ok(match runway_sdk::mcp::call_tool(&server, &tool, &args) {
                Ok(r) => json!({ "ok": r.text() }),
                Err(e) => json!({ "err": e.code, "message": e.message }),
            })
        }
        // MCP calls back to back (a flood, and the benchmark's loop).
        "mcp_flood" => {
            let n = input.n.unwrap_or(100);
            for i in 0..n {
                runway_sdk::mcp::call_tool("tracker", "get_issue", &json!({ "number": i }))?;
            }
            Ok(json!({ "calls": n }))
        }
        // MCP beyond the manifest's grants: answers what each call got.
        "mcp_ungranted" => {
            let code = |e: Error| json!({ "err": e.code });
            let listed = runway_sdk::mcp::list_tools("tracker")
                .map(|t| json!({ "ok": t.iter().map(|t| t.name.clone()).collect::<Vec<_>>() }))
                .unwrap_or_else(code);
            let called = runway_sdk::mcp::call_tool(
                "tracker",
                "add_label",
                &json!({ "number": 7, "label": "pwned" }),
            )
            .map(|r| json!({ "ok": r.text() }))
            .unwrap_or_else(code);
            let elsewhere = runway_sdk::mcp::call_tool("nowhere", "x", &json!({}))
                .map(|r| json!({ "ok": r.text() }))
                .unwrap_or_else(code);
            Ok(json!({ "list": listed, "call": called, "elsewhere": elsewhere }))
        }
        "clock" => {
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(Error::msg)?;
            Ok(json!({ "wall_ms": wall.as_millis() as u64 }))
        }
        "filesystem" => {
            let read = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string());
            let write = std::fs::write("escape.txt", b"x").map_err(|e| e.to_string());
            Ok(json!({ "read": read.is_ok(), "write": write.is_ok() }))
        }
        "network" => {
            let tcp = std::net::TcpStream::connect("127.0.0.1:1").map_err(|e| e.to_string());
            Ok(json!({ "connected": tcp.is_ok() }))
        }
        "env" => Ok(json!(std::env::vars().collect::<Vec<_>>())),
        "residue" => residue(),
        "diverge" => diverge(input.ms.unwrap_or(500)),
        // Containment: each of these must end only this run, typed.
        "deep_result" => Ok(nested(input.n.unwrap_or(127))),
        "deep_event" => {
            raw::runtime::emit("deep", &nested_text(input.n.unwrap_or(127)));
            Ok(json!({ "emitted": true }))
        }
        "deep_child" => {
            let r = raw::workflows::start("hello", &nested_text(input.n.unwrap_or(127)), None);
            Ok(json!({ "refused": r.err().map(|f| f.code) }))
        }
        "deep_metadata" => {
            let meta = nested_text(input.n.unwrap_or(127));
            let r = raw::artifacts::write("m.txt", "text/plain", b"x", Some(&meta));
            Ok(json!({ "refused": r.err().map(|f| f.code) }))
        }
        "big_event" => {
            // Sent whole: the host must refuse it before parsing it.
            let payload = format!("[\"{}\"]", "x".repeat(input.n.unwrap_or(8 << 20) as usize));
            raw::runtime::emit("big", &payload);
            Ok(json!({ "emitted": true }))
        }
        "big_metadata" => {
            let meta = format!("\"{}\"", "x".repeat(input.n.unwrap_or(1 << 20) as usize));
            let r = raw::artifacts::write("m.txt", "text/plain", b"x", Some(&meta));
            Ok(json!({ "refused": r.err().map(|f| f.code) }))
        }
        "long_failure" => Err(Error::new(
            "X".repeat(4096),
            "y".repeat(input.n.unwrap_or(4 << 20) as usize),
        )),
        "long_signal_name" => {
            let name = "s".repeat(input.n.unwrap_or(1 << 20) as usize);
            Ok(json!(raw::runtime::wait_signal(&name, Some(0))))
        }
        "long_key" => {
            let key = "k".repeat(input.n.unwrap_or(1 << 20) as usize);
            let r = raw::workflows::start("hello", "{}", Some(&key));
            Ok(json!({ "refused": r.err().map(|f| f.code) }))
        }
        "clock_flood" => loop {
            std::hint::black_box(std::time::Instant::now());
        },
        "sleep_flood" => loop {
            sleep(std::time::Duration::ZERO);
        },
        "signal_flood" => loop {
            raw::runtime::wait_signal("never", Some(0));
        },
        "secret_flood" => loop {
            secrets::get("LEAK_ME")?;
        },
        "fork_bomb" => {
            // Every run starts as many copies of itself as it may.
            loop {
                if raw::workflows::start("hostile", r#"{"attack":"fork_bomb"}"#, None).is_err() {
                    return Ok(json!({ "stopped": true }));
                }
            }
        }
        "leak_disguised" => leak_disguised(),
        "hold" => {
            // Holds `n` MiB across a sleep of `ms` (parked with it).
            let held = vec![0xABu8; (input.n.unwrap_or(32) << 20) as usize];
            std::hint::black_box(&held);
            sleep(std::time::Duration::from_millis(input.ms.unwrap_or(100)));
            Ok(json!({ "held": held.len() }))
        }
        other => Err(Error::new(
            "UNKNOWN_ATTACK",
            format!("no attack named {other:?}"),
        )),
    }
}

/// Looks for anything an earlier run left behind, then leaves some itself:
/// a static that must start at its initial value, and freshly grown
/// linear memory that must read as zero.
fn residue() -> Result<Value> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static MARK: AtomicU64 = AtomicU64::new(0);
    let mark_was = MARK.swap(0xdead, Ordering::SeqCst);
    let dirty_bytes = dirty_fresh_pages(32)?;
    Ok(json!({ "mark_was": mark_was, "dirty_bytes": dirty_bytes }))
}

/// Grows memory by `pages` (outside the allocator), counts non-zero bytes
/// in them, then fills them with 0xAB.
#[cfg(target_arch = "wasm32")]
fn dirty_fresh_pages(pages: usize) -> Result<usize> {
    let old = core::arch::wasm32::memory_grow(0, pages);
    if old == usize::MAX {
        return Err(Error::new("GROW_FAILED", "memory.grow failed"));
    }
    let len = pages * 65536;
    // SAFETY: the pages were just added by memory.grow; nothing else
    // (the allocator included) knows of them.
    let fresh = unsafe { std::slice::from_raw_parts_mut((old * 65536) as *mut u8, len) };
    let dirty = fresh.iter().filter(|b| **b != 0).count();
    fresh.fill(0xAB);
    Ok(dirty)
}

#[cfg(not(target_arch = "wasm32"))]
fn dirty_fresh_pages(_pages: usize) -> Result<usize> {
    Err(Error::new("WASM_ONLY", "only meaningful in wasm"))
}

fn endless_loop() -> Result<Value> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn memory_bomb() -> Result<Value> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the allocation is real.
        hoard.push(vec![0xAB; 8 << 20]);
        std::hint::black_box(&hoard);
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [depth; 32];
    std::hint::black_box(&mut frame);
    recurse(depth + 1) + frame[7]
}

fn artifact_escape() -> Result<Value> {
    let mut refused = Vec::new();
    for name in ["../x", "a/b", "", "x\0y", "..\\x", "/etc/passwd"] {
        match artifacts::write(name, b"escaped") {
            Ok(r) => {
                return Err(Error::new(
                    "ESCAPED",
                    format!("{name:?} was accepted as {}", r.digest),
                ));
            }
            Err(e) => refused.push(json!({ "name": name, "code": e.code })),
        }
    }
    let ok = artifacts::write("inside.txt", b"safe")?;
    Ok(json!({ "refused": refused, "accepted": ok.name }))
}

/// Takes a different side effect depending on secret `FLAVOR` (an artifact
/// for "a", an event otherwise), then sleeps: a resumed run whose secret
/// changed meanwhile would diverge from its journal.
fn diverge(ms: u64) -> Result<Value> {
    let flavor = secrets::get("FLAVOR")?;
    if flavor == "a" {
        artifacts::write("a.txt", b"a")?;
    } else {
        runway_sdk::emit("b", &json!({ "flavor": flavor.len() }))?;
    }
    sleep(std::time::Duration::from_millis(ms));
    Ok(json!({ "done": true }))
}

/// Spells the secret every way a store could miss: JSON escapes of its
/// quote and backslash, `\u` escapes, in an event's kind, the result, an
/// artifact's name, content type and metadata, a signal name, an
/// approval's prompt, payload and options, a child's input and key, and
/// across stdout's 8 KiB chunk boundary.
fn leak_disguised() -> Result<Value> {
    use std::io::Write;
    let value = secrets::get("LEAK_ME")?;
    runway_sdk::emit("escaped", &json!({ "secret": value, "list": [value] }))?;
    let spelled: String = value
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    raw::runtime::emit("unicode", &format!("{{\"{spelled}\":\"{spelled}\"}}"));
    raw::runtime::emit(&value, "{}");
    let _ = raw::artifacts::write(
        &format!("a-{}.txt", value.replace(['/', '\\', '\0'], "_")),
        &format!("text/{}", value.replace(|c: char| c.is_control(), "_")),
        b"body",
        Some(&json!({ "secret": value }).to_string()),
    );
    raw::runtime::wait_signal(&value, Some(0));
    // An approval: its prompt and payload are stored masked; a secret in
    // an option, which a decision must repeat, is refused.
    use runway_sdk::approvals::{Choice, Spec, request};
    let asked = Spec::decision(format!("ship {value}?"), ["yes", "no"])
        .payload(&json!({ "secret": value, "note": format!("v={value}") }))?
        .timeout(std::time::Duration::from_millis(1), Choice::option("no"));
    request("leak", &asked)?;
    let keyed = Spec::decision("pick one", [value.clone(), "no".to_owned()])
        .timeout(std::time::Duration::from_millis(1), Choice::option("no"));
    match request("leak-option", &keyed) {
        Err(e) if e.code == "APPROVAL_INVALID" => {}
        _ => return Err(Error::new("NOT_REFUSED", "a secret option was taken")),
    }
    let _ = raw::workflows::start("hello", &json!({ "name": value }).to_string(), Some(&value));
    // One write with no newline: the host cuts it at 8 KiB (+ the longest
    // secret), which here falls one byte into the value.
    let mut out = std::io::stdout();
    let _ = out.write_all(format!("{}{value}q", "p".repeat(8 * 1024 - 1)).as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
    Ok(json!({ "secret": value }))
}

fn leak_secret() -> Result<Value> {
    let value = secrets::get("LEAK_ME")?;
    println!("stdout: the secret is {value}");
    eprintln!("stderr: the secret is {value}");
    log(Level::Warn, format!("log: the secret is {value}"));
    runway_sdk::emit("leak", &json!({ "secret": value }))?;
    Err(Error::new(
        "LEAKED",
        format!("error: the secret is {value}"),
    ))
}

runway_sdk::workflow!(hostile);
