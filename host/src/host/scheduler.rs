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
    /// Wakes so far ([`Registry::wake`]): a run that counted them before it
    /// last looked at what it waits for knows whether one came since.
    pub wakes: std::sync::atomic::AtomicU64,
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
            wakes: std::sync::atomic::AtomicU64::new(0),
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
    /// How fast the queue drains.
    drain: Drain,
    /// Per-workflow execution slots, for workflows whose manifest sets
    /// `max_concurrent_runs` (slug -> the limit and its slots).
    workflow_slots: Mutex<HashMap<String, (usize, Arc<Semaphore>)>>,
    launch: mpsc::UnboundedSender<Arc<LiveRun>>,
    /// A test harness: a wait that only time would end ends at once, the
    /// clocks moved past it (`types::skip_to`).
    pub skip_time: bool,
    /// Held while a wake marks a run busy and while a run at rest decides
    /// it is not, so that a wake is never undone.
    waking: Mutex<()>,
}

/// A run's place among the runs executing at once: the host's slot and,
/// for a workflow with `max_concurrent_runs`, the workflow's. Dropped when
/// the run parks or ends.
pub(crate) struct ExecutionSlot {
    _host: tokio::sync::OwnedSemaphorePermit,
    _workflow: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// How fast runs leave the queue, so that a client told the queue is full
/// learns when to try again. Counted with one atomic per run; the rate is
/// measured only when a client asks, over the time since the last ask (at
/// least a second).
struct Drain {
    left: std::sync::atomic::AtomicU64,
    sample: Mutex<DrainSample>,
}

struct DrainSample {
    at: std::time::Instant,
    left: u64,
    /// Runs per second over the last sampled window (`None` before one).
    rate: Option<f64>,
}

/// The longest `Retry-After` for a full queue, in seconds.
const MAX_RETRY_AFTER: u64 = 60;

impl Drain {
    fn new() -> Drain {
        Drain {
            left: Default::default(),
            sample: Mutex::new(DrainSample {
                at: std::time::Instant::now(),
                left: 0,
                rate: None,
            }),
        }
    }

    /// Seconds until `depth` queued runs have left at the measured rate.
    fn retry_after(&self, depth: usize) -> u64 {
        let left = self.left.load(Ordering::Relaxed);
        let mut s = self.sample.lock();
        let elapsed = s.at.elapsed();
        // A window of at least a second, or 200 ms for the first figure.
        let due = elapsed >= std::time::Duration::from_secs(1)
            || (s.rate.is_none() && elapsed >= std::time::Duration::from_millis(200));
        if due {
            s.rate = Some((left - s.left) as f64 / elapsed.as_secs_f64());
            s.at = std::time::Instant::now();
            s.left = left;
        }
        match s.rate {
            None => 1,
            Some(r) if r <= 0.0 => MAX_RETRY_AFTER,
            Some(r) => ((depth as f64 / r).ceil() as u64).clamp(1, MAX_RETRY_AFTER),
        }
    }
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
            drain: Drain::new(),
            workflow_slots: Mutex::new(HashMap::new()),
            launch,
            skip_time: false,
            waking: Mutex::new(()),
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
            self.drain.left.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An execution slot: one of the workflow's own first (if its manifest
    /// sets `max_concurrent_runs`; first come, first served), then
    /// one of the host's. Errs once the host is closing.
    pub(crate) async fn execution_slot(
        &self,
        workflow: &str,
        limit: Option<usize>,
    ) -> Result<ExecutionSlot, tokio::sync::AcquireError> {
        let own = match limit {
            None => None,
            Some(limit) => {
                let slots = {
                    let mut map = self.workflow_slots.lock();
                    let entry = map
                        .entry(workflow.to_owned())
                        .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit))));
                    if entry.0 != limit {
                        // A new version changed the limit: runs from now on
                        // share the new slots.
                        *entry = (limit, Arc::new(Semaphore::new(limit)));
                    }
                    entry.1.clone()
                };
                Some(slots.acquire_owned().await?)
            }
        };
        let host = self.permits.clone().acquire_owned().await?;
        Ok(ExecutionSlot {
            _host: host,
            _workflow: own,
        })
    }

    /// Seconds a client refused for a full queue should wait: the time the
    /// queue takes to drain at its measured rate (1 to 60).
    pub(crate) fn retry_after(&self) -> u64 {
        self.drain.retry_after(self.queued.load(Ordering::Relaxed))
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
    /// Returns whether the run is driven here.
    pub(crate) fn wake(&self, id: RunId) -> bool {
        let Some(live) = self.get(id) else {
            return false;
        };
        {
            let _waking = self.waking.lock();
            live.wakes.fetch_add(1, Ordering::AcqRel);
            self.set_busy(&live, true);
        }
        live.wake.notify_one();
        true
    }

    /// Whether the host is shutting down.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// A parked run is about to wait, having last looked at what it waits
    /// for when it had counted `seen` wakes: it stops counting as busy
    /// unless the wait has a deadline (`timed`) or a wake came since.
    pub(crate) fn rest(&self, live: &LiveRun, timed: bool, seen: u64) {
        let _waking = self.waking.lock();
        let woken = live.wakes.load(Ordering::Acquire) != seen;
        self.set_busy(live, timed || woken);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A drain that measured `left` runs leaving over `window`.
    fn drained(left: u64, window: Duration) -> Drain {
        let d = Drain::new();
        d.sample.lock().at = Instant::now() - window;
        d.left.store(left, Ordering::Relaxed);
        d
    }

    #[test]
    fn retry_after_is_the_queue_over_its_drain_rate() {
        // Nothing measured yet: a second.
        assert_eq!(Drain::new().retry_after(100), 1);
        // 50 runs/s: 90 queued runs take 2 s.
        assert_eq!(drained(50, Duration::from_secs(1)).retry_after(90), 2);
        // A fast queue: at least a second.
        assert_eq!(drained(5_000, Duration::from_secs(1)).retry_after(10), 1);
        // A queue that does not move: the longest wait.
        assert_eq!(
            drained(0, Duration::from_secs(2)).retry_after(10),
            MAX_RETRY_AFTER
        );
        // 1 run/s: 600 queued runs would take 10 minutes; capped.
        assert_eq!(
            drained(2, Duration::from_secs(2)).retry_after(600),
            MAX_RETRY_AFTER
        );
    }
}
