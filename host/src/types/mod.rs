//! Plain shared types: ids, statuses, events, usage, failure codes.
//!
//! Every other module depends on these; they depend on nothing of ours.

mod approval;
mod audit;
mod event;
mod ids;
mod run;
mod status;
mod usage;

pub use approval::*;
pub use audit::*;
pub use event::*;
pub use ids::*;
pub use run::*;
pub use status::*;
pub use usage::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_round_trip_and_sort_by_creation() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        let parsed: RunId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
        assert!("nope".parse::<RunId>().is_err());
        assert!("run_xyz".parse::<RunId>().is_err());
    }

    #[test]
    fn statuses_are_snake_case_and_the_dashed_spelling_is_still_read() {
        let s = serde_json::to_string(&RunStatus::WaitingSignal).unwrap();
        assert_eq!(s, "\"waiting_signal\"");
        assert_eq!(RunStatus::WaitingChild.as_str(), "waiting_child");
        for old in ["\"waiting-signal\"", "\"waiting_signal\""] {
            let st: RunStatus = serde_json::from_str(old).unwrap();
            assert_eq!(st, RunStatus::WaitingSignal);
        }
        assert_eq!(
            "waiting-child".parse::<RunStatus>(),
            Ok(RunStatus::WaitingChild)
        );
        assert_eq!(
            "waiting_child".parse::<RunStatus>(),
            Ok(RunStatus::WaitingChild)
        );
        // Every status and event kind in one spelling.
        for st in [
            RunStatus::Queued,
            RunStatus::Sleeping,
            RunStatus::Cancelling,
        ] {
            assert!(!st.as_str().contains('-'));
        }
    }

    #[test]
    fn events_serialize_flat_with_kind_tag() {
        let e = Event {
            seq: 3,
            at: now(),
            body: EventBody::Failed {
                code: ErrorCode::BudgetExceeded,
                message: "x".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "failed");
        assert_eq!(v["code"], "BUDGET_EXCEEDED");
        assert_eq!(v["seq"], 3);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
