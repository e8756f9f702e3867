//! redb table definitions. Values are JSON: easy to inspect, and the
//! records are small next to the cost of a commit.

use redb::{
    Database, Key, ReadTransaction, ReadableTable, TableDefinition, Value, WriteTransaction,
};

/// sha256 hex -> `.wasm` bytes.
pub const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");
/// slug -> newest version.
pub const WORKFLOWS: TableDefinition<&str, u32> = TableDefinition::new("workflows");
/// (slug, version) -> `WorkflowVersion`.
pub const VERSIONS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("workflow_versions");
/// run id -> `RunRecord`.
pub const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// run id -> 0 (or [`CANCEL_REQUESTED`]), for every run that is not
/// terminal (recovery scans this).
pub const ACTIVE_RUNS: TableDefinition<&str, u8> = TableDefinition::new("active_runs");
/// The `ACTIVE_RUNS` value of a run being cancelled.
pub const CANCEL_REQUESTED: u8 = 1;
/// (run id, seq) -> `Event`.
pub const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// (run id, call seq) -> `JournalEntry`.
pub const JOURNAL: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("journal");
/// (run id, artifact name) -> `ArtifactMeta`.
pub const ARTIFACTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("artifacts");

/// (run id, signal seq) -> `Signal`: each run's inbox, in arrival order.
pub const SIGNALS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("signals");
/// (run id, signal id) -> signal seq, for deduplicating redeliveries.
pub const SIGNAL_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("signal_ids");
/// idempotency key -> run id (API starts, child starts, webhook deliveries).
pub const KEYS: TableDefinition<&str, &str> = TableDefinition::new("idempotency_keys");
/// (parent run id, child run id) -> 0.
pub const CHILDREN: TableDefinition<(&str, &str), u8> = TableDefinition::new("children");
/// run id -> `[stdout, stderr]` bytes already recorded as events.
pub const PROGRESS: TableDefinition<&str, &[u8]> = TableDefinition::new("progress");

/// run id -> `ModelTotals`: model usage of the run and of its tree.
pub const MODEL_USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("model_usage");

/// root run id -> runs in its tree, the root included (absent: just the root).
pub const TREE_RUNS: TableDefinition<&str, u64> = TableDefinition::new("tree_runs");

/// cron trigger (slug#index#schedule) -> next fire time, ms since the epoch.
pub const CRON: TableDefinition<&str, u64> = TableDefinition::new("cron");

/// cron trigger key -> `CronState` (paused, last fire, last run).
pub const CRON_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("cron_state");

/// (run id, idempotency key) -> 0: the keys naming each run, so they go
/// when the run is deleted.
pub const RUN_KEYS: TableDefinition<(&str, &str), u8> = TableDefinition::new("run_keys");

/// artifact digest -> artifacts naming it. A blob at 0 is no longer
/// referenced: its file is reclaimed, then the entry removed.
pub const BLOB_REFS: TableDefinition<&str, u64> = TableDefinition::new("blob_refs");

/// (run, name) -> approval (JSON): what runs asked people, and the answers.
pub const APPROVALS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("approvals");

/// seq -> audit entry (JSON): every state-changing request, and every
/// refused one, in order.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Bookkeeping: `"batch"` -> the number of the writer's newest committed
/// batch (after a fault, says which kept batches the disk already has).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The `META` key of the newest batch's number.
pub const BATCH_NO: &str = "batch";
/// The `META` key of the layout version (absent: 0).
const SCHEMA: &str = "schema";
/// 1: `RUN_KEYS` and `BLOB_REFS` exist and are complete.
const SCHEMA_VERSION: u64 = 1;

/// Calls `$f(args..., TABLE)?` for every table: the one list of them.
macro_rules! each_table {
    ($f:ident($($arg:expr),*)) => {{
        $f($($arg,)* COMPONENTS)?;
        $f($($arg,)* WORKFLOWS)?;
        $f($($arg,)* VERSIONS)?;
        $f($($arg,)* RUNS)?;
        $f($($arg,)* ACTIVE_RUNS)?;
        $f($($arg,)* EVENTS)?;
        $f($($arg,)* JOURNAL)?;
        $f($($arg,)* ARTIFACTS)?;
        $f($($arg,)* SIGNALS)?;
        $f($($arg,)* SIGNAL_IDS)?;
        $f($($arg,)* KEYS)?;
        $f($($arg,)* CHILDREN)?;
        $f($($arg,)* PROGRESS)?;
        $f($($arg,)* CRON)?;
        $f($($arg,)* MODEL_USAGE)?;
        $f($($arg,)* TREE_RUNS)?;
        $f($($arg,)* META)?;
        $f($($arg,)* CRON_STATE)?;
        $f($($arg,)* RUN_KEYS)?;
        $f($($arg,)* BLOB_REFS)?;
        $f($($arg,)* AUDIT)?;
        $f($($arg,)* APPROVALS)?;
    }};
}

/// Creates every table so read transactions never meet a missing one.
pub fn create_all(db: &Database) -> Result<(), redb::Error> {
    fn create<K: Key + 'static, V: Value + 'static>(
        tx: &WriteTransaction,
        table: TableDefinition<K, V>,
    ) -> Result<(), redb::TableError> {
        tx.open_table(table).map(drop)
    }
    let tx = db.begin_write()?;
    each_table!(create(&tx));
    tx.commit()?;
    Ok(())
}

/// Copies every table of the snapshot `from` into `to` (a backup).
pub fn copy_all(from: &ReadTransaction, to: &WriteTransaction) -> Result<(), redb::Error> {
    fn copy<K: Key + 'static, V: Value + 'static>(
        from: &ReadTransaction,
        to: &WriteTransaction,
        table: TableDefinition<K, V>,
    ) -> Result<(), redb::Error> {
        let source = from.open_table(table)?;
        let mut dest = to.open_table(table)?;
        for row in source.iter()? {
            let (k, v) = row?;
            dest.insert(k.value(), v.value())?;
        }
        Ok(())
    }
    each_table!(copy(from, to));
    Ok(())
}

/// Brings a store written by an older Runway up to [`SCHEMA_VERSION`]:
/// builds the indexes retention needs from the tables they index. A
/// store written by a newer Runway is refused.
pub fn migrate(db: &Database) -> Result<(), super::StoreError> {
    let tx = db.begin_write()?;
    {
        let mut meta = tx.open_table(META)?;
        let version = meta.get(SCHEMA)?.map_or(0, |v| v.value());
        if version > SCHEMA_VERSION {
            return Err(super::StoreError::Newer {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let mut run_keys = tx.open_table(RUN_KEYS)?;
        for row in tx.open_table(KEYS)?.iter()? {
            let (key, run) = row?;
            run_keys.insert((run.value(), key.value()), 0)?;
        }
        let mut refs = std::collections::HashMap::<String, u64>::new();
        for row in tx.open_table(ARTIFACTS)?.iter()? {
            let (_, meta) = row?;
            if let Ok(m) = serde_json::from_slice::<crate::types::ArtifactMeta>(meta.value()) {
                *refs.entry(m.digest).or_default() += 1;
            }
        }
        let mut blob_refs = tx.open_table(BLOB_REFS)?;
        for (digest, n) in refs {
            blob_refs.insert(digest.as_str(), n)?;
        }
        meta.insert(SCHEMA, SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}
