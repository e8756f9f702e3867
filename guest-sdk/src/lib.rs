//! Write Runway workflows in Rust.
//!
//! A workflow is one function from a deserializable input to a serializable
//! output. Register it with [`workflow!`], build the crate for
//! `wasm32-wasip2`, and deploy the `.wasm` with a `runway.toml`.
//!
//! Everything outside the sandbox goes through the host, with typed helpers:
//! [`secrets::get`], [`artifacts::write`], [`log`], [`emit`], [`info`].
//! The host records each call in the run's journal, so a run that is
//! resumed after a crash sees the same results and repeats no side effect.
//!
//! Language models are called through the host with [`models::generate`]
//! (and [`models::generate_json`] for structured output): the workflow never
//! holds a provider key, and the host accounts every token against the
//! run's budget.
//!
//! A run can also wait, durably: [`sleep`] on a timer, [`wait_signal`] for
//! data sent to the run, and [`call`] (or [`start`] then [`join`]) for child
//! runs of other workflows; a wait survives a host restart. A child that
//! fails or is cancelled comes back as an [`Error`] with code
//! `CHILD_FAILED` or `CHILD_CANCELLED`.
//!
//! A workflow is tested on the real engine with [`testing::World`]:
//! `cargo test` runs each test's scenarios — scripted secrets, model
//! answers, HTTP responses, signals and children, with durable sleeps
//! skipped — through the `runway` host.
//!
//! # Example
//!
//! `runway new report` writes a crate like this one; its `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "report"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]  # rlib: for `cargo test`
//!
//! [dependencies]
//! # The SDK matching the host that wrote the crate (or a path to a checkout
//! # of the Runway repository's guest-sdk/).
//! runway-sdk = { path = "vendor/runway-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use runway_sdk::{artifacts, emit, log, secrets, Level, Result};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     title: String,
//!     sections: Vec<String>,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     artifact: String,
//!     bytes: u64,
//! }
//!
//! fn report(input: Input) -> Result<Output> {
//!     // Fails the run with SECRET_UNDECLARED unless runway.toml declares it.
//!     let token = secrets::get("REPORT_TOKEN")?;
//!     log(Level::Info, format!("token has {} characters", token.len()));
//!     let mut body = format!("# {}\n", input.title);
//!     for (i, s) in input.sections.iter().enumerate() {
//!         body.push_str(&format!("\n## {s}\n"));
//!         emit("progress", &serde_json::json!({ "done": i + 1 }))?;
//!     }
//!     let written = artifacts::write_with("report.md", "text/markdown", body, None)?;
//!     Ok(Output { artifact: written.name, bytes: written.size })
//! }
//!
//! runway_sdk::workflow!(report);
//! ```
//!
//! `runway.toml`:
//!
//! ```toml
//! slug = "report"
//! secrets = ["REPORT_TOKEN"]
//! [budget]
//! max_duration = "30s"
//! ```
//!
//! Build, deploy and run it:
//!
//! ```sh
//! runway build                      # dist/report.wasm beside dist/runway.toml
//! runway deploy dist/report.wasm
//! runway run report --input '{"title":"Weekly","sections":["Wins","Risks"]}'
//! ```

use serde::{Serialize, de::DeserializeOwned};
use std::fmt;
use std::time::Duration;

pub mod testing;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "runway:workflow/workflow",
        pub_export_macro: true,
        default_bindings_module: "runway_sdk::bindings",
    });
}

use bindings::runway::workflow as wit;

/// A workflow's error: a machine-readable `code` and a message for people.
///
/// Returning one fails the run with `PROGRAM_ERROR` (or `INVALID_INPUT` when
/// the code is `INVALID_INPUT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: String,
    pub message: String,
}

impl Error {
    /// An error with a code of your own, e.g. `"UPSTREAM_DOWN"`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            code: code.into(),
            message: message.into(),
        }
    }

    /// An error with the generic code `ERROR`.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::new("ERROR", message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::new("JSON_ERROR", e.to_string())
    }
}

impl From<wit::types::Failure> for Error {
    fn from(f: wit::types::Failure) -> Error {
        Error::new(f.code, f.message)
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Facts about the current run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: String,
    pub slug: String,
    pub version: u32,
    pub parent_run_id: Option<String>,
}

/// The current run's id, workflow and version.
pub fn info() -> RunInfo {
    let i = wit::runtime::info();
    RunInfo {
        run_id: i.run_id,
        slug: i.slug,
        version: i.version,
        parent_run_id: i.parent_run_id,
    }
}

/// Log levels for [`log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Appends a `log` event to the run's event log. Secret values the run has
/// read are masked by the host.
pub fn log(level: Level, message: impl AsRef<str>) {
    use wit::runtime::LogLevel as L;
    let level = match level {
        Level::Trace => L::Trace,
        Level::Debug => L::Debug,
        Level::Info => L::Info,
        Level::Warn => L::Warn,
        Level::Error => L::Error,
    };
    wit::runtime::log(level, message.as_ref());
}

/// Appends a custom event named `kind` with a JSON `payload`.
pub fn emit<T: Serialize + ?Sized>(kind: &str, payload: &T) -> Result<()> {
    let json = serde_json::to_string(payload)?;
    wit::runtime::emit(kind, &json);
    Ok(())
}

/// Whole milliseconds, rounded up (so only zero is zero), saturating.
fn millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Sleeps for `duration` (rounded up to whole milliseconds) on a durable
/// timer: the run's status is `sleeping` meanwhile, and it wakes on time
/// even if the host restarts.
pub fn sleep(duration: Duration) {
    wit::runtime::sleep(millis(duration));
}

/// Takes the oldest unconsumed signal called `name` sent to this run,
/// waiting for one if there is none yet (status `waiting_signal`).
///
/// Returns `Ok(None)` once `timeout` has passed without one; `None` waits
/// for ever. Signal data that does not decode as `T` is an error with code
/// `SIGNAL_INVALID` (the signal is consumed all the same).
pub fn wait_signal<T: DeserializeOwned>(
    name: &str,
    timeout: Option<Duration>,
) -> Result<Option<T>> {
    let Some(data) = wit::runtime::wait_signal(name, timeout.map(millis)) else {
        return Ok(None);
    };
    serde_json::from_str(&data).map(Some).map_err(|e| {
        Error::new(
            "SIGNAL_INVALID",
            format!("signal {name:?} carries data this workflow cannot read: {e}"),
        )
    })
}

/// Runs the newest version of workflow `slug` as a child of this run and
/// waits for its output (status `waiting_child` meanwhile).
///
/// The start is recorded under a key derived from this run and the call's
/// position, so a resumed run re-attaches to the same child. A child that
/// fails or is cancelled is an error with code `CHILD_FAILED` or
/// `CHILD_CANCELLED`; output that does not decode as `O` is `JSON_ERROR`.
pub fn call<I: Serialize + ?Sized, O: DeserializeOwned>(slug: &str, input: &I) -> Result<O> {
    call_inner(slug, input, None)
}

/// [`call`] with an idempotency key of your own: calls with the same key
/// get the same child run.
pub fn call_with_key<I: Serialize + ?Sized, O: DeserializeOwned>(
    slug: &str,
    input: &I,
    key: &str,
) -> Result<O> {
    call_inner(slug, input, Some(key))
}

fn call_inner<I: Serialize + ?Sized, O: DeserializeOwned>(
    slug: &str,
    input: &I,
    key: Option<&str>,
) -> Result<O> {
    let input = serde_json::to_string(input)?;
    let output = wit::workflows::call(slug, &input, key)?;
    Ok(serde_json::from_str(&output)?)
}

/// A child run started with [`start`]; pass it to [`join`] for its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRun {
    pub run_id: String,
}

/// Starts a child run of the newest version of workflow `slug` and returns
/// at once, so several children can run side by side. Idempotent like
/// [`call`].
pub fn start<I: Serialize + ?Sized>(slug: &str, input: &I) -> Result<ChildRun> {
    start_inner(slug, input, None)
}

/// [`start`] with an idempotency key of your own: starts with the same key
/// get the same child run.
pub fn start_with_key<I: Serialize + ?Sized>(slug: &str, input: &I, key: &str) -> Result<ChildRun> {
    start_inner(slug, input, Some(key))
}

fn start_inner<I: Serialize + ?Sized>(
    slug: &str,
    input: &I,
    key: Option<&str>,
) -> Result<ChildRun> {
    let input = serde_json::to_string(input)?;
    let run_id = wit::workflows::start(slug, &input, key)?;
    Ok(ChildRun { run_id })
}

/// Waits for `child` to finish and returns its output (status
/// `waiting_child` meanwhile). A child that failed or was cancelled is an
/// error with code `CHILD_FAILED` or `CHILD_CANCELLED`; output that does
/// not decode as `O` is `JSON_ERROR`.
pub fn join<O: DeserializeOwned>(child: &ChildRun) -> Result<O> {
    let output = wit::workflows::join(&child.run_id)?;
    Ok(serde_json::from_str(&output)?)
}

/// Secrets the manifest declares.
pub mod secrets {
    use super::{Result, wit};

    /// The value of secret `name`. Reading a name the manifest does not
    /// declare ends the run with `SECRET_UNDECLARED`; a declared secret the
    /// host has no value for ends it with `SECRET_MISSING`.
    pub fn get(name: &str) -> Result<String> {
        Ok(wit::secrets::get(name)?)
    }
}

/// Files the run produces.
pub mod artifacts {
    use super::{Result, wit};
    use serde::Serialize;

    /// A stored artifact.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ArtifactRef {
        pub name: String,
        /// sha256 of the body, lower-case hex.
        pub digest: String,
        pub size: u64,
    }

    /// Writes artifact `name` (a plain file name: no `/`, `\`, `..`) as
    /// `application/octet-stream`. Writing a name again replaces it.
    pub fn write(name: &str, body: impl AsRef<[u8]>) -> Result<ArtifactRef> {
        write_with(name, "application/octet-stream", body, None)
    }

    /// Writes artifact `name` with a content type and optional JSON metadata.
    pub fn write_with(
        name: &str,
        content_type: &str,
        body: impl AsRef<[u8]>,
        metadata: Option<&serde_json::Value>,
    ) -> Result<ArtifactRef> {
        let metadata = metadata.map(|m| m.to_string());
        let r = wit::artifacts::write(name, content_type, body.as_ref(), metadata.as_deref())?;
        Ok(ArtifactRef {
            name: r.name,
            digest: r.digest,
            size: r.size,
        })
    }

    /// Writes `value` as a JSON artifact.
    pub fn write_json<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<ArtifactRef> {
        let body = serde_json::to_vec_pretty(value)?;
        write_with(name, "application/json", body, None)
    }

    /// Reads back an artifact this run wrote.
    pub fn read(name: &str) -> Result<Vec<u8>> {
        Ok(wit::artifacts::read(name)?)
    }
}

/// Language models, called through the host: a workflow names a model and
/// never holds a provider key. The host resolves the model, calls the
/// provider, charges the run's `max_tokens` and `max_usd` budgets (and
/// those of every run above it) and journals the answer, so a resumed run
/// gets the same answer without paying again.
///
/// ```no_run
/// use runway_sdk::models::{self, Request};
///
/// # fn f() -> runway_sdk::Result<()> {
/// let answer = models::generate(
///     &Request::new("default")
///         .system("Answer in one sentence.")
///         .user("Why do workflows need durable timers?")
///         .max_output_tokens(200),
/// )?;
/// println!("{} ({} tokens out, ${:.4})", answer.text, answer.usage.output_tokens, answer.cost_usd);
/// # Ok(()) }
/// ```
///
/// Failures come back as an [`Error`](crate::Error) whose code is one of
/// `MODEL_NOT_ALLOWED`, `MODEL_UNKNOWN`, `PROVIDER_ERROR`, `PROVIDER_TIMEOUT`,
/// `RATE_LIMITED`, `INVALID_RESPONSE` or `INVALID_REQUEST`.
pub mod models {
    use super::{Error, Result, wit};
    use serde::de::DeserializeOwned;

    pub use wit::models::Role;

    /// One turn of a conversation.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Message {
        pub role: Role,
        pub content: String,
    }

    /// What to ask a model; build it with the methods below.
    #[derive(Clone, Debug, PartialEq, Default)]
    pub struct Request {
        /// An alias (`default`, `fast`, ...) or `provider/model`; the
        /// manifest's `models` must allow it.
        pub model: String,
        pub system: Option<String>,
        pub messages: Vec<Message>,
        pub max_output_tokens: Option<u32>,
        pub temperature: Option<f32>,
        pub stop: Vec<String>,
        /// A JSON Schema the answer must follow.
        pub json_schema: Option<serde_json::Value>,
    }

    impl Request {
        pub fn new(model: impl Into<String>) -> Request {
            Request {
                model: model.into(),
                ..Request::default()
            }
        }
        pub fn system(mut self, text: impl Into<String>) -> Request {
            self.system = Some(text.into());
            self
        }
        /// Appends a user message.
        pub fn user(mut self, text: impl Into<String>) -> Request {
            self.messages.push(Message {
                role: Role::User,
                content: text.into(),
            });
            self
        }
        /// Appends an assistant message (an earlier answer, for context).
        pub fn assistant(mut self, text: impl Into<String>) -> Request {
            self.messages.push(Message {
                role: Role::Assistant,
                content: text.into(),
            });
            self
        }
        pub fn max_output_tokens(mut self, n: u32) -> Request {
            self.max_output_tokens = Some(n);
            self
        }
        pub fn temperature(mut self, t: f32) -> Request {
            self.temperature = Some(t);
            self
        }
        /// Adds a stop sequence.
        pub fn stop(mut self, s: impl Into<String>) -> Request {
            self.stop.push(s.into());
            self
        }
        /// Asks for structured output following `schema` (JSON Schema).
        pub fn json_schema(mut self, schema: serde_json::Value) -> Request {
            self.json_schema = Some(schema);
            self
        }
    }

    /// Tokens one call used.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Usage {
        /// All input tokens, cached ones included.
        pub input_tokens: u64,
        pub output_tokens: u64,
        pub cached_tokens: u64,
    }

    /// US dollars per million tokens.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Rates {
        pub input_per_million: f64,
        pub output_per_million: f64,
        pub cached_input_per_million: f64,
    }

    /// What a model reference resolves to (never the provider's key).
    #[derive(Clone, Debug, PartialEq)]
    pub struct Model {
        /// `provider/model`.
        pub reference: String,
        pub provider: String,
        /// `openai` or `anthropic`.
        pub kind: String,
        pub model: String,
        pub base_url: String,
        pub context_window: Option<u64>,
        pub rates: Rates,
    }

    /// A model's answer.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Response {
        pub text: String,
        /// `stop`, `length`, `stop-sequence`, `content-filter`, or the
        /// provider's own word.
        pub finish_reason: String,
        pub usage: Usage,
        pub cost_usd: f64,
        pub model: Model,
    }

    fn model(m: wit::models::ResolvedModel) -> Model {
        Model {
            reference: m.reference,
            provider: m.provider,
            kind: m.kind,
            model: m.model,
            base_url: m.base_url,
            context_window: m.context_window,
            rates: Rates {
                input_per_million: m.rates.input_per_million,
                output_per_million: m.rates.output_per_million,
                cached_input_per_million: m.rates.cached_input_per_million,
            },
        }
    }

    /// What `reference` resolves to on this host.
    pub fn resolve(reference: &str) -> Result<Model> {
        Ok(model(wit::models::resolve(reference)?))
    }

    /// Asks a model.
    pub fn generate(request: &Request) -> Result<Response> {
        let schema = request.json_schema.as_ref().map(|s| s.to_string());
        let messages: Vec<wit::models::Message> = request
            .messages
            .iter()
            .map(|m| wit::models::Message {
                role: m.role,
                content: m.content.clone(),
            })
            .collect();
        let r = wit::models::generate(&wit::models::GenerateRequest {
            model: request.model.clone(),
            system: request.system.clone(),
            messages,
            max_output_tokens: request.max_output_tokens,
            temperature: request.temperature,
            stop: request.stop.clone(),
            json_schema: schema,
        })?;
        Ok(Response {
            text: r.text,
            finish_reason: r.finish_reason,
            usage: Usage {
                input_tokens: r.usage.input_tokens,
                output_tokens: r.usage.output_tokens,
                cached_tokens: r.usage.cached_tokens,
            },
            cost_usd: r.cost_usd,
            model: model(r.model),
        })
    }

    /// Asks a model for structured output and decodes it as `T`. The
    /// request must carry a [`Request::json_schema`]; an answer that does not
    /// decode as `T` is an `INVALID_RESPONSE` error (the call is still
    /// charged).
    pub fn generate_json<T: DeserializeOwned>(request: &Request) -> Result<(T, Response)> {
        if request.json_schema.is_none() {
            return Err(Error::new(
                "INVALID_REQUEST",
                "generate_json needs a request with a json_schema",
            ));
        }
        let response = generate(request)?;
        let value = serde_json::from_str(&response.text).map_err(|e| {
            Error::new(
                "INVALID_RESPONSE",
                format!("the model's answer does not match the expected structure: {e}"),
            )
        })?;
        Ok((value, response))
    }

    /// A tool the model may call: a name (`[a-zA-Z0-9_-]`, at most 64), what
    /// it does, and the JSON Schema of its arguments.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Tool {
        pub name: String,
        pub description: String,
        pub parameters: serde_json::Value,
    }

    /// A call of a tool the model asked for.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ToolCall {
        /// The provider's id of the call; its result names it.
        pub id: String,
        pub name: String,
        pub arguments: serde_json::Value,
    }

    /// What a tool call came to, for the model.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ToolResult {
        pub call_id: String,
        pub content: String,
        pub is_error: bool,
    }

    /// One turn of a conversation with tools.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Turn {
        User(String),
        /// The model's earlier turn: its text and the calls it asked for.
        Assistant {
            text: String,
            tool_calls: Vec<ToolCall>,
        },
        /// The results of the previous turn's calls.
        ToolResults(Vec<ToolResult>),
    }

    /// Whether and which tool the model must call.
    #[derive(Clone, Debug, PartialEq, Default)]
    pub enum ToolChoice {
        #[default]
        Auto,
        None,
        Required,
        Named(String),
    }

    /// A turn with tools to ask a model for ([`chat`]).
    #[derive(Clone, Debug, PartialEq, Default)]
    pub struct Chat {
        pub model: String,
        pub system: Option<String>,
        pub messages: Vec<Turn>,
        pub tools: Vec<Tool>,
        pub tool_choice: ToolChoice,
        pub max_output_tokens: Option<u32>,
        pub temperature: Option<f32>,
        pub stop: Vec<String>,
    }

    impl Chat {
        pub fn new(model: impl Into<String>) -> Chat {
            Chat {
                model: model.into(),
                ..Chat::default()
            }
        }
        pub fn system(mut self, text: impl Into<String>) -> Chat {
            self.system = Some(text.into());
            self
        }
        /// Appends a user message.
        pub fn user(mut self, text: impl Into<String>) -> Chat {
            self.messages.push(Turn::User(text.into()));
            self
        }
        /// Offers a tool.
        pub fn tool(
            mut self,
            name: impl Into<String>,
            description: impl Into<String>,
            parameters: serde_json::Value,
        ) -> Chat {
            self.tools.push(Tool {
                name: name.into(),
                description: description.into(),
                parameters,
            });
            self
        }
        pub fn tool_choice(mut self, choice: ToolChoice) -> Chat {
            self.tool_choice = choice;
            self
        }
        pub fn max_output_tokens(mut self, n: u32) -> Chat {
            self.max_output_tokens = Some(n);
            self
        }
        pub fn temperature(mut self, t: f32) -> Chat {
            self.temperature = Some(t);
            self
        }
    }

    /// A model's turn: text, or calls of tools (or both).
    #[derive(Clone, Debug, PartialEq)]
    pub struct ChatResponse {
        pub text: String,
        /// The tools it asks to call; empty when it answered.
        pub tool_calls: Vec<ToolCall>,
        /// As for [`Response`], and `tool-calls` when it asks for tools.
        pub finish_reason: String,
        pub usage: Usage,
        pub cost_usd: f64,
        pub model: Model,
    }

    impl ChatResponse {
        /// This turn as the next request's history.
        pub fn turn(&self) -> Turn {
            Turn::Assistant {
                text: self.text.clone(),
                tool_calls: self.tool_calls.clone(),
            }
        }
    }

    fn wit_call(c: &ToolCall) -> wit::models::ToolCall {
        wit::models::ToolCall {
            id: c.id.clone(),
            name: c.name.clone(),
            arguments: c.arguments.to_string(),
        }
    }

    /// Asks a model for a turn with tools: journaled, charged and budgeted
    /// like [`generate`], in the provider's own tool-calling format.
    pub fn chat(request: &Chat) -> Result<ChatResponse> {
        use wit::models as w;
        let messages = request
            .messages
            .iter()
            .map(|m| match m {
                Turn::User(t) => w::ChatMessage::User(t.clone()),
                Turn::Assistant { text, tool_calls } => {
                    w::ChatMessage::Assistant(w::AssistantTurn {
                        text: text.clone(),
                        tool_calls: tool_calls.iter().map(wit_call).collect(),
                    })
                }
                Turn::ToolResults(results) => w::ChatMessage::ToolResults(
                    results
                        .iter()
                        .map(|r| w::ToolResult {
                            call_id: r.call_id.clone(),
                            content: r.content.clone(),
                            is_error: r.is_error,
                        })
                        .collect(),
                ),
            })
            .collect();
        let tools = request
            .tools
            .iter()
            .map(|t| w::Tool {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.parameters.to_string(),
            })
            .collect();
        let tool_choice = match &request.tool_choice {
            ToolChoice::Auto => w::ToolChoice::Auto,
            ToolChoice::None => w::ToolChoice::None,
            ToolChoice::Required => w::ToolChoice::Required,
            ToolChoice::Named(n) => w::ToolChoice::Named(n.clone()),
        };
        let r = w::chat(&w::ChatRequest {
            model: request.model.clone(),
            system: request.system.clone(),
            messages,
            tools,
            tool_choice,
            max_output_tokens: request.max_output_tokens,
            temperature: request.temperature,
            stop: request.stop.clone(),
        })?;
        let tool_calls = r
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                arguments: serde_json::from_str(&c.arguments).unwrap_or(serde_json::Value::Null),
                id: c.id,
                name: c.name,
            })
            .collect();
        Ok(ChatResponse {
            text: r.text,
            tool_calls,
            finish_reason: r.finish_reason,
            usage: Usage {
                input_tokens: r.usage.input_tokens,
                output_tokens: r.usage.output_tokens,
                cached_tokens: r.usage.cached_tokens,
            },
            cost_usd: r.cost_usd,
            model: model(r.model),
        })
    }
}

/// Tools of MCP servers the host's operator configured and the manifest
/// grants (`mcp = ["tracker"]`, or `"tracker/get_issue"` for one tool).
/// The host holds the connection and the credentials; calls are journaled
/// (a replay never calls a tool again).
///
/// ```no_run
/// # fn f() -> runway_sdk::Result<()> {
/// let issue = runway_sdk::mcp::call_tool("tracker", "get_issue", &serde_json::json!({"number": 7}))?;
/// println!("{}", issue.text());
/// # Ok(()) }
/// ```
pub mod mcp {
    use super::{Error, Result, wit};

    /// A tool a server offers.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ToolInfo {
        pub name: String,
        pub description: String,
        /// The JSON Schema of its arguments.
        pub input_schema: serde_json::Value,
    }

    /// What a tool answered: MCP's content blocks and structured content.
    #[derive(Clone, Debug, PartialEq)]
    pub struct CallResult {
        pub content: Vec<serde_json::Value>,
        pub structured_content: Option<serde_json::Value>,
    }

    impl CallResult {
        /// The text blocks, joined by newlines.
        pub fn text(&self) -> String {
            self.content
                .iter()
                .filter_map(|c| c.get("text").and_then(serde_json::Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }

    /// The tools of `server` the manifest grants.
    pub fn list_tools(server: &str) -> Result<Vec<ToolInfo>> {
        Ok(wit::mcp::list_tools(server)?
            .into_iter()
            .map(|t| ToolInfo {
                input_schema: serde_json::from_str(&t.input_schema)
                    .unwrap_or(serde_json::Value::Null),
                name: t.name,
                description: t.description,
            })
            .collect())
    }

    /// Calls `tool` of `server` with `arguments` (a JSON object). A tool
    /// that answers with an error is `MCP_TOOL_ERROR`.
    pub fn call_tool<A: serde::Serialize + ?Sized>(
        server: &str,
        tool: &str,
        arguments: &A,
    ) -> Result<CallResult> {
        let arguments = serde_json::to_string(arguments)?;
        let text = wit::mcp::call_tool(server, tool, &arguments)?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::new("JSON_ERROR", e.to_string()))?;
        Ok(CallResult {
            content: v
                .get("content")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default(),
            structured_content: v
                .get("structured_content")
                .filter(|s| !s.is_null())
                .cloned(),
        })
    }
}

/// An agent: a model that calls tools, turn after turn, until it answers.
///
/// Every model turn goes through [`models::chat`] and every MCP tool call
/// through [`mcp::call_tool`], so each is journaled: after a crash the run
/// replays the conversation without asking the model or calling a tool
/// again, and the run's token and cost budgets (its tree's too) hold across
/// the whole loop. Tools the workflow defines are closures over serde
/// types; they run in the workflow, deterministically on replay.
///
/// ```no_run
/// use runway_sdk::agent::Agent;
/// use serde_json::json;
/// # fn f() -> runway_sdk::Result<()> {
/// let outcome = Agent::new("default")
///     .system("You triage issues.")
///     .mcp("tracker")?
///     .tool("word_count", "Counts words", json!({"type": "object", "properties": {"text": {"type": "string"}}}),
///         |a: serde_json::Value| Ok(a["text"].as_str().unwrap_or("").split_whitespace().count()))
///     .max_turns(8)
///     .run("Triage issue #7")?;
/// println!("{}", outcome.text);
/// # Ok(()) }
/// ```
pub mod agent {
    use super::models::{self, Chat, ToolResult, Turn};
    use super::{Error, Result};
    use serde::{Serialize, de::DeserializeOwned};

    type Handler<'a> = Box<dyn FnMut(serde_json::Value) -> Result<String> + 'a>;

    enum Tool<'a> {
        /// The workflow's own.
        Local(Handler<'a>),
        /// An MCP server's: (server, its name for the tool).
        Mcp(String, String),
    }

    /// An agent loop; see the module.
    pub struct Agent<'a> {
        chat: Chat,
        tools: Vec<(String, Tool<'a>)>,
        max_turns: u32,
    }

    /// How a loop ended: the model's answer and what it took.
    #[derive(Clone, Debug)]
    pub struct Outcome {
        pub text: String,
        /// Model turns taken.
        pub turns: u32,
        /// Tool calls made.
        pub tool_calls: u32,
        pub input_tokens: u64,
        pub output_tokens: u64,
        pub cost_usd: f64,
        /// The whole conversation, the answer last.
        pub transcript: Vec<Turn>,
    }

    /// A tool name both wire formats take: `[a-zA-Z0-9_-]`, at most 64.
    fn model_name(server: &str, tool: &str) -> String {
        let mut name: String = format!("{server}__{tool}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        name.truncate(64);
        name
    }

    impl<'a> Agent<'a> {
        /// An agent on `model` (an alias or `provider/model` the manifest
        /// allows), at most 10 turns.
        pub fn new(model: impl Into<String>) -> Agent<'a> {
            Agent {
                chat: Chat::new(model),
                tools: Vec::new(),
                max_turns: 10,
            }
        }

        pub fn system(mut self, text: impl Into<String>) -> Self {
            self.chat = self.chat.system(text);
            self
        }

        /// Model turns before the loop gives up (`MAX_TURNS`).
        pub fn max_turns(mut self, n: u32) -> Self {
            self.max_turns = n;
            self
        }

        pub fn max_output_tokens(mut self, n: u32) -> Self {
            self.chat = self.chat.max_output_tokens(n);
            self
        }

        /// A tool the workflow implements: the model's arguments decoded as
        /// `A`, `f`'s result sent back as JSON. An argument that does not
        /// decode, or an error from `f`, goes back to the model as a failed
        /// result (it may try again); the run goes on.
        pub fn tool<A, R>(
            mut self,
            name: impl Into<String>,
            description: impl Into<String>,
            parameters: serde_json::Value,
            mut f: impl FnMut(A) -> Result<R> + 'a,
        ) -> Self
        where
            A: DeserializeOwned,
            R: Serialize,
        {
            let name = name.into();
            self.chat = self.chat.tool(name.clone(), description, parameters);
            let handler: Handler<'a> = Box::new(move |args| {
                let args: A = serde_json::from_value(args)
                    .map_err(|e| Error::new("INVALID_ARGUMENTS", e.to_string()))?;
                Ok(serde_json::to_string(&f(args)?)?)
            });
            self.tools.push((name, Tool::Local(handler)));
            self
        }

        /// Offers the tools of MCP server `server` the manifest grants
        /// (listed through the host, journaled), named `SERVER__TOOL` for
        /// the model.
        pub fn mcp(mut self, server: &str) -> Result<Self> {
            for t in super::mcp::list_tools(server)? {
                let name = model_name(server, &t.name);
                self.chat = self.chat.tool(name.clone(), t.description, t.input_schema);
                self.tools
                    .push((name, Tool::Mcp(server.to_owned(), t.name)));
            }
            Ok(self)
        }

        /// Runs the loop on `prompt` until the model answers without
        /// calling a tool.
        pub fn run(mut self, prompt: impl Into<String>) -> Result<Outcome> {
            self.chat = self.chat.user(prompt);
            let mut out = Outcome {
                text: String::new(),
                turns: 0,
                tool_calls: 0,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: 0.0,
                transcript: Vec::new(),
            };
            while out.turns < self.max_turns {
                let r = models::chat(&self.chat)?;
                out.turns += 1;
                out.input_tokens += r.usage.input_tokens;
                out.output_tokens += r.usage.output_tokens;
                out.cost_usd += r.cost_usd;
                self.chat.messages.push(r.turn());
                if r.tool_calls.is_empty() {
                    out.text = r.text;
                    out.transcript = self.chat.messages;
                    return Ok(out);
                }
                let mut results = Vec::with_capacity(r.tool_calls.len());
                for call in &r.tool_calls {
                    out.tool_calls += 1;
                    let answer = match self.tools.iter_mut().find(|(n, _)| *n == call.name) {
                        None => Err(Error::new(
                            "UNKNOWN_TOOL",
                            format!("there is no tool {:?}", call.name),
                        )),
                        Some((_, Tool::Local(f))) => f(call.arguments.clone()),
                        Some((_, Tool::Mcp(server, tool))) => {
                            super::mcp::call_tool(server, tool, &call.arguments).map(|r| {
                                match r.structured_content {
                                    Some(s) if r.content.is_empty() => s.to_string(),
                                    _ => r.text(),
                                }
                            })
                        }
                    };
                    results.push(match answer {
                        Ok(content) => ToolResult {
                            call_id: call.id.clone(),
                            content,
                            is_error: false,
                        },
                        // A budget or a cancel ends the run; a failed tool
                        // is the model's to handle.
                        Err(e) if e.code == "BUDGET_EXCEEDED" => return Err(e),
                        Err(e) => ToolResult {
                            call_id: call.id.clone(),
                            content: format!("{}: {}", e.code, e.message),
                            is_error: true,
                        },
                    });
                }
                self.chat.messages.push(Turn::ToolResults(results));
            }
            Err(Error::new(
                "MAX_TURNS",
                format!("the model had not answered after {} turns", self.max_turns),
            ))
        }
    }
}

/// Outbound HTTP, made by the host under its egress policy (the host's
/// `[egress]` and the manifest's `[http] allow`), journaled: a replay never
/// sends a request again.
///
/// ```no_run
/// use runway_sdk::{http, Result};
///
/// #[derive(serde::Deserialize)]
/// struct Pull { title: String }
///
/// fn title(repo: &str, n: u32) -> Result<String> {
///     let pull: Pull = http::get(&format!("https://api.github.com/repos/{repo}/pulls/{n}"))
///         .bearer_secret("GITHUB_TOKEN")
///         .header("accept", "application/vnd.github+json")
///         .send()?
///         .error_for_status()?
///         .json()?;
///     Ok(pull.title)
/// }
/// ```
///
/// A secret goes out only by placeholder (`{{secret:NAME}}` in a header
/// value, or [`RequestBuilder::bearer_secret`]): the host puts the value in
/// as the request leaves, and nothing the run records holds it. A request
/// other than GET or HEAD carries an `Idempotency-Key` (the run and the
/// call's position) unless it sets its own, so a request repeated after a
/// crash is the same request to a service that honours such keys.
///
/// Failures: `EGRESS_DENIED`, `HTTP_TIMEOUT`, `HTTP_CONNECT`,
/// `HTTP_TOO_LARGE`, `HTTP_INVALID_REQUEST`; any status the server answers
/// is a [`Response`].
pub mod http {
    use super::{Error, Result, wit};
    use serde::{Serialize, de::DeserializeOwned};
    use std::time::Duration;

    /// A request being built; [`RequestBuilder::send`] sends it.
    #[derive(Clone, Debug)]
    #[must_use = "a request is sent by .send()"]
    pub struct RequestBuilder {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
        error: Option<Error>,
    }

    /// A response: any status the server answered.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    /// A request of any method.
    pub fn request(method: &str, url: &str) -> RequestBuilder {
        RequestBuilder {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            timeout: None,
            error: None,
        }
    }

    pub fn get(url: &str) -> RequestBuilder {
        request("GET", url)
    }

    pub fn post(url: &str) -> RequestBuilder {
        request("POST", url)
    }

    pub fn put(url: &str) -> RequestBuilder {
        request("PUT", url)
    }

    pub fn patch(url: &str) -> RequestBuilder {
        request("PATCH", url)
    }

    pub fn delete(url: &str) -> RequestBuilder {
        request("DELETE", url)
    }

    impl RequestBuilder {
        pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
            self.headers.push((name.to_owned(), value.to_owned()));
            self
        }

        /// `Authorization: Bearer <the secret NAME>`, put in by the host.
        pub fn bearer_secret(self, name: &str) -> RequestBuilder {
            self.header("authorization", &format!("Bearer {{{{secret:{name}}}}}"))
        }

        /// A JSON body (and its content type).
        pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> RequestBuilder {
            match serde_json::to_vec(body) {
                Ok(b) => {
                    self.body = Some(b);
                    self.header("content-type", "application/json")
                }
                Err(e) => {
                    self.error = Some(Error::new("HTTP_INVALID_REQUEST", e.to_string()));
                    self
                }
            }
        }

        pub fn body(mut self, body: impl Into<Vec<u8>>) -> RequestBuilder {
            self.body = Some(body.into());
            self
        }

        /// At most the host's `[egress] max_timeout`.
        pub fn timeout(mut self, t: Duration) -> RequestBuilder {
            self.timeout = Some(t);
            self
        }

        /// Sends the request through the host.
        pub fn send(self) -> Result<Response> {
            if let Some(e) = self.error {
                return Err(e);
            }
            let r = wit::http::send(&wit::http::Request {
                method: self.method,
                url: self.url,
                headers: self.headers,
                body: self.body,
                timeout_millis: self.timeout.map(|t| t.as_millis() as u64),
            })?;
            Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
        }
    }

    impl Response {
        /// The first header called `name` (any case).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.status)
        }

        /// The response, or an `HTTP_STATUS` error naming its status and
        /// the start of its body.
        pub fn error_for_status(self) -> Result<Response> {
            if self.is_success() {
                return Ok(self);
            }
            let text = String::from_utf8_lossy(&self.body[..self.body.len().min(512)]).into_owned();
            Err(Error::new(
                "HTTP_STATUS",
                format!("status {}: {text}", self.status),
            ))
        }

        /// The body as text (invalid UTF-8 replaced).
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// The body decoded as JSON.
        pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
            serde_json::from_slice(&self.body).map_err(|e| {
                Error::new(
                    "INVALID_RESPONSE",
                    format!("the body is not the JSON expected: {e}"),
                )
            })
        }
    }
}

#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use crate::bindings::runway::workflow::types::Failure;

    /// Decodes the input, calls the workflow, encodes its result.
    pub fn dispatch<I, O>(input: &str, f: impl FnOnce(I) -> Result<O>) -> Result<String, Failure>
    where
        I: DeserializeOwned,
        O: Serialize,
    {
        let input: I = serde_json::from_str(input).map_err(|e| Failure {
            code: "INVALID_INPUT".into(),
            message: format!("the input does not match what this workflow accepts: {e}"),
        })?;
        let output = f(input).map_err(|e| Failure {
            code: e.code,
            message: e.message,
        })?;
        serde_json::to_string(&output).map_err(|e| Failure {
            code: "OUTPUT_NOT_SERIALIZABLE".into(),
            message: e.to_string(),
        })
    }
}

/// Registers `handler` as the workflow's entry point.
///
/// `handler` is any `fn(I) -> runway_sdk::Result<O>` where `I` is
/// `serde::Deserialize` and `O` is `serde::Serialize`. Input that does not
/// decode as `I` fails the run with `INVALID_INPUT`.
#[macro_export]
macro_rules! workflow {
    ($handler:path) => {
        #[doc(hidden)]
        struct __RunwayWorkflow;

        impl $crate::bindings::Guest for __RunwayWorkflow {
            fn run(
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::Failure> {
                $crate::__private::dispatch(&input, $handler)
            }
        }

        $crate::bindings::export!(__RunwayWorkflow with_types_in $crate::bindings);
    };
}

/// Approvals: the run asks people to decide and waits (status
/// `waiting_approval`) for the decision, which someone allowed makes
/// through the API (`POST /v1/runs/{id}/approvals/{name}`), the console or
/// `runway approve`; with a timeout, its default outcome applies when no
/// one decides in time. The decision is recorded: a resumed run gets the
/// same one.
///
/// ```no_run
/// use runway_sdk::approvals::{self, Choice, Spec};
/// use std::time::Duration;
///
/// # fn f() -> runway_sdk::Result<()> {
/// let spec = Spec::gate("Deploy v42 to production?")
///     .allow_scope("approve:deploys")
///     .timeout(Duration::from_secs(3600), Choice::approve(false));
/// let decision = approvals::request("deploy", &spec)?;
/// if decision.approved == Some(true) {
///     // deploy
/// }
/// # Ok(()) }
/// ```
pub mod approvals {
    use super::{Error, Result, wit};
    use serde::{Deserialize, Serialize};
    use std::time::Duration;

    /// An answer: a gate's `approved`, a decision's `option`, a selection's
    /// or ranking's `options`.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Choice {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub approved: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub option: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub options: Option<Vec<String>>,
    }

    impl Choice {
        /// A gate's answer.
        pub fn approve(approved: bool) -> Choice {
            Choice {
                approved: Some(approved),
                ..Choice::default()
            }
        }

        /// A decision's option.
        pub fn option(option: impl Into<String>) -> Choice {
            Choice {
                option: Some(option.into()),
                ..Choice::default()
            }
        }

        /// A selection, or a ranking (best first).
        pub fn options<S: Into<String>>(options: impl IntoIterator<Item = S>) -> Choice {
            Choice {
                options: Some(options.into_iter().map(Into::into).collect()),
                ..Choice::default()
            }
        }
    }

    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
    struct Allowed {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        principals: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
    }

    /// What to ask: a [`Spec::gate`], a [`Spec::decision`], a
    /// [`Spec::select`] or a [`Spec::rank`], with who may decide, a payload
    /// for the reviewer and a timeout.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Spec {
        kind: &'static str,
        prompt: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        options: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        count: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<serde_json::Value>,
        allowed: Allowed,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        default: Option<Choice>,
    }

    fn strings<S: Into<String>>(v: impl IntoIterator<Item = S>) -> Vec<String> {
        v.into_iter().map(Into::into).collect()
    }

    impl Spec {
        fn new(kind: &'static str, prompt: impl Into<String>, options: Vec<String>) -> Spec {
            Spec {
                kind,
                prompt: prompt.into(),
                options,
                count: None,
                payload: None,
                allowed: Allowed::default(),
                timeout_ms: None,
                default: None,
            }
        }

        /// Approve or deny.
        pub fn gate(prompt: impl Into<String>) -> Spec {
            Spec::new("gate", prompt, Vec::new())
        }

        /// One of `options`.
        pub fn decision<S: Into<String>>(
            prompt: impl Into<String>,
            options: impl IntoIterator<Item = S>,
        ) -> Spec {
            Spec::new("decision", prompt, strings(options))
        }

        /// `count` of `options`.
        pub fn select<S: Into<String>>(
            prompt: impl Into<String>,
            options: impl IntoIterator<Item = S>,
            count: usize,
        ) -> Spec {
            let mut s = Spec::new("select", prompt, strings(options));
            s.count = Some(count);
            s
        }

        /// All of `options`, in an order (best first).
        pub fn rank<S: Into<String>>(
            prompt: impl Into<String>,
            options: impl IntoIterator<Item = S>,
        ) -> Spec {
            Spec::new("rank", prompt, strings(options))
        }

        /// What the reviewer is shown beside the prompt.
        pub fn payload<T: Serialize + ?Sized>(mut self, payload: &T) -> Result<Spec> {
            self.payload = Some(serde_json::to_value(payload)?);
            Ok(self)
        }

        /// Lets this principal decide (`jwt:alice`, `token:release-bot`).
        pub fn allow_principal(mut self, principal: impl Into<String>) -> Spec {
            self.allowed.principals.push(principal.into());
            self
        }

        /// Lets holders of this scope decide (`approve:deploys`, `admin`).
        pub fn allow_scope(mut self, scope: impl Into<String>) -> Spec {
            self.allowed.scopes.push(scope.into());
            self
        }

        /// After `after` without a decision, `default` applies.
        pub fn timeout(mut self, after: Duration, default: Choice) -> Spec {
            self.timeout_ms = Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
            self.default = Some(default);
            self
        }
    }

    /// A decision: the [`Choice`], who made it (none when the timeout
    /// did), their comment, when.
    #[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
    pub struct Decision {
        #[serde(default)]
        pub approved: Option<bool>,
        #[serde(default)]
        pub option: Option<String>,
        #[serde(default)]
        pub options: Option<Vec<String>>,
        #[serde(default)]
        pub by: Option<String>,
        #[serde(default)]
        pub comment: Option<String>,
        /// RFC 3339.
        pub at: String,
        /// No one decided in time: the default applied.
        #[serde(default)]
        pub timed_out: bool,
    }

    /// Asks approval `name` (once per run) and waits for the decision. A
    /// spec that cannot be answered (a decision with one option, a
    /// timeout without a default, a name asked before) is an error with
    /// code `APPROVAL_INVALID`.
    pub fn request(name: &str, spec: &Spec) -> Result<Decision> {
        let spec = serde_json::to_string(spec)?;
        let decided = wit::approvals::request(name, &spec)?;
        serde_json::from_str(&decided).map_err(|e| Error::new("JSON_ERROR", e.to_string()))
    }
}
