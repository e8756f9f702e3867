//! Steering runs from outside: cancel (durable first, then the run and
//! its children stop) and signals (into the run's inbox, then a wake).

use super::{CancelOutcome, Host, MAX_SIGNAL_BYTES, SignalReceipt};
use crate::error::HostError;
use crate::sandbox::fault::RunFault;
use crate::store::{Write, WriteOutcome};
use crate::types::{RunId, Signal, now};

impl Host {
    /// Cancels a run and, after it, each of its children that has not
    /// ended. An executing run is interrupted at once; a parked one, or one
    /// nobody drives, is ended directly.
    pub async fn cancel(&self, id: RunId) -> Result<CancelOutcome, HostError> {
        let record = self.run_record(id).await?;
        if record.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyEnded(record.status));
        }
        // Durable first: a crash before the run stops still ends it cancelled.
        let out = self
            .store()
            .client_commit(vec![Write::RequestCancel(id)])
            .await?;
        let outcome = if out.first() == Some(&WriteOutcome::Ignored) {
            // It ended in the meantime.
            let status = self.store().run(id)?.map_or(record.status, |r| r.status);
            return Ok(CancelOutcome::AlreadyEnded(status));
        } else if self.registry().cancel(id) {
            CancelOutcome::Cancelling
        } else if !self.store().claim(id)? {
            // Another host drives it: that host stops it.
            self.store().notify(crate::store::Notice::Cancel(id));
            CancelOutcome::Cancelling
        } else {
            // Nobody drives it: this host ends it, holding its lease.
            let _lease = Lease(self.store(), id);
            match self.store().run(id)? {
                Some(r) if r.status.is_terminal() => {
                    return Ok(CancelOutcome::AlreadyEnded(r.status));
                }
                Some(r) => {
                    self.end_unexecuted(r, RunFault::Cancelled).await;
                    CancelOutcome::Cancelled
                }
                None => return Err(HostError::RunNotFound(id)),
            }
        };
        for child in self.store().children(id)? {
            Box::pin(self.cancel(child)).await?;
        }
        Ok(outcome)
    }

    /// Delivers a signal to a run's inbox and wakes the run. A signal whose
    /// `signal_id` was seen before is dropped (reported as a duplicate).
    pub async fn signal(
        &self,
        id: RunId,
        name: &str,
        payload: serde_json::Value,
        signal_id: Option<String>,
    ) -> Result<SignalReceipt, HostError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(HostError::InvalidInput(
                "a signal name must be 1 to 128 bytes without control characters".into(),
            ));
        }
        if signal_id
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > 256)
        {
            return Err(HostError::InvalidInput(
                "a signal id must be 1 to 256 bytes".into(),
            ));
        }
        if payload.to_string().len() > MAX_SIGNAL_BYTES {
            return Err(HostError::InvalidInput(format!(
                "signal data is over {MAX_SIGNAL_BYTES} bytes"
            )));
        }
        let record = self.run_record(id).await?;
        if record.status.is_terminal() {
            return Err(HostError::RunEnded(id, record.status));
        }
        let signal = Signal {
            seq: 0,
            name: name.to_owned(),
            id: signal_id,
            payload,
            at: now(),
        };
        let out = self
            .store()
            .client_commit(vec![Write::Signal(id, Box::new(signal))])
            .await?;
        let Some(&WriteOutcome::Signal { seq, duplicate }) = out.first() else {
            return Err(HostError::Internal("a signal was not stored".into()));
        };
        if !duplicate {
            self.wake(id);
        }
        Ok(SignalReceipt { seq, duplicate })
    }
}

/// A lease held while this host ends a run nobody drives.
struct Lease<'a>(&'a crate::store::Store, RunId);

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}
