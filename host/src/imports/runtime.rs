//! `runway:workflow/runtime`: run info, logs, custom events.

use crate::bindings::runtime::{Host, LogLevel, RunInfo};
use crate::journal::{Call, Step};
use crate::run::RunState;
use crate::run::fault::RunFault;
use crate::types::{self, EventBody, Wait, now_ms};
use serde::{Deserialize, Serialize};

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
}

/// Longest custom event name.
const MAX_KIND: usize = 128;

impl Host for RunState {
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
        if !self.journal_effect(call, &())? {
            self.shared.recorder.lock().replayed(message.len());
            return Ok(());
        }
        let mut rec = self.shared.recorder.lock();
        let message = rec.masker.mask(&message);
        rec.charge_output(message.len())
            .and_then(|()| rec.guest(EventBody::Log { level, message }))
            .map_err(|f| rec.fail(f))?;
        drop(rec);
        self.shared.maybe_flush();
        Ok(())
    }

    async fn emit(&mut self, kind: String, payload: String) -> wasmtime::Result<()> {
        let call = Call::new(
            "runway:workflow/runtime.emit",
            &[kind.as_bytes(), payload.as_bytes()],
        );
        if !self.journal_effect(call, &())? {
            let n = kind.len().min(MAX_KIND) + payload.len();
            self.shared.recorder.lock().replayed(n);
            return Ok(());
        }
        let mut rec = self.shared.recorder.lock();
        let name: String = kind.chars().take(MAX_KIND).collect();
        let masked = rec.masker.mask(&payload);
        // The SDK always sends JSON; anything else is kept, as a string.
        let payload = serde_json::from_str(&masked).unwrap_or(serde_json::Value::String(masked));
        rec.charge_output(name.len() + payload_len(&payload))
            .and_then(|()| rec.guest(EventBody::Custom { name, payload }))
            .map_err(|f| rec.fail(f))?;
        drop(rec);
        self.shared.maybe_flush();
        Ok(())
    }

    async fn sleep(&mut self, millis: u64) -> wasmtime::Result<()> {
        self.sleep_impl(millis).await
    }

    async fn wait_signal(
        &mut self,
        name: String,
        timeout_millis: Option<u64>,
    ) -> wasmtime::Result<Option<String>> {
        self.wait_signal_impl(name, timeout_millis).await
    }
}

impl RunState {
    async fn sleep_impl(&mut self, millis: u64) -> wasmtime::Result<()> {
        let call = Call::new("runway:workflow/runtime.sleep", &[&millis.to_le_bytes()]);
        let (pending, until_ms) = match self.step::<()>(&call)? {
            Step::Done(()) => return Ok(()),
            Step::Pending { seq, data } => {
                let d: Deadline = serde_json::from_value(data).map_err(|e| {
                    self.fail(RunFault::Internal(format!(
                        "a recorded sleep is unreadable: {e}"
                    )))
                })?;
                (Some(seq), d.until_ms.unwrap_or(0))
            }
            Step::Fresh => (None, now_ms().saturating_add(millis)),
        };
        let mut pending = pending;
        let mut parked = None;
        while now_ms() < until_ms {
            if pending.is_none() {
                let d = Deadline {
                    until_ms: Some(until_ms),
                };
                pending = Some(self.shared.journal.lock().record_pending(call.clone(), &d));
            }
            if parked.is_none() {
                parked = Some(self.park(&Wait::Timer { until_ms }).await?);
            }
            self.wait_warm(Some(until_ms)).await?;
        }
        self.settle(pending, call, &());
        self.unpark(parked).await
    }

    async fn wait_signal_impl(
        &mut self,
        name: String,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Option<String>> {
        let timeout_bytes = timeout.map(u64::to_le_bytes);
        let call = Call::new(
            "runway:workflow/runtime.wait-signal",
            &[
                name.as_bytes(),
                timeout_bytes.as_ref().map_or(&[][..], |b| &b[..]),
            ],
        );
        let (mut pending, until_ms) = match self.step::<Option<Taken>>(&call)? {
            Step::Done(taken) => {
                return Ok(taken.map(|t| {
                    self.consumed_signals.insert(t.seq);
                    t.payload
                }));
            }
            Step::Pending { seq, data } => {
                let d: Deadline = serde_json::from_value(data).map_err(|e| {
                    self.fail(RunFault::Internal(format!(
                        "a recorded wait is unreadable: {e}"
                    )))
                })?;
                (Some(seq), d.until_ms)
            }
            Step::Fresh => (None, timeout.map(|t| now_ms().saturating_add(t))),
        };
        let mut parked = None;
        let taken = loop {
            let inbox = self
                .host
                .store
                .signals(self.run.id)
                .map_err(|e| self.fail(RunFault::Internal(format!("reading signals: {e}"))))?;
            if let Some(s) = inbox
                .into_iter()
                .find(|s| s.name == name && !self.consumed_signals.contains(&s.seq))
            {
                break Some(Taken {
                    seq: s.seq,
                    payload: s.payload.to_string(),
                });
            }
            if until_ms.is_some_and(|u| now_ms() >= u) {
                break None;
            }
            if pending.is_none() {
                let d = Deadline { until_ms };
                pending = Some(self.shared.journal.lock().record_pending(call.clone(), &d));
            }
            if parked.is_none() {
                let wait = Wait::Signal {
                    name: name.clone(),
                    until_ms,
                };
                parked = Some(self.park(&wait).await?);
            }
            self.wait_warm(until_ms).await?;
        };
        self.settle(pending, call, &taken);
        if let Some(t) = &taken {
            self.consumed_signals.insert(t.seq);
            self.shared
                .recorder
                .lock()
                .system(EventBody::SignalReceived {
                    name,
                    signal_seq: t.seq,
                });
        }
        self.unpark(parked).await?;
        Ok(taken.map(|t| t.payload))
    }
}

fn payload_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}
