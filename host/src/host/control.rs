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
        self.cancel_as(id, None).await
    }

    /// [`Host::cancel`], naming who asked (on the run, its `cancelled`
    /// event, and its children's).
    pub async fn cancel_as(
        &self,
        id: RunId,
        by: Option<String>,
    ) -> Result<CancelOutcome, HostError> {
        let record = self.run_record(id).await?;
        if record.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyEnded(record.status));
        }
        // Durable first: a crash before the run stops still ends it cancelled.
        let out = self
            .store()
            .client_commit(vec![Write::RequestCancel(id, by.clone())])
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
                Some(mut r) => {
                    r.cancel_requested_by = r.cancel_requested_by.or(by.clone());
                    self.end_unexecuted(r, RunFault::Cancelled).await;
                    CancelOutcome::Cancelled
                }
                None => return Err(HostError::RunNotFound(id)),
            }
        };
        for child in self.store().children(id)? {
            Box::pin(self.cancel_as(child, by.clone())).await?;
        }
        Ok(outcome)
    }

    /// Starts a new run of run `id`'s workflow with its stored input (or
    /// `input`), on its version (or the newest, with `latest`), linked both
    /// ways: the new run's trigger names `id` (`rerun_of`), and `id`'s
    /// reruns are found by [`Host::reruns`].
    pub async fn rerun(
        &self,
        id: RunId,
        input: Option<serde_json::Value>,
        latest: bool,
        by: String,
    ) -> Result<crate::Started, HostError> {
        let original = self.run_record(id).await?;
        let version = (!latest).then_some(original.version);
        let key = format!(
            "rerun:{id}:{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut trigger = crate::types::Trigger::new("rerun", by);
        trigger.rerun_of = Some(id);
        self.start_inner(
            &original.workflow,
            version,
            input.unwrap_or(original.input),
            Some(key),
            trigger,
            false,
        )
        .await
    }

    /// The reruns of run `id`, oldest first.
    pub fn reruns(&self, id: RunId) -> Result<Vec<RunId>, HostError> {
        Ok(self.store().runs_for_key_prefix(&format!("rerun:{id}:"))?)
    }

    /// Decides approval `name` of run `id` for principal `by` (whom the
    /// caller checked against the workflow's `approve` scope; `allowed`
    /// says whether `by` is among the approval's own allowed principals
    /// or scopes). Validated against the spec before anything is stored;
    /// the same decision again is answered as a duplicate, another one
    /// refused. Durable (and the run woken) before this returns.
    pub async fn decide(
        &self,
        id: RunId,
        name: &str,
        choice: crate::types::Choice,
        comment: Option<String>,
        by: &str,
        allowed: impl Fn(&crate::types::Allowed) -> bool,
    ) -> Result<(crate::types::Decision, bool), HostError> {
        use crate::types::Decision;
        let approval = self
            .store()
            .approval(id, name)?
            .ok_or_else(|| HostError::ApprovalNotFound(id, name.to_owned()))?;
        if !allowed(&approval.spec.allowed) {
            return Err(HostError::ApprovalNotAllowed(
                id,
                name.to_owned(),
                by.to_owned(),
            ));
        }
        approval
            .spec
            .answers(&choice)
            .map_err(|e| HostError::InvalidDecision(name.to_owned(), e))?;
        if approval.decision.is_none()
            && let Some(status) = self.status(id)?
            && status.is_terminal()
        {
            return Err(HostError::RunEnded(id, status));
        }
        if comment.as_ref().is_some_and(|c| c.len() > 4096) {
            return Err(HostError::InvalidDecision(
                name.to_owned(),
                "a comment is at most 4096 bytes".into(),
            ));
        }
        if let Some(d) = &approval.decision {
            return if d.choice == choice {
                Ok((d.clone(), true))
            } else {
                Err(HostError::ApprovalDecided(id, name.to_owned()))
            };
        }
        let decision = Decision {
            choice,
            by: Some(by.to_owned()),
            comment,
            at: now(),
            timed_out: false,
        };
        let signal = crate::sandbox::approval_signal(name);
        // One decision per approval: the signal id makes a second one a
        // duplicate. The run records the decision on the approval when it
        // takes it.
        let out = self
            .store()
            .client_commit(vec![Write::Signal(
                id,
                Box::new(Signal {
                    seq: 0,
                    name: signal.clone(),
                    id: Some(signal.clone()),
                    by: Some(by.to_owned()),
                    payload: serde_json::to_value(&decision)
                        .map_err(|e| HostError::Internal(e.to_string()))?,
                    at: now(),
                }),
            )])
            .await?;
        match out.first() {
            Some(&WriteOutcome::Signal {
                duplicate: false, ..
            }) => {
                self.wake(id);
                Ok((decision, false))
            }
            _ => {
                // Decided before: the same way (a retry), or not.
                let first = self
                    .store()
                    .signals(id)?
                    .into_iter()
                    .find(|s| s.name == signal)
                    .and_then(|s| serde_json::from_value::<Decision>(s.payload).ok());
                match first {
                    Some(d) if d.choice == decision.choice => Ok((d, true)),
                    _ => Err(HostError::ApprovalDecided(id, name.to_owned())),
                }
            }
        }
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
        self.signal_as(id, name, payload, signal_id, None).await
    }

    /// [`Host::signal`], naming who sent it (in the inbox and the run's
    /// `signal_received` event).
    pub async fn signal_as(
        &self,
        id: RunId,
        name: &str,
        payload: serde_json::Value,
        signal_id: Option<String>,
        by: Option<String>,
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
            by,
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
