//! The host side of the `runway:workflow` imports, one file per interface,
//! plus the virtualized WASI pieces (clocks, random) in `wasi`.

mod artifacts;
mod models;
mod runtime;
mod secrets;
pub(crate) mod wasi;
mod workflows;

use crate::bindings::types::{self, Failure};

impl types::Host for crate::run::RunState {}

/// A failure the guest can handle (not a trap).
pub(crate) fn failure(code: &str, message: impl Into<String>) -> Failure {
    Failure {
        code: code.to_owned(),
        message: message.into(),
    }
}
