//! `{"count":3,"pause_ms":100}` -> `{"count":3,"artifacts":["<sha256>","<sha256>","<sha256>"]}`
//!
//! For each step `i` in `1..=count`: sleeps `pause_ms` if given, writes the
//! artifact `step-{i:04}.txt` (`step {i} of {count}\n`) and emits a `step`
//! event `{"step": i}`, and with `"print": true` prints `step {i} done`. With `end_sleep_ms`, sleeps
//! once more at the end. With `page`, also writes it as the artifact
//! `page.html` (`text/html`). Returns the step artifacts' digests in order.

use runway_sdk::{Result, artifacts, emit, sleep};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    count: u32,
    pause_ms: Option<u64>,
    /// A last durable sleep after the steps (benchmarks replay through it).
    end_sleep_ms: Option<u64>,
    /// Print `step {i} done` to stdout after each step.
    #[serde(default)]
    print: bool,
    /// An HTML page to write as `page.html` (what a console must never
    /// render as a page of its own).
    page: Option<String>,
}

#[derive(Serialize)]
struct Output {
    count: u32,
    artifacts: Vec<String>,
}

fn steps(input: Input) -> Result<Output> {
    let mut digests = Vec::new();
    for i in 1..=input.count {
        if let Some(ms) = input.pause_ms {
            sleep(Duration::from_millis(ms));
        }
        let body = format!("step {i} of {}\n", input.count);
        let written = artifacts::write_with(&format!("step-{i:04}.txt"), "text/plain", body, None)?;
        emit("step", &json!({ "step": i }))?;
        if input.print {
            println!("step {i} done");
        }
        digests.push(written.digest);
    }
    if let Some(page) = input.page {
        artifacts::write_with("page.html", "text/html", page, None)?;
    }
    if let Some(ms) = input.end_sleep_ms {
        sleep(Duration::from_millis(ms));
    }
    Ok(Output {
        count: input.count,
        artifacts: digests,
    })
}

runway_sdk::workflow!(steps);
