//! `{"requests":[{"method","url","headers","body","timeout_ms"}],"pause_ms":0}`
//! -> `{"responses":[{"status","headers","body"} | {"error":{"code","message"}}]}`
//!
//! Sends each request in order through the host (journaled, under the
//! egress policy), with a durable sleep of `pause_ms` between them. A
//! failure is recorded in its place and the next request goes on. Header
//! values may hold `{{secret:NAME}}` placeholders.

use runway_sdk::{Result, http, sleep};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize)]
struct Input {
    requests: Vec<Req>,
    #[serde(default)]
    pause_ms: u64,
}

#[derive(Deserialize)]
struct Req {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Failed {
        error: Failure,
    },
}

#[derive(Serialize)]
struct Failure {
    code: String,
    message: String,
}

#[derive(Serialize)]
struct Output {
    responses: Vec<Answer>,
}

fn fetch(input: Input) -> Result<Output> {
    let mut responses = Vec::new();
    for (i, r) in input.requests.into_iter().enumerate() {
        if i > 0 && input.pause_ms > 0 {
            sleep(Duration::from_millis(input.pause_ms));
        }
        let mut req = http::request(&r.method, &r.url);
        for (n, v) in &r.headers {
            req = req.header(n, v);
        }
        if let Some(b) = r.body {
            req = req.body(b);
        }
        if let Some(t) = r.timeout_ms {
            req = req.timeout(Duration::from_millis(t));
        }
        responses.push(match req.send() {
            Ok(res) => Answer::Response {
                status: res.status,
                body: res.text(),
                headers: res.headers,
            },
            Err(e) => Answer::Failed {
                error: Failure {
                    code: e.code,
                    message: e.message,
                },
            },
        });
    }
    Ok(Output { responses })
}

runway_sdk::workflow!(fetch);
