//! `{"name":"Ada"}` -> `{"greeting":"Hello, Ada!"}`

use runway_sdk::{Level, Result, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    name: String,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

fn greet(input: Input) -> Result<Output> {
    log(Level::Info, format!("greeting {}", input.name));
    Ok(Output {
        greeting: format!("Hello, {}!", input.name),
    })
}

runway_sdk::workflow!(greet);
