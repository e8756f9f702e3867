//! `runway:workflow/workflows`: child runs.
//!
//! A child is created in the same transaction as the parent's journal entry
//! for its start, under an idempotency key, so a replayed parent finds the
//! entry and re-attaches to the same child instead of starting another.

use super::failure;
use crate::host::services::HostServices;
use crate::sandbox::bindings::types::Failure;
use crate::sandbox::bindings::workflows::Host as WorkflowsImport;
use crate::sandbox::effect::{Commit, Effects, OnReplay, Performed, Recorded};
use crate::sandbox::fault::RunFault;
use crate::sandbox::ingress;
use crate::sandbox::journal::{Call, Step};
use crate::sandbox::park::Parker;
use crate::sandbox::state::{RunContext, RunState};
use crate::store::Write;
use crate::types::{BudgetKind, Event, EventBody, FailureCode, RunId, RunRecord, RunStatus, Wait};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use wasmtime::component::HasData;

/// Longest idempotency key a guest may give a child.
const MAX_KEY: usize = 256;

/// What a journaled `start` or `join` returned.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(String),
    Err { code: String, message: String },
}

impl From<Result<String, Failure>> for Answer {
    fn from(r: Result<String, Failure>) -> Self {
        match r {
            Ok(v) => Answer::Ok(v),
            Err(f) => Answer::Err {
                code: f.code,
                message: f.message,
            },
        }
    }
}

impl From<Answer> for Result<String, Failure> {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Ok(v) => Ok(v),
            Answer::Err { code, message } => Err(Failure { code, message }),
        }
    }
}

/// What `workflows` sees of a run.
pub(super) struct WorkflowsView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    host: &'a Arc<HostServices>,
    parker: Parker<'a>,
    children: &'a mut u64,
}

pub(super) struct Workflows;

impl HasData for Workflows {
    type Data<'a> = WorkflowsView<'a>;
}

pub(super) fn view(s: &mut RunState) -> WorkflowsView<'_> {
    let p = s.parking();
    WorkflowsView {
        run: p.run,
        effects: p.effects,
        host: p.host,
        parker: p.parker,
        children: p.children,
    }
}

impl WorkflowsImport for WorkflowsView<'_> {
    async fn call(
        &mut self,
        slug: String,
        input: String,
        idempotency_key: Option<String>,
    ) -> wasmtime::Result<Result<String, Failure>> {
        match self.start_child(slug, input, idempotency_key).await? {
            Ok(id) => self.join_child(id).await,
            Err(f) => Ok(Err(f)),
        }
    }

    async fn start(
        &mut self,
        slug: String,
        input: String,
        idempotency_key: Option<String>,
    ) -> wasmtime::Result<Result<String, Failure>> {
        self.start_child(slug, input, idempotency_key).await
    }

    async fn join(&mut self, run_id: String) -> wasmtime::Result<Result<String, Failure>> {
        self.join_child(run_id).await
    }
}

impl WorkflowsView<'_> {
    async fn start_child(
        &mut self,
        slug: String,
        input: String,
        key: Option<String>,
    ) -> wasmtime::Result<Result<String, Failure>> {
        let call = Call::new(
            "runway:workflow/workflows.start",
            &[
                slug.as_bytes(),
                input.as_bytes(),
                key.as_deref().unwrap_or("").as_bytes(),
                &[u8::from(key.is_some())],
            ],
        );
        let effects = self.effects;
        let perform = || async {
            let child = match self.create_child(&slug, &input, key)? {
                Ok(child) => child,
                Err(f) => return Ok(Performed::quiet(Answer::from(Err(f)))),
            };
            let child = match child {
                Child::New(child) => child,
                // The key names a child started before: it exists already.
                Child::Existing(id) => {
                    return Ok(Performed::quiet(Answer::Ok(id.to_string()))
                        .commit(Commit::Durable, Vec::new()));
                }
            };
            let id = child.id;
            let child_root = child.ancestors.first().map_or(self.run.id, |a| a.run);
            let queued = Event {
                seq: 1,
                at: child.created_at,
                body: EventBody::Queued {
                    workflow: child.workflow.clone(),
                    version: child.version,
                },
            };
            let writes = vec![
                Write::PutKey(child.idempotency_key.clone().unwrap_or_default(), id),
                Write::PutChild {
                    parent: self.run.id,
                    child: id,
                    root: child_root,
                },
                Write::AppendEvents(id, vec![queued]),
                Write::PutRun(child),
            ];
            let host = self.host.clone();
            let mut performed = Performed::quiet(Answer::Ok(id.to_string()))
                .event(Recorded::System(EventBody::ChildStarted {
                    run: id,
                    workflow: slug.clone(),
                }))
                // The commit rule: the child exists, and the parent's
                // record of it is durable, before the child can do anything.
                .commit(Commit::Durable, writes);
            let root = child_root;
            performed.after_commit = Some(Box::new(move || {
                host.trees.committed(root);
                host.registry.launch(id);
            }));
            Ok(performed)
        };
        let answer = effects.effect(call, OnReplay::Nothing, perform).await?;
        if matches!(answer, Answer::Ok(_)) {
            *self.children += 1;
        }
        Ok(answer.into())
    }

    /// The child record to start (or the one a key already names), or a
    /// failure for the guest.
    fn create_child(
        &mut self,
        slug: &str,
        input: &str,
        key: Option<String>,
    ) -> wasmtime::Result<Result<Child, Failure>> {
        let internal =
            |e: &crate::store::StoreError| RunFault::from_store("starting a child run", e);
        let admitted = ingress::json("the child's input", input, crate::host::MAX_INPUT_BYTES)
            .and_then(|input| {
                let key = key.as_deref().unwrap_or_default();
                ingress::text("an idempotency key", key, MAX_KEY).map(|()| input)
            });
        let mut input = match admitted {
            Ok(input) => input,
            Err(e) => return Ok(Err(failure(FailureCode::InvalidInput, e.to_string()))),
        };
        // Stored in the child's record and its key: no secret value goes in.
        self.effects.mask_value(&mut input);
        let key = key.map(|k| self.effects.mask(&k));
        let depth = self.run.depth + 1;
        if depth > self.host.max_depth {
            return Ok(Err(failure(
                FailureCode::ChildDepthExceeded,
                format!("runs may nest at most {} deep", self.host.max_depth),
            )));
        }
        let limit = self.run.budget.max_children;
        if *self.children >= limit {
            return Err(self.effects.fail(RunFault::Budget {
                budget: BudgetKind::MaxChildren,
                limit,
                used: *self.children + 1,
            }));
        }
        // The default key is the call's position: the same on every replay.
        let seq = self.effects.calls() + 1;
        let scoped = format!(
            "child:{}:{}",
            self.run.id,
            key.unwrap_or_else(|| format!("#{seq}"))
        );
        let store = &self.host.store;
        if let Some(id) = store
            .run_for_key(&scoped)
            .map_err(|e| self.effects.fail(internal(&e)))?
        {
            return Ok(Ok(Child::Existing(id)));
        }
        // A new run joins the queue: not past the host's bound.
        let queued = self
            .host
            .registry
            .queued
            .load(std::sync::atomic::Ordering::Relaxed);
        if queued >= self.host.max_queued_runs {
            return Ok(Err(failure(
                FailureCode::QueueFull,
                format!("{queued} runs wait for an execution slot; start the child later"),
            )));
        }
        let Some(wf) = store
            .workflow(slug, None)
            .map_err(|e| self.effects.fail(internal(&e)))?
        else {
            if let Some(script) = &self.host.script {
                script.note_unscripted(format!(
                    "child run of workflow {slug:?}: script it with World::child"
                ));
            }
            return Ok(Err(failure(
                FailureCode::WorkflowNotFound,
                format!("no workflow {slug:?} is deployed"),
            )));
        };
        // The child's input contract, before anything is admitted.
        if let Ok(manifest) = crate::manifest::Manifest::parse(&wf.manifest_toml)
            && let Some(contract) = &manifest.input
            && let Err(e) = contract.check(&input)
        {
            return Ok(Err(failure(
                FailureCode::InvalidInput,
                format!("the input does not follow {slug}'s schema {e}"),
            )));
        }
        let (root, limit) = match self.run.ancestors.first() {
            Some(root) => (
                root.run,
                root.max_tree_runs.unwrap_or(self.run.budget.max_tree_runs),
            ),
            None => (self.run.id, self.run.budget.max_tree_runs),
        };
        if let Err(used) = self.host.trees.admit(root, limit) {
            return Err(self.effects.fail(RunFault::Budget {
                budget: BudgetKind::MaxTreeRuns,
                limit,
                used,
            }));
        }
        let mut child = crate::host::new_record(&wf, input);
        child.parent = Some(self.run.id);
        child.depth = depth;
        child.idempotency_key = Some(scoped);
        child.ancestors = self.run.budget_chain();
        child.trigger = Some(crate::types::Trigger::new("child", self.run.id.to_string()));
        Ok(Ok(Child::New(Box::new(child))))
    }

    async fn join_child(&mut self, run_id: String) -> wasmtime::Result<Result<String, Failure>> {
        let call = Call::new("runway:workflow/workflows.join", &[run_id.as_bytes()]);
        let mut pending = match self.effects.step::<Answer>(&call)? {
            Step::Done(answer) => return Ok(answer.into()),
            Step::Pending { seq, .. } => Some(seq),
            Step::Fresh => None,
        };
        let child = match run_id.parse::<RunId>() {
            Ok(id) => id,
            Err(_) => {
                let answer = Err(failure(
                    FailureCode::NotAChild,
                    format!("{run_id:?} is not a run id"),
                ));
                self.settle_answer(pending, call, &answer)?;
                return Ok(answer);
            }
        };
        let mut parked = None;
        let answer = loop {
            let record = self.host.store.run(child).map_err(|e| {
                self.effects
                    .fail(RunFault::from_store("reading a child run", &e))
            })?;
            let Some(record) = record.filter(|r| r.parent == Some(self.run.id)) else {
                break Err(failure(
                    FailureCode::NotAChild,
                    format!("{child} is not a child of this run"),
                ));
            };
            if record.status.is_terminal() {
                break child_result(&record);
            }
            if pending.is_none() {
                pending = Some(self.effects.pending(call.clone(), &())?);
            }
            if parked.is_none() {
                parked = Some(self.parker.park(&Wait::Child { run: child }).await?);
            }
            if let Some(p) = &parked {
                self.parker.wait_warm(p, None).await?;
            }
        };
        self.settle_answer(pending, call, &answer)?;
        self.parker.unpark(parked).await?;
        Ok(answer)
    }

    fn settle_answer(
        &self,
        pending: Option<u64>,
        call: Call,
        answer: &Result<String, Failure>,
    ) -> wasmtime::Result<()> {
        self.effects
            .settle(pending, call, &Answer::from(answer.clone()))
    }
}

/// The child a `start` names: made now, or found by its key.
enum Child {
    New(Box<RunRecord>),
    Existing(RunId),
}

/// A finished child as the parent sees it: its output, or a typed failure.
fn child_result(child: &RunRecord) -> Result<String, Failure> {
    match child.status {
        RunStatus::Completed => Ok(child
            .output
            .as_ref()
            .map_or_else(|| "null".to_owned(), |o| o.to_string())),
        RunStatus::Cancelled => Err(failure(
            FailureCode::ChildCancelled,
            format!("child run {} was cancelled", child.id),
        )),
        _ => {
            let (code, message) = child
                .error
                .as_ref()
                .map_or(("FAILED", ""), |e| (e.code.as_str(), e.message.as_str()));
            Err(failure(
                FailureCode::ChildFailed,
                format!("child run {} failed with {code}: {message}", child.id),
            ))
        }
    }
}
