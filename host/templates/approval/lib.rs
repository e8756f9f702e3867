//! Asks for an approval and waits for it, durably: the run parks (status
//! `waiting_signal`) until someone sends it the signal `approve`:
//!
//! ```sh
//! runway signal RUN_ID approve --data '{"by":"ada","approved":true}'
//! ```
//!
//! It gives up after `timeout_hours`. The decision is kept as an artifact.

use runway_sdk::{Level, Result, artifacts, log, wait_signal};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    request: String,
    #[serde(default = "a_day")]
    timeout_hours: u64,
}

fn a_day() -> u64 {
    24
}

#[derive(Deserialize)]
struct Approval {
    by: String,
    approved: bool,
}

#[derive(Serialize)]
struct Decision {
    request: String,
    approved: bool,
    by: Option<String>,
}

fn approve(input: Input) -> Result<Decision> {
    log(Level::Info, format!("waiting for approval of {:?}", input.request));
    let timeout = Duration::from_secs(input.timeout_hours * 3600);
    let answer: Option<Approval> = wait_signal("approve", Some(timeout))?;
    let decision = Decision {
        request: input.request,
        approved: answer.as_ref().is_some_and(|a| a.approved),
        by: answer.map(|a| a.by),
    };
    artifacts::write_json("decision.json", &decision)?;
    Ok(decision)
}

runway_sdk::workflow!(approve);
