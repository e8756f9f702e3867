//! Runway: a host for durable, sandboxed workflows that run as WebAssembly
//! components.
//!
//! Data flows one way: a trigger (CLI, later HTTP) asks the [`Host`] to
//! start a run; the run executes in its own wasmtime store
//! (the `run` module), every call across the sandbox goes through the
//! [`journal`], and everything is written through the [`store`]'s single
//! group-committing writer.

pub mod api;
pub mod artifact_store;
mod bindings;
pub mod budget;
pub mod cli;
pub mod client;
pub mod config;
pub mod cron;
pub mod engine;
pub mod error;
pub mod host;
mod imports;
pub mod journal;
mod ledger;
pub mod manifest;
mod metrics;
pub mod models;
mod run;
mod scheduler;
pub mod secrets;
mod services;
pub mod store;
pub mod types;
pub mod webhook;

pub use config::HostConfig;
pub use error::HostError;
pub use host::{Deployment, Host, Started};
pub use manifest::Manifest;
