//! `cargo test` runs these on the Runway engine, with `runway test-runner`.
//! Waits take no time: a day's timeout passes at once.

use runway_sdk::testing::World;
use serde_json::json;

#[test]
fn an_approval_completes_the_run() {
    let run = World::new()
        .signal("approve", &json!({ "by": "ada", "approved": true }))
        .run(&json!({ "request": "deploy v2" }));
    assert_eq!(run.output()["approved"], true);
    assert_eq!(run.output()["by"], "ada");
    let decision = run.artifact("decision.json").expect("the decision is kept");
    assert!(decision.text.as_deref().unwrap_or("").contains("deploy v2"));
}

#[test]
fn without_an_answer_the_request_times_out_unapproved() {
    let run = World::new().run(&json!({ "request": "deploy v2", "timeout_hours": 24 }));
    assert_eq!(run.output()["approved"], false);
    // A day passed for the run (less the milliseconds it really took).
    assert!(run.skipped.as_secs() > 23 * 3600, "{:?}", run.skipped);
}
