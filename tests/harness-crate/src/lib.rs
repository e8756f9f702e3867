//! Everything a world can script, by `mode`: `patient` sleeps a day and
//! waits for a signal; `worldly` reads a secret, asks a model, calls an
//! API and a child workflow; `escape` calls a host its manifest does not
//! allow; `forgetful` asks a model nobody scripted; `agent` runs an agent
//! loop over a tracker's MCP tools and one of its own.

use runway_sdk::models::{Request, generate};
use runway_sdk::{Error, Result, call, http, secrets, sleep, wait_signal};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    mode: String,
}

fn demo(input: Input) -> Result<Value> {
    match input.mode.as_str() {
        "patient" => {
            sleep(Duration::from_secs(24 * 3600));
            let go: Option<Value> = wait_signal("go", None)?;
            Ok(json!({ "go": go }))
        }
        "worldly" => {
            let token = secrets::get("API_TOKEN")?;
            let answer = generate(&Request::new("default").user("Name a colour."))?;
            let response = http::get("https://api.example.org/items/7")
                .bearer_secret("API_TOKEN")
                .send()?;
            let body: Value = response.json()?;
            let child: Value = call("helper", &json!({ "colour": answer.text }))?;
            Ok(json!({
                "token_length": token.len(),
                "colour": answer.text,
                "tokens": answer.usage.output_tokens,
                "status": response.status,
                "item": body,
                "child": child,
            }))
        }
        "escape" => match http::get("https://elsewhere.example.com/").send() {
            Ok(r) => Ok(json!({ "status": r.status })),
            Err(e) => Ok(json!({ "refused": e.code })),
        },
        "forgetful" => {
            let answer = generate(&Request::new("default").user("Say something."))?;
            Ok(json!({ "said": answer.text }))
        }
        "agent" => {
            let outcome = runway_sdk::agent::Agent::new("default")
                .mcp("tracker")?
                .tool(
                    "shout",
                    "Upper-cases a text.",
                    json!({ "type": "object", "properties": { "text": { "type": "string" } } }),
                    |a: Value| Ok(a["text"].as_str().unwrap_or("").to_uppercase()),
                )
                .run("Label issue 7.")?;
            Ok(json!({ "text": outcome.text, "turns": outcome.turns, "tool_calls": outcome.tool_calls }))
        }
        other => Err(Error::new("BAD_MODE", format!("no mode {other:?}"))),
    }
}

runway_sdk::workflow!(demo);
