//! A guest that misbehaves on request. The host's tests deploy it to prove
//! that each attack ends only its own run, with the right failure code.
//!
//! Input: `{"attack": "<name>"}` with one of the names below.

use runway_sdk::{Error, Level, Result, artifacts, log, secrets};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    attack: String,
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
        other => Err(Error::new(
            "UNKNOWN_ATTACK",
            format!("no attack named {other:?}"),
        )),
    }
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
