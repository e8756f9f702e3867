//! `runway:workflow/approvals`: the run asks people to decide and parks
//! (`waiting_approval`) until someone allowed does — their decision comes
//! through the API as the signal `approval:<name>`, validated and
//! attributed there — or the timeout passes and the default outcome
//! applies. The request and the decision are journaled like any wait: a
//! resumed run gets the same decision and asks nobody again.

use crate::host::services::HostServices;
use crate::sandbox::bindings::approvals::Host as ApprovalsImport;
use crate::sandbox::bindings::types::Failure;
use crate::sandbox::effect::Effects;
use crate::sandbox::fault::RunFault;
use crate::sandbox::ingress;
use crate::sandbox::journal::{Call, Step};
use crate::sandbox::park::Parker;
use crate::sandbox::state::{RunContext, RunState};
use crate::store::Write;
use crate::types::{Approval, ApprovalSpec, Decision, EventBody, FailureCode, Wait, now, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use wasmtime::component::HasData;

/// Longest approval name.
const MAX_NAME: usize = 128;
/// Largest spec.
const MAX_SPEC_BYTES: usize = 128 << 10;

/// The signal a decision arrives as.
pub(crate) fn signal_name(approval: &str) -> String {
    format!("approval:{approval}")
}

/// What the journal holds for a request: the decision, or why it was
/// refused.
#[derive(Serialize, Deserialize)]
enum Outcome {
    Decided(Decision),
    Refused { code: String, message: String },
}

impl Outcome {
    fn refused(f: &Failure) -> Outcome {
        Outcome::Refused {
            code: f.code.clone(),
            message: f.message.clone(),
        }
    }
}

/// What a parked request recorded: when its timeout passes.
#[derive(Serialize, Deserialize)]
struct Deadline {
    until_ms: Option<u64>,
}

pub(super) struct ApprovalsView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    host: &'a HostServices,
    parker: Parker<'a>,
    consumed_signals: &'a mut HashSet<u64>,
}

pub(super) struct Approvals;

impl HasData for Approvals {
    type Data<'a> = ApprovalsView<'a>;
}

pub(super) fn view(s: &mut RunState) -> ApprovalsView<'_> {
    let p = s.parking();
    ApprovalsView {
        run: p.run,
        effects: p.effects,
        host: p.host,
        parker: p.parker,
        consumed_signals: p.consumed_signals,
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    super::failure(FailureCode::ApprovalInvalid, message)
}

impl ApprovalsView<'_> {
    fn store_fault(&self, e: &crate::store::StoreError) -> wasmtime::Error {
        self.effects
            .fail(RunFault::from_store("reading approvals", e))
    }

    /// The checked spec, or the failure the guest gets.
    fn spec(&self, name: &str, spec: &str) -> Result<ApprovalSpec, Failure> {
        ingress::text("an approval name", name, MAX_NAME).map_err(|e| invalid(e.to_string()))?;
        if spec.len() > MAX_SPEC_BYTES {
            return Err(invalid("the spec is over 128 KiB"));
        }
        let spec: ApprovalSpec = serde_json::from_str(spec)
            .map_err(|e| invalid(format!("the spec does not parse: {e}")))?;
        spec.check().map_err(invalid)?;
        for s in &spec.allowed.scopes {
            s.parse::<crate::config::Grants>()
                .map_err(|e| invalid(format!("allowed scope {s:?}: {e}")))?;
        }
        // The prompt and payload are free text, stored masked; these are
        // keys a decision must repeat, so a secret value in one is refused
        // rather than stored.
        let holds_secret = |s: &str| self.effects.mask(s) != s;
        let default = spec.default.as_ref();
        let keys = std::iter::once(name)
            .chain(spec.options.iter().map(String::as_str))
            .chain(default.and_then(|d| d.option.as_deref()))
            .chain(
                default
                    .and_then(|d| d.options.as_deref())
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            )
            .chain(spec.allowed.principals.iter().map(String::as_str))
            .chain(spec.allowed.scopes.iter().map(String::as_str));
        for key in keys {
            if holds_secret(key) {
                return Err(invalid(
                    "an approval's name, options and allowed principals may not hold a secret value",
                ));
            }
        }
        Ok(spec)
    }
}

impl ApprovalsImport for ApprovalsView<'_> {
    async fn request(
        &mut self,
        name: String,
        spec: String,
    ) -> wasmtime::Result<Result<String, Failure>> {
        let call = Call::new(
            "runway:workflow/approvals.request",
            &[name.as_bytes(), spec.as_bytes()],
        );
        let (mut pending, until_ms, spec) = match self.effects.step::<Outcome>(&call)? {
            Step::Done(Outcome::Decided(d)) => {
                return Ok(Ok(serde_json::to_string(&d).unwrap_or_default()));
            }
            Step::Done(Outcome::Refused { code, message }) => {
                return Ok(Err(Failure { code, message }));
            }
            Step::Pending { seq, data } => {
                let d: Deadline = serde_json::from_value(data).map_err(|e| {
                    self.effects
                        .fail(RunFault::Internal(format!("a recorded approval: {e}")))
                })?;
                let spec = match self.spec(&name, &spec) {
                    Ok(s) => s,
                    Err(f) => return Ok(Err(f)),
                };
                (Some(seq), d.until_ms, spec)
            }
            Step::Fresh => {
                let spec = match self.spec(&name, &spec) {
                    Ok(s) => s,
                    Err(f) => {
                        self.effects.settle(None, call, &Outcome::refused(&f))?;
                        return Ok(Err(f));
                    }
                };
                let asked = self
                    .host
                    .store
                    .approval(self.run.id, &name)
                    .map_err(|e| self.store_fault(&e))?;
                if asked.is_some() {
                    let f = invalid(format!("approval {name:?} was asked before in this run"));
                    self.effects.settle(None, call, &Outcome::refused(&f))?;
                    return Ok(Err(f));
                }
                let until_ms = spec.timeout_ms.map(|t| now_ms().saturating_add(t));
                let seq = self.effects.pending(call.clone(), &Deadline { until_ms })?;
                self.effects.system_event(EventBody::ApprovalRequested {
                    name: name.clone(),
                    approval: spec.kind,
                    prompt: self.effects.mask(&spec.prompt),
                });
                // Durable with its journal entry before anyone is asked:
                // the API finds it from now on.
                // Stored and shown to reviewers: masked like events (a
                // secret the run read never reaches the store).
                let mut shown = spec.clone();
                shown.prompt = self.effects.mask(&shown.prompt);
                if let Some(p) = shown.payload.as_mut() {
                    self.effects.mask_value(p);
                }
                let approval = Approval {
                    run_id: self.run.id,
                    workflow: self.run.slug.clone(),
                    name: name.clone(),
                    status: "pending".into(),
                    spec: shown,
                    requested_at: now(),
                    until_ms,
                    decision: None,
                };
                self.effects
                    .submit_recorded(vec![Write::PutApproval(Box::new(approval))])
                    .wait()
                    .await
                    .map_err(|e| {
                        self.effects
                            .fail(RunFault::from_store("recording an approval", &e))
                    })?;
                (Some(seq), until_ms, spec)
            }
        };
        let signal = signal_name(&name);
        let mut parked = None;
        let decision = loop {
            let inbox = self
                .host
                .store
                .signals(self.run.id)
                .map_err(|e| self.store_fault(&e))?;
            if let Some(s) = inbox
                .into_iter()
                .find(|s| s.name == signal && !self.consumed_signals.contains(&s.seq))
            {
                self.consumed_signals.insert(s.seq);
                // The API wrote it, checked against the spec.
                match serde_json::from_value::<Decision>(s.payload) {
                    Ok(d) => break d,
                    Err(e) => {
                        return Err(self
                            .effects
                            .fail(RunFault::Internal(format!("a stored decision: {e}"))));
                    }
                }
            }
            if until_ms.is_some_and(|u| now_ms() >= u) {
                break Decision {
                    choice: spec.default.clone().unwrap_or_default(),
                    by: None,
                    comment: None,
                    at: now(),
                    timed_out: true,
                };
            }
            if pending.is_none() {
                pending = Some(self.effects.pending(call.clone(), &Deadline { until_ms })?);
            }
            if parked.is_none() {
                let wait = Wait::Approval {
                    name: name.clone(),
                    until_ms,
                };
                parked = Some(self.parker.park(&wait).await?);
            }
            if let Some(p) = &parked {
                self.parker.wait_warm(p, until_ms).await?;
            }
        };
        self.effects
            .settle(pending.take(), call, &Outcome::Decided(decision.clone()))?;
        self.effects.system_event(EventBody::ApprovalDecided {
            name: name.clone(),
            decision: decision.clone(),
        });
        // As stored when asked (masked), with the decision.
        let asked = self.host.store.approval(self.run.id, &name).ok().flatten();
        let requested_at = asked.as_ref().map_or_else(now, |a| a.requested_at);
        let spec = asked.map_or(spec, |a| a.spec);
        self.effects
            .enqueue_recorded(vec![Write::PutApproval(Box::new(Approval {
                run_id: self.run.id,
                workflow: self.run.slug.clone(),
                name,
                status: if decision.timed_out {
                    "timed_out"
                } else {
                    "decided"
                }
                .into(),
                spec,
                requested_at,
                until_ms,
                decision: Some(decision.clone()),
            }))]);
        self.parker.unpark(parked).await?;
        Ok(Ok(serde_json::to_string(&decision).unwrap_or_default()))
    }
}
