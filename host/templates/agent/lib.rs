//! `{"task":"...","rounds":2}` -> `{"answer":"...","calls":5}`
//!
//! Drafts an answer with a model, then critiques and revises it `rounds`
//! times. Every model call is journaled: a run resumed after a crash does
//! not call (or pay for) the model again for the turns it already had. The
//! host holds the provider key and counts tokens and cost against the
//! manifest's budget.

use runway_sdk::models::{Request, generate};
use runway_sdk::{Result, artifacts};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    task: String,
    #[serde(default = "one")]
    rounds: u32,
    #[serde(default = "default_model")]
    model: String,
}

fn one() -> u32 {
    1
}

fn default_model() -> String {
    "default".into()
}

#[derive(Serialize)]
struct Output {
    answer: String,
    calls: u32,
    cost_usd: f64,
}

fn agent(input: Input) -> Result<Output> {
    let ask = |system: &str, user: String| {
        generate(
            &Request::new(input.model.clone())
                .system(system)
                .user(user)
                .max_output_tokens(1024),
        )
    };
    let first = ask("Answer the task well and briefly.", input.task.clone())?;
    let (mut answer, mut calls, mut cost) = (first.text, 1, first.cost_usd);
    for _ in 0..input.rounds {
        let critique = ask(
            "You review answers. List the flaws of this one, briefly.",
            format!("Task: {}\n\nAnswer:\n{answer}", input.task),
        )?;
        let revised = ask(
            "Revise the answer to fix the flaws named.",
            format!(
                "Task: {}\n\nAnswer:\n{answer}\n\nFlaws:\n{}",
                input.task, critique.text
            ),
        )?;
        calls += 2;
        cost += critique.cost_usd + revised.cost_usd;
        answer = revised.text;
    }
    artifacts::write_with("answer.md", "text/markdown", answer.clone(), None)?;
    Ok(Output {
        answer,
        calls,
        cost_usd: cost,
    })
}

runway_sdk::workflow!(agent);
