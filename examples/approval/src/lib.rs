//! `{"request":"deploy","timeout_ms":60000}` ->
//! `{"request":"deploy","approved":true,"signal":{"by":"ada"}}`
//!
//! Waits for an `approve` signal (any JSON data) for up to `timeout_ms`, or
//! for ever when it is absent. Without a signal in time, `approved` is
//! false and `signal` is null. The same object is also written as the
//! artifact `decision.json`.

use runway_sdk::{Result, artifacts, wait_signal};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    request: String,
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct Decision {
    request: String,
    approved: bool,
    signal: Option<Value>,
}

fn approval(input: Input) -> Result<Decision> {
    let signal: Option<Value> =
        wait_signal("approve", input.timeout_ms.map(Duration::from_millis))?;
    let decision = Decision {
        request: input.request,
        approved: signal.is_some(),
        signal,
    };
    artifacts::write_json("decision.json", &decision)?;
    Ok(decision)
}

runway_sdk::workflow!(approval);
