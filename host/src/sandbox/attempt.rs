//! Run-level retries (the manifest's `[retry]`): a failed attempt becomes
//! a durable wait, after which the run executes again as attempt N+1.
//!
//! The next attempt keeps the journal up to the call whose failure it
//! retries: the calls answered before it are replayed (no model call or
//! HTTP request made twice), that call and everything after it are made
//! again. A failure no journaled call explains keeps the whole journal when
//! the host failed (`INTERNAL`: the guest did nothing wrong, so its past
//! stands) and none otherwise (a guest's own failure would only repeat on
//! replay, so the attempt starts from the top, like a rerun).

use super::journal::{JournalEntry, Mark};
use crate::manifest::RetryPolicy;
use crate::types::{ErrorCode, RunError};

/// What the next attempt replays.
#[derive(Debug, PartialEq)]
pub(crate) struct Kept {
    /// Journal entries kept: a prefix.
    pub entries: u64,
    /// Where the output stood at the last commit among them (`None`: the
    /// whole journal is kept, and with it the output as stored).
    pub mark: Option<Mark>,
}

/// The code of `policy` that retries `error`, if one does.
pub(crate) fn retried<'a>(policy: &RetryPolicy, error: &'a RunError) -> Option<&'a str> {
    error.codes().find(|c| policy.retries(c))
}

/// The failure code a journaled call answered with, if it failed: the
/// host calls journal a failure as `{"err": {"code": …, "message": …}}`.
fn failure_code(e: &JournalEntry) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Answer {
        Err { code: String },
    }
    if !e.result.get().starts_with("{\"err\"") {
        return None;
    }
    match serde_json::from_str::<Answer>(e.result.get()) {
        Ok(Answer::Err { code }) => Some(code),
        Err(_) => None,
    }
}

/// What the attempt after `error` keeps of `journal`.
pub(crate) fn kept(journal: &[JournalEntry], error: &RunError, policy: &RetryPolicy) -> Kept {
    let failed = journal
        .iter()
        .position(|e| failure_code(e).is_some_and(|c| policy.retries(&c)));
    let entries = match failed {
        Some(i) => i,
        None if error.code == ErrorCode::Internal => {
            return Kept {
                entries: journal.len() as u64,
                mark: None,
            };
        }
        None => 0,
    };
    let mark = journal[..entries]
        .iter()
        .rev()
        .find_map(|e| e.mark)
        .or(Some(Mark {
            event: 0,
            output: [0, 0],
        }));
    Kept {
        entries: entries as u64,
        mark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn entry(seq: u64, result: &str, mark: Option<u64>) -> JournalEntry {
        JournalEntry {
            seq,
            call: "c".into(),
            args: String::new(),
            result: RawValue::from_string(result.into()).unwrap(),
            pending: false,
            parked: false,
            mark: mark.map(|event| Mark {
                event,
                output: [event * 10, 0],
            }),
        }
    }

    fn policy() -> RetryPolicy {
        crate::manifest::Manifest::parse("slug = \"w\"\n[retry]\nmax_attempts = 3\n")
            .unwrap()
            .retry
            .unwrap()
    }

    fn error(code: ErrorCode, cause: Option<&str>) -> RunError {
        RunError {
            code,
            message: String::new(),
            cause: cause.map(String::from),
        }
    }

    #[test]
    fn an_attempt_keeps_the_calls_before_the_failure_it_retries() {
        let p = policy();
        let journal = [
            entry(1, r#"{"ok":{"status":200}}"#, Some(3)),
            entry(2, r#"{"err":{"code":"MODEL_UNKNOWN","message":"m"}}"#, None),
            entry(3, r#"{"ok":1}"#, Some(6)),
            entry(
                4,
                r#"{"err":{"code":"HTTP_CONNECT","message":"refused"}}"#,
                Some(8),
            ),
            entry(5, r#"{"ok":2}"#, Some(9)),
        ];
        let e = error(ErrorCode::ProgramError, Some("HTTP_CONNECT"));
        assert_eq!(retried(&p, &e), Some("HTTP_CONNECT"));
        let k = kept(&journal, &e, &p);
        // Not the failure the policy does not retry: the one it does.
        assert_eq!(k.entries, 3);
        assert_eq!(k.mark.unwrap().output, [60, 0]);
        // The host's failure keeps everything.
        let k = kept(&journal[..1], &error(ErrorCode::Internal, None), &p);
        assert_eq!((k.entries, k.mark), (1, None));
        // A guest's own failure starts again from the top.
        let k = kept(&journal[..1], &error(ErrorCode::Trap, None), &p);
        assert_eq!(k.entries, 0);
        assert_eq!(k.mark.unwrap().output, [0, 0]);
        // Never retried, whatever `on` says.
        assert_eq!(retried(&p, &error(ErrorCode::BudgetExceeded, None)), None);
        assert_eq!(
            retried(&p, &error(ErrorCode::ProgramError, Some("NOT_FOUND"))),
            None
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_limit() {
        let p = policy();
        let s = |n| p.wait_before(n).as_secs();
        assert_eq!((s(2), s(3), s(4), s(12)), (1, 2, 4, 300));
    }
}
