//! `max_memory`: a `ResourceLimiter` over all of a run's linear memories.

use super::fault::RunFault;
use crate::types::BudgetKind;

/// Most table elements one run may hold; tables are small in practice.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

pub(crate) struct MemoryLimiter {
    max: u64,
    /// Bytes of linear memory across the run's memories.
    total: u64,
    pub(crate) peak: u64,
    pub(crate) fault: Option<RunFault>,
}

impl MemoryLimiter {
    pub(crate) fn new(max: u64) -> Self {
        MemoryLimiter {
            max,
            total: 0,
            peak: 0,
            fault: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.total + (desired.saturating_sub(current)) as u64;
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
