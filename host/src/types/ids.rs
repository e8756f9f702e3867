//! Run ids.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A run's id: a ULID, so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RunId(ulid::Ulid);

impl RunId {
    /// A fresh id, later than every id made before it in this process.
    pub fn generate() -> Self {
        use std::sync::Mutex;
        static LAST: Mutex<Option<ulid::Generator>> = Mutex::new(None);
        let mut gen_guard = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let generator = gen_guard.get_or_insert_with(ulid::Generator::new);
        // Monotonic within a millisecond; on the (2^80 per ms) overflow fall back to random.
        RunId(generator.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    /// The smallest id a run created at `ms` (since the Unix epoch) can
    /// have: ids sort by creation time, so it bounds a range of runs.
    pub fn first_at(ms: u64) -> Self {
        RunId(ulid::Ulid::from_parts(ms.min((1 << 48) - 1), 0))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run_{}", self.0.to_string().to_lowercase())
    }
}
impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text could not be read as a run id.
#[derive(Debug, thiserror::Error)]
#[error("not a run id: {0:?} (expected run_ followed by 26 characters)")]
pub struct BadRunId(String);

impl FromStr for RunId {
    type Err = BadRunId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .strip_prefix("run_")
            .ok_or_else(|| BadRunId(s.to_owned()))?;
        ulid::Ulid::from_string(body)
            .map(RunId)
            .map_err(|_| BadRunId(s.to_owned()))
    }
}
impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.to_string()
    }
}
impl TryFrom<String> for RunId {
    type Error = BadRunId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
