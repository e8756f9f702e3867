//! WASI, virtualized per run: the one place where clocks and random are
//! served, so the journal sees every non-deterministic value.
//!
//! - Clock readings are journaled; a replay returns the recorded readings,
//!   and the monotonic clock continues from the last one, so time never runs
//!   backwards across a resume.
//! - Random is seeded from the run record: replay draws the same bytes
//!   without journaling each draw.
//! - No preopens, no sockets (wasmtime-wasi denies network by default),
//!   environment only from the manifest, stdio captured (`run::output`).

use crate::sandbox::effect::Effects;
use crate::sandbox::journal::Call;
use crate::sandbox::output::CapturedOutput;
use crate::types::OutputStream;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

const WALL_NOW: &str = "wasi:clocks/wall-clock.now";
const MONOTONIC_NOW: &str = "wasi:clocks/monotonic-clock.now";

/// Builds the run's WASI context.
pub(crate) fn context(effects: &Arc<Effects>, env: &[(String, String)], seed: [u8; 32]) -> WasiCtx {
    let monotonic_base = effects
        .journal()
        .last_in_history::<u64>(MONOTONIC_NOW)
        .unwrap_or(0);
    let mut insecure_seed = seed;
    insecure_seed[0] ^= 0xa5;
    let mut b = WasiCtxBuilder::new();
    b.stdout(CapturedOutput::new(effects.clone(), OutputStream::Stdout))
        .stderr(CapturedOutput::new(effects.clone(), OutputStream::Stderr))
        .envs(env)
        .wall_clock(WallClock(effects.clone()))
        .monotonic_clock(MonotonicClock {
            effects: effects.clone(),
            base: monotonic_base,
            start: Instant::now(),
        })
        .secure_random(StdRng::from_seed(seed))
        .insecure_random(StdRng::from_seed(insecure_seed))
        .insecure_random_seed(u128::from_le_bytes(
            seed[..16].try_into().unwrap_or_default(),
        ))
        .allow_blocking_current_thread(false);
    b.build()
}

/// Journals a clock reading. A determinism fault is recorded for the run
/// (a clock cannot fail) and ends it at its next host call or at its end.
fn journaled(effects: &Effects, name: &'static str, read: impl FnOnce() -> u64) -> u64 {
    effects.read(Call::new(name, &[]), read).unwrap_or(0)
}

struct WallClock(Arc<Effects>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        let nanos = journaled(&self.0, WALL_NOW, || {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                + crate::types::skipped_ms() * 1_000_000
        });
        Duration::from_nanos(nanos)
    }
}

struct MonotonicClock {
    effects: Arc<Effects>,
    /// The last reading before this execution (0 on a first run).
    base: u64,
    start: Instant,
}

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        journaled(&self.effects, MONOTONIC_NOW, || {
            self.base + self.start.elapsed().as_nanos() as u64
        })
    }
}
