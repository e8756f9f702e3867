//! [`Script`]: the world of a run under test. The host asks it where a
//! real one would leave the process — a model provider, an HTTP server, a
//! child workflow — and it answers from the scenario, noting every call
//! nothing in the scenario answers.

use super::scenario::{
    ChildReply, HttpFailure, HttpReply, McpReply, ModelFailure, ModelReply, Scenario,
};
use crate::egress::{HttpError, Request as HttpRequest, Response as HttpResponse};
use crate::models::{Generated, ModelError, Request as ModelRequest, Resolved, Tokens};
use crate::sandbox::fault::Ending;
use crate::types::{ErrorCode, RunError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

/// Tells where the scripted world answered.
const PROVIDER: &str = "runway-test";

/// The scripted answers of one scenario, consumed as the run uses them.
pub(crate) struct Script {
    models: Mutex<Vec<(ModelReply, bool)>>,
    http: Mutex<Vec<(HttpReply, bool)>>,
    mcp: Mutex<Vec<(McpReply, bool)>>,
    /// Tool calls asked for so far (their ids).
    tool_calls: std::sync::atomic::AtomicU64,
    children: Vec<ChildReply>,
    secrets: HashMap<String, String>,
    unscripted: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret values.
        f.debug_struct("Script")
            .field("models", &self.models.lock().len())
            .field("http", &self.http.lock().len())
            .field("children", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Script {
    pub(crate) fn new(scenario: &Scenario) -> Script {
        Script {
            models: Mutex::new(scenario.models.iter().map(|r| (r.clone(), false)).collect()),
            http: Mutex::new(scenario.http.iter().map(|r| (r.clone(), false)).collect()),
            mcp: Mutex::new(scenario.mcp.iter().map(|r| (r.clone(), false)).collect()),
            tool_calls: std::sync::atomic::AtomicU64::new(0),
            children: scenario.children.clone(),
            secrets: scenario.secrets.clone().into_iter().collect(),
            unscripted: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn secrets(&self) -> HashMap<String, String> {
        self.secrets.clone()
    }

    /// The calls nothing answered, in order.
    pub(crate) fn unscripted(&self) -> Vec<String> {
        self.unscripted.lock().clone()
    }

    /// Notes a call the scenario did not script.
    pub(crate) fn note_unscripted(&self, call: String) {
        self.unscripted.lock().push(call);
    }

    /// The answer to a model call: the first reply that matches and is not
    /// used up.
    pub(crate) fn model(
        &self,
        model: &Resolved,
        request: &ModelRequest,
    ) -> Result<Generated, ModelError> {
        let texts = || {
            request
                .system
                .iter()
                .map(String::as_str)
                .chain(request.messages.iter().map(|m| m.content.as_str()))
                .chain(
                    request
                        .messages
                        .iter()
                        .flat_map(|m| m.tool_results.iter().map(|t| t.content.as_str())),
                )
        };
        let matches = |r: &ModelReply| {
            r.model
                .as_ref()
                .is_none_or(|m| *m == model.reference || *m == model.model)
                && r.contains
                    .as_ref()
                    .is_none_or(|c| texts().any(|t| t.contains(c.as_str())))
        };
        let reply = take(&self.models, matches, |r| r.repeat);
        let Some(reply) = reply else {
            let last = request.messages.last().map_or("", |m| m.content.as_str());
            let call = format!(
                "model call to {:?}, last message {:?}: script it with World::model",
                model.model,
                excerpt(last)
            );
            self.note_unscripted(call.clone());
            return Err(ModelError::Provider {
                provider: PROVIDER.into(),
                status: 0,
                message: format!("unscripted {call}"),
            });
        };
        let provider = PROVIDER.to_owned();
        match reply.error {
            Some(ModelFailure::RateLimited) => {
                return Err(ModelError::RateLimited {
                    provider,
                    attempts: 1,
                    message: "scripted".into(),
                });
            }
            Some(ModelFailure::Timeout) => {
                return Err(ModelError::Timeout {
                    provider,
                    after: Duration::ZERO,
                });
            }
            Some(ModelFailure::Provider) => {
                return Err(ModelError::Provider {
                    provider,
                    status: 500,
                    message: "scripted".into(),
                });
            }
            None => {}
        }
        let prompt: usize = texts().map(str::len).sum();
        let tokens = Tokens {
            input: reply.input_tokens.unwrap_or(prompt.div_ceil(4) as u64),
            output: reply
                .output_tokens
                .unwrap_or(reply.text.len().div_ceil(4) as u64),
            cached: 0,
        };
        let tool_calls: Vec<crate::models::ToolCall> = reply
            .tool_calls
            .iter()
            .map(|c| {
                let n = self
                    .tool_calls
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                crate::models::ToolCall {
                    id: format!("call_{n}"),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                }
            })
            .collect();
        Ok(Generated {
            text: reply.text,
            finish_reason: if tool_calls.is_empty() {
                "stop".into()
            } else {
                "tool-calls".into()
            },
            cost_nanos: model.rates.cost_nanos(tokens),
            tokens,
            model: model.clone(),
            attempts: 1,
            latency_ms: 0,
            tool_calls,
        })
    }

    /// A scripted MCP server's tools: those its replies name.
    pub(crate) fn mcp_tools(&self, server: &str) -> Option<Vec<crate::mcp::ToolInfo>> {
        let mut names: Vec<String> = self
            .mcp
            .lock()
            .iter()
            .filter(|(r, _)| r.server == server)
            .map(|(r, _)| r.tool.clone())
            .collect();
        if names.is_empty() {
            return None;
        }
        names.dedup();
        Some(
            names
                .into_iter()
                .map(|name| crate::mcp::ToolInfo {
                    name,
                    description: String::new(),
                    input_schema: serde_json::json!({ "type": "object" }),
                })
                .collect(),
        )
    }

    /// A scripted MCP tool's answer, if the scenario has one.
    pub(crate) fn mcp_call(
        &self,
        server: &str,
        tool: &str,
        arguments: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<crate::mcp::CallOutcome> {
        let text = serde_json::Value::Object(arguments.clone()).to_string();
        let matches = |r: &McpReply| {
            r.server == server
                && r.tool == tool
                && r.contains
                    .as_ref()
                    .is_none_or(|c| text.contains(c.as_str()))
        };
        let Some(reply) = take(&self.mcp, matches, |r| r.repeat) else {
            self.note_unscripted(format!(
                "MCP call {server}/{tool} {}: script it with World::mcp",
                excerpt(&text)
            ));
            return None;
        };
        Some(crate::mcp::CallOutcome {
            content: vec![serde_json::json!({ "type": "text", "text": reply.text })],
            structured_content: None,
            is_error: reply.is_error,
        })
    }

    /// The response to an HTTP request the egress policy let out.
    pub(crate) fn http(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let url = request.url.as_str();
        let matches = |r: &HttpReply| {
            r.method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(request.method.as_str()))
                && match r.url.strip_suffix('*') {
                    Some(prefix) => url.starts_with(prefix),
                    None => {
                        r.url == url || url::Url::parse(&r.url).is_ok_and(|u| u.as_str() == url)
                    }
                }
        };
        let Some(reply) = take(&self.http, matches, |r| r.repeat) else {
            let call = format!("HTTP {} {url}: script it with World::http", request.method);
            self.note_unscripted(call.clone());
            return Err(HttpError::Connect(format!("unscripted {call}")));
        };
        match reply.error {
            Some(HttpFailure::Timeout) => Err(HttpError::Timeout(Duration::ZERO)),
            Some(HttpFailure::Connect) => Err(HttpError::Connect("scripted".into())),
            None => Ok(HttpResponse {
                status: reply.status,
                headers: reply.headers,
                body: reply.body.into_bytes(),
            }),
        }
    }

    /// How a child run of `workflow` ends, if the scenario says.
    pub(crate) fn child(&self, workflow: &str) -> Option<Ending> {
        let reply = self.children.iter().find(|c| c.workflow == workflow)?;
        Some(match &reply.error {
            Some(message) => Ending::Failed(RunError {
                code: ErrorCode::ProgramError,
                message: message.clone(),
                cause: None,
            }),
            None => Ending::Completed(reply.output.clone()),
        })
    }

    /// The workflows whose children are scripted.
    pub(crate) fn child_workflows(&self) -> impl Iterator<Item = &str> {
        self.children.iter().map(|c| c.workflow.as_str())
    }
}

/// The first reply that matches and is not used up, marked used.
fn take<T: Clone>(
    replies: &Mutex<Vec<(T, bool)>>,
    matches: impl Fn(&T) -> bool,
    repeat: impl Fn(&T) -> bool,
) -> Option<T> {
    let mut replies = replies.lock();
    let (reply, used) = replies
        .iter_mut()
        .find(|(r, used)| (!*used || repeat(r)) && matches(r))?;
    *used = true;
    Some(reply.clone())
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Message, Role};

    fn resolved(reference: &str) -> Resolved {
        let models = crate::models::Models::new(
            &toml::from_str(
                r#"
                aliases = { default = "scripted/default" }
                providers.scripted = { kind = "openai", input_per_million = 1000000.0 }
                "#,
            )
            .unwrap(),
        )
        .unwrap();
        models.resolve(reference).unwrap()
    }

    fn ask(text: &str) -> ModelRequest {
        ModelRequest {
            system: Some("be brief".into()),
            messages: vec![Message::text(Role::User, text)],
            max_output_tokens: None,
            temperature: None,
            stop: Vec::new(),
            json_schema: None,
            ..ModelRequest::default()
        }
    }

    fn scenario(json: serde_json::Value) -> Script {
        Script::new(&serde_json::from_value(json).unwrap())
    }

    #[test]
    fn model_replies_match_in_order_and_are_used_once_unless_repeated() {
        let script = scenario(serde_json::json!({"models": [
            {"contains": "critique", "text": "too long", "repeat": true},
            {"model": "default", "text": "first"},
            {"text": "second", "input_tokens": 7, "output_tokens": 3},
        ]}));
        let m = resolved("default");
        let answer = |t: &str| script.model(&m, &ask(t)).map(|g| g.text);
        assert_eq!(answer("draft").unwrap(), "first");
        assert_eq!(answer("critique this").unwrap(), "too long");
        assert_eq!(answer("critique again").unwrap(), "too long");
        let g = script.model(&m, &ask("draft")).unwrap();
        assert_eq!(
            (g.text.as_str(), g.tokens.input, g.tokens.output),
            ("second", 7, 3)
        );
        // 7 input tokens at $1 per token.
        assert_eq!(g.cost_nanos, 7_000_000_000);
        let e = script.model(&m, &ask("draft once more")).unwrap_err();
        assert_eq!(e.code(), "PROVIDER_ERROR");
        assert!(e.to_string().contains("unscripted"), "{e}");
        let noted = script.unscripted();
        assert_eq!(noted.len(), 1);
        assert!(noted[0].contains("draft once more"), "{noted:?}");
    }

    #[test]
    fn a_model_reply_names_a_reference_or_a_model_and_can_fail() {
        let script = scenario(serde_json::json!({"models": [
            {"model": "other", "text": "never"},
            {"model": "default", "error": "rate_limited"},
        ]}));
        let e = script.model(&resolved("default"), &ask("x")).unwrap_err();
        assert_eq!(e.code(), "RATE_LIMITED");
        assert_eq!(script.unscripted(), Vec::<String>::new());
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: reqwest::Method::GET,
            url: url.parse().unwrap(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    #[test]
    fn http_replies_match_method_and_url_or_prefix() {
        let script = scenario(serde_json::json!({"http": [
            {"method": "POST", "url": "https://api.example.org/x", "status": 500},
            {"url": "https://api.example.org", "body": "root"},
            {"url": "https://api.example.org/items/*", "status": 404, "repeat": true},
            {"url": "https://slow.example.org/", "error": "timeout"},
        ]}));
        let r = script.http(&get("https://api.example.org/")).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"root".as_slice()));
        for _ in 0..2 {
            let r = script
                .http(&get("https://api.example.org/items/7"))
                .unwrap();
            assert_eq!(r.status, 404);
        }
        let e = script.http(&get("https://slow.example.org/")).unwrap_err();
        assert_eq!(e.code().as_str(), "HTTP_TIMEOUT");
        // GET is not the scripted POST.
        let e = script.http(&get("https://api.example.org/x")).unwrap_err();
        assert_eq!(e.code().as_str(), "HTTP_CONNECT");
        assert!(script.unscripted()[0].contains("GET https://api.example.org/x"));
    }

    #[test]
    fn children_end_as_scripted() {
        let script = scenario(serde_json::json!({"children": [
            {"workflow": "ok", "output": {"n": 1}},
            {"workflow": "bad", "error": "no"},
        ]}));
        assert!(matches!(script.child("ok"), Some(Ending::Completed(v)) if v["n"] == 1));
        assert!(matches!(script.child("bad"), Some(Ending::Failed(e)) if e.message == "no"));
        assert!(script.child("other").is_none());
        assert_eq!(script.child_workflows().collect::<Vec<_>>(), ["ok", "bad"]);
    }
}
