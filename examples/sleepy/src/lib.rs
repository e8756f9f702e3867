//! `{"ms":1000}` -> `{"slept_ms":1000,"before_ms":..,"random":..,"after_ms":..,"after_us":..,"until_ms":..}`
//!
//! Reads the wall clock and a random number, emits them as a `before` event,
//! sleeps `ms` (default 1000) on a durable timer, then reads the clock
//! again. `until_ms` is `before_ms + ms`.

use runway_sdk::{Error, Result, emit, sleep};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Deserialize)]
struct Input {
    #[serde(default = "default_ms")]
    ms: u64,
}

fn default_ms() -> u64 {
    1000
}

#[derive(Serialize)]
struct Output {
    slept_ms: u64,
    before_ms: u64,
    random: u64,
    after_ms: u64,
    /// The clock after the sleep in microseconds, for lateness measurements.
    after_us: u64,
    until_ms: u64,
}

fn now_ms() -> Result<u64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Error::msg)?;
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn sleepy(input: Input) -> Result<Output> {
    let before_ms = now_ms()?;
    let random = getrandom::u64().map_err(Error::msg)?;
    emit(
        "before",
        &json!({ "clock_ms": before_ms, "random": random }),
    )?;
    sleep(Duration::from_millis(input.ms));
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Error::msg)?;
    let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    let after_us = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
    Ok(Output {
        slept_ms: input.ms,
        before_ms,
        random,
        after_ms,
        after_us,
        until_ms: before_ms.saturating_add(input.ms),
    })
}

runway_sdk::workflow!(sleepy);
