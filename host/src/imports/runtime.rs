//! `runway:workflow/runtime`: run info, logs, custom events.

use crate::bindings::runtime::{Host, LogLevel, RunInfo};
use crate::journal::Call;
use crate::run::RunState;
use crate::types::{self, EventBody};

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
}

fn payload_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}
