//! Test a workflow on the real Runway engine, in a world the test scripts.
//!
//! A test in the crate's `tests/` runs the crate's own workflow with
//! [`World::run`]: the host (`runway test-runner`, which `cargo test` uses
//! as the runner for `wasm32-wasip2`, see the crate's
//! `.cargo/config.toml`) deploys the component with its `runway.toml` into
//! a temporary data directory and runs it there — the same sandbox,
//! budgets, journal and events as in production. Everything that would
//! leave the host comes from the [`World`] instead: secret values, model
//! answers, HTTP responses, signals, and the results of child runs. Time
//! skips: a durable sleep of a day, or a signal's timeout, takes no time.
//!
//! A call the world has no answer for fails in the run (`PROVIDER_ERROR`,
//! `HTTP_CONNECT`, `WORKFLOW_NOT_FOUND`) and then fails the test, naming
//! the call, unless the test asked for [`World::try_run`].
//!
//! ```no_run
//! use runway_sdk::testing::{ModelReply, World};
//! use serde_json::json;
//!
//! #[test]
//! fn summarizes() {
//!     let run = World::new()
//!         .model(ModelReply::text("A short summary."))
//!         .run(json!({ "text": "A long text..." }));
//!     assert_eq!(run.output()["summary"], "A short summary.");
//!     assert!(run.artifact("summary.md").is_some());
//! }
//! ```
//!
//! The crate must be an `rlib` as well as a `cdylib`
//! (`crate-type = ["cdylib", "rlib"]`): that is what makes `cargo test`
//! build the component the tests run.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

mod harness {
    wit_bindgen::generate!({
        path: "wit/testing",
        world: "runway:testing/tester",
    });
    pub use self::runway::testing::harness::run;
}

/// The world a run meets: its input comes with [`World::run`].
#[derive(Clone, Debug, Default)]
pub struct World {
    secrets: serde_json::Map<String, Value>,
    models: Vec<Value>,
    http: Vec<Value>,
    signals: Vec<Value>,
    children: Vec<Value>,
    mcp: Vec<Value>,
    rates: Option<Value>,
    timeout: Option<Duration>,
}

impl World {
    /// A world with nothing in it: no secrets, no answers.
    pub fn new() -> World {
        World::default()
    }

    /// The value of secret `name`, for a manifest that declares it.
    pub fn secret(mut self, name: &str, value: &str) -> World {
        self.secrets.insert(name.to_owned(), value.into());
        self
    }

    /// An answer to the model calls it matches; answers are tried in the
    /// order they were added, each used once unless [`ModelReply::repeat`].
    pub fn model(mut self, reply: ModelReply) -> World {
        self.models.push(reply.0);
        self
    }

    /// A response to the HTTP requests it matches (after the manifest's
    /// `[http]` rules let them out); tried in order, each used once unless
    /// [`HttpReply::repeat`].
    pub fn http(mut self, reply: HttpReply) -> World {
        self.http.push(reply.0);
        self
    }

    /// An answer of an MCP server's tool to the calls it matches; a
    /// scripted server offers the tools its replies name. Tried in order,
    /// each used once unless [`McpReply::repeat`].
    pub fn mcp(mut self, reply: McpReply) -> World {
        self.mcp.push(reply.0);
        self
    }

    /// A signal in the run's inbox from its start, as if sent at once.
    pub fn signal<T: Serialize + ?Sized>(mut self, name: &str, data: &T) -> World {
        self.signals
            .push(json!({ "name": name, "data": to_value(data) }));
        self
    }

    /// Every child run of `workflow` completes with `output`, without
    /// running.
    pub fn child<T: Serialize + ?Sized>(mut self, workflow: &str, output: &T) -> World {
        self.children
            .push(json!({ "workflow": workflow, "output": to_value(output) }));
        self
    }

    /// Every child run of `workflow` fails with `message`: the parent gets
    /// `CHILD_FAILED`.
    pub fn child_failure(mut self, workflow: &str, message: &str) -> World {
        self.children
            .push(json!({ "workflow": workflow, "error": message }));
        self
    }

    /// What the scripted models cost, in dollars per million tokens (free
    /// otherwise): for testing `max_usd`.
    pub fn rates(mut self, input_per_million: f64, output_per_million: f64) -> World {
        self.rates = Some(json!({
            "input_per_million": input_per_million,
            "output_per_million": output_per_million,
        }));
        self
    }

    /// Real time the run may take (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> World {
        self.timeout = Some(timeout);
        self
    }

    /// Runs the crate's workflow with `input` until it ends, or until it
    /// waits for something this world does not provide (a signal).
    ///
    /// # Panics
    ///
    /// If the run cannot start (the input breaks the manifest's schema,
    /// the crate has no component) or made a call this world has no answer
    /// for. [`World::try_run`] returns those instead.
    #[track_caller]
    pub fn run<T: Serialize + ?Sized>(&self, input: &T) -> Outcome {
        let outcome = match self.try_run(input) {
            Ok(o) => o,
            Err(e) => panic!("the run could not start: {e}"),
        };
        if !outcome.unscripted.is_empty() {
            panic!(
                "the run made calls this World has no answer for:\n  {}\n(run {}: {})",
                outcome.unscripted.join("\n  "),
                outcome.run_id,
                outcome.headline()
            );
        }
        outcome
    }

    /// Like [`World::run`], without panicking: `Err` when the run cannot
    /// start; unanswered calls are in [`Outcome::unscripted`].
    pub fn try_run<T: Serialize + ?Sized>(&self, input: &T) -> Result<Outcome, String> {
        let scenario = json!({
            "input": to_value(input),
            "secrets": self.secrets,
            "models": self.models,
            "http": self.http,
            "signals": self.signals,
            "children": self.children,
            "mcp": self.mcp,
            "rates": self.rates,
            "timeout_ms": self.timeout.map(|t| t.as_millis() as u64),
        });
        let answer = harness::run(&scenario.to_string())?;
        serde_json::from_str(&answer)
            .map_err(|e| format!("the harness answered what this SDK cannot read: {e}"))
    }
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

/// An answer to model calls.
#[derive(Clone, Debug)]
pub struct ModelReply(Value);

impl ModelReply {
    /// Answers with `text`.
    pub fn text(text: &str) -> ModelReply {
        ModelReply(json!({ "text": text }))
    }

    /// Answers with `value` as JSON text (for `generate_json`).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> ModelReply {
        ModelReply::text(&to_value(value).to_string())
    }

    /// Fails the call as a provider would.
    pub fn failure(failure: ModelFailure) -> ModelReply {
        let kind = match failure {
            ModelFailure::RateLimited => "rate_limited",
            ModelFailure::Timeout => "timeout",
            ModelFailure::Provider => "provider",
        };
        ModelReply(json!({ "error": kind }))
    }

    /// Only for calls to `model`: the reference the workflow used
    /// (`default`, `openai/gpt-4o`) or the model's name (`gpt-4o`).
    pub fn for_model(mut self, model: &str) -> ModelReply {
        self.0["model"] = model.into();
        self
    }

    /// Only for calls whose system prompt or a message contains `text`.
    pub fn when_contains(mut self, text: &str) -> ModelReply {
        self.0["contains"] = text.into();
        self
    }

    /// The tokens counted (default: a quarter of the characters each way).
    pub fn tokens(mut self, input: u64, output: u64) -> ModelReply {
        self.0["input_tokens"] = input.into();
        self.0["output_tokens"] = output.into();
        self
    }

    /// Answers every matching call, not only the first.
    pub fn repeat(mut self) -> ModelReply {
        self.0["repeat"] = true.into();
        self
    }

    /// Asks for a call of tool `name` with `arguments` (to `models::chat`,
    /// as an agent loop makes); several make one turn with several calls.
    pub fn tool_call<T: Serialize + ?Sized>(mut self, name: &str, arguments: &T) -> ModelReply {
        let call = json!({ "name": name, "arguments": to_value(arguments) });
        match self.0["tool_calls"].as_array_mut() {
            Some(calls) => calls.push(call),
            None => self.0["tool_calls"] = json!([call]),
        }
        self
    }

    /// A turn that only calls tools (start with [`ModelReply::tool_call`]).
    pub fn calls() -> ModelReply {
        ModelReply(json!({ "text": "" }))
    }
}

/// An answer of an MCP server's tool.
#[derive(Clone, Debug)]
pub struct McpReply(Value);

impl McpReply {
    /// `tool` of `server` answers `text`.
    pub fn text(server: &str, tool: &str, text: &str) -> McpReply {
        McpReply(json!({ "server": server, "tool": tool, "text": text }))
    }

    /// `tool` of `server` answers `value` as JSON text.
    pub fn json<T: Serialize + ?Sized>(server: &str, tool: &str, value: &T) -> McpReply {
        McpReply::text(server, tool, &to_value(value).to_string())
    }

    /// The tool fails (`MCP_TOOL_ERROR` with `message`).
    pub fn error(mut self) -> McpReply {
        self.0["is_error"] = true.into();
        self
    }

    /// Only for calls whose arguments (as JSON text) contain `text`.
    pub fn when_contains(mut self, text: &str) -> McpReply {
        self.0["contains"] = text.into();
        self
    }

    /// Answers every matching call, not only the first.
    pub fn repeat(mut self) -> McpReply {
        self.0["repeat"] = true.into();
        self
    }
}

/// A provider failure a [`ModelReply`] plays back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFailure {
    /// `RATE_LIMITED`
    RateLimited,
    /// `PROVIDER_TIMEOUT`
    Timeout,
    /// `PROVIDER_ERROR`
    Provider,
}

/// A response to HTTP requests.
#[derive(Clone, Debug)]
pub struct HttpReply(Value);

impl HttpReply {
    /// `200` with an empty body to any method on `url`; a `url` ending in
    /// `*` matches every URL it begins.
    pub fn to(url: &str) -> HttpReply {
        HttpReply(json!({ "url": url }))
    }

    /// Only `GET` requests to `url`.
    pub fn get(url: &str) -> HttpReply {
        HttpReply::to(url).method("GET")
    }

    /// Only `POST` requests to `url`.
    pub fn post(url: &str) -> HttpReply {
        HttpReply::to(url).method("POST")
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> HttpReply {
        self.0["method"] = method.into();
        self
    }

    pub fn status(mut self, status: u16) -> HttpReply {
        self.0["status"] = status.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> HttpReply {
        let headers = self.0["headers"].as_array_mut();
        match headers {
            Some(h) => h.push(json!([name, value])),
            None => self.0["headers"] = json!([[name, value]]),
        }
        self
    }

    /// The body, as text.
    pub fn body(mut self, body: &str) -> HttpReply {
        self.0["body"] = body.into();
        self
    }

    /// A JSON body, with its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> HttpReply {
        self.header("content-type", "application/json")
            .body(&to_value(value).to_string())
    }

    /// No response: the request times out (`HTTP_TIMEOUT`).
    pub fn timeout(mut self) -> HttpReply {
        self.0["error"] = "timeout".into();
        self
    }

    /// No response: the connection fails (`HTTP_CONNECT`).
    pub fn connect_error(mut self) -> HttpReply {
        self.0["error"] = "connect".into();
        self
    }

    /// Answers every matching request, not only the first.
    pub fn repeat(mut self) -> HttpReply {
        self.0["repeat"] = true.into();
        self
    }
}

/// What a run did in its [`World`].
#[derive(Clone, Debug, Deserialize)]
pub struct Outcome {
    pub run_id: String,
    /// `completed`, `failed`, `cancelled`, or what it waits for
    /// (`waiting_signal`).
    pub status: String,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<RunError>,
    /// What a run that stopped short of its end waits for
    /// (`signal "approve"`).
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// Its event log, as the API shows it.
    pub events: Vec<Event>,
    pub artifacts: Vec<Artifact>,
    /// The child runs it started (scripted ones included).
    pub children: Vec<Child>,
    /// Fuel, duration, memory, events, model tokens and cost.
    pub usage: Value,
    #[serde(rename = "skipped_ms", with = "millis")]
    /// Time that passed for the run without taking any.
    pub skipped: Duration,
    /// Calls the world had no answer for.
    pub unscripted: Vec<String>,
}

/// A failed run's error.
#[derive(Clone, Debug, Deserialize)]
pub struct RunError {
    /// `PROGRAM_ERROR` (the workflow returned an error), `TRAP`,
    /// `BUDGET_EXCEEDED`, ...
    pub code: String,
    pub message: String,
}

/// One entry of the run's event log.
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// `running`, `log`, `custom`, `model_call`, `http_call`, ...
    pub kind: String,
    /// Its other fields.
    #[serde(flatten)]
    pub data: serde_json::Map<String, Value>,
}

/// An artifact the run wrote.
#[derive(Clone, Debug, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Its body, when it is UTF-8 text.
    #[serde(default)]
    pub text: Option<String>,
}

/// A child run.
#[derive(Clone, Debug, Deserialize)]
pub struct Child {
    pub run_id: String,
    pub workflow: String,
    pub input: Value,
    pub status: String,
    #[serde(default)]
    pub output: Option<Value>,
}

impl Outcome {
    /// Whether the run completed.
    pub fn completed(&self) -> bool {
        self.status == "completed"
    }

    /// The output of a completed run.
    ///
    /// # Panics
    ///
    /// If the run did not complete, with what it did instead.
    #[track_caller]
    pub fn output(&self) -> &Value {
        match (&self.output, self.completed()) {
            (Some(v), true) => v,
            _ => panic!("the run did not complete: {}", self.headline()),
        }
    }

    /// The output of a completed run, deserialized.
    ///
    /// # Panics
    ///
    /// If the run did not complete, or its output is not a `T`.
    #[track_caller]
    pub fn output_as<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.output().clone())
            .unwrap_or_else(|e| panic!("the output is not what the test expects: {e}"))
    }

    /// The code of a failed run's error.
    pub fn error_code(&self) -> Option<&str> {
        self.error.as_ref().map(|e| e.code.as_str())
    }

    /// The events of one kind, in order.
    pub fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |e| e.kind == kind)
    }

    /// The artifact called `name`.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    /// The status, and the error or what the run waits for.
    pub fn headline(&self) -> String {
        match (&self.error, &self.waiting_for) {
            (Some(e), _) => format!("{} with {}: {}", self.status, e.code, e.message),
            (None, Some(w)) => format!("{}, waiting for {w}", self.status),
            (None, None) => self.status.clone(),
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
