//! What all runs of one host share: the store, secret values, artifact
//! blobs, the registry of live runs, and the host-wide bounds on run trees.

use crate::host::scheduler::Registry;
use crate::host::secrets::SecretSource;
use crate::store::Store;
use crate::store::blobs::ArtifactStore;
use crate::types::RunId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct HostServices {
    pub store: Store,
    pub secrets: SecretSource,
    pub artifacts: Arc<ArtifactStore>,
    pub registry: Registry,
    /// Deepest chain of parent and child runs.
    pub max_depth: u32,
    /// Runs waiting for an execution slot past which child starts are
    /// refused (as API starts are answered 429).
    pub max_queued_runs: usize,
    pub models: crate::models::Models,
    /// Outbound HTTP under the operator's `[egress]` rules.
    pub egress: crate::egress::Egress,
    /// MCP servers under the operator's `[mcp]`.
    pub mcp: Arc<crate::mcp::Mcp>,
    pub ledger: crate::host::ledger::Ledger,
    pub trees: TreeCounts,
    /// A test harness's scripted world (children end as it says).
    pub script: Option<Arc<crate::testing::Script>>,
}

/// How many runs each tree holds, by root: a tree's size is bounded by its
/// root's `max_tree_runs`, counted here as children start and stored with
/// each child (`Write::PutChild`), so the count survives restarts.
pub(crate) struct TreeCounts {
    store: Store,
    trees: Mutex<HashMap<RunId, Tree>>,
}

#[derive(Default)]
struct Tree {
    /// Runs in the tree, those admitted but not yet stored included.
    runs: u64,
    /// Admitted children whose start is not yet committed: until they
    /// are, the stored count is short of `runs`.
    in_flight: u32,
    /// The root ended: forget the tree once nothing is in flight.
    root_ended: bool,
}

impl TreeCounts {
    pub(crate) fn new(store: Store) -> TreeCounts {
        TreeCounts {
            store,
            trees: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more run in `root`'s tree, unless that would make it
    /// more than `limit`: then `Err` with the size it would have had. Call
    /// [`TreeCounts::committed`] once the child's start is stored.
    pub(crate) fn admit(&self, root: RunId, limit: u64) -> Result<(), u64> {
        let mut trees = self.trees.lock();
        let tree = match trees.entry(root) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let runs = self.store.tree_runs(root).unwrap_or_else(|e| {
                    tracing::error!(%root, error = %e, "could not read a tree's size");
                    u64::MAX
                });
                e.insert(Tree {
                    runs,
                    ..Tree::default()
                })
            }
        };
        let next = tree.runs.saturating_add(1);
        if next > limit {
            return Err(next);
        }
        tree.runs = next;
        tree.in_flight += 1;
        Ok(())
    }

    /// A child admitted to `root`'s tree is stored.
    pub(crate) fn committed(&self, root: RunId) {
        let mut trees = self.trees.lock();
        if let Some(tree) = trees.get_mut(&root) {
            tree.in_flight = tree.in_flight.saturating_sub(1);
            if tree.root_ended && tree.in_flight == 0 {
                trees.remove(&root);
            }
        }
    }

    /// The root ended: its tree is forgotten once no start is in flight
    /// (and reloaded from the store if a descendant starts another run).
    pub(crate) fn root_ended(&self, root: RunId) {
        let mut trees = self.trees.lock();
        match trees.get_mut(&root) {
            Some(tree) if tree.in_flight > 0 => tree.root_ended = true,
            Some(_) => {
                trees.remove(&root);
            }
            None => {}
        }
    }
}
