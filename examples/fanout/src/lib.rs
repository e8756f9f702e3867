//! `{"names":["Ada","Grace"]}` -> `{"greetings":["Hello, Ada!","Hello, Grace!"]}`
//!
//! Starts one child run of `hello` per name, all at once, then joins them
//! in order.

use runway_sdk::{Result, join, start};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
struct Input {
    names: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    greetings: Vec<String>,
}

#[derive(Deserialize)]
struct Hello {
    greeting: String,
}

fn fanout(input: Input) -> Result<Output> {
    let children = input
        .names
        .iter()
        .map(|name| start("hello", &json!({ "name": name })))
        .collect::<Result<Vec<_>>>()?;
    let greetings = children
        .iter()
        .map(|child| join::<Hello>(child).map(|h| h.greeting))
        .collect::<Result<Vec<_>>>()?;
    Ok(Output { greetings })
}

runway_sdk::workflow!(fanout);
