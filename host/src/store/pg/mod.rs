//! The store on PostgreSQL (`--store postgres://…`): the same tables and
//! the same writes as on redb, as relations (see `schema.sql`).
//!
//! The client is the synchronous `postgres` crate, which drives its
//! connection on a runtime of its own and so cannot be called from the
//! host's: reads run on a small pool of reader threads, each with its own
//! connection, and writes on the store's writer thread, which batches the
//! writes of all runs into one transaction (group commit) as for redb. A
//! commit that need not be durable yet is made with `synchronous_commit =
//! off`: visible at once, on disk within the server's WAL writer delay.

mod apply;
mod copy;
mod lease;
mod reads;

pub use copy::{Copied, copy_from_redb, ensure_layout};

pub(super) use apply::PgTarget;
pub(super) use lease::Leases;
pub use lease::Notice;

use super::StoreError;
use postgres::{Client, NoTls};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// The layout `schema.sql` and the migrations after it make; a database
/// with a newer one is refused.
const LAYOUT: i64 = 2;
/// Layout 1.
const SCHEMA: &str = include_str!("schema.sql");
/// What takes a database from the layout before each to it.
const MIGRATIONS: &[(i64, &str)] = &[(
    2,
    "CREATE TABLE audit (
         seq   bigserial PRIMARY KEY,
         at    timestamptz NOT NULL,
         entry json NOT NULL
     );
     CREATE TABLE approvals (
         run      text COLLATE \"C\" NOT NULL,
         name     text NOT NULL,
         workflow text NOT NULL,
         status   text NOT NULL,
         record   json NOT NULL,
         PRIMARY KEY (run, name)
     );
     CREATE INDEX approvals_by_status ON approvals (status, run);",
)];
/// Serializes hosts creating the tables of one database at once.
const MIGRATION_LOCK: i64 = 0x52_75_6e_77_61_79;

/// Reader threads (and connections) per host.
const READERS: usize = 4;

/// Whether `url` names a PostgreSQL database (not a data directory).
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A connection, given up on after 5 s. No statement of it waits for a
/// lock longer than `lease`, and the server ends a transaction of it left
/// open longer than that: a host paused mid-transaction (stopped, cut off)
/// holds no lock that would keep the others from taking its runs over.
pub(super) fn connect(url: &str, lease: Duration) -> Result<Client, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Url(format!("{e}")))?;
    let ms = lease.as_millis().max(1);
    config
        .connect_timeout(Duration::from_secs(5))
        .application_name("runway")
        .options(&format!(
            "-c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms}"
        ));
    config.connect(NoTls).map_err(pg_error)
}

/// A PostgreSQL error as the store says it: the server or the network
/// failing is the store being unavailable (runs wait, clients get 503);
/// anything else is a failed statement.
pub(super) fn pg_error(e: postgres::Error) -> StoreError {
    let transient = match e.code() {
        // No SQL state: the connection failed, or a value did not convert.
        None => e.is_closed() || e.as_db_error().is_none() && !is_conversion(&e),
        Some(code) => {
            let c = code.code();
            // connection exceptions, operator intervention (shutdown),
            // insufficient resources, system errors; a lock not had in
            // time, a serialization failure or a deadlock (tried again)
            c.starts_with("08")
                || c.starts_with("57")
                || c.starts_with("53")
                || c.starts_with("58")
                || c.starts_with("40")
                || c == "55P03"
                || c == "25P03"
        }
    };
    if transient {
        StoreError::Unavailable {
            reason: format!("the database: {}", one_line(&e)),
            retry_after: 1,
        }
    } else {
        StoreError::CommitFailed(format!(
            "the database refused a statement: {}",
            one_line(&e)
        ))
    }
}

/// A value that did not convert to or from its column's type (a bug, not
/// the server failing).
fn is_conversion(e: &postgres::Error) -> bool {
    let text = e.to_string();
    text.starts_with("error serializing") || text.starts_with("error deserializing")
}

fn one_line(e: &postgres::Error) -> String {
    let mut s = e.to_string();
    if let Some(db) = e.as_db_error() {
        s = format!("{}: {}", db.severity(), db.message());
    }
    s.replace('\n', " ")
}

/// Creates the tables in an empty database; refuses a newer layout.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_error)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('runway_meta') IS NOT NULL", &[])
        .map_err(pg_error)?
        .get(0);
    let layout: i64 = if exists {
        tx.query_opt("SELECT value FROM runway_meta WHERE key = 'schema'", &[])
            .map_err(pg_error)?
            .map_or(0, |r| r.get(0))
    } else {
        0
    };
    if layout > LAYOUT {
        return Err(StoreError::Newer {
            found: layout as u64,
            known: LAYOUT as u64,
        });
    }
    if layout < LAYOUT {
        if layout == 0 {
            tx.batch_execute(SCHEMA).map_err(pg_error)?;
        }
        for (to, sql) in MIGRATIONS {
            if *to > layout.max(1) {
                tx.batch_execute(sql).map_err(pg_error)?;
            }
        }
        tx.execute(
            "INSERT INTO runway_meta (key, value) VALUES ('schema', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&LAYOUT],
        )
        .map_err(pg_error)?;
    }
    tx.commit().map_err(pg_error)
}

type Job = Box<dyn FnOnce(&mut Option<Client>) + Send>;

/// The store's reads on PostgreSQL, and this host's leases.
pub(super) struct Pg {
    jobs: parking_lot::Mutex<Option<mpsc::Sender<Job>>>,
    pub(super) leases: Arc<Leases>,
    pub(super) url: String,
}

impl Pg {
    /// Connects once (so a wrong URL or a database that is down is said at
    /// start), brings the tables up to date and starts the readers.
    pub(super) fn open(url: &str, leases: Arc<Leases>) -> Result<Pg, StoreError> {
        let lease = leases.ttl;
        let mut client = connect(url, lease)?;
        migrate(&mut client)?;
        let mut migrated = Some(client);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        for i in 0..READERS {
            let rx = rx.clone();
            let url = url.to_owned();
            let mut conn = migrated.take();
            std::thread::Builder::new()
                .name(format!("runway-store-reader-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().recv();
                        let Ok(job) = job else { return };
                        // A connection the server closed is opened again.
                        if conn.as_ref().is_some_and(Client::is_closed) {
                            conn = None;
                        }
                        if conn.is_none() {
                            conn = connect(&url, lease).ok();
                        }
                        job(&mut conn);
                    }
                })
                .map_err(|e| StoreError::CommitFailed(format!("starting a reader: {e}")))?;
        }
        Ok(Pg {
            jobs: parking_lot::Mutex::new(Some(tx)),
            leases,
            url: url.to_owned(),
        })
    }

    /// Runs `read` on a reader's connection and waits for it.
    pub(super) fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client: &mut Option<Client>| {
            let result = match client.as_mut() {
                Some(c) => read(c),
                None => Err(StoreError::Unavailable {
                    reason: "the database cannot be reached".into(),
                    retry_after: 1,
                }),
            };
            let _ = reply.send(result);
        });
        let sent = match self.jobs.lock().as_ref() {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(StoreError::Closed);
        }
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Stops the readers (after the jobs queued).
    pub(super) fn close(&self) {
        self.jobs.lock().take();
    }
}
