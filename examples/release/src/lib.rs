//! `{"kind":"gate"|"decision"|"select"|"rank", "name":"ship", "allow":["approve:release"], "timeout_ms":60000}`
//! -> `{"decision":{...}}`
//!
//! Asks approval `name` (default `ship`) of the given kind over the
//! options `a`, `b` and `c` (a selection takes two), with the payload
//! `{"version": 42}`, allowed to the principals or scopes in `allow` (each
//! with a `:` and no `approve` prefix is a principal, like `jwt:alice`),
//! and with `timeout_ms` a default of "deny", `a`, `[a, b]` or
//! `[a, b, c]`. Returns the decision; a spec the host refuses ends the run
//! with its code (`APPROVAL_INVALID`).

use runway_sdk::Result;
use runway_sdk::approvals::{self, Choice, Spec};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Options to offer instead of a, b, c.
    #[serde(default)]
    options: Option<Vec<String>>,
}

fn release(input: Input) -> Result<Value> {
    let options = input
        .options
        .unwrap_or_else(|| vec!["a".into(), "b".into(), "c".into()]);
    let prompt = format!("Release v42 ({})?", input.kind);
    let (spec, default) = match input.kind.as_str() {
        "decision" => (
            Spec::decision(&prompt, options.clone()),
            Choice::option(options[0].clone()),
        ),
        "select" => (
            Spec::select(&prompt, options.clone(), 2),
            Choice::options(options.iter().take(2).cloned()),
        ),
        "rank" => (
            Spec::rank(&prompt, options.clone()),
            Choice::options(options.clone()),
        ),
        _ => (Spec::gate(&prompt), Choice::approve(false)),
    };
    let mut spec = spec.payload(&json!({ "version": 42 }))?;
    for a in input.allow {
        spec = if a.starts_with("jwt:") || a.starts_with("token:") || a.starts_with("proxy:") {
            spec.allow_principal(a)
        } else {
            spec.allow_scope(a)
        };
    }
    if let Some(ms) = input.timeout_ms {
        spec = spec.timeout(Duration::from_millis(ms), default);
    }
    let name = input.name.unwrap_or_else(|| "ship".into());
    let d = approvals::request(&name, &spec)?;
    Ok(json!({
        "decision": {
            "approved": d.approved,
            "option": d.option,
            "options": d.options,
            "by": d.by,
            "comment": d.comment,
            "timed_out": d.timed_out,
        }
    }))
}

runway_sdk::workflow!(release);
