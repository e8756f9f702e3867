//! Several hosts on one database. A run is driven by the host that holds
//! its lease: claimed in one statement (a free or expired lease only),
//! renewed by the host's heartbeat, released when the run ends or the host
//! stops, and taken over by another host by replay once it expires. Each
//! claim bumps the lease's token; the writer applies a run's own writes
//! only while this host's token is the lease's (`apply::fence`), holding
//! the lease row until its commit, so a host that was paused or cut off
//! can never write after its run was taken over.
//!
//! Hosts also tell each other, over `LISTEN`/`NOTIFY`, about a signal or
//! a cancel for a run another host drives, and a child's end.

use super::{Pg, connect, pg_error};
use crate::store::StoreError;
use crate::types::RunId;
use parking_lot::Mutex;
use postgres::fallible_iterator::FallibleIterator;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The channel hosts notify each other on.
pub(super) const CHANNEL: &str = "runway";

/// The token of a lease this host learnt it lost (no lease has it).
const LOST: i64 = -1;

/// This host's leases.
pub(in crate::store) struct Leases {
    /// This host's id (a new one per process).
    pub host: String,
    /// How long a lease lasts unless renewed.
    pub ttl: Duration,
    /// Runs this host holds, with their tokens.
    held: Mutex<HashMap<RunId, i64>>,
    stopped: AtomicBool,
}

impl Leases {
    pub(in crate::store) fn new(ttl: Duration) -> Leases {
        Leases {
            host: format!("host_{}", ulid::Ulid::new().to_string().to_lowercase()),
            ttl,
            held: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
        }
    }

    /// The token this host holds for `run`, if it holds its lease.
    pub(in crate::store) fn token(&self, run: RunId) -> Option<i64> {
        self.held.lock().get(&run).copied()
    }

    fn ttl_ms(&self) -> f64 {
        self.ttl.as_millis() as f64
    }
}

/// What one host tells the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Something a run waits for may have come (a signal, a child's end).
    Wake(RunId),
    /// A cancel was asked for.
    Cancel(RunId),
    /// These runs' events are durable up to these numbers (for event
    /// streams served by any host).
    Events(Vec<(RunId, u64)>),
}

/// Most runs one `Events` notice names (a notice's payload is under 8000
/// bytes).
pub(super) const EVENTS_PER_NOTICE: usize = 150;

impl Notice {
    pub(super) fn payload(&self) -> String {
        match self {
            Notice::Wake(r) => format!("wake {r}"),
            Notice::Cancel(r) => format!("cancel {r}"),
            Notice::Events(runs) => {
                let mut s = String::from("events");
                for (run, seq) in runs {
                    s.push_str(&format!(" {run}:{seq}"));
                }
                s
            }
        }
    }

    fn parse(payload: &str) -> Option<Notice> {
        let (what, rest) = payload.split_once(' ')?;
        match what {
            "wake" => Some(Notice::Wake(rest.parse().ok()?)),
            "cancel" => Some(Notice::Cancel(rest.parse().ok()?)),
            "events" => {
                let runs = rest
                    .split(' ')
                    .map(|p| {
                        let (run, seq) = p.split_once(':')?;
                        Some((run.parse().ok()?, seq.parse().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Notice::Events(runs))
            }
            _ => None,
        }
    }
}

impl Pg {
    /// Claims the lease of `run` for this host if it is free, expired or
    /// already this host's (a new token each time).
    pub(in crate::store) fn claim(&self, run: RunId) -> Result<bool, StoreError> {
        let leases = self.leases.clone();
        let token = self.read(move |c| {
            let row = c
                .query_opt(
                    "INSERT INTO leases (run, host, token, expires_at)
                     VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
                     ON CONFLICT (run) DO UPDATE
                       SET host = excluded.host, token = leases.token + 1,
                           expires_at = excluded.expires_at
                       WHERE leases.host = excluded.host OR leases.expires_at < now()
                     RETURNING token",
                    &[&run.to_string(), &leases.host, &leases.ttl_ms()],
                )
                .map_err(pg_error)?;
            Ok(row.map(|r| r.get::<_, i64>(0)))
        })?;
        match token {
            Some(t) => {
                self.leases.held.lock().insert(run, t);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Gives the lease of `run` up (the run ended, or this host stops
    /// driving it).
    pub(in crate::store) fn release(&self, run: RunId) {
        if self.leases.held.lock().remove(&run).is_none() {
            return;
        }
        let host = self.leases.host.clone();
        let released = self.read(move |c| {
            c.execute(
                "DELETE FROM leases WHERE run = $1 AND host = $2",
                &[&run.to_string(), &host],
            )
            .map_err(pg_error)
        });
        if let Err(e) = released {
            // It expires by itself.
            tracing::debug!(%run, error = %e, "could not release a lease");
        }
    }

    /// Runs that have not ended and that no host holds a live lease of:
    /// those of a host that stopped heartbeating, or never claimed.
    pub(in crate::store) fn orphans(&self) -> Result<Vec<RunId>, StoreError> {
        self.read(|c| {
            Ok(c.query(
                "SELECT a.id FROM active_runs a LEFT JOIN leases l ON l.run = a.id
                 WHERE l.run IS NULL OR l.expires_at < now() ORDER BY a.id LIMIT 1000",
                &[],
            )
            .map_err(pg_error)?
            .into_iter()
            .filter_map(|r| r.get::<_, &str>(0).parse().ok())
            .collect())
        })
    }

    /// Tells every host (this one too) about `notice`.
    pub(in crate::store) fn notify(&self, notice: Notice) -> Result<(), StoreError> {
        self.read(move |c| {
            c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &notice.payload()])
                .map(drop)
                .map_err(pg_error)
        })
    }

    /// Starts the heartbeat (renewing this host's leases every third of
    /// their life) and the listener (calling `on_notice` for what other
    /// hosts tell). Both stop with [`Pg::close`].
    pub(in crate::store) fn start_host(
        &self,
        url: &str,
        on_notice: Box<dyn Fn(Notice) + Send + Sync>,
    ) -> Result<(), StoreError> {
        let leases = self.leases.clone();
        let beat_url = url.to_owned();
        std::thread::Builder::new()
            .name("runway-store-heartbeat".into())
            .spawn(move || heartbeat(&beat_url, &leases))
            .map_err(|e| StoreError::CommitFailed(format!("starting the heartbeat: {e}")))?;
        let leases = self.leases.clone();
        let listen_url = url.to_owned();
        let on_notice: Arc<dyn Fn(Notice) + Send + Sync> = Arc::from(on_notice);
        std::thread::Builder::new()
            .name("runway-store-listener".into())
            .spawn(move || listen(&listen_url, &leases, &*on_notice))
            .map_err(|e| StoreError::CommitFailed(format!("starting the listener: {e}")))?;
        Ok(())
    }

    /// Stops the heartbeat and the listener, and gives every lease up so
    /// that other hosts take the runs over at once.
    pub(in crate::store) fn stop_host(&self) {
        self.leases.stopped.store(true, Ordering::Release);
        let runs: Vec<RunId> = self.leases.held.lock().keys().copied().collect();
        for run in runs {
            self.release(run);
        }
        let host = self.leases.host.clone();
        let _ = self.read(move |c| {
            c.execute("DELETE FROM hosts WHERE id = $1", &[&host])
                .map_err(pg_error)
        });
    }
}

/// Renews this host's leases and its row until the host stops. A lease
/// the database no longer gives this host is marked lost: its run's next
/// write is refused, which stops its driver here.
fn heartbeat(url: &str, leases: &Leases) {
    let mut client = None;
    while !leases.stopped.load(Ordering::Acquire) {
        if client.as_ref().is_none_or(postgres::Client::is_closed) {
            client = connect(url, leases.ttl).ok();
        }
        if let Some(c) = client.as_mut() {
            // Only leases held before the renewal can be missing from it:
            // one claimed meanwhile is not in this snapshot.
            let before: HashMap<RunId, i64> = leases.held.lock().clone();
            let renewed = c
                .execute(
                    "INSERT INTO hosts (id, heartbeat_at) VALUES ($1, now())
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                    &[&leases.host],
                )
                .and_then(|_| {
                    c.query(
                        "UPDATE leases SET expires_at = now() + $2 * interval '1 millisecond'
                         WHERE host = $1 RETURNING run, token",
                        &[&leases.host, &leases.ttl_ms()],
                    )
                });
            match renewed {
                Ok(rows) => {
                    let kept: HashMap<String, i64> = rows
                        .iter()
                        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                        .collect();
                    mark_lost(&before, &kept, &mut leases.held.lock());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew this host's leases");
                    client = None;
                }
            }
        }
        sleep_unless_stopped(leases, leases.ttl / 3);
    }
}

/// Marks lost (kept, with a token no lease has: the run's next write is
/// refused) each lease this host held `before` a renewal, still holds with
/// the same token, and that the renewal did not find among its (`kept`,
/// by run id).
fn mark_lost(
    before: &HashMap<RunId, i64>,
    kept: &HashMap<String, i64>,
    held: &mut HashMap<RunId, i64>,
) {
    for (run, token) in held.iter_mut() {
        let unchanged = before.get(run) == Some(token);
        if unchanged && *token != LOST && kept.get(&run.to_string()) != Some(token) {
            tracing::warn!(%run, "the lease of a run was taken over by another host");
            *token = LOST;
        }
    }
}

/// Hands what other hosts notify to `on_notice`, reconnecting as needed.
fn listen(url: &str, leases: &Leases, on_notice: &(dyn Fn(Notice) + Send + Sync)) {
    while !leases.stopped.load(Ordering::Acquire) {
        let Ok(mut client) = connect(url, leases.ttl) else {
            sleep_unless_stopped(leases, Duration::from_millis(500));
            continue;
        };
        if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
            continue;
        }
        loop {
            if leases.stopped.load(Ordering::Acquire) {
                return;
            }
            let next = client
                .notifications()
                .timeout_iter(Duration::from_millis(250))
                .next();
            match next {
                Ok(Some(n)) => {
                    if let Some(notice) = Notice::parse(n.payload()) {
                        on_notice(notice);
                    }
                }
                Ok(None) => {
                    if client.is_closed() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
}

fn sleep_unless_stopped(leases: &Leases, d: Duration) {
    let until = std::time::Instant::now() + d;
    while !leases.stopped.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lease_held_across_a_renewal_that_missed_it_is_lost() {
        let (kept_run, taken, claimed_meanwhile, reclaimed) = (
            RunId::generate(),
            RunId::generate(),
            RunId::generate(),
            RunId::generate(),
        );
        let before = HashMap::from([(kept_run, 1), (taken, 4), (reclaimed, 2)]);
        // The renewal found `kept_run` only (`reclaimed` was claimed anew,
        // token 3, after it started).
        let kept = HashMap::from([(kept_run.to_string(), 1)]);
        let mut held = HashMap::from([
            (kept_run, 1),
            (taken, 4),
            (claimed_meanwhile, 1),
            (reclaimed, 3),
        ]);
        mark_lost(&before, &kept, &mut held);
        assert_eq!(held[&kept_run], 1);
        assert_eq!(held[&taken], LOST);
        assert_eq!(held[&claimed_meanwhile], 1, "claimed after the snapshot");
        assert_eq!(held[&reclaimed], 3);
    }

    #[test]
    fn notices_round_trip_and_nonsense_is_ignored() {
        let run = RunId::generate();
        let other = RunId::generate();
        for n in [
            Notice::Wake(run),
            Notice::Cancel(run),
            Notice::Events(vec![(run, 7), (other, 12)]),
        ] {
            assert_eq!(Notice::parse(&n.payload()), Some(n));
        }
        // The most runs one notice names fit a notice's payload.
        let many = Notice::Events(vec![(run, u64::MAX); EVENTS_PER_NOTICE]);
        assert!(many.payload().len() < 8000);
        assert_eq!(Notice::parse("wake nonsense"), None);
        assert_eq!(Notice::parse("drop table"), None);
    }
}
