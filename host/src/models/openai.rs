//! The OpenAI Chat Completions wire format (also spoken by vLLM, Ollama,
//! LiteLLM and most local servers).

use super::provider::Answer;
use super::{Request, Role, Tokens, ToolCall, ToolChoice};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn body(model: &str, r: &Request, max_output: u32) -> Value {
    let mut messages = Vec::with_capacity(r.messages.len() + 1);
    if let Some(s) = &r.system {
        messages.push(json!({ "role": "system", "content": s }));
    }
    for m in &r.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if !m.tool_calls.is_empty() {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments.to_string() },
                    })
                })
                .collect();
            let content = (!m.content.is_empty()).then_some(&m.content);
            messages.push(json!({ "role": role, "content": content, "tool_calls": calls }));
            continue;
        }
        // Each result is a `tool` message; text beside them a user one.
        for t in &m.tool_results {
            messages
                .push(json!({ "role": "tool", "tool_call_id": t.call_id, "content": t.content }));
        }
        if m.tool_results.is_empty() || !m.content.is_empty() {
            messages.push(json!({ "role": role, "content": m.content }));
        }
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": max_output,
    });
    if let Some(t) = r.temperature {
        body["temperature"] = json!(t);
    }
    if !r.stop.is_empty() {
        body["stop"] = json!(r.stop);
    }
    if let Some(schema) = &r.json_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": { "name": "output", "schema": schema },
        });
    }
    if !r.tools.is_empty() {
        let tools: Vec<Value> = r
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": { "name": t.name, "description": t.description, "parameters": t.parameters },
                })
            })
            .collect();
        body["tools"] = json!(tools);
    }
    if let Some(choice) = &r.tool_choice {
        body["tool_choice"] = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(n) => json!({ "type": "function", "function": { "name": n } }),
        };
    }
    body
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireCall>,
}

#[derive(Deserialize)]
struct WireCall {
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    /// JSON text, as the model wrote it.
    arguments: String,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

pub(super) fn parse(bytes: &[u8], _r: &Request) -> Result<Answer, String> {
    let c: Completion =
        serde_json::from_slice(bytes).map_err(|e| format!("not a chat completion: {e}"))?;
    let Some(choice) = c.choices.into_iter().next() else {
        return Err("the completion has no choices".into());
    };
    let usage = c
        .usage
        .ok_or("the completion reports no usage, so the call cannot be accounted")?;
    let finish_reason = match choice.finish_reason.as_deref() {
        Some("stop") | None => "stop".to_owned(),
        Some("length") => "length".to_owned(),
        Some("content_filter") => "content-filter".to_owned(),
        Some("tool_calls") => "tool-calls".to_owned(),
        Some(other) => other.to_owned(),
    };
    let tool_calls = choice
        .message
        .tool_calls
        .into_iter()
        .map(|c| {
            let arguments = serde_json::from_str(&c.function.arguments).map_err(|e| {
                format!(
                    "the arguments of tool call {:?} are not JSON: {e}",
                    c.function.name
                )
            })?;
            Ok(ToolCall {
                id: c.id,
                name: c.function.name,
                arguments,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let (text, finish_reason) = match (choice.message.content, choice.message.refusal) {
        (Some(t), _) => (t, finish_reason),
        (None, Some(refusal)) => (refusal, "content-filter".to_owned()),
        (None, None) => (String::new(), finish_reason),
    };
    Ok(Answer {
        text,
        finish_reason,
        tool_calls,
        tokens: Tokens {
            input: usage.prompt_tokens,
            output: usage.completion_tokens,
            cached: usage
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Message;

    #[test]
    fn request_carries_system_messages_limits_and_schema() {
        let r = Request {
            system: Some("be brief".into()),
            messages: vec![Message::text(Role::User, "hi")],
            temperature: Some(0.5),
            stop: vec!["END".into()],
            json_schema: Some(json!({"type": "object"})),
            ..Request::default()
        };
        let b = body("gpt-x", &r, 99);
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(b["messages"][1], json!({"role": "user", "content": "hi"}));
        assert_eq!(b["max_tokens"], 99);
        assert_eq!(b["stop"], json!(["END"]));
        assert_eq!(
            b["response_format"]["json_schema"]["schema"],
            json!({"type": "object"})
        );
    }

    #[test]
    fn answers_parse_with_usage_and_finish_reasons() {
        let a = parse(
            br#"{"choices":[{"message":{"role":"assistant","content":"yo"},"finish_reason":"length"}],
                "usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}"#,
            &Request::default(),
        )
        .unwrap();
        assert_eq!(a.text, "yo");
        assert_eq!(a.finish_reason, "length");
        assert_eq!(
            a.tokens,
            Tokens {
                input: 10,
                output: 3,
                cached: 4
            }
        );
        assert!(parse(b"{\"choices\": [", &Request::default()).is_err());
        assert!(parse(br#"{"choices":[]}"#, &Request::default()).is_err());
        let e = parse(
            br#"{"choices":[{"message":{"content":"x"}}]}"#,
            &Request::default(),
        )
        .err()
        .unwrap();
        assert!(e.contains("usage"), "{e}");
    }
}
