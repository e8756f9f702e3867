//! `{"name":"vote","count":2,"timeout_ms":1000}` -> `{"signals":[{"yes":true},null]}`
//!
//! Waits `count` times for a signal called `name`, each wait for up to
//! `timeout_ms` (for ever when absent), and returns their data in order,
//! `null` for each wait that timed out.

use runway_sdk::{Result, wait_signal};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    name: String,
    count: u32,
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct Output {
    signals: Vec<Option<Value>>,
}

fn collect(input: Input) -> Result<Output> {
    let timeout = input.timeout_ms.map(Duration::from_millis);
    let signals = (0..input.count)
        .map(|_| wait_signal::<Value>(&input.name, timeout))
        .collect::<Result<Vec<_>>>()?;
    Ok(Output { signals })
}

runway_sdk::workflow!(collect);
