//! The Anthropic Messages wire format. Structured output is asked for the
//! established way: one tool whose input schema is the wanted schema, and a
//! `tool_choice` that makes the model call it.

use super::provider::Answer;
use super::{Request, Role, Tokens, ToolCall, ToolChoice};
use serde::Deserialize;
use serde_json::{Value, json};

/// The `anthropic-version` header sent with every request.
pub(super) const VERSION: &str = "2023-06-01";
/// The tool that carries structured output.
const TOOL: &str = "output";

pub(super) fn body(model: &str, r: &Request, max_output: u32) -> Value {
    let messages: Vec<Value> = r
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            if m.tool_calls.is_empty() && m.tool_results.is_empty() {
                return json!({ "role": role, "content": m.content });
            }
            // Blocks: results first (the API wants them leading), then text,
            // then the calls.
            let mut blocks: Vec<Value> = m
                .tool_results
                .iter()
                .map(|t| {
                    json!({
                        "type": "tool_result",
                        "tool_use_id": t.call_id,
                        "content": t.content,
                        "is_error": t.is_error,
                    })
                })
                .collect();
            if !m.content.is_empty() {
                blocks.push(json!({ "type": "text", "text": m.content }));
            }
            blocks.extend(m.tool_calls.iter().map(
                |c| json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments }),
            ));
            json!({ "role": role, "content": blocks })
        })
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": max_output,
        "messages": messages,
    });
    if let Some(s) = &r.system {
        body["system"] = json!(s);
    }
    if let Some(t) = r.temperature {
        body["temperature"] = json!(t);
    }
    if !r.stop.is_empty() {
        body["stop_sequences"] = json!(r.stop);
    }
    if let Some(schema) = &r.json_schema {
        body["tools"] = json!([{
            "name": TOOL,
            "description": "Give the answer in this structure.",
            "input_schema": schema,
        }]);
        body["tool_choice"] = json!({ "type": "tool", "name": TOOL });
    } else if !r.tools.is_empty() {
        let tools: Vec<Value> = r
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
        body["tools"] = json!(tools);
    }
    if r.json_schema.is_none()
        && let Some(choice) = &r.tool_choice
    {
        body["tool_choice"] = match choice {
            ToolChoice::Auto => json!({ "type": "auto" }),
            ToolChoice::None => json!({ "type": "none" }),
            ToolChoice::Required => json!({ "type": "any" }),
            ToolChoice::Named(n) => json!({ "type": "tool", "name": n }),
        };
    }
    body
}

#[derive(Deserialize)]
struct MessageOut {
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Usage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

pub(super) fn parse(bytes: &[u8], r: &Request) -> Result<Answer, String> {
    let m: MessageOut =
        serde_json::from_slice(bytes).map_err(|e| format!("not a Messages answer: {e}"))?;
    let mut text = String::new();
    let mut tool = None;
    let structured = r.json_schema.is_some();
    let mut tool_calls = Vec::new();
    for block in m.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { name, input, .. } if structured && name == TOOL => tool = Some(input),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: input,
            }),
            Block::Other => {}
        }
    }
    if structured && let Some(input) = tool {
        text = input.to_string();
    }
    let finish_reason = match m.stop_reason.as_deref() {
        Some("end_turn") | None => "stop".to_owned(),
        Some("tool_use") if structured => "stop".to_owned(),
        Some("tool_use") => "tool-calls".to_owned(),
        Some("max_tokens") => "length".to_owned(),
        Some("stop_sequence") => "stop-sequence".to_owned(),
        Some("refusal") => "content-filter".to_owned(),
        Some(other) => other.to_owned(),
    };
    let cached = m.usage.cache_read_input_tokens.unwrap_or(0);
    Ok(Answer {
        text,
        finish_reason,
        tool_calls,
        tokens: Tokens {
            // Anthropic counts cache reads and writes apart from input.
            input: m.usage.input_tokens + cached + m.usage.cache_creation_input_tokens.unwrap_or(0),
            output: m.usage.output_tokens,
            cached,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Message;

    #[test]
    fn request_puts_system_apart_and_schema_in_a_forced_tool() {
        let r = Request {
            system: Some("sys".into()),
            messages: vec![Message::text(Role::User, "hi")],
            stop: vec!["X".into()],
            json_schema: Some(json!({"type": "object"})),
            ..Request::default()
        };
        let b = body("claude-x", &r, 50);
        assert_eq!(b["system"], "sys");
        assert_eq!(b["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(b["max_tokens"], 50);
        assert_eq!(b["stop_sequences"], json!(["X"]));
        assert_eq!(b["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(b["tool_choice"], json!({"type": "tool", "name": "output"}));
    }

    #[test]
    fn answers_parse_text_tools_and_cache_usage() {
        let a = parse(
            br#"{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"stop_reason":"stop_sequence",
                "usage":{"input_tokens":5,"output_tokens":2,"cache_read_input_tokens":7,"cache_creation_input_tokens":1}}"#,
            &Request::default(),
        )
        .unwrap();
        assert_eq!(a.text, "ab");
        assert_eq!(a.finish_reason, "stop-sequence");
        assert_eq!(
            a.tokens,
            Tokens {
                input: 13,
                output: 2,
                cached: 7
            }
        );
        let r = Request {
            json_schema: Some(json!({})),
            ..Request::default()
        };
        let a = parse(
            br#"{"content":[{"type":"tool_use","id":"t","name":"output","input":{"k":1}}],"stop_reason":"tool_use",
                "usage":{"input_tokens":5,"output_tokens":2}}"#,
            &r,
        )
        .unwrap();
        assert_eq!(a.text, r#"{"k":1}"#);
        assert_eq!(a.finish_reason, "stop");
        assert!(parse(b"not json", &r).is_err());
    }
}
