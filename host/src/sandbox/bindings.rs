//! Host bindings of the `runway:workflow` world. Generation only; the
//! host side of each interface lives in `imports/`.

wasmtime::component::bindgen!({
    path: "../guest-sdk/wit",
    world: "runway:workflow/workflow",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::runway::workflow::{
    approvals, artifacts, http, mcp, models, runtime, secrets, types, workflows,
};
