//! `{"files":[{"name":"a.rs","text":"..."}]}` -> `{"reviews":[...],"input_tokens":...}`
//!
//! Reviews each file in a child run of `summarize`, all at once, then
//! writes `review.md`. The children's model calls count against this
//! run's `max_tokens` and `max_usd`: the whole review shares one budget.

use runway_sdk::{ChildRun, Result, artifacts, join, start};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
struct Input {
    files: Vec<File>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct File {
    name: String,
    text: String,
}

#[derive(Serialize)]
struct Output {
    reviews: Vec<Review>,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
}

#[derive(Serialize)]
struct Review {
    file: String,
    summary: String,
}

#[derive(Deserialize)]
struct Summary {
    summary: String,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
}

fn review(input: Input) -> Result<Output> {
    let children: Vec<ChildRun> = input
        .files
        .iter()
        .map(|f| {
            let mut child = json!({
                "text": format!("Review of {}:\n{}", f.name, f.text),
                "artifact": "review.md",
            });
            if let Some(m) = &input.model {
                child["model"] = json!(m);
            }
            start("summarize", &child)
        })
        .collect::<Result<_>>()?;
    let mut out = Output {
        reviews: Vec::new(),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
    };
    let mut report = String::from("# Review\n");
    for (file, child) in input.files.iter().zip(&children) {
        let s: Summary = join(child)?;
        report.push_str(&format!("\n## {}\n\n{}\n", file.name, s.summary));
        out.input_tokens += s.input_tokens;
        out.output_tokens += s.output_tokens;
        out.cost_usd += s.cost_usd;
        out.reviews.push(Review {
            file: file.name.clone(),
            summary: s.summary,
        });
    }
    artifacts::write_with("review.md", "text/markdown", report, None)?;
    Ok(out)
}

runway_sdk::workflow!(review);
