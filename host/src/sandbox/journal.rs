//! Record and replay of the calls that cross the sandbox.
//!
//! Every call whose result is not a pure function of the run's past (each
//! WIT import with an outside effect, the WASI clocks) goes through
//! [`Journal`]: on a first execution the result is recorded; on a replay the
//! call is answered from the record, and a call that differs from the record
//! (another function, or other arguments) is a determinism fault.
//!
//! Random needs no entries: the run's random streams are seeded from the
//! run record, so replay draws the same values.
//!
//! Calls that park the run (`sleep`, `wait-signal`, `join`) are recorded in
//! two steps at one sequence number: a *pending* entry holding what the wait
//! needs (its deadline), written before the run parks, and then the result,
//! which replaces it. A replay that reaches a pending entry resumes the wait
//! with the recorded deadline, so a timer keeps its time across restarts.
//!
//! Entries are written with the run's next commit (see the commit rule in
//! DESIGN.md); the journal only collects them.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// One recorded call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JournalEntry {
    /// 1-based position among the run's journaled calls.
    pub seq: u64,
    /// `interface.function`, e.g. `runway:workflow/artifacts.write`.
    pub call: String,
    /// Hex digest of the arguments (first 16 bytes of sha256).
    pub args: String,
    /// The result the guest saw (never a secret value); for a pending
    /// entry, what the wait needs to resume. Kept as JSON text: a replay
    /// decodes each result once, straight into the type the call returns.
    pub result: Box<RawValue>,
    /// The call parked the run and has no result yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The call parked the run before it got its result (its wait is
    /// counted again on replay, like the events it wrote).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parked: bool,
    /// On the last entry of each commit: where the run's events and output
    /// stood once that commit was stored — a state the run can resume
    /// from, so a reset can fork the run there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

/// The run's event log and output at a commit (see [`JournalEntry::mark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The last event's sequence number.
    pub event: u64,
    /// Bytes of stdout and stderr recorded as events.
    pub output: [u64; 2],
}

impl JournalEntry {
    /// What the entry costs against `max_journal_bytes`.
    fn size(&self) -> u64 {
        (self.call.len() + self.args.len() + self.result.get().len() + 16) as u64
    }
}

/// `value` as JSON text (`null` if it cannot be encoded, which our own
/// result types never fail to).
fn raw<T: Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
}

/// How [`Journal::step`] says to go on with a call.
#[derive(Debug, PartialEq)]
pub enum Step<T> {
    /// Not in the history: execute it.
    Fresh,
    /// Answered from the history.
    Done(T),
    /// The run parked here; the wait resumes with this data.
    Pending { seq: u64, data: serde_json::Value },
}

/// Identifies a call: which function, with which arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub name: &'static str,
    pub args: String,
}

impl Call {
    /// A call whose arguments are `parts`, digested in order.
    pub fn new(name: &'static str, parts: &[&[u8]]) -> Call {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Call {
            name,
            args: hex::encode(&h.finalize()[..16]),
        }
    }
}

/// The guest made a different call than the journal recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "call #{seq}: the journal has {expected} but the guest called {actual}; the workflow is not deterministic"
)]
pub struct Nondeterminism {
    pub seq: u64,
    pub expected: String,
    pub actual: String,
}

/// A run's journal: the recorded history (when replaying) and new entries.
#[derive(Debug, Default)]
pub struct Journal {
    history: Vec<JournalEntry>,
    /// Entries recorded since the last [`Journal::take_new`].
    new: Vec<JournalEntry>,
    /// Calls made so far in this execution.
    calls: u64,
    /// Bytes of the whole journal: the history and every new entry.
    bytes: u64,
    /// `runway verify`: a call past the history (or at a call still
    /// waiting) ends the execution with [`END_OF_JOURNAL`] instead of
    /// being made.
    verifying: bool,
}

/// What a verifying journal says it has when the new code goes past it.
pub const END_OF_JOURNAL: &str = "the end of the recorded journal";

impl Journal {
    /// A journal that replays `history` before recording.
    pub fn replaying(history: Vec<JournalEntry>) -> Journal {
        Journal {
            bytes: history.iter().map(JournalEntry::size).sum(),
            history,
            ..Journal::default()
        }
    }

    /// A journal that replays `history` and makes no call past it.
    pub fn verifying(history: Vec<JournalEntry>) -> Journal {
        Journal {
            verifying: true,
            ..Journal::replaying(history)
        }
    }

    /// How big the run's journal is: entries and bytes.
    pub fn size(&self) -> (u64, u64) {
        (self.calls.max(self.history.len() as u64), self.bytes)
    }

    /// Entries recorded and not yet taken.
    pub fn new_len(&self) -> usize {
        self.new.len()
    }

    /// Whether the call just answered from the history had parked the run.
    pub fn last_parked(&self) -> bool {
        self.calls
            .checked_sub(1)
            .and_then(|i| self.history.get(i as usize))
            .is_some_and(|e| e.parked || e.pending)
    }

    /// Whether the next call will be answered from the history.
    pub fn is_replaying(&self) -> bool {
        (self.calls as usize) < self.history.len()
    }

    /// Starts `call`: returns the recorded result when replaying it, `None`
    /// when it must be executed (then [`Journal::record`] its result).
    pub fn replay<T: DeserializeOwned>(
        &mut self,
        call: &Call,
    ) -> Result<Option<T>, Nondeterminism> {
        match self.step(call)? {
            Step::Fresh => Ok(None),
            Step::Done(v) => Ok(Some(v)),
            Step::Pending { seq, .. } => Err(Nondeterminism {
                seq,
                expected: format!("{} (a call that waits)", call.name),
                actual: format!("{} (a call that does not)", call.name),
            }),
        }
    }

    /// Starts a call that may park the run: like [`Journal::replay`], but a
    /// pending entry is returned as [`Step::Pending`].
    pub fn step<T: DeserializeOwned>(&mut self, call: &Call) -> Result<Step<T>, Nondeterminism> {
        let seq = self.calls + 1;
        let end = || Nondeterminism {
            seq,
            expected: END_OF_JOURNAL.to_owned(),
            actual: call.name.to_owned(),
        };
        let Some(entry) = self.history.get(self.calls as usize) else {
            if self.verifying {
                return Err(end());
            }
            return Ok(Step::Fresh);
        };
        if entry.call != call.name || entry.args != call.args {
            return Err(Nondeterminism {
                seq,
                expected: format!("{}({})", entry.call, entry.args),
                actual: format!("{}({})", call.name, call.args),
            });
        }
        if entry.pending && self.verifying {
            return Err(end());
        }
        if entry.pending {
            self.calls = seq;
            return Ok(Step::Pending {
                seq,
                data: serde_json::from_str(entry.result.get()).unwrap_or_default(),
            });
        }
        let value = serde_json::from_str(entry.result.get()).map_err(|e| Nondeterminism {
            seq,
            expected: format!("{} returning a recorded value", entry.call),
            actual: format!("a value of another shape ({e})"),
        })?;
        self.calls = seq;
        Ok(Step::Done(value))
    }

    /// Records that a fresh `call` parks the run, with what its wait needs;
    /// returns its sequence number for [`Journal::resolve`].
    pub fn record_pending<T: Serialize>(&mut self, call: Call, data: &T) -> u64 {
        self.record(call, data);
        let seq = self.calls;
        if let Some(e) = self.new.last_mut() {
            e.pending = true;
        }
        seq
    }

    /// Records the result of the parked call `seq`, replacing its pending entry.
    pub fn resolve<T: Serialize>(&mut self, seq: u64, call: Call, result: &T) {
        self.push(JournalEntry {
            seq,
            call: call.name.to_owned(),
            args: call.args,
            result: raw(result),
            pending: false,
            parked: true,
            mark: None,
        });
    }

    fn push(&mut self, entry: JournalEntry) {
        self.bytes += entry.size();
        self.new.push(entry);
    }

    /// Records the result of a call that [`Journal::replay`] said to execute.
    pub fn record<T: Serialize>(&mut self, call: Call, result: &T) {
        crate::metrics::host_call(call.name);
        self.calls += 1;
        self.push(JournalEntry {
            seq: self.calls,
            call: call.name.to_owned(),
            args: call.args,
            result: raw(result),
            pending: false,
            parked: false,
            mark: None,
        });
    }

    /// Replays or executes `call` with a synchronous `compute`.
    pub fn call<T: Serialize + DeserializeOwned>(
        &mut self,
        call: Call,
        compute: impl FnOnce() -> T,
    ) -> Result<T, Nondeterminism> {
        if let Some(v) = self.replay(&call)? {
            return Ok(v);
        }
        let v = compute();
        self.record(call, &v);
        Ok(v)
    }

    /// The last recorded result of `name` in the history, if any (e.g. the
    /// last monotonic clock reading, so time never runs backwards on resume).
    pub fn last_in_history<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.history
            .iter()
            .rev()
            .find(|e| e.call == name)
            .and_then(|e| serde_json::from_str(e.result.get()).ok())
    }

    /// Entries recorded since the last call, to be committed.
    pub fn take_new(&mut self) -> Vec<JournalEntry> {
        std::mem::take(&mut self.new)
    }

    /// The entries recorded since the last call, to be committed as one
    /// commit that leaves the run at `mark` (stamped on the last one).
    pub fn take_new_marked(&mut self, mark: Mark) -> Vec<JournalEntry> {
        let mut new = self.take_new();
        if let Some(last) = new.last_mut() {
            last.mark = Some(mark);
        }
        new
    }

    /// How many calls this execution has made.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// A run that returns before making every call its journal holds did
    /// not do what it did before: the fault, if so.
    pub fn check_complete(&self) -> Result<(), Nondeterminism> {
        match self.history.get(self.calls as usize) {
            None => Ok(()),
            Some(entry) => Err(Nondeterminism {
                seq: entry.seq,
                expected: format!("{}({})", entry.call, entry.args),
                actual: "the end of the run".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_answers_from_history_then_records() {
        let mut first = Journal::default();
        let a = first.call(Call::new("clock.now", &[]), || 10u64).unwrap();
        let b = first
            .call(Call::new("kv.put", &[b"k"]), || "ok".to_string())
            .unwrap();
        assert_eq!((a, b.as_str()), (10, "ok"));
        let history = first.take_new();
        assert_eq!(history.len(), 2);

        let mut again = Journal::replaying(history);
        assert!(again.is_replaying());
        let a2 = again
            .call(Call::new("clock.now", &[]), || panic!("must not run"))
            .unwrap();
        let b2: String = again
            .call(Call::new("kv.put", &[b"k"]), || panic!("must not run"))
            .unwrap();
        assert_eq!((a2, b2.as_str()), (10u64, "ok"));
        assert!(!again.is_replaying());
        let c = again.call(Call::new("clock.now", &[]), || 11u64).unwrap();
        assert_eq!(c, 11);
        let new = again.take_new();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].seq, 3);
    }

    #[test]
    fn a_different_call_on_replay_is_nondeterminism() {
        let mut first = Journal::default();
        first.call(Call::new("kv.put", &[b"a"]), || 1u8).unwrap();
        let mut again = Journal::replaying(first.take_new());
        let err = again
            .call(Call::new("kv.put", &[b"b"]), || 1u8)
            .unwrap_err();
        assert_eq!(err.seq, 1);
        let mut again2 = Journal::replaying(vec![JournalEntry {
            seq: 1,
            call: "kv.put".into(),
            args: Call::new("kv.put", &[b"a"]).args,
            result: raw(&1),
            pending: false,
            parked: false,
            mark: None,
        }]);
        let err = again2
            .call(Call::new("kv.get", &[b"a"]), || 1u8)
            .unwrap_err();
        assert!(err.to_string().contains("kv.get"));
    }

    #[test]
    fn a_pending_entry_resumes_its_wait_then_resolves_in_place() {
        let sleep = || Call::new("sleep", &[b"10"]);
        let mut first = Journal::default();
        first.call(Call::new("clock.now", &[]), || 1u64).unwrap();
        assert_eq!(first.step::<()>(&sleep()).unwrap(), Step::Fresh);
        let seq = first.record_pending(sleep(), &serde_json::json!({"until": 99}));
        assert_eq!(seq, 2);
        let history = first.take_new();
        assert!(history[1].pending);

        let mut again = Journal::replaying(history);
        again.call(Call::new("clock.now", &[]), || 7u64).unwrap();
        match again.step::<()>(&sleep()).unwrap() {
            Step::Pending { seq, data } => {
                assert_eq!(seq, 2);
                assert_eq!(data["until"], 99);
                again.resolve(seq, sleep(), &());
            }
            other => panic!("expected pending, got {other:?}"),
        }
        let next = again.call(Call::new("clock.now", &[]), || 8u64).unwrap();
        assert_eq!(next, 8);
        let new = again.take_new();
        assert_eq!(
            new.iter().map(|e| (e.seq, e.pending)).collect::<Vec<_>>(),
            vec![(2, false), (3, false)]
        );
    }

    #[test]
    fn returning_before_the_recorded_calls_are_replayed_is_nondeterminism() {
        let mut first = Journal::default();
        first.call(Call::new("a", &[]), || 1u8).unwrap();
        first.call(Call::new("b", &[]), || 2u8).unwrap();
        let mut again = Journal::replaying(first.take_new());
        again.call(Call::new("a", &[]), || 1u8).unwrap();
        let e = again.check_complete().unwrap_err();
        assert_eq!(e.seq, 2);
        assert!(e.to_string().contains("the end of the run"), "{e}");
        again.call(Call::new("b", &[]), || 2u8).unwrap();
        assert!(again.check_complete().is_ok());
    }

    #[test]
    fn argument_digests_separate_parts() {
        assert_ne!(
            Call::new("f", &[b"ab", b"c"]).args,
            Call::new("f", &[b"a", b"bc"]).args
        );
    }
}
