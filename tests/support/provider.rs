//! A fake language-model provider for end-to-end tests of the host's model
//! calls: a real HTTP server on `127.0.0.1` (random port) speaking two real
//! wire formats.
//!
//! * OpenAI Chat Completions: `POST /v1/chat/completions`, key in
//!   `Authorization: Bearer <key>`. Configure the host with
//!   [`Provider::openai_url`] (`{base}/v1`).
//! * Anthropic Messages: `POST /v1/messages`, key in `x-api-key: <key>`, and
//!   an `anthropic-version` header is required. Configure the host with
//!   [`Provider::anthropic_url`] (`{base}`).
//!
//! # How a request is answered
//!
//! 1. It is recorded (see [`Provider::requests`]), whatever happens next.
//! 2. **Auth first.** If the request does not carry the accepted key, it gets
//!    a 401 in the format's error shape and the script is left untouched —
//!    unless the next behaviour (the head of the script, or the default when
//!    the script is empty) is [`Behavior::EchoKey`]: then that behaviour is
//!    used (and popped, if it came from the script) and the 401 quotes
//!    whatever key was sent.
//! 3. **Validation.** A body that is not a JSON object, a missing `model` or
//!    `messages`, a missing `anthropic-version` header or (Anthropic) a
//!    missing `max_tokens` get a 400 in the format's error shape. These do
//!    not consume a scripted behaviour either.
//! 4. **Behaviour.** Otherwise exactly one behaviour is taken — the head of
//!    the script, or the default once the script is used up — at arrival
//!    (before any [`Behavior::Slow`] wait), so concurrent requests get
//!    scripted behaviours in arrival order.
//!
//! The server runs on a thread (and tokio runtime) of its own, so it answers
//! whatever the test's runtime is doing (even a blocking `Command::output`
//! inside a current-thread `#[tokio::test]`); it stops when the [`Provider`]
//! is dropped.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Which wire format a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

/// How the provider answers one request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with a normal answer. `text: None` = the default text:
    /// `"summary: "` + the first 60 characters of the last user message, or,
    /// when the request asks for structured output,
    /// `{"summary":"<that text>","words":<words in the last user message>}`.
    /// `text: Some(t)` is sent verbatim (for an Anthropic structured request
    /// it becomes the `tool_use` input if it parses as JSON, else a text
    /// block).
    Success {
        text: Option<String>,
        input_tokens: u64,
        output_tokens: u64,
        cached_tokens: u64,
    },
    /// 429 with header `Retry-After: <secs>` and the format's error JSON.
    RateLimited { retry_after_secs: u64 },
    /// 500 with the format's error JSON (message "internal server error").
    ServerError,
    /// 200 with content-type application/json but a truncated, non-JSON body.
    Malformed,
    /// Waits this long, then answers like the initial default
    /// (`Success { text: None, input_tokens: 100, output_tokens: 20, cached_tokens: 0 }`).
    Slow(Duration),
    /// 401 whose error message quotes the key the request carried (empty if
    /// none), e.g. "Incorrect API key provided: <KEY>" — as real providers
    /// do; the host must mask it. Applies to unauthorized requests too (see
    /// the module docs).
    EchoKey,
    /// 200 whose answer quotes the key the request carried: text
    /// `"the key is <KEY>"`, or for a structured request
    /// `{"summary":"the key is <KEY>","words":<n>}` (a hostile/buggy provider).
    EchoKeyInText,
    /// 200 asking to call these tools (name, arguments), in the format's
    /// shape: OpenAI `tool_calls` with `finish_reason: tool_calls`,
    /// Anthropic `tool_use` blocks with `stop_reason: tool_use`. Call ids
    /// are `call_<n>` / `toolu_<n>`, numbered across the provider's life.
    ToolCalls(Vec<(String, Value)>),
    /// Waits this long (the model thinking), then behaves as the inner one.
    Delayed(Duration, Box<Behavior>),
}

impl Behavior {
    /// The initial default: a normal answer with 100 input and 20 output tokens.
    fn initial() -> Behavior {
        Behavior::Success {
            text: None,
            input_tokens: 100,
            output_tokens: 20,
            cached_tokens: 0,
        }
    }
}

/// One request the provider received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Which endpoint it hit.
    pub format: Format,
    /// The parsed JSON request body (`Value::Null` if not JSON).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
    /// Whether it carried the accepted key.
    pub authorized: bool,
}

/// A running fake provider. Dropping it stops the server.
pub struct Provider {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    shared: Arc<Shared>,
    /// Dropping this (with the provider) stops the server thread.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

struct Shared {
    key: String,
    script: Mutex<VecDeque<Behavior>>,
    default: Mutex<Behavior>,
    requests: Mutex<Vec<Recorded>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Tool call ids handed out so far.
    call_ids: AtomicUsize,
}

impl Provider {
    /// Starts on 127.0.0.1:0; `key` is the only API key it accepts.
    pub async fn start(key: &str) -> Provider {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fake provider");
        listener
            .set_nonblocking(true)
            .expect("making the fake provider's listener non-blocking");
        let addr = listener
            .local_addr()
            .expect("the fake provider's local address");
        let shared = Arc::new(Shared {
            key: key.to_string(),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Behavior::initial()),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            call_ids: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("fake-provider".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building the fake provider's runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("registering the fake provider's listener");
                    let server = tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    // Resolves (with an error) when the Provider is dropped.
                    let _ = rx.await;
                    server.abort();
                });
                // Dropping the runtime cancels the open connections.
            })
            .expect("spawning the fake provider's thread");
        Provider {
            base: format!("http://{addr}"),
            shared,
            _shutdown: tx,
        }
    }

    /// Behaviours for the next requests, in order, one per request (across
    /// both formats); appended to what is left of the script. When the
    /// script is empty the default is used.
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.shared.script.lock().extend(behaviors);
    }

    /// The behaviour once the script is used up. Initially
    /// `Behavior::Success { text: None, input_tokens: 100, output_tokens: 20, cached_tokens: 0 }`.
    pub fn set_default(&self, b: Behavior) {
        *self.shared.default.lock() = b;
    }

    /// Every request received so far (including rejected ones), in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().clone()
    }

    /// Number of requests received.
    pub fn count(&self) -> usize {
        self.shared.requests.lock().len()
    }

    /// Highest number of requests that were being handled at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// OpenAI-format base URL to configure: `{base}/v1`.
    pub fn openai_url(&self) -> String {
        format!("{}/v1", self.base)
    }

    /// Anthropic-format base URL to configure: `{base}`.
    pub fn anthropic_url(&self) -> String {
        self.base.clone()
    }
}

/// Counts a request as in flight until dropped (also when the client goes
/// away and the handler is cancelled).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&shared.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn openai(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(Format::OpenAi, &shared, &headers, &body).await
}

async fn anthropic(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(Format::Anthropic, &shared, &headers, &body).await
}

async fn handle(format: Format, shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let _guard = InFlight::enter(shared);
    let at = Instant::now();
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let sent = sent_key(format, headers);
    let authorized = sent == Some(shared.key.as_str());
    shared.requests.lock().push(Recorded {
        format,
        body: parsed.clone().unwrap_or(Value::Null),
        at,
        authorized,
    });

    if !authorized {
        let echo = {
            let mut script = shared.script.lock();
            match script.front() {
                Some(Behavior::EchoKey) => {
                    script.pop_front();
                    true
                }
                Some(_) => false,
                None => matches!(*shared.default.lock(), Behavior::EchoKey),
            }
        };
        return if echo {
            echo_key(format, sent.unwrap_or(""))
        } else {
            unauthorized(format)
        };
    }

    let req = match parse(format, headers, parsed) {
        Ok(req) => req,
        Err(message) => {
            return error(
                format,
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &message,
            );
        }
    };

    let mut behavior = {
        let mut script = shared.script.lock();
        script
            .pop_front()
            .unwrap_or_else(|| shared.default.lock().clone())
    };
    while let Behavior::Delayed(wait, inner) = behavior {
        tokio::time::sleep(wait).await;
        behavior = *inner;
    }

    match behavior {
        Behavior::Delayed(..) => unreachable!("unwrapped above"),
        Behavior::ToolCalls(calls) => {
            let calls: Vec<(String, String, Value)> = calls
                .into_iter()
                .map(|(name, args)| {
                    let n = shared.call_ids.fetch_add(1, Ordering::SeqCst) + 1;
                    let id = match format {
                        Format::OpenAi => format!("call_{n}"),
                        Format::Anthropic => format!("toolu_{n}"),
                    };
                    (id, name, args)
                })
                .collect();
            tool_calls(format, &req, &calls)
        }
        Behavior::Success {
            text,
            input_tokens,
            output_tokens,
            cached_tokens,
        } => {
            let answer = match text {
                Some(t) => Answer::Text(t),
                None => default_answer(&req, default_text(&req.last_user)),
            };
            success(
                format,
                &req,
                answer,
                input_tokens,
                output_tokens,
                cached_tokens,
            )
        }
        Behavior::RateLimited { retry_after_secs } => {
            let (kind, message) = match format {
                Format::OpenAi => (
                    "requests",
                    format!("Rate limit reached. Please try again in {retry_after_secs}s."),
                ),
                Format::Anthropic => (
                    "rate_limit_error",
                    "Number of requests has exceeded your rate limit.".to_string(),
                ),
            };
            let mut resp = error(format, StatusCode::TOO_MANY_REQUESTS, kind, None, &message);
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(retry_after_secs),
            );
            resp
        }
        Behavior::ServerError => {
            let kind = match format {
                Format::OpenAi => "server_error",
                Format::Anthropic => "api_error",
            };
            error(
                format,
                StatusCode::INTERNAL_SERVER_ERROR,
                kind,
                None,
                "internal server error",
            )
        }
        Behavior::Malformed => {
            let body = match format {
                Format::OpenAi => r#"{"choices": ["#,
                Format::Anthropic => r#"{"id":"msg_1","content": ["#,
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Behavior::Slow(wait) => {
            tokio::time::sleep(wait).await;
            let answer = default_answer(&req, default_text(&req.last_user));
            success(format, &req, answer, 100, 20, 0)
        }
        Behavior::EchoKey => echo_key(format, sent.unwrap_or("")),
        Behavior::EchoKeyInText => {
            let answer = default_answer(&req, format!("the key is {}", sent.unwrap_or("")));
            success(format, &req, answer, 100, 20, 0)
        }
    }
}

/// The key the request carried in its format's auth header.
fn sent_key(format: Format, headers: &HeaderMap) -> Option<&str> {
    match format {
        Format::OpenAi => headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer "),
        Format::Anthropic => headers.get("x-api-key")?.to_str().ok(),
    }
}

/// What the provider needs from a valid request.
struct Request {
    model: String,
    /// Text of the last user message.
    last_user: String,
    /// `max_tokens` / `max_completion_tokens`, if given.
    max_tokens: Option<u64>,
    /// Whether structured output was asked for.
    structured: bool,
    /// Anthropic: the forced tool's name.
    tool: Option<String>,
}

fn parse(format: Format, headers: &HeaderMap, body: Option<Value>) -> Result<Request, String> {
    if format == Format::Anthropic && !headers.contains_key("anthropic-version") {
        return Err("anthropic-version: header is required".into());
    }
    let Some(Value::Object(body)) = body else {
        return Err(match format {
            Format::OpenAi => "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)".into(),
            Format::Anthropic => "There was an error parsing the body of your request: not a JSON object".into(),
        });
    };
    let model = match body.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => {
            return Err(match format {
                Format::OpenAi => "you must provide a model parameter".into(),
                Format::Anthropic => "model: Field required".into(),
            });
        }
    };
    let Some(Value::Array(messages)) = body.get("messages") else {
        return Err(match format {
            Format::OpenAi => "Missing required parameter: 'messages'.".into(),
            Format::Anthropic => "messages: Field required".into(),
        });
    };
    check_tools(format, &body)?;
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();

    let max_tokens = match format {
        Format::OpenAi => {
            let field = if body.contains_key("max_completion_tokens") {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            match body.get(field) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    format!("Invalid type for '{field}': expected an unsigned integer.")
                })?),
            }
        }
        Format::Anthropic => match body.get("max_tokens").and_then(Value::as_u64) {
            Some(n) => Some(n),
            None => return Err("max_tokens: Field required".into()),
        },
    };

    let (structured, tool) = match format {
        Format::OpenAi => match body.get("response_format") {
            None | Some(Value::Null) => (false, None),
            Some(rf) => match rf.get("type").and_then(Value::as_str) {
                Some("text") => (false, None),
                Some("json_object") => (true, None),
                Some("json_schema") => {
                    let js = rf.get("json_schema");
                    let named = js
                        .and_then(|j| j.get("name"))
                        .and_then(Value::as_str)
                        .is_some();
                    let schema = js
                        .and_then(|j| j.get("schema"))
                        .is_some_and(Value::is_object);
                    if !named || !schema {
                        return Err("Missing required parameter: 'response_format.json_schema' (with 'name' and 'schema').".into());
                    }
                    (true, None)
                }
                _ => return Err("Invalid value for 'response_format.type'.".into()),
            },
        },
        Format::Anthropic => match body.get("tool_choice") {
            Some(choice) if choice.get("type").and_then(Value::as_str) == Some("tool") => {
                let Some(name) = choice.get("name").and_then(Value::as_str) else {
                    return Err("tool_choice.name: Field required".into());
                };
                let declared = body
                    .get("tools")
                    .and_then(Value::as_array)
                    .is_some_and(|tools| {
                        tools.iter().any(|t| {
                            t.get("name").and_then(Value::as_str) == Some(name)
                                && t.get("input_schema").is_some_and(Value::is_object)
                        })
                    });
                if !declared {
                    return Err(format!(
                        "tool_choice: tool '{name}' not found in tools (each needs a name and an input_schema)"
                    ));
                }
                (true, Some(name.to_string()))
            }
            _ => (false, None),
        },
    };

    Ok(Request {
        model,
        last_user,
        max_tokens,
        structured,
        tool,
    })
}

/// A message's `content`: a string, or an array of blocks whose `text`s are
/// joined with newlines.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `"summary: "` + the first 60 characters of the last user message.
fn default_text(last_user: &str) -> String {
    format!(
        "summary: {}",
        last_user.chars().take(60).collect::<String>()
    )
}

enum Answer {
    /// Sent as text (an Anthropic structured request tries it as JSON).
    Text(String),
    /// Structured output.
    Json(Value),
}

/// `summary` as plain text, or as the structured JSON if asked for.
fn default_answer(req: &Request, summary: String) -> Answer {
    if req.structured {
        Answer::Json(json!({
            "summary": summary,
            "words": req.last_user.split_whitespace().count(),
        }))
    } else {
        Answer::Text(summary)
    }
}

fn success(
    format: Format,
    req: &Request,
    answer: Answer,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
) -> Response {
    let truncated = req.max_tokens.is_some_and(|max| max < output_tokens);
    let body = match format {
        Format::OpenAi => {
            let content = match answer {
                Answer::Text(t) => t,
                Answer::Json(v) => v.to_string(),
            };
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000u64,
                "model": req.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": if truncated { "length" } else { "stop" },
                }],
                "usage": {
                    "prompt_tokens": input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": input_tokens.saturating_add(output_tokens),
                    "prompt_tokens_details": {"cached_tokens": cached_tokens},
                },
            })
        }
        Format::Anthropic => {
            let tool_use = |name: &str, input: Value| {
                (
                    json!({"type": "tool_use", "id": "toolu_1", "name": name, "input": input}),
                    "tool_use",
                )
            };
            let text_block = |text: String| (json!({"type": "text", "text": text}), "end_turn");
            let (block, natural_stop) = match (&req.tool, answer) {
                (Some(name), Answer::Json(input)) => tool_use(name, input),
                (Some(name), Answer::Text(t)) => match serde_json::from_str::<Value>(&t) {
                    Ok(input) => tool_use(name, input),
                    Err(_) => text_block(t),
                },
                (None, Answer::Json(v)) => text_block(v.to_string()),
                (None, Answer::Text(t)) => text_block(t),
            };
            json!({
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": [block],
                "stop_reason": if truncated { "max_tokens" } else { natural_stop },
                "stop_sequence": null,
                "usage": {
                    "input_tokens": input_tokens.saturating_sub(cached_tokens),
                    "output_tokens": output_tokens,
                    "cache_read_input_tokens": cached_tokens,
                    "cache_creation_input_tokens": 0,
                },
            })
        }
    };
    (StatusCode::OK, Json(body)).into_response()
}

fn tool_calls(format: Format, req: &Request, calls: &[(String, String, Value)]) -> Response {
    let usage_in = 100u64;
    let usage_out = 10u64 * calls.len() as u64;
    let body = match format {
        Format::OpenAi => json!({
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": req.model,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": calls.iter().map(|(id, name, args)| json!({
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": args.to_string()},
                    })).collect::<Vec<_>>(),
                },
                "finish_reason": "tool_calls",
            }],
            "usage": {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
            },
        }),
        Format::Anthropic => json!({
            "id": "msg_2",
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": calls.iter().map(|(id, name, input)| json!({
                "type": "tool_use", "id": id, "name": name, "input": input,
            })).collect::<Vec<_>>(),
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
        }),
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// Checks `tools`, `tool_choice` and the tool turns of a request as the
/// real APIs do: each tool well formed, and each tool result answering a
/// call an earlier assistant turn made.
fn check_tools(format: Format, body: &serde_json::Map<String, Value>) -> Result<(), String> {
    let names: Vec<&str> = match body.get("tools") {
        None => Vec::new(),
        Some(Value::Array(tools)) => tools
            .iter()
            .map(|t| {
                let (name, schema) = match format {
                    Format::OpenAi => {
                        if t.get("type").and_then(Value::as_str) != Some("function") {
                            return Err("tools[].type: must be 'function'".to_string());
                        }
                        let f = t
                            .get("function")
                            .ok_or("tools[].function: Field required")?;
                        (f.get("name"), f.get("parameters"))
                    }
                    Format::Anthropic => (t.get("name"), t.get("input_schema")),
                };
                let name = name
                    .and_then(Value::as_str)
                    .ok_or("tools[].name: Field required")?;
                if !schema.is_some_and(Value::is_object) {
                    return Err(format!("tools[{name}]: the schema must be an object"));
                }
                Ok(name)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("tools: must be an array".into()),
    };
    let mut called: Vec<String> = Vec::new();
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match format {
            Format::OpenAi => {
                for c in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let args = c.pointer("/function/arguments").and_then(Value::as_str);
                    if args.is_none_or(|a| serde_json::from_str::<Value>(a).is_err()) {
                        return Err("tool_calls[].function.arguments: must be a JSON string".into());
                    }
                    called.extend(c.get("id").and_then(Value::as_str).map(String::from));
                }
                if role == "tool" {
                    let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                    if !called.iter().any(|c| c == id) {
                        return Err(format!(
                            "Invalid parameter: 'tool_call_id' {id:?} answers no earlier tool call."
                        ));
                    }
                }
            }
            Format::Anthropic => {
                for b in m
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match b.get("type").and_then(Value::as_str) {
                        Some("tool_use") => {
                            called.extend(b.get("id").and_then(Value::as_str).map(String::from));
                        }
                        Some("tool_result") => {
                            let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
                            if role != "user" || !called.iter().any(|c| c == id) {
                                return Err(format!(
                                    "messages: tool_result block(s) provided when previous message does not have a matching tool_use block ({id:?})"
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some(choice) = body.get("tool_choice") {
        let named = match format {
            Format::OpenAi => choice.pointer("/function/name").and_then(Value::as_str),
            Format::Anthropic => match choice.get("type").and_then(Value::as_str) {
                Some("tool") => choice.get("name").and_then(Value::as_str),
                Some("auto" | "any" | "none") => None,
                _ => return Err("tool_choice.type: must be auto, any, tool or none".into()),
            },
        };
        if let Some(n) = named
            && !names.contains(&n)
            && body.get("tools").is_some()
        {
            return Err(format!("tool_choice: tool {n:?} not found in tools"));
        }
    }
    Ok(())
}

/// The format's error JSON with `status`. `code` is OpenAI's `error.code`.
fn error(
    format: Format,
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
) -> Response {
    let body = match format {
        Format::OpenAi => json!({"error": {"message": message, "type": kind, "code": code}}),
        Format::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    (status, Json(body)).into_response()
}

fn unauthorized(format: Format) -> Response {
    match format {
        Format::OpenAi => error(
            format,
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided",
        ),
        Format::Anthropic => error(
            format,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            None,
            "invalid x-api-key",
        ),
    }
}

fn echo_key(format: Format, key: &str) -> Response {
    match format {
        Format::OpenAi => error(
            format,
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            &format!(
                "Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
        ),
        Format::Anthropic => error(
            format,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            None,
            &format!("invalid x-api-key: {key}"),
        ),
    }
}
