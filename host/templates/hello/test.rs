//! `cargo test` runs these on the Runway engine, with `runway test-runner`.

use runway_sdk::testing::World;
use serde_json::json;

#[test]
fn greets_by_name() {
    let run = World::new().run(&json!({ "name": "Ada" }));
    assert_eq!(run.output()["greeting"], "Hello, Ada!");
    assert!(run.events_of("log").any(|e| e.data["message"] == "greeting Ada"));
}

#[test]
fn refuses_an_input_without_a_name() {
    let refused = World::new().try_run(&json!({})).unwrap_err();
    assert!(refused.contains("schema"), "{refused}");
}
