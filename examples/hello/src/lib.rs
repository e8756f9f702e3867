//! `{"name":"Ada"}` -> `{"greeting":"Hello, Ada!"}`

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    name: String,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

fn hello(input: Input) -> runway_sdk::Result<Output> {
    Ok(Output {
        greeting: format!("Hello, {}!", input.name),
    })
}

runway_sdk::workflow!(hello);
