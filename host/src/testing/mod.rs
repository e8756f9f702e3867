//! Testing workflows: `cargo test` in a workflow crate runs its tests
//! through `runway test-runner` ([`runner`]), and each scenario a test
//! scripts runs the crate's component on the real engine ([`Harness`]) in
//! a world the scenario answers for ([`Script`]): secrets, model answers,
//! HTTP responses, signals, children. Time skips: a durable sleep of a day
//! or a signal's timeout passes at once.

mod harness;
pub mod runner;
pub mod scenario;
mod script;

pub use harness::Harness;
pub(crate) use script::Script;
