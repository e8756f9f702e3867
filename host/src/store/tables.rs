//! redb table definitions. Values are JSON: easy to inspect, and the
//! records are small next to the cost of a commit.

use redb::{Database, TableDefinition};

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

/// Bookkeeping: `"batch"` -> the number of the writer's newest committed
/// batch (after a fault, says which kept batches the disk already has).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The `META` key of the newest batch's number.
pub const BATCH_NO: &str = "batch";

/// Creates every table so read transactions never meet a missing one.
pub fn create_all(db: &Database) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    tx.open_table(COMPONENTS)?;
    tx.open_table(WORKFLOWS)?;
    tx.open_table(VERSIONS)?;
    tx.open_table(RUNS)?;
    tx.open_table(ACTIVE_RUNS)?;
    tx.open_table(EVENTS)?;
    tx.open_table(JOURNAL)?;
    tx.open_table(ARTIFACTS)?;
    tx.open_table(SIGNALS)?;
    tx.open_table(SIGNAL_IDS)?;
    tx.open_table(KEYS)?;
    tx.open_table(CHILDREN)?;
    tx.open_table(PROGRESS)?;
    tx.open_table(CRON)?;
    tx.open_table(MODEL_USAGE)?;
    tx.open_table(TREE_RUNS)?;
    tx.open_table(META)?;
    tx.open_table(CRON_STATE)?;
    tx.commit()?;
    Ok(())
}
