//! The host-wide memory budget: the linear memory of every run held in
//! memory — executing, or parked with its instance kept warm — together
//! stays under `max_host_memory`, whatever each manifest's `max_memory`.
//!
//! A host's capacity never fails a run. A run whose growth does not fit
//! stops where it is (its journal is intact) and is executed again by
//! replay once memory is free; warm parks are evicted first, and a parked
//! run keeps its instance only while the host is not under pressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Linear memory reserved by the runs in memory.
pub(crate) struct MemoryPool {
    limit: u64,
    used: AtomicU64,
    peak: AtomicU64,
    /// Drivers waiting for memory: only then does a release wake anyone.
    waiting: AtomicU64,
    freed: Notify,
}

impl MemoryPool {
    pub(crate) fn new(limit: u64) -> MemoryPool {
        MemoryPool {
            limit,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            freed: Notify::new(),
        }
    }

    /// Reserves `n` bytes if they fit under the limit.
    pub(crate) fn try_reserve(&self, n: u64) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let after = used.saturating_add(n);
            if after > self.limit {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(after, Ordering::Relaxed);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `n` bytes (a run's store was dropped).
    pub(crate) fn release(&self, n: u64) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
            if self.waiting.load(Ordering::Acquire) > 0 {
                self.freed.notify_waiters();
            }
        }
    }

    /// Waits until `need` more bytes would fit (re-checking now and then:
    /// a release may come between the check and the wait).
    pub(crate) async fn wait_for(&self, need: u64) {
        let need = need.min(self.limit);
        if self.fits(need) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        loop {
            let freed = self.freed.notified();
            if self.fits(need) {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether `need` more bytes fit now.
    pub(crate) fn fits(&self, need: u64) -> bool {
        self.in_use().saturating_add(need) <= self.limit
    }

    /// Over three quarters used: parked runs give their instance up.
    pub(crate) fn under_pressure(&self) -> bool {
        self.in_use() > self.limit / 4 * 3
    }

    pub(crate) fn in_use(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

/// The default `max_host_memory`: half the machine's memory (8 GiB where
/// it cannot be read).
pub fn default_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024);
    total.map_or(8 << 30, |t| t / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_under_the_limit_and_peak_is_kept() {
        let pool = MemoryPool::new(100);
        assert!(pool.try_reserve(60));
        assert!(!pool.try_reserve(41));
        assert!(pool.try_reserve(40));
        assert_eq!(pool.in_use(), 100);
        pool.release(70);
        assert_eq!(pool.in_use(), 30);
        assert_eq!(pool.peak(), 100);
        assert!(!pool.under_pressure());
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_memory_is_freed() {
        let pool = std::sync::Arc::new(MemoryPool::new(100));
        assert!(pool.try_reserve(90));
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.wait_for(50).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        pool.release(60);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
