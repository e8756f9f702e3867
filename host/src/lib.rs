//! Runway: a host for durable, sandboxed workflows that run as WebAssembly
//! components.
//!
//! The modules are the layers, and data flows one way through them:
//!
//! - [`cli`] and [`api`] (people and programs) and [`triggers`] (cron,
//!   webhooks) ask the [`Host`] for things;
//! - [`host`] is the facade over one data directory: it queues runs, drives
//!   them (the run driver, the scheduler) and keeps the model ledger;
//! - [`sandbox`] executes one run in its own wasmtime store, behind the WIT
//!   world (`sandbox::imports`, one file per interface), and journals every
//!   call that crosses it;
//! - [`store`] writes everything through one group-committing writer.
//!
//! [`types`] holds the plain data all layers share; [`models`] the model
//! providers' wire formats.

pub mod api;
pub mod budget;
pub mod cli;
pub mod config;
pub mod egress;
pub mod error;
pub mod host;
pub mod manifest;
pub mod mcp;
mod metrics;
pub mod models;
pub mod retry;
pub mod sandbox;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod triggers;
pub mod types;

pub use config::HostConfig;
pub use error::HostError;
pub use host::{Deployment, Host, Started};
pub use manifest::Manifest;
