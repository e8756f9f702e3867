//! Whether the store takes writes now.
//!
//! A write the disk refuses (full, failing, a panic inside the storage
//! library) puts the store in a *degraded* state instead of failing the runs
//! whose writes were in the batch: the writer keeps those writes, probes the
//! disk with backoff, reopens the database and applies them again once it
//! can (see `writer`). Meanwhile clients are told `STORAGE_UNAVAILABLE` and
//! runs wait at their next durable commit.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The store's health, shared by the writer (which changes it) and every
/// reader of the store.
#[derive(Default)]
pub(crate) struct Health {
    degraded: AtomicBool,
    state: Mutex<Option<Degraded>>,
    /// Set by `Store::close`: a degraded writer stops retrying.
    closing: AtomicBool,
}

/// Why and since when the store takes no writes.
#[derive(Clone, Debug)]
pub struct Degraded {
    /// The error that put the store in this state (the newest one).
    pub reason: String,
    pub since: Instant,
    /// When the writer probes the disk next.
    pub next_probe: Instant,
}

impl Degraded {
    /// Seconds a client should wait before trying again (at least 1).
    pub fn retry_after(&self) -> u64 {
        self.next_probe
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64
    }
}

impl Health {
    /// Whether the store refuses writes now; cheap (one atomic load).
    pub(crate) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    pub(crate) fn degraded(&self) -> Option<Degraded> {
        if !self.is_degraded() {
            return None;
        }
        self.state.lock().clone()
    }

    /// Enters (or stays in) the degraded state; logged and counted on entry.
    pub(super) fn degrade(&self, reason: String, next_probe: Duration) {
        let mut state = self.state.lock();
        let next_probe = Instant::now() + next_probe;
        match state.as_mut() {
            Some(d) => {
                d.reason = reason;
                d.next_probe = next_probe;
            }
            None => {
                tracing::error!(reason = %reason, "store degraded: writes are refused and runs wait until the disk takes writes again");
                crate::metrics::store_degraded(true);
                *state = Some(Degraded {
                    reason,
                    since: Instant::now(),
                    next_probe,
                });
                self.degraded.store(true, Ordering::Release);
            }
        }
    }

    /// Leaves the degraded state; logged and counted.
    pub(super) fn recover(&self) {
        let mut state = self.state.lock();
        if let Some(d) = state.take() {
            tracing::error!(
                after_ms = d.since.elapsed().as_millis() as u64,
                "store recovered: writes are taken again and waiting runs go on"
            );
            crate::metrics::store_degraded(false);
            self.degraded.store(false, Ordering::Release);
        }
    }

    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(super) fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// Probes whether the directory takes writes again: writes and fsyncs a
/// scratch file of `bytes`, then removes it. Cheaper than reopening the
/// database, which repairs it.
pub(super) fn probe(dir: &std::path::Path, bytes: usize) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join("runway.probe");
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&vec![0u8; bytes])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}
