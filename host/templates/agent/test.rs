//! `cargo test` runs these on the Runway engine, with `runway test-runner`:
//! model answers come from the test, matched by what the prompt contains.

use runway_sdk::testing::{ModelReply, World};
use serde_json::json;

#[test]
fn drafts_critiques_and_revises() {
    let run = World::new()
        .model(ModelReply::text("A first draft.").when_contains("Answer the task"))
        .model(ModelReply::text("Too vague.").when_contains("List the flaws"))
        .model(ModelReply::text("A precise answer.").when_contains("Revise"))
        .run(&json!({ "task": "Explain durable execution.", "rounds": 1 }));
    assert_eq!(run.output()["answer"], "A precise answer.");
    assert_eq!(run.output()["calls"], 3);
    let kept = run.artifact("answer.md").expect("the answer is kept");
    assert_eq!(kept.text.as_deref(), Some("A precise answer."));
    assert_eq!(run.events_of("model_call").count(), 3);
}
