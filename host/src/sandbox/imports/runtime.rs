//! `runway:workflow/runtime`: run info, logs, custom events, sleeps and
//! signals.

use crate::host::services::HostServices;
use crate::sandbox::bindings::runtime::{Host as RuntimeImport, LogLevel, RunInfo};
use crate::sandbox::effect::{Effects, OnReplay, Performed, Recorded};
use crate::sandbox::fault::RunFault;
use crate::sandbox::ingress;
use crate::sandbox::journal::{Call, Step};
use crate::sandbox::park::Parker;
use crate::sandbox::state::{RunContext, RunState};
use crate::types::{self, EventBody, Wait, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use wasmtime::component::HasData;

/// What a parked `sleep` or `wait-signal` recorded: when it gives up.
#[derive(Serialize, Deserialize)]
struct Deadline {
    until_ms: Option<u64>,
}

/// A signal `wait-signal` took from the inbox.
#[derive(Serialize, Deserialize)]
struct Taken {
    seq: u64,
    payload: String,
    /// Who sent it (journals written before signals were attributed have
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
}

/// Longest custom event name.
const MAX_KIND: usize = 128;
/// Longest signal name (as the API takes them).
const MAX_SIGNAL_NAME: usize = 128;

/// What `runtime` sees of a run.
pub(super) struct RuntimeView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    host: &'a HostServices,
    parker: Parker<'a>,
    consumed_signals: &'a mut HashSet<u64>,
}

pub(super) struct Runtime;

impl HasData for Runtime {
    type Data<'a> = RuntimeView<'a>;
}

pub(super) fn view(s: &mut RunState) -> RuntimeView<'_> {
    let p = s.parking();
    RuntimeView {
        run: p.run,
        effects: p.effects,
        host: p.host,
        parker: p.parker,
        consumed_signals: p.consumed_signals,
    }
}

impl RuntimeImport for RuntimeView<'_> {
    async fn info(&mut self) -> wasmtime::Result<RunInfo> {
        // A pure function of the run: not journaled.
        Ok(RunInfo {
            run_id: self.run.id.to_string(),
            slug: self.run.slug.clone(),
            version: self.run.version,
            parent_run_id: self.run.parent.map(|p| p.to_string()),
        })
    }

    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            LogLevel::Trace => types::LogLevel::Trace,
            LogLevel::Debug => types::LogLevel::Debug,
            LogLevel::Info => types::LogLevel::Info,
            LogLevel::Warn => types::LogLevel::Warn,
            LogLevel::Error => types::LogLevel::Error,
        };
        let call = Call::new("runway:workflow/runtime.log", &[message.as_bytes()]);
        let replay = OnReplay::GuestEvent {
            output_bytes: message.len(),
        };
        let effects = self.effects;
        effects
            .effect(call, replay, || async {
                let message = effects.mask(&message);
                Ok(Performed::quiet(()).event(Recorded::Guest {
                    output_bytes: message.len(),
                    body: EventBody::Log { level, message },
                }))
            })
            .await
    }

    async fn emit(&mut self, kind: String, payload: String) -> wasmtime::Result<()> {
        let call = Call::new(
            "runway:workflow/runtime.emit",
            &[kind.as_bytes(), payload.as_bytes()],
        );
        // Charged by what the guest sent, before anything parses it.
        let output_bytes = kind.len().min(MAX_KIND) + payload.len();
        let effects = self.effects;
        effects.check_output(output_bytes)?;
        effects
            .effect(call, OnReplay::GuestEvent { output_bytes }, || async {
                let name: String = kind.chars().take(MAX_KIND).collect();
                // The SDK always sends JSON; anything else (too deep, say)
                // is kept as a string, which has no depth.
                let mut payload = ingress::json("an event payload", &payload, usize::MAX)
                    .unwrap_or(serde_json::Value::String(payload));
                effects.mask_value(&mut payload);
                Ok(Performed::quiet(()).event(Recorded::Guest {
                    output_bytes,
                    body: EventBody::Custom {
                        name: effects.mask(&name),
                        payload,
                    },
                }))
            })
            .await
    }

    async fn sleep(&mut self, millis: u64) -> wasmtime::Result<()> {
        let call = Call::new("runway:workflow/runtime.sleep", &[&millis.to_le_bytes()]);
        let (mut pending, until_ms) = match self.effects.step::<()>(&call)? {
            Step::Done(()) => return Ok(()),
            Step::Pending { seq, data } => (Some(seq), self.recorded_deadline(data)?.unwrap_or(0)),
            Step::Fresh => (None, now_ms().saturating_add(millis)),
        };
        let mut parked = None;
        while now_ms() < until_ms {
            if pending.is_none() {
                let d = Deadline {
                    until_ms: Some(until_ms),
                };
                pending = Some(self.effects.pending(call.clone(), &d)?);
            }
            if parked.is_none() {
                parked = Some(self.parker.park(&Wait::Timer { until_ms }).await?);
            }
            if let Some(p) = &parked {
                self.parker.wait_warm(p, Some(until_ms)).await?;
            }
        }
        self.effects.settle(pending, call, &())?;
        self.parker.unpark(parked).await
    }

    async fn wait_signal(
        &mut self,
        name: String,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Option<String>> {
        if let Err(e) = ingress::text("a signal name", &name, MAX_SIGNAL_NAME) {
            return Err(self.effects.fail(RunFault::InvalidCall(e.to_string())));
        }
        let timeout_bytes = timeout.map(u64::to_le_bytes);
        let call = Call::new(
            "runway:workflow/runtime.wait-signal",
            &[
                name.as_bytes(),
                timeout_bytes.as_ref().map_or(&[][..], |b| &b[..]),
            ],
        );
        let (mut pending, until_ms) = match self.effects.step::<Option<Taken>>(&call)? {
            Step::Done(taken) => {
                return Ok(taken.map(|t| {
                    self.consumed_signals.insert(t.seq);
                    t.payload
                }));
            }
            Step::Pending { seq, data } => (Some(seq), self.recorded_deadline(data)?),
            Step::Fresh => (None, timeout.map(|t| now_ms().saturating_add(t))),
        };
        let mut parked = None;
        let taken = loop {
            let inbox = self.host.store.signals(self.run.id).map_err(|e| {
                self.effects
                    .fail(RunFault::from_store("reading signals", &e))
            })?;
            if let Some(s) = inbox
                .into_iter()
                .find(|s| s.name == name && !self.consumed_signals.contains(&s.seq))
            {
                break Some(Taken {
                    seq: s.seq,
                    payload: s.payload.to_string(),
                    by: s.by,
                });
            }
            if until_ms.is_some_and(|u| now_ms() >= u) {
                break None;
            }
            if pending.is_none() {
                pending = Some(self.effects.pending(call.clone(), &Deadline { until_ms })?);
            }
            if parked.is_none() {
                let wait = Wait::Signal {
                    name: self.effects.mask(&name),
                    until_ms,
                };
                parked = Some(self.parker.park(&wait).await?);
            }
            if let Some(p) = &parked {
                self.parker.wait_warm(p, until_ms).await?;
            }
        };
        self.effects.settle(pending, call, &taken)?;
        if let Some(t) = &taken {
            self.consumed_signals.insert(t.seq);
            self.effects.system_event(EventBody::SignalReceived {
                name: self.effects.mask(&name),
                signal_seq: t.seq,
                by: t.by.clone(),
            });
        }
        self.parker.unpark(parked).await?;
        Ok(taken.map(|t| t.payload))
    }
}

impl RuntimeView<'_> {
    /// The deadline a parked `sleep` or `wait-signal` recorded.
    fn recorded_deadline(&self, data: serde_json::Value) -> wasmtime::Result<Option<u64>> {
        let d: Deadline = serde_json::from_value(data).map_err(|e| {
            self.effects.fail(RunFault::Internal(format!(
                "a recorded wait is unreadable: {e}"
            )))
        })?;
        Ok(d.until_ms)
    }
}
