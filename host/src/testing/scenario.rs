//! The JSON a test and the harness exchange over `runway:testing/harness`:
//! the world a test scripts ([`Scenario`]) and what the run did in it
//! ([`Outcome`]). `runway_sdk::testing` builds the one and reads the other.

use crate::types::{Event, RunError, RunStatus, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One run of the crate's workflow and the world it meets.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The run's input.
    #[serde(default)]
    pub input: Value,
    /// Secret values, by name (the environment is not read).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Answers to model calls, tried in order.
    #[serde(default)]
    pub models: Vec<ModelReply>,
    /// Responses to HTTP requests, tried in order.
    #[serde(default)]
    pub http: Vec<HttpReply>,
    /// Signals in the run's inbox before it starts, in order.
    #[serde(default)]
    pub signals: Vec<SignalScript>,
    /// How child runs of other workflows end, by workflow.
    #[serde(default)]
    pub children: Vec<ChildReply>,
    /// Answers of MCP servers' tools, tried in order; a server's tools are
    /// those named here.
    #[serde(default)]
    pub mcp: Vec<McpReply>,
    /// What the scripted models cost, per million tokens.
    #[serde(default)]
    pub rates: Option<Rates>,
    /// Real time the run may take, in milliseconds (default 60 s): past it
    /// the harness cancels the run and says so.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// An answer to the model calls it matches.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelReply {
    /// Matches a call naming this model: the reference the workflow used
    /// (`default`, `openai/gpt-4o`) or the model's own name (`gpt-4o`).
    #[serde(default)]
    pub model: Option<String>,
    /// Matches a call whose system prompt or any message holds this text.
    #[serde(default)]
    pub contains: Option<String>,
    /// The answer's text.
    #[serde(default)]
    pub text: String,
    /// Fail the call instead of answering.
    #[serde(default)]
    pub error: Option<ModelFailure>,
    /// Tokens counted (default: a quarter of the characters).
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Answer every matching call, not just the first.
    #[serde(default)]
    pub repeat: bool,
    /// Ask for these tool calls (`models.chat`) instead of answering.
    #[serde(default)]
    pub tool_calls: Vec<ToolCallScript>,
}

/// A tool call a scripted model asks for.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallScript {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// What a scripted MCP server's tool answers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpReply {
    pub server: String,
    pub tool: String,
    /// Matches a call whose arguments (as JSON text) hold this text.
    #[serde(default)]
    pub contains: Option<String>,
    /// The result's text.
    #[serde(default)]
    pub text: String,
    /// The tool answers with an error (`MCP_TOOL_ERROR`).
    #[serde(default)]
    pub is_error: bool,
    /// Answer every matching call, not just the first.
    #[serde(default)]
    pub repeat: bool,
}

/// A provider failure to play back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFailure {
    /// `RATE_LIMITED`
    RateLimited,
    /// `PROVIDER_TIMEOUT`
    Timeout,
    /// `PROVIDER_ERROR` (a 500)
    Provider,
}

/// A response to the HTTP requests it matches.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpReply {
    /// Matches this method only (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Matches this URL, or every URL it begins if it ends with `*`.
    pub url: String,
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    #[serde(default)]
    pub body: String,
    /// Fail the request instead of answering.
    #[serde(default)]
    pub error: Option<HttpFailure>,
    /// Answer every matching request, not just the first.
    #[serde(default)]
    pub repeat: bool,
}

fn ok() -> u16 {
    200
}

/// A transport failure to play back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpFailure {
    /// `HTTP_TIMEOUT`
    Timeout,
    /// `HTTP_CONNECT`
    Connect,
}

/// A signal waiting in the inbox when the run starts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalScript {
    pub name: String,
    #[serde(default)]
    pub data: Value,
}

/// How every child run of `workflow` ends, without running.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildReply {
    pub workflow: String,
    /// Its output (when it completes).
    #[serde(default)]
    pub output: Value,
    /// Its failure message: the parent gets `CHILD_FAILED`.
    #[serde(default)]
    pub error: Option<String>,
}

/// Prices of the scripted models.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    #[serde(default)]
    pub input_per_million: f64,
    #[serde(default)]
    pub output_per_million: f64,
}

/// What the run did.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub run_id: String,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// What the run waits for, when it stopped waiting for something the
    /// scenario does not provide (a signal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Its events, as the API shows them.
    pub events: Vec<Event>,
    pub artifacts: Vec<OutcomeArtifact>,
    pub children: Vec<OutcomeChild>,
    pub usage: Usage,
    /// Time that passed for the run without taking any (sleeps, timeouts).
    pub skipped_ms: u64,
    /// Calls nothing in the scenario answered; each failed in the run.
    pub unscripted: Vec<String>,
}

/// An artifact the run wrote.
#[derive(Clone, Debug, Serialize)]
pub struct OutcomeArtifact {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The body, when it is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A child run the run started.
#[derive(Clone, Debug, Serialize)]
pub struct OutcomeChild {
    pub run_id: String,
    pub workflow: String,
    pub input: Value,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}
