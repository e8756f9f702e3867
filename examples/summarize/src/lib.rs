//! `{"text":"..."}` -> `{"summary":"...","artifact":"summary.md",...}`
//!
//! Asks a model for a summary of the input text and stores it as the
//! artifact `summary.md`. Options:
//! - `model`: an alias or `provider/model` (default `"default"`);
//! - `structured`: ask for `{"summary","words"}` as structured output;
//! - `rounds`: refine the summary this many times (one model call each);
//! - `pause_ms`: a durable sleep before each refinement.

use runway_sdk::models::{self, Request, Response};
use runway_sdk::{Result, artifacts, sleep};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    text: String,
    #[serde(default = "default_model")]
    model: String,
    #[serde(default)]
    structured: bool,
    #[serde(default = "one")]
    rounds: u32,
    #[serde(default)]
    pause_ms: u64,
    /// Name of the artifact to write.
    #[serde(default = "default_artifact")]
    artifact: String,
}

fn default_model() -> String {
    "default".into()
}
fn one() -> u32 {
    1
}
fn default_artifact() -> String {
    "summary.md".into()
}

#[derive(Serialize)]
struct Output {
    summary: String,
    artifact: String,
    /// The model the host resolved, as `provider/model`.
    model: String,
    calls: u32,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    finish_reason: String,
    /// Word count, when asked for structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<u64>,
}

#[derive(Deserialize)]
struct Structured {
    summary: String,
    words: u64,
}

const SYSTEM: &str = "You summarize documents for busy engineers. Be faithful and brief.";

fn summarize(input: Input) -> Result<Output> {
    let mut out = Output {
        summary: String::new(),
        artifact: input.artifact.clone(),
        model: String::new(),
        calls: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        finish_reason: String::new(),
        words: None,
    };
    let mut text = input.text;
    for round in 0..input.rounds.max(1) {
        if round > 0 && input.pause_ms > 0 {
            sleep(Duration::from_millis(input.pause_ms));
        }
        let request = Request::new(&input.model)
            .system(SYSTEM)
            .user(format!("Summarize:\n\n{text}"))
            .max_output_tokens(400)
            .temperature(0.2);
        let response: Response = if input.structured {
            let request = request.json_schema(serde_json::json!({
                "type": "object",
                "properties": {
                    "summary": { "type": "string" },
                    "words": { "type": "integer" }
                },
                "required": ["summary", "words"],
                "additionalProperties": false
            }));
            let (s, response) = models::generate_json::<Structured>(&request)?;
            out.words = Some(s.words);
            Response {
                text: s.summary,
                ..response
            }
        } else {
            models::generate(&request)?
        };
        out.calls += 1;
        out.input_tokens += response.usage.input_tokens;
        out.output_tokens += response.usage.output_tokens;
        out.cost_usd += response.cost_usd;
        out.model = response.model.reference;
        out.finish_reason = response.finish_reason;
        text = response.text;
    }
    artifacts::write_with(&out.artifact, "text/markdown", &text, None)?;
    out.summary = text;
    Ok(out)
}

runway_sdk::workflow!(summarize);
