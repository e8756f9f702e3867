//! `runway:workflow/mcp`: tools of MCP servers the operator configured and
//! the manifest grants, called by the host.
//!
//! Like `http`: the grant is checked first (a refusal is journaled and
//! reaches no server); everything recorded before is made durable before a
//! request leaves the host; the answer is journaled with its `tool_call`
//! event as one commit before the guest sees it; a replay answers from the
//! journal. Secret values the run read are masked in what a server answers,
//! the same on the first execution and on replay.

use crate::host::scheduler::LiveRun;
use crate::host::services::HostServices;
use crate::mcp::{CallOutcome, McpError, ToolInfo};
use crate::sandbox::bindings::mcp::{Host as McpImport, ToolInfo as WitToolInfo};
use crate::sandbox::bindings::types::Failure;
use crate::sandbox::effect::{Commit, Effects, OnReplay, Performed, Recorded};
use crate::sandbox::journal::Call;
use crate::sandbox::state::{RunContext, RunState};
use crate::types::{CallFailure, EventBody, FailureCode};
use serde::{Deserialize, Serialize};
use wasmtime::component::HasData;

const LIST: &str = "runway:workflow/mcp.list-tools";
const CALL: &str = "runway:workflow/mcp.call-tool";
/// Largest arguments a guest may send.
const MAX_ARGUMENTS: usize = 1 << 20;

/// A journaled result.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer<T> {
    Ok(T),
    Err(CallFailure),
}

impl<T> Answer<T> {
    fn failed(code: FailureCode, message: impl Into<String>) -> Self {
        Answer::Err(CallFailure {
            code: code.as_str().to_owned(),
            message: message.into(),
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

/// What `mcp` sees of a run.
pub(super) struct McpView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    host: &'a HostServices,
    live: &'a LiveRun,
}

pub(super) struct Mcp;

impl HasData for Mcp {
    type Data<'a> = McpView<'a>;
}

pub(super) fn view(s: &mut RunState) -> McpView<'_> {
    McpView {
        run: &s.run,
        effects: &s.effects,
        host: &s.host,
        live: &s.live,
    }
}

impl McpImport for McpView<'_> {
    async fn list_tools(
        &mut self,
        server: String,
    ) -> wasmtime::Result<Result<Vec<WitToolInfo>, Failure>> {
        let call = Call::new(LIST, &[server.as_bytes()]);
        let answer: Answer<Vec<ToolInfo>> = self
            .effects
            .effect(call, OnReplay::Nothing, || self.list_fresh(&server))
            .await?;
        Ok(answer.into_result(|tools| {
            tools
                .into_iter()
                .map(|t| WitToolInfo {
                    name: t.name,
                    description: t.description,
                    input_schema: t.input_schema.to_string(),
                })
                .collect()
        }))
    }

    async fn call_tool(
        &mut self,
        server: String,
        tool: String,
        arguments: String,
    ) -> wasmtime::Result<Result<String, Failure>> {
        let call = Call::new(
            CALL,
            &[server.as_bytes(), tool.as_bytes(), arguments.as_bytes()],
        );
        let digest = call.args.clone();
        let replay = OnReplay::GuestEvent { output_bytes: 0 };
        let answer: Answer<CallOutcome> = self
            .effects
            .effect(call, replay, || {
                self.call_fresh(&server, &tool, &arguments, digest)
            })
            .await?;
        Ok(answer.into_result(|o| {
            serde_json::json!({
                "content": o.content,
                "structured_content": o.structured_content,
            })
            .to_string()
        }))
    }
}

impl McpView<'_> {
    /// Why the manifest keeps the run from `server` (or its `tool`), if it
    /// does.
    fn refusal(&self, server: &str, tool: Option<&str>) -> Option<String> {
        if !self.run.manifest.grants_mcp(server, tool) {
            return Some(match tool {
                Some(t) => format!("the manifest's mcp grants do not include {server}/{t}"),
                None => format!("the manifest's mcp grants do not include {server}"),
            });
        }
        None
    }

    async fn list_fresh(&self, server: &str) -> wasmtime::Result<Performed<Answer<Vec<ToolInfo>>>> {
        let done = |a| Ok(Performed::quiet(a).commit(Commit::Submit, Vec::new()));
        if let Some(why) = self.refusal(server, None) {
            return done(Answer::failed(FailureCode::McpServerNotAllowed, why));
        }
        self.effects.commit_before_leaving().await?;
        let listed = self.interruptible(self.host.mcp.list_tools(server)).await?;
        let answer = match listed {
            // Only the granted tools: a run sees nothing else.
            Ok(tools) => Answer::Ok(
                tools
                    .into_iter()
                    .filter(|t| self.run.manifest.grants_mcp(server, Some(&t.name)))
                    .collect(),
            ),
            Err(e) => Answer::failed(e.code(), self.effects.mask(&e.to_string())),
        };
        done(answer)
    }

    async fn call_fresh(
        &self,
        server: &str,
        tool: &str,
        arguments: &str,
        digest: String,
    ) -> wasmtime::Result<Performed<Answer<CallOutcome>>> {
        let started = std::time::Instant::now();
        let finish = |answer: Answer<CallOutcome>| {
            let (outcome, error) = match &answer {
                Answer::Ok(_) => ("ok".to_owned(), None),
                Answer::Err(e) => (e.code.clone(), Some(e.clone())),
            };
            crate::metrics::mcp_call(server, &outcome);
            let event = EventBody::ToolCall {
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments_digest: digest.clone(),
                duration_ms: started.elapsed().as_millis() as u64,
                outcome,
                error,
            };
            Ok(Performed::quiet(answer)
                .event(Recorded::Guest {
                    body: event,
                    output_bytes: 0,
                })
                .commit(Commit::Submit, Vec::new()))
        };
        if let Some(why) = self.refusal(server, Some(tool)) {
            return finish(Answer::failed(FailureCode::McpServerNotAllowed, why));
        }
        let arguments =
            match crate::sandbox::ingress::json("tool arguments", arguments, MAX_ARGUMENTS) {
                Ok(serde_json::Value::Object(map)) => map,
                Ok(_) => {
                    return finish(Answer::failed(
                        FailureCode::McpToolError,
                        "the arguments are not a JSON object",
                    ));
                }
                Err(e) => return finish(Answer::failed(FailureCode::McpToolError, e.to_string())),
            };
        self.effects.commit_before_leaving().await?;
        let called = self
            .interruptible(self.host.mcp.call_tool(server, tool, arguments))
            .await?;
        let answer = match called {
            Ok(mut o) => {
                // What a server echoes of a secret the run read is masked.
                for c in &mut o.content {
                    self.effects.mask_value(c);
                }
                if let Some(s) = o.structured_content.as_mut() {
                    self.effects.mask_value(s);
                }
                if o.is_error {
                    let text = o.text();
                    let message = if text.is_empty() {
                        format!("{server}/{tool} failed")
                    } else {
                        text
                    };
                    Answer::failed(FailureCode::McpToolError, message)
                } else {
                    Answer::Ok(o)
                }
            }
            Err(e @ McpError::Refused { .. }) => {
                Answer::failed(FailureCode::McpToolError, self.effects.mask(&e.to_string()))
            }
            Err(e) => Answer::failed(e.code(), self.effects.mask(&e.to_string())),
        };
        finish(answer)
    }

    /// `fut`, ended early (with the run's fault) by a cancel.
    async fn interruptible<T>(&self, fut: impl Future<Output = T>) -> wasmtime::Result<T> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => return Ok(r),
                () = self.live.wake.notified() => {
                    if self.live.cancelled() {
                        return Err(self.effects.fail(self.live.stop_fault()));
                    }
                }
            }
        }
    }
}
