//! The wasmtime engine: configuration, the epoch ticker, checking a
//! component against the world, and the compile cache.
//!
//! A component is compiled once per content digest. The compiled form is
//! kept on disk (`cache/<engine hash>/<digest>.cwasm`, so a new wasmtime or
//! config never loads a stale artifact) and in memory as a ready
//! `WorkflowPre` (imports resolved, type-checked), so a run only pays for
//! instantiation.

use crate::sandbox::RunState;
use crate::sandbox::bindings::WorkflowPre;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; bounds how late a `max_duration` or a
/// cancellation stops a busy guest.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How instances get their memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// mmap per instance (copy-on-write images).
    OnDemand,
    /// Pre-reserved slots, reused between runs.
    Pooling,
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub allocator: Allocator,
    /// Slots in the pool (runs executing at once); pooling only.
    pub pool_size: u32,
    /// Largest linear memory one instance may have; pooling only.
    pub max_memory_per_instance: u64,
    /// Bytes of a freed slot's memory reset in place rather than returned
    /// to the kernel; pooling only. Bounds idle resident memory at this
    /// times the warm slots kept (wasmtime's default: 100).
    pub keep_resident: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            allocator: Allocator::Pooling,
            pool_size: 256,
            max_memory_per_instance: 4 << 30,
            keep_resident: 4 << 20,
        }
    }
}

/// Fiber stack bytes reset by memset rather than decommitted between runs.
const STACK_KEEP_RESIDENT: usize = 256 << 10;

/// Largest component deploy accepts.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Why a component was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComponentError {
    #[error("the component is {0} bytes; the limit is {MAX_COMPONENT_BYTES}")]
    TooLarge(usize),
    #[error("not a WebAssembly binary (it does not start with \\0asm)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build the workflow with `cargo build --target wasm32-wasip2`"
    )]
    CoreModule,
    #[error("not a valid component: {0}")]
    Invalid(String),
    #[error("the component does not fit the runway:workflow world: {0}")]
    WrongWorld(String),
}

/// The engine, its linker and its caches.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<RunState>,
    cache_dir: PathBuf,
    warm: Mutex<HashMap<String, WorkflowPre<RunState>>>,
}

impl Engine {
    /// Builds the engine; compiled components are cached under `cache_root`.
    pub fn new(options: &EngineOptions, cache_root: &Path) -> anyhow::Result<Arc<Engine>> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .concurrency_support(false)
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_backtrace_max_frames(NonZeroUsize::new(32))
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        if options.allocator == Allocator::Pooling {
            let n = options.pool_size.max(1);
            let mut pool = PoolingAllocationConfig::new();
            // A Rust wasip2 component has one memory and a few core
            // instances and tables (the module plus adapter shims).
            pool.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n * 2)
                .total_tables(n * 8)
                .total_stacks(n)
                .max_memory_size(options.max_memory_per_instance as usize)
                .max_component_instance_size(1 << 20)
                .max_core_instance_size(1 << 20);
            // Reusing a slot is the hot path of a short run. Reset it with
            // memset over the pages the guest touched (found with the
            // PAGEMAP_SCAN ioctl where the kernel has it) instead of
            // madvise: each madvise costs a TLB shootdown on every core.
            // Small runs (memory, tables and fiber stack within what is
            // kept resident) then decommit nothing; a big memory is
            // decommitted at once, not batched, so memory the host-wide
            // budget gave back is given back to the machine too.
            pool.decommit_batch_size(1)
                .linear_memory_keep_resident(options.keep_resident as usize)
                .table_keep_resident(64 << 10)
                .async_stack_keep_resident(STACK_KEEP_RESIDENT)
                .pagemap_scan(wasmtime::Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = wasmtime::Engine::new(&config).map_err(anyhow::Error::from)?;
        spawn_epoch_ticker(&engine);

        let mut linker = Linker::<RunState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        super::imports::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;

        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let cache_dir = cache_root.join(format!("{:016x}", h.finish()));
        std::fs::create_dir_all(&cache_dir)?;
        Ok(Arc::new(Engine {
            engine,
            linker,
            cache_dir,
            warm: Mutex::new(HashMap::new()),
        }))
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    fn cache_path(&self, digest: &str) -> PathBuf {
        self.cache_dir.join(format!("{digest}.cwasm"))
    }

    /// Checks that `bytes` is a component of the `runway:workflow` world,
    /// compiles it and caches the result. CPU-heavy: call off the runtime.
    pub fn check_and_compile(&self, digest: &str, bytes: &[u8]) -> Result<(), ComponentError> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(ComponentError::TooLarge(bytes.len()));
        }
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(ComponentError::NotWasm);
        }
        if bytes[4..8] == [1, 0, 0, 0] {
            return Err(ComponentError::CoreModule);
        }
        let path = self.cache_path(digest);
        // SAFETY: as in `prepare`. The digest names these very bytes, so a
        // cached compilation of them (a redeploy, a test harness's fresh
        // data directory) is theirs.
        if let Ok(cached) = unsafe { Component::deserialize_file(&self.engine, &path) } {
            let pre = self.pre(&cached)?;
            self.warm.lock().insert(digest.to_owned(), pre);
            return Ok(());
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
        let pre = self.pre(&component)?;
        if let Ok(serialized) = component.serialize() {
            // The cache is an optimisation: failing to write it is not an error.
            if let Err(e) = write_atomic(&path, &serialized) {
                tracing::warn!(error = %e, "could not write the compile cache");
            }
        }
        self.warm.lock().insert(digest.to_owned(), pre);
        Ok(())
    }

    fn pre(&self, component: &Component) -> Result<WorkflowPre<RunState>, ComponentError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| ComponentError::WrongWorld(format!("{e:#}")))?;
        WorkflowPre::new(instance_pre).map_err(|e| {
            ComponentError::WrongWorld(format!(
                "{e:#} (a workflow exports `run: func(input: json) -> result<json, failure>`)"
            ))
        })
    }

    /// The ready-to-instantiate form of a stored component: from memory, or
    /// from the disk cache, or compiled from `load()` as a last resort.
    pub fn prepare(
        &self,
        digest: &str,
        load: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<WorkflowPre<RunState>> {
        if let Some(pre) = self.warm.lock().get(digest) {
            return Ok(pre.clone());
        }
        let path = self.cache_path(digest);
        // SAFETY: files in the cache directory are written only by
        // `check_and_compile`/`prepare` from `Component::serialize` with
        // this engine's configuration (the directory is keyed by the
        // engine's compatibility hash), and are replaced by rename, never
        // modified in place.
        let cached = unsafe { Component::deserialize_file(&self.engine, &path) };
        let component = match cached {
            Ok(c) => c,
            Err(_) => {
                let bytes = load()?;
                let c = Component::new(&self.engine, &bytes).map_err(anyhow::Error::from)?;
                if let Ok(serialized) = c.serialize()
                    && let Err(e) = write_atomic(&path, &serialized)
                {
                    tracing::warn!(error = %e, "could not write the compile cache");
                }
                c
            }
        };
        let pre = self.pre(&component)?;
        self.warm.lock().insert(digest.to_owned(), pre.clone());
        Ok(pre)
    }

    /// Whether `digest` is compiled and ready in memory.
    pub fn is_warm(&self, digest: &str) -> bool {
        self.warm.lock().contains_key(digest)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", ulid::Ulid::new()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("runway-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the epoch ticker; max_duration is enforced by timeouts only");
    }
}
