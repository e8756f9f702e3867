//! The runs this host is driving: how they are woken, cancelled and counted.
//!
//! Every non-terminal run the host knows about has a [`LiveRun`] here while
//! its driver task lives — executing, parked with its instance kept warm, or
//! parked after eviction. Waking is a [`Notify`] permit, so a wake that comes
//! before the run starts waiting is not lost; a woken run always re-checks
//! what it waits for, so a spurious wake costs a check, never a wrong answer.

use super::memory::MemoryPool;
use crate::sandbox::fault::RunFault;
use crate::types::{RunId, RunRecord};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// One run driven by this host.
pub(crate) struct LiveRun {
    pub id: RunId,
    /// Set once a cancel is asked for; the epoch callback and every wait
    /// look at it.
    pub cancel: AtomicBool,
    /// Set when the host shuts down: the run stops where it is, without
    /// ending, and resumes by replay when a host opens the data again.
    pub suspend: AtomicBool,
    /// Woken by signals, finished children, cancels.
    pub wake: Notify,
    /// Why the run is stopped, when it is not a plain cancel (an
    /// ancestor's model budget ran out under it).
    stop: Mutex<Option<RunFault>>,
    done: watch::Sender<Option<RunRecord>>,
    /// Whether the run can make progress by itself (executing, or parked on
    /// a deadline), as opposed to waiting for outside input.
    busy: AtomicBool,
    /// Parked with its instance kept in memory.
    pub warm: AtomicBool,
    /// Asked to give its warm instance up (the host needs the memory).
    pub evict: AtomicBool,
    /// Counted in the queue (waiting for an execution slot, or admitted
    /// to wait for one).
    pub in_queue: AtomicBool,
}

impl LiveRun {
    /// A run that is not registered anywhere (benchmarks time a sandbox
    /// without a run behind it).
    pub(crate) fn detached(id: RunId) -> Arc<LiveRun> {
        Arc::new(LiveRun {
            id,
            cancel: AtomicBool::new(false),
            suspend: AtomicBool::new(false),
            wake: Notify::new(),
            stop: Mutex::new(None),
            done: watch::channel(None).0,
            busy: AtomicBool::new(false),
            warm: AtomicBool::new(false),
            evict: AtomicBool::new(false),
            in_queue: AtomicBool::new(false),
        })
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The fault a stopped run ends with: `Cancelled` unless it was
    /// stopped for something else.
    pub(crate) fn stop_fault(&self) -> RunFault {
        self.stop.lock().clone().unwrap_or(RunFault::Cancelled)
    }

    /// Whether the run was stopped for a fault other than a cancel.
    pub(crate) fn aborted(&self) -> bool {
        self.stop.lock().is_some()
    }

    pub(crate) fn suspending(&self) -> bool {
        self.suspend.load(Ordering::Relaxed)
    }
}

/// The live runs, the warm-instance slots and the launch queue.
pub(crate) struct Registry {
    runs: Mutex<HashMap<RunId, Arc<LiveRun>>>,
    busy: watch::Sender<usize>,
    /// How many runs are driven; watched by shutdown.
    live_count: watch::Sender<usize>,
    closing: AtomicBool,
    /// Runs waiting for an execution permit (the queue).
    pub queued: std::sync::atomic::AtomicUsize,
    /// Parked runs that may keep their instance in memory; a parked run
    /// that gets no slot is evicted and rebuilt by replay when it wakes.
    pub warm: Arc<Semaphore>,
    /// Runs executing at once (a warm-parked run gives its permit back).
    pub permits: Arc<Semaphore>,
    /// The host-wide memory budget of the runs in memory.
    pub memory: Arc<MemoryPool>,
    launch: mpsc::UnboundedSender<Arc<LiveRun>>,
}

impl Registry {
    pub(crate) fn new(
        max_warm: usize,
        max_concurrent: usize,
        max_memory: u64,
    ) -> (Registry, mpsc::UnboundedReceiver<Arc<LiveRun>>) {
        let (launch, rx) = mpsc::unbounded_channel();
        let registry = Registry {
            runs: Mutex::new(HashMap::new()),
            busy: watch::channel(0).0,
            live_count: watch::channel(0).0,
            closing: AtomicBool::new(false),
            queued: std::sync::atomic::AtomicUsize::new(0),
            warm: Arc::new(Semaphore::new(max_warm)),
            permits: Arc::new(Semaphore::new(max_concurrent)),
            memory: Arc::new(MemoryPool::new(max_memory)),
            launch,
        };
        (registry, rx)
    }

    /// Registers a run about to be driven; `None` if it already is.
    pub(crate) fn register(&self, id: RunId) -> Option<Arc<LiveRun>> {
        let mut runs = self.runs.lock();
        if runs.contains_key(&id) {
            return None;
        }
        let live = LiveRun::detached(id);
        if self.closing.load(Ordering::Relaxed) {
            live.suspend.store(true, Ordering::Relaxed);
        }
        runs.insert(id, live.clone());
        self.live_count.send_replace(runs.len());
        drop(runs);
        self.set_busy(&live, true);
        Some(live)
    }

    /// Takes a place in the queue if fewer than `max` runs wait: the bound
    /// is exact however many callers race for it.
    pub(crate) fn reserve_queue(&self, max: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a place taken with [`Registry::reserve_queue`] that no
    /// run took over.
    pub(crate) fn release_queue(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// `live` waits for an execution slot: counted in the queue (once).
    pub(crate) fn join_queue(&self, live: &LiveRun) {
        if !live.in_queue.swap(true, Ordering::AcqRel) {
            self.queued.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `live` stopped waiting (it has a slot, or stopped).
    pub(crate) fn leave_queue(&self, live: &LiveRun) {
        if live.in_queue.swap(false, Ordering::AcqRel) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Asks every warm-parked run to give its instance up; each is
    /// rebuilt by replay when it wakes.
    pub(crate) fn evict_warm(&self) {
        for live in self.runs.lock().values() {
            if live.warm.load(Ordering::Relaxed) {
                live.evict.store(true, Ordering::Relaxed);
                live.wake.notify_one();
            }
        }
    }

    pub(crate) fn get(&self, id: RunId) -> Option<Arc<LiveRun>> {
        self.runs.lock().get(&id).cloned()
    }

    /// Asks the launcher to drive a durably queued run. It counts as busy
    /// from now on, before its driver starts.
    pub(crate) fn launch(&self, id: RunId) {
        if let Some(live) = self.register(id) {
            // Closed only when the host is gone; recovery picks the run up.
            let _ = self.launch.send(live);
        }
    }

    /// Wakes a parked run so it re-checks what it waits for. It counts as
    /// busy from now on, so [`Registry::idle`] cannot slip in between a
    /// child ending and its parent waking.
    pub(crate) fn wake(&self, id: RunId) {
        if let Some(live) = self.get(id) {
            self.set_busy(&live, true);
            live.wake.notify_one();
        }
    }

    /// Flags a run for cancellation and wakes it. Returns whether it is live here.
    /// Stops a live run with `fault` (like a cancel, but it ends failed).
    pub(crate) fn abort(&self, id: RunId, fault: RunFault) -> bool {
        match self.get(id) {
            Some(live) => {
                live.stop.lock().get_or_insert(fault);
                self.cancel(id)
            }
            None => false,
        }
    }

    pub(crate) fn cancel(&self, id: RunId) -> bool {
        match self.get(id) {
            Some(live) => {
                live.cancel.store(true, Ordering::Relaxed);
                self.set_busy(&live, true);
                live.wake.notify_one();
                true
            }
            None => false,
        }
    }

    pub(crate) fn set_busy(&self, live: &LiveRun, busy: bool) {
        if live.busy.swap(busy, Ordering::AcqRel) != busy {
            self.busy.send_modify(|n| {
                if busy {
                    *n += 1;
                } else {
                    *n = n.saturating_sub(1);
                }
            });
        }
    }

    /// Removes a run whose driver has stopped, publishing its record.
    pub(crate) fn finish(&self, live: &LiveRun, record: Option<RunRecord>) {
        self.leave_queue(live);
        {
            let mut runs = self.runs.lock();
            runs.remove(&live.id);
            self.live_count.send_replace(runs.len());
        }
        live.done.send_replace(record);
        self.set_busy(live, false);
    }

    /// The run's end, once its driver stops (`None` inside if it stopped
    /// without ending, e.g. on shutdown).
    pub(crate) fn subscribe(&self, id: RunId) -> Option<watch::Receiver<Option<RunRecord>>> {
        self.get(id).map(|l| l.done.subscribe())
    }

    /// Stops every driven run where it is (executing runs at their next
    /// epoch tick, parked ones at once) and waits until their drivers are
    /// gone. Nothing ends: the runs resume on the next recovery.
    pub(crate) async fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let runs: Vec<_> = self.runs.lock().values().cloned().collect();
        for live in runs {
            live.suspend.store(true, Ordering::Relaxed);
            live.wake.notify_one();
        }
        let mut rx = self.live_count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Runs driven by this host now.
    pub(crate) fn live(&self) -> usize {
        *self.live_count.borrow()
    }

    /// Waits until no run can make progress by itself: every live run is
    /// parked on outside input (a signal without a timeout, or a child that
    /// is itself waiting for one).
    pub(crate) async fn idle(&self) {
        let mut rx = self.busy.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}
