//! Faults that end a run at once, raised by the host (not returned by the guest).

use crate::journal::Nondeterminism;
use crate::types::{BudgetKind, ErrorCode, EventBody, Wait};

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
    #[error("the run was cancelled")]
    Cancelled,
    #[error("host error: {0}")]
    Internal(String),
    /// Not a failure: the run parked and its instance is evicted; it is
    /// rebuilt by replay when it wakes.
    #[error("parked: waiting for {0:?}")]
    Parked(Wait),
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
            Self::Cancelled => ErrorCode::Cancelled,
            Self::Internal(_) | Self::Parked(_) | Self::Suspended => ErrorCode::Internal,
        }
    }
}
