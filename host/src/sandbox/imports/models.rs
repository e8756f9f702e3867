//! `runway:workflow/models`: model calls the host makes for the guest.
//!
//! The order of a fresh `generate` is the contract:
//! 1. resolve the reference against the manifest's allowed models;
//! 2. refuse the call if any budget of the run or an ancestor is used up;
//! 3. make everything recorded so far durable (the commit rule: a provider
//!    must never see a request that a crash could make the run not send);
//! 4. call the provider (retries, timeout, cap), interruptible by a cancel;
//! 5. charge the run and its ancestors, write a `model_call` event and the
//!    journal entry, and submit them as one durable commit before the guest
//!    sees the answer;
//! 6. end the run (and any ancestor) whose budget the call crossed.
//!
//! A replay answers from the journal: no provider call, no second charge.

use crate::host::ledger::Crossing;
use crate::host::scheduler::LiveRun;
use crate::host::services::HostServices;
use crate::models::{
    Generated, Message, ModelError, Request, Resolved, Role, ToolCall, ToolChoice, ToolDef,
    ToolResult,
};
use crate::sandbox::bindings::models::{
    ChatMessage, ChatRequest, ChatResponse, GenerateRequest, GenerateResponse,
    Host as ModelsImport, Message as WitMessage, Rates as WitRates, ResolvedModel, Role as WitRole,
    ToolCall as WitToolCall, ToolChoice as WitToolChoice, Usage as WitUsage,
};
use crate::sandbox::bindings::types::Failure;
use crate::sandbox::effect::{Commit, Effects, OnReplay, Performed, Recorded};
use crate::sandbox::fault::RunFault;
use crate::sandbox::journal::Call;
use crate::sandbox::state::{RunContext, RunState};
use crate::types::{CallFailure, EventBody, ModelUsage, Usd};
use serde::{Deserialize, Serialize};
use wasmtime::component::HasData;

const RESOLVE: &str = "runway:workflow/models.resolve";
const GENERATE: &str = "runway:workflow/models.generate";
const CHAT: &str = "runway:workflow/models.chat";
/// Tools one request may offer.
const MAX_TOOLS: usize = 128;
/// Largest request (messages, system prompt, schema) a guest may send.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// A journaled result.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer<T> {
    Ok(T),
    Err(CallFailure),
}

impl<T> Answer<T> {
    fn failed(e: &ModelError) -> Self {
        Answer::Err(CallFailure {
            code: e.code().to_owned(),
            message: e.to_string(),
        })
    }

    fn into_result<U>(self, f: impl FnOnce(T) -> U) -> Result<U, Failure> {
        match self {
            Answer::Ok(v) => Ok(f(v)),
            Answer::Err(e) => Err(Failure {
                code: e.code,
                message: e.message,
            }),
        }
    }
}

/// What `models` sees of a run.
pub(super) struct ModelsView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    host: &'a HostServices,
    live: &'a LiveRun,
}

pub(super) struct Models;

impl HasData for Models {
    type Data<'a> = ModelsView<'a>;
}

pub(super) fn view(s: &mut RunState) -> ModelsView<'_> {
    ModelsView {
        run: &s.run,
        effects: &s.effects,
        host: &s.host,
        live: &s.live,
    }
}

impl ModelsImport for ModelsView<'_> {
    async fn resolve(
        &mut self,
        model_ref: String,
    ) -> wasmtime::Result<Result<ResolvedModel, Failure>> {
        let call = Call::new(RESOLVE, &[model_ref.as_bytes()]);
        let answer = self.effects.read(call, || {
            match self
                .host
                .models
                .resolve_allowed(&self.run.manifest.models, &model_ref)
            {
                Ok(r) => Answer::Ok(r),
                Err(e) => Answer::failed(&e),
            }
        })?;
        Ok(answer.into_result(wit_resolved))
    }

    async fn generate(
        &mut self,
        req: GenerateRequest,
    ) -> wasmtime::Result<Result<GenerateResponse, Failure>> {
        let (model, request) = from_wit(req);
        let encoded = serde_json::to_vec(&request).unwrap_or_default();
        let call = Call::new(GENERATE, &[model.as_bytes(), &encoded]);
        // A replay counts its `model_call` event again.
        let replay = OnReplay::GuestEvent { output_bytes: 0 };
        let answer = self
            .effects
            .effect(call, replay, || {
                self.generate_fresh(&model, &request, encoded.len())
            })
            .await?;
        Ok(answer.into_result(wit_response))
    }

    async fn chat(&mut self, req: ChatRequest) -> wasmtime::Result<Result<ChatResponse, Failure>> {
        let (model, request) = match chat_from_wit(req) {
            Ok(x) => x,
            // Malformed tool JSON: refused like any request the host will
            // not send, with the same event.
            Err(message) => {
                let call = Call::new(CHAT, &[message.as_bytes()]);
                let replay = OnReplay::GuestEvent { output_bytes: 0 };
                let answer: Answer<Generated> = self
                    .effects
                    .effect(call, replay, || async {
                        Ok(refused("", &ModelError::InvalidRequest(message.clone())))
                    })
                    .await?;
                return Ok(answer.into_result(wit_chat_response));
            }
        };
        let encoded = serde_json::to_vec(&request).unwrap_or_default();
        let call = Call::new(CHAT, &[model.as_bytes(), &encoded]);
        let replay = OnReplay::GuestEvent { output_bytes: 0 };
        let answer = self
            .effects
            .effect(call, replay, || {
                self.generate_fresh(&model, &request, encoded.len())
            })
            .await?;
        Ok(answer.into_result(wit_chat_response))
    }
}

impl ModelsView<'_> {
    /// Steps 1–6 above. The answer, its `model_call` event and the charge
    /// are submitted as one commit before the guest sees the answer: from
    /// that commit on, a crash never pays for this call twice. The next
    /// call that leaves the host waits for it (writes commit in order).
    async fn generate_fresh(
        &self,
        model: &str,
        request: &Request,
        size: usize,
    ) -> wasmtime::Result<Performed<Answer<Generated>>> {
        let models = &self.host.models;
        let resolved = match models.resolve_allowed(&self.run.manifest.models, model) {
            Ok(r) => r,
            Err(e) => return Ok(refused(model, &e)),
        };
        if let Some(problem) = invalid(request, size) {
            return Ok(refused(model, &ModelError::InvalidRequest(problem)));
        }
        let chain = self.run.budget_chain();
        if let Some(c) = self.host.ledger.exhausted(&chain) {
            return Err(self.effects.fail(self.crossing_fault(c)));
        }
        let key = match models.key_secret(&resolved.provider) {
            None => None,
            Some(name) => match self.host.secrets.get(name) {
                Some(k) => Some(k),
                None => {
                    tracing::error!(provider = %resolved.provider, secret = name, "a model provider's key is not set on this host");
                    let e = ModelError::Provider {
                        provider: resolved.provider.clone(),
                        status: 0,
                        message: format!("this host has no value for the key secret {name:?}"),
                    };
                    return Ok(refused(model, &e));
                }
            },
        };
        self.effects.commit_before_leaving().await?;

        let called = {
            let deadline = tokio::time::Instant::from_std(self.run.deadline());
            let call = models.generate(&resolved, request, key.as_deref(), deadline);
            tokio::pin!(call);
            loop {
                tokio::select! {
                    r = &mut call => break r,
                    () = self.live.wake.notified() => {
                        if self.live.cancelled() {
                            return Err(self.effects.fail(self.live.stop_fault()));
                        }
                    }
                }
            }
        };

        use crate::telemetry::attribute;
        attribute("gen_ai.operation.name", "chat");
        attribute("gen_ai.provider.name", resolved.provider.clone());
        attribute("gen_ai.request.model", resolved.model.clone());
        let (answer, usage, event) = match called {
            Ok(g) => {
                attribute("gen_ai.usage.input_tokens", g.tokens.input as i64);
                attribute("gen_ai.usage.output_tokens", g.tokens.output as i64);
                let usage = ModelUsage {
                    calls: 1,
                    input_tokens: g.tokens.input,
                    output_tokens: g.tokens.output,
                    cached_tokens: g.tokens.cached,
                    cost_usd: Usd(g.cost_nanos),
                };
                let event = answered_event(model, &resolved, &g);
                let answer = match g.json_problem(request) {
                    Some(message) => Answer::failed(&ModelError::InvalidResponse {
                        provider: resolved.provider.clone(),
                        message,
                    }),
                    None => Answer::Ok(g),
                };
                (answer, Some(usage), event)
            }
            Err(e) => {
                attribute("error.type", e.code().to_owned());
                tracing::info!(run = %self.run.id, provider = %resolved.provider, code = e.code(), error = %e, "a model call failed");
                let event = failed_event(
                    model,
                    &resolved.provider,
                    &resolved.model,
                    CallFailure {
                        code: e.code().to_owned(),
                        message: e.to_string(),
                    },
                );
                (Answer::failed(&e), None, event)
            }
        };
        crate::metrics::model_call(&resolved.provider, usage.as_ref());
        let charge = usage.map(|u| {
            let ancestors: Vec<_> = self.run.ancestors.iter().map(|a| a.run).collect();
            self.host.ledger.charge(self.run.id, &ancestors, &u)
        });
        let crossed = if charge.is_some() {
            self.host.ledger.crossed(&chain)
        } else {
            Vec::new()
        };
        for c in crossed.iter().filter(|c| c.run != self.run.id) {
            let fault = RunFault::Budget {
                budget: c.budget,
                limit: c.limit,
                used: c.used,
            };
            self.host.registry.abort(c.run, fault);
        }
        // Its own budget if crossed, else the nearest ancestor's; past
        // `max_events` the run ends too (the call is still accounted).
        let crossing = crossed
            .iter()
            .find(|c| c.run == self.run.id)
            .or(crossed.last());
        let mut performed = Performed::quiet(answer)
            .event(Recorded::Guest {
                body: event,
                output_bytes: 0,
            })
            .commit(Commit::Submit, charge.into_iter().collect());
        performed.then_fail = crossing.map(|c| self.crossing_fault(*c)).or_else(|| {
            (std::time::Instant::now() >= self.run.deadline()).then(|| self.run.duration_fault())
        });
        Ok(performed)
    }

    /// The fault that ends this run for `c`.
    fn crossing_fault(&self, c: Crossing) -> RunFault {
        if c.run == self.run.id {
            RunFault::Budget {
                budget: c.budget,
                limit: c.limit,
                used: c.used,
            }
        } else {
            RunFault::TreeBudget {
                run: c.run,
                budget: c.budget,
                limit: c.limit,
                used: c.used,
            }
        }
    }
}

/// A call refused before any provider saw it; the log says so too.
fn refused(model: &str, e: &ModelError) -> Performed<Answer<Generated>> {
    let failure = CallFailure {
        code: e.code().to_owned(),
        message: e.to_string(),
    };
    let event = failed_event(model, "", "", failure.clone());
    Performed::quiet(Answer::Err(failure))
        .event(Recorded::Guest {
            body: event,
            output_bytes: 0,
        })
        .commit(Commit::Submit, Vec::new())
}

/// Why the host refuses to send `request` at all.
fn invalid(r: &Request, size: usize) -> Option<String> {
    if r.messages.is_empty() {
        return Some("a request needs at least one message".into());
    }
    if size > MAX_REQUEST_BYTES {
        return Some(format!(
            "the request is {size} bytes; at most {MAX_REQUEST_BYTES} are sent"
        ));
    }
    if r.temperature.is_some_and(|t| !t.is_finite() || t < 0.0) {
        return Some("temperature must be a number >= 0".into());
    }
    if r.max_output_tokens == Some(0) {
        return Some("max-output-tokens must be at least 1".into());
    }
    None
}

fn answered_event(model: &str, m: &Resolved, g: &Generated) -> EventBody {
    EventBody::ModelCall {
        model: model.to_owned(),
        provider: m.provider.clone(),
        provider_model: m.model.clone(),
        input_tokens: g.tokens.input,
        output_tokens: g.tokens.output,
        cached_tokens: g.tokens.cached,
        cost_usd: Usd(g.cost_nanos),
        latency_ms: g.latency_ms,
        attempts: g.attempts,
        finish_reason: Some(g.finish_reason.clone()),
        error: None,
        tool_calls: g.tool_calls.iter().map(|c| c.name.clone()).collect(),
    }
}

/// The event of a call that got no answer (`provider` is empty when it
/// was refused before reaching one).
fn failed_event(
    model: &str,
    provider: &str,
    provider_model: &str,
    error: CallFailure,
) -> EventBody {
    EventBody::ModelCall {
        model: model.to_owned(),
        provider: provider.to_owned(),
        provider_model: provider_model.to_owned(),
        input_tokens: 0,
        output_tokens: 0,
        cached_tokens: 0,
        cost_usd: Usd(0),
        latency_ms: 0,
        attempts: 0,
        finish_reason: None,
        error: Some(error),
        tool_calls: Vec::new(),
    }
}

fn from_wit(r: GenerateRequest) -> (String, Request) {
    let json_schema = r
        .json_schema
        .map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)));
    let request = Request {
        system: r.system,
        messages: r
            .messages
            .into_iter()
            .map(|m: WitMessage| {
                let role = match m.role {
                    WitRole::User => Role::User,
                    WitRole::Assistant => Role::Assistant,
                };
                Message::text(role, m.content)
            })
            .collect(),
        max_output_tokens: r.max_output_tokens,
        temperature: r.temperature,
        stop: r.stop,
        json_schema,
        ..Request::default()
    };
    (r.model, request)
}

/// A JSON value the guest passed as text (`what` says where, for the
/// message), at most `ingress` deep.
fn guest_json(what: &str, text: &str) -> Result<serde_json::Value, String> {
    crate::sandbox::ingress::json("a tool's JSON", text, MAX_REQUEST_BYTES)
        .map_err(|e| format!("{what}: {e}"))
}

/// A tool's name as both formats take it.
fn tool_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The host's request for a `chat`, or why it is not one.
fn chat_from_wit(r: ChatRequest) -> Result<(String, Request), String> {
    if r.tools.len() > MAX_TOOLS {
        return Err(format!(
            "{} tools; at most {MAX_TOOLS} are offered",
            r.tools.len()
        ));
    }
    let mut tools = Vec::with_capacity(r.tools.len());
    for t in r.tools {
        if !tool_name_ok(&t.name) {
            return Err(format!(
                "tool name {:?}: letters, digits, _ and -, at most 64",
                t.name
            ));
        }
        if tools.iter().any(|d: &ToolDef| d.name == t.name) {
            return Err(format!("tool {:?} is offered twice", t.name));
        }
        let parameters = guest_json(&format!("tool {}'s parameters", t.name), &t.parameters)?;
        if !parameters.is_object() {
            return Err(format!(
                "tool {}'s parameters are not a JSON Schema object",
                t.name
            ));
        }
        tools.push(ToolDef {
            name: t.name,
            description: t.description,
            parameters,
        });
    }
    let calls = |calls: Vec<WitToolCall>| {
        calls
            .into_iter()
            .map(|c| {
                Ok(ToolCall {
                    arguments: guest_json(&format!("call {}'s arguments", c.id), &c.arguments)?,
                    id: c.id,
                    name: c.name,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let mut messages = Vec::with_capacity(r.messages.len());
    for m in r.messages {
        messages.push(match m {
            ChatMessage::User(text) => Message::text(Role::User, text),
            ChatMessage::Assistant(turn) => Message {
                tool_calls: calls(turn.tool_calls)?,
                ..Message::text(Role::Assistant, turn.text)
            },
            ChatMessage::ToolResults(results) => Message {
                tool_results: results
                    .into_iter()
                    .map(|t| ToolResult {
                        call_id: t.call_id,
                        content: t.content,
                        is_error: t.is_error,
                    })
                    .collect(),
                ..Message::text(Role::User, "")
            },
        });
    }
    let tool_choice = match r.tool_choice {
        WitToolChoice::Auto => ToolChoice::Auto,
        WitToolChoice::None => ToolChoice::None,
        WitToolChoice::Required => ToolChoice::Required,
        WitToolChoice::Named(n) => {
            if !tools.iter().any(|t| t.name == n) {
                return Err(format!("tool-choice names {n:?}, which is not offered"));
            }
            ToolChoice::Named(n)
        }
    };
    if tools.is_empty() && matches!(tool_choice, ToolChoice::Required) {
        return Err("tool-choice `required` with no tools offered".into());
    }
    Ok((
        r.model,
        Request {
            system: r.system,
            messages,
            max_output_tokens: r.max_output_tokens,
            temperature: r.temperature,
            stop: r.stop,
            json_schema: None,
            tool_choice: (!tools.is_empty()).then_some(tool_choice),
            tools,
        },
    ))
}

fn wit_chat_response(g: Generated) -> ChatResponse {
    ChatResponse {
        tool_calls: g
            .tool_calls
            .iter()
            .map(|c| WitToolCall {
                id: c.id.clone(),
                name: c.name.clone(),
                arguments: c.arguments.to_string(),
            })
            .collect(),
        text: g.text,
        finish_reason: g.finish_reason,
        usage: WitUsage {
            input_tokens: g.tokens.input,
            output_tokens: g.tokens.output,
            cached_tokens: g.tokens.cached,
        },
        cost_usd: Usd(g.cost_nanos).dollars(),
        model: wit_resolved(g.model),
    }
}

fn wit_resolved(r: Resolved) -> ResolvedModel {
    ResolvedModel {
        reference: r.reference,
        provider: r.provider,
        kind: r.kind.as_str().to_owned(),
        model: r.model,
        base_url: r.base_url,
        context_window: r.context_window,
        rates: WitRates {
            input_per_million: r.rates.input_per_million,
            output_per_million: r.rates.output_per_million,
            cached_input_per_million: r.rates.cached_input_per_million,
        },
    }
}

fn wit_response(g: Generated) -> GenerateResponse {
    GenerateResponse {
        text: g.text,
        finish_reason: g.finish_reason,
        usage: WitUsage {
            input_tokens: g.tokens.input,
            output_tokens: g.tokens.output,
            cached_tokens: g.tokens.cached,
        },
        cost_usd: Usd(g.cost_nanos).dollars(),
        model: wit_resolved(g.model),
    }
}
