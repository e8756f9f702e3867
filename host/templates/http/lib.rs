//! `{"url":"https://example.org/"}` -> `{"status":200,"bytes":1256,"title":...}`
//!
//! The request goes through the host: checked against the egress policy,
//! journaled (a resumed run gets the same answer, never a second request),
//! and retried with an idempotency key where that is safe.

use runway_sdk::{Result, http};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    url: String,
}

#[derive(Serialize)]
struct Output {
    status: u16,
    bytes: usize,
    content_type: Option<String>,
}

fn fetch(input: Input) -> Result<Output> {
    let response = http::get(&input.url).send()?.error_for_status()?;
    Ok(Output {
        status: response.status,
        bytes: response.body.len(),
        content_type: response.header("content-type").map(str::to_owned),
    })
}

runway_sdk::workflow!(fetch);
