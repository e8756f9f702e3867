//! `{"issue":7}` -> `{"summary":"...","turns":4,"tool_calls":4}`
//!
//! An agent loop: the model reads issue N and looks for duplicates with the
//! tracker's MCP tools (`get_issue`, `search_issues`), rates it with a tool
//! of the workflow's own (`severity`), labels it (`add_label`), and answers
//! with a summary, which is written as the artifact `triage.md`. Every turn
//! and tool call is journaled by the host: a crash never asks the model or
//! calls a tool twice.
//!
//! Input: `issue`, and optionally `model` (default `default`) and
//! `max_turns` (default 8).

use runway_sdk::agent::Agent;
use runway_sdk::{Result, artifacts};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    issue: u64,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_turns: Option<u32>,
}

#[derive(Deserialize)]
struct Rate {
    text: String,
}

/// 1 to 5, from words that usually mean trouble.
fn severity(text: &str) -> u32 {
    let text = text.to_lowercase();
    let hits = ["crash", "panic", "data loss", "corrupt", "security"]
        .iter()
        .filter(|w| text.contains(*w))
        .count() as u32;
    (1 + 2 * hits).min(5)
}

fn triage(input: Input) -> Result<Value> {
    let outcome = Agent::new(input.model.unwrap_or_else(|| "default".into()))
        .system(
            "You triage issues in a tracker. Read the issue, search for duplicates, \
             rate its severity, add exactly one label (bug, feature or question), \
             then answer with a two-line summary.",
        )
        .mcp("tracker")?
        .tool(
            "severity",
            "Rates how severe an issue's text sounds, from 1 to 5.",
            json!({
                "type": "object",
                "properties": { "text": { "type": "string" } },
                "required": ["text"],
            }),
            |r: Rate| Ok(json!({ "severity": severity(&r.text) })),
        )
        .max_turns(input.max_turns.unwrap_or(8))
        .run(format!("Triage issue #{}.", input.issue))?;
    artifacts::write_with(
        "triage.md",
        "text/markdown",
        format!("# Issue #{}\n\n{}\n", input.issue, outcome.text),
        None,
    )?;
    Ok(json!({
        "summary": outcome.text,
        "turns": outcome.turns,
        "tool_calls": outcome.tool_calls,
    }))
}

runway_sdk::workflow!(triage);
