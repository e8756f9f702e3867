//! Faults that end a run at once, raised by the host (not returned by the guest).

use crate::sandbox::journal::Nondeterminism;
use crate::types::{BudgetKind, ErrorCode, EventBody, RunError, RunRecord, RunStatus, Wait, now};

/// Why the host stopped a run. Raised as a trap so the guest cannot catch it;
/// also recorded in the run's shared state so the outcome never depends on
/// how the trap travelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunFault {
    #[error("budget {budget} exceeded: limit {}, used {}", budget.show(*limit), budget.show(*used))]
    Budget {
        budget: BudgetKind,
        limit: u64,
        used: u64,
    },
    /// A model call crossed (or found used up) the budget of an ancestor:
    /// a tree of runs cannot outspend its root.
    #[error("budget {budget} of ancestor run {run} exceeded: limit {}, used {}", budget.show(*limit), budget.show(*used))]
    TreeBudget {
        run: crate::types::RunId,
        budget: BudgetKind,
        limit: u64,
        used: u64,
    },
    #[error("secret {0:?} is not declared in the workflow's manifest")]
    SecretUndeclared(String),
    #[error("secret {0:?} is declared but this host has no value for it")]
    SecretMissing(String),
    #[error(transparent)]
    Nondeterminism(#[from] Nondeterminism),
    /// A host call's arguments were past the host's limits, and the call
    /// has no failure the guest could handle.
    #[error("invalid call: {0}")]
    InvalidCall(String),
    #[error("the run was cancelled")]
    Cancelled,
    #[error("host error: {0}")]
    Internal(String),
    /// Not a failure: the run parked and its instance is evicted; it is
    /// rebuilt by replay when it wakes.
    #[error("parked: waiting for {0:?}")]
    Parked(Wait),
    /// Not a failure: the host has no memory for the run's growth now; it
    /// is executed again by replay once `need` bytes fit.
    #[error("the host is out of memory for runs ({need} bytes needed)")]
    Capacity { need: u64 },
    /// Not a failure: the store or the disk refused a read or a write (a
    /// full disk, say); the run is executed again by replay once they take
    /// it, and ends as `INTERNAL` only if they keep refusing while the
    /// store reports itself healthy.
    #[error("the host's storage failed: {0}")]
    Storage(String),
    /// Not a failure: the host is shutting down; the run stays as it is
    /// and resumes by replay when a host opens the data again.
    #[error("the host is shutting down")]
    Suspended,
}

impl RunFault {
    /// The `budget_exceeded` event for a budget fault (none for others).
    pub fn budget_event(&self) -> Option<EventBody> {
        match self {
            Self::Budget {
                budget,
                limit,
                used,
            }
            | Self::TreeBudget {
                budget,
                limit,
                used,
                ..
            } => Some(EventBody::BudgetExceeded {
                budget: *budget,
                limit: *limit,
                used: *used,
                unit: budget.unit().to_owned(),
            }),
            _ => None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Budget { .. } | Self::TreeBudget { .. } => ErrorCode::BudgetExceeded,
            Self::SecretUndeclared(_) => ErrorCode::SecretUndeclared,
            Self::SecretMissing(_) => ErrorCode::SecretMissing,
            Self::Nondeterminism(_) => ErrorCode::Nondeterminism,
            Self::InvalidCall(_) => ErrorCode::InvalidCall,
            Self::Cancelled => ErrorCode::Cancelled,
            Self::Internal(_)
            | Self::Parked(_)
            | Self::Capacity { .. }
            | Self::Storage(_)
            | Self::Suspended => ErrorCode::Internal,
        }
    }

    /// The fault for a store error met while `doing` something: the store
    /// closing stops the run for the next start, a store that takes no
    /// writes or reads now makes it wait, anything else is the host's
    /// failure.
    pub fn from_store(doing: &str, e: &crate::store::StoreError) -> RunFault {
        match e {
            // Another host drives it now: this one stops, ending nothing.
            crate::store::StoreError::Closed | crate::store::StoreError::LeaseLost => {
                RunFault::Suspended
            }
            e if e.is_unavailable() => RunFault::Storage(format!("{doing}: {e}")),
            e => RunFault::Internal(format!("{doing}: {e}")),
        }
    }
}

/// How a run ended, before it is written down: the one place a run's end
/// becomes its status, output, error and terminal events — for runs that
/// end in their sandbox and runs the driver ends without one.
pub(crate) enum Ending {
    Completed(serde_json::Value),
    /// The guest failed (returned an error, trapped, exited).
    Failed(RunError),
    /// The host ended it.
    Fault(RunFault),
}

impl Ending {
    /// The error this ending fails the run with (none if it completes or
    /// is cancelled).
    pub(crate) fn error(&self, mask: impl Fn(&str) -> String) -> Option<RunError> {
        match self {
            Ending::Completed(_) | Ending::Fault(RunFault::Cancelled) => None,
            Ending::Failed(e) => Some(e.clone()),
            Ending::Fault(fault) => Some(RunError::new(fault.code(), mask(&fault.to_string()))),
        }
    }

    /// Writes the end into `record` and returns the events that say so.
    /// `mask` hides secret values in a fault's message.
    pub(crate) fn apply(
        self,
        record: &mut RunRecord,
        mask: impl Fn(&str) -> String,
    ) -> Vec<EventBody> {
        record.finished_at = Some(now());
        record.wait = None;
        let mut events = Vec::with_capacity(2);
        let error = match self {
            Ending::Completed(output) => {
                record.status = RunStatus::Completed;
                record.output = Some(output);
                events.push(EventBody::Completed);
                return events;
            }
            Ending::Fault(RunFault::Cancelled) => {
                record.status = RunStatus::Cancelled;
                record.error = Some(RunError {
                    code: ErrorCode::Cancelled,
                    message: RunFault::Cancelled.to_string(),
                    cause: None,
                });
                events.push(EventBody::Cancelled {
                    by: record.cancel_requested_by.clone(),
                });
                return events;
            }
            Ending::Failed(error) => error,
            Ending::Fault(fault) => {
                events.extend(fault.budget_event());
                RunError {
                    code: fault.code(),
                    message: mask(&fault.to_string()),
                    cause: None,
                }
            }
        };
        record.status = RunStatus::Failed;
        events.push(EventBody::Failed {
            code: error.code,
            message: error.message.clone(),
        });
        record.error = Some(error);
        events
    }
}
