//! `max_memory` over all of a run's linear memories, and the run's share of
//! the host-wide memory budget (`host::memory`).

use super::fault::RunFault;
use crate::host::memory::MemoryPool;
use crate::types::BudgetKind;
use std::sync::Arc;

/// Most table elements one run may hold; tables are small in practice.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

pub(crate) struct MemoryLimiter {
    max: u64,
    pool: Arc<MemoryPool>,
    /// Bytes of linear memory across the run's memories, reserved from
    /// the pool until the store is dropped.
    total: u64,
    pub(crate) peak: u64,
    pub(crate) fault: Option<RunFault>,
}

impl MemoryLimiter {
    pub(crate) fn new(max: u64, pool: Arc<MemoryPool>) -> Self {
        MemoryLimiter {
            // No run may need more than the whole host has.
            max: max.min(pool.limit()),
            pool,
            total: 0,
            peak: 0,
            fault: None,
        }
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.pool.release(self.total);
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current) as u64;
        let after = self.total + grow;
        if after > self.max {
            // Trap rather than let `memory.grow` return -1: the run ends at
            // once with a budget error instead of an allocator abort.
            let fault = RunFault::Budget {
                budget: BudgetKind::MaxMemory,
                limit: self.max,
                used: after,
            };
            self.fault = Some(fault.clone());
            return Err(wasmtime::Error::new(fault));
        }
        if !self.pool.try_reserve(grow) {
            // The host is full, not the run: it stops here and is executed
            // again by replay once memory is free.
            let fault = RunFault::Capacity { need: after };
            self.fault = Some(fault.clone());
            return Err(wasmtime::Error::new(fault));
        }
        self.total = after;
        self.peak = self.peak.max(after);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
