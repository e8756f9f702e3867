//! The host side of the `runway:workflow` imports, one file per interface,
//! plus the virtualized WASI pieces (clocks, random) in `wasi`.
//!
//! Each interface implements its generated trait (referred to by its
//! interface, e.g. `ArtifactsImport`) on a narrow view of the run state
//! that holds only what it needs, wired to the linker with a `HasData`
//! marker. Every side effect goes through the journaled-effect path
//! (`Effects::effect`), so each import reads as validation plus one effect.

mod approvals;
mod artifacts;
mod http;
mod mcp;
mod models;
mod runtime;
mod secrets;
pub(crate) mod wasi;
mod workflows;

pub(crate) use approvals::signal_name as approval_signal;

use super::bindings::types::{self as types_iface, Failure};
use super::bindings::workflows as workflows_iface;
use super::bindings::{
    approvals as approvals_iface, artifacts as artifacts_iface, http as http_iface,
    mcp as mcp_iface, models as models_iface,
};
use super::bindings::{runtime as runtime_iface, secrets as secrets_iface};
use super::state::RunState;
use crate::types::FailureCode;
use wasmtime::component::{HasData, Linker};

/// A failure the guest can handle (not a trap).
pub(crate) fn failure(code: FailureCode, message: impl Into<String>) -> Failure {
    Failure {
        code: code.as_str().to_owned(),
        message: message.into(),
    }
}

/// Links every `runway:workflow` interface, each to its view of the run.
pub(crate) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    types_iface::add_to_linker::<RunState, Types>(linker, |_| TypesView)?;
    runtime_iface::add_to_linker::<RunState, runtime::Runtime>(linker, runtime::view)?;
    secrets_iface::add_to_linker::<RunState, secrets::Secrets>(linker, secrets::view)?;
    artifacts_iface::add_to_linker::<RunState, artifacts::Artifacts>(linker, artifacts::view)?;
    workflows_iface::add_to_linker::<RunState, workflows::Workflows>(linker, workflows::view)?;
    models_iface::add_to_linker::<RunState, models::Models>(linker, models::view)?;
    http_iface::add_to_linker::<RunState, http::Http>(linker, http::view)?;
    approvals_iface::add_to_linker::<RunState, approvals::Approvals>(linker, approvals::view)?;
    mcp_iface::add_to_linker::<RunState, mcp::Mcp>(linker, mcp::view)?;
    Ok(())
}

/// `runway:workflow/types` declares types only.
struct Types;
struct TypesView;

impl HasData for Types {
    type Data<'a> = TypesView;
}

impl types_iface::Host for TypesView {}
