//! `cargo test` runs these on the Runway engine, with `runway test-runner`:
//! HTTP responses come from the test, after runway.toml's [http] rules.

use runway_sdk::testing::{HttpReply, World};
use serde_json::json;

#[test]
fn reports_the_response() {
    let run = World::new()
        .http(
            HttpReply::get("https://example.org/")
                .header("content-type", "text/html")
                .body("<h1>hi</h1>"),
        )
        .run(&json!({ "url": "https://example.org/" }));
    assert_eq!(run.output()["status"], 200);
    assert_eq!(run.output()["bytes"], 11);
    assert_eq!(run.output()["content_type"], "text/html");
}

#[test]
fn an_error_status_fails_the_run() {
    let run = World::new()
        .http(HttpReply::get("https://example.org/missing").status(404))
        .run(&json!({ "url": "https://example.org/missing" }));
    assert_eq!(run.status, "failed");
}
