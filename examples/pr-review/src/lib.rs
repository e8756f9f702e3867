//! A GitHub `pull_request` webhook -> a review comment on the pull request.
//!
//! For an `opened` or `synchronize` delivery: fetches the pull request's
//! diff from the GitHub API, asks a model for a review, and posts it as a
//! comment. Every request goes through the host (journaled, under the
//! egress policy); the token is a secret placeholder the host fills in, so
//! the workflow never holds it. Other actions are skipped.
//!
//! Output: `{"skipped":true}` or `{"comment_id":..,"comment_url":..,"diff_bytes":..}`.

use runway_sdk::models::{self, Request};
use runway_sdk::{Error, Result, http};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
struct Delivery {
    action: String,
    number: u64,
    pull_request: Pull,
    repository: Repository,
}

#[derive(Deserialize)]
struct Pull {
    title: String,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Serialize)]
struct Output {
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment_url: Option<String>,
    diff_bytes: usize,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    html_url: String,
}

/// The largest part of a diff sent to the model.
const MAX_DIFF: usize = 60_000;

fn review(d: Delivery) -> Result<Output> {
    if d.action != "opened" && d.action != "synchronize" {
        return Ok(Output {
            skipped: Some(true),
            comment_id: None,
            comment_url: None,
            diff_bytes: 0,
        });
    }
    let api = std::env::var("GITHUB_API").unwrap_or_else(|_| "https://api.github.com".into());
    let pull = format!("{api}/repos/{}/pulls/{}", d.repository.full_name, d.number);
    let diff = http::get(&pull)
        .bearer_secret("GITHUB_TOKEN")
        .header("accept", "application/vnd.github.diff")
        .header("x-github-api-version", "2022-11-28")
        .send()?
        .error_for_status()?
        .text();
    let mut cut = diff.len().min(MAX_DIFF);
    while !diff.is_char_boundary(cut) {
        cut -= 1;
    }
    let answer = models::generate(
        &Request::new("default")
            .system("You review pull requests. Be brief and specific: list real problems first, then suggestions.")
            .user(format!(
                "Title: {}\n\n{}\n\nDiff:\n{}",
                d.pull_request.title,
                d.pull_request.body.unwrap_or_default(),
                &diff[..cut]
            )),
    )?;
    let comments = format!(
        "{api}/repos/{}/issues/{}/comments",
        d.repository.full_name, d.number
    );
    let comment: Comment = http::post(&comments)
        .bearer_secret("GITHUB_TOKEN")
        .header("accept", "application/vnd.github+json")
        .json(&json!({ "body": format!("**Automated review**\n\n{}", answer.text) }))
        .send()?
        .error_for_status()?
        .json()
        .map_err(|e| Error::new("UNEXPECTED_ANSWER", e.message))?;
    Ok(Output {
        skipped: None,
        comment_id: Some(comment.id),
        comment_url: Some(comment.html_url),
        diff_bytes: diff.len(),
    })
}

runway_sdk::workflow!(review);
