//! Model usage accounting: the host's authority on `max_tokens` and
//! `max_usd`.
//!
//! A call is charged to the run that made it and to each of its
//! ancestors, so a tree of runs cannot outspend its root. Totals live in
//! memory for the runs in play and in the `model_usage` table; a charge's
//! durable write rides in the same transaction as the journal entry of the
//! call it pays for, so after a crash the two agree (a call whose entry was
//! lost is made, and charged, again).

use crate::store::{Store, Write};
use crate::types::{Ancestor, BudgetKind, ModelTotals, ModelUsage, RunId};
use parking_lot::Mutex;
use std::collections::HashMap;

/// A budget of `run` (one link of a chain) that is used up or crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Crossing {
    pub run: RunId,
    pub budget: BudgetKind,
    pub limit: u64,
    pub used: u64,
}

pub(crate) struct Ledger {
    store: Store,
    rows: Mutex<HashMap<RunId, ModelTotals>>,
}

impl Ledger {
    pub(crate) fn new(store: Store) -> Ledger {
        Ledger {
            store,
            rows: Mutex::new(HashMap::new()),
        }
    }

    /// A run's totals as of now.
    pub(crate) fn totals(&self, run: RunId) -> ModelTotals {
        if let Some(t) = self.rows.lock().get(&run) {
            return *t;
        }
        self.load(run)
    }

    fn load(&self, run: RunId) -> ModelTotals {
        self.store.model_totals(run).unwrap_or_else(|e| {
            tracing::error!(%run, error = %e, "could not read a run's model usage");
            ModelTotals::default()
        })
    }

    /// The first link of `chain` (root first) that has no budget left.
    pub(crate) fn exhausted(&self, chain: &[Ancestor]) -> Option<Crossing> {
        self.over(chain, |used, limit| used >= limit)
    }

    /// Every link of `chain` whose budget is crossed.
    pub(crate) fn crossed(&self, chain: &[Ancestor]) -> Vec<Crossing> {
        let mut out = Vec::new();
        for link in chain {
            out.extend(self.over(std::slice::from_ref(link), |used, limit| used > limit));
        }
        out
    }

    fn over(&self, chain: &[Ancestor], past: impl Fn(u64, u64) -> bool) -> Option<Crossing> {
        for link in chain {
            if link.max_tokens.is_none() && link.max_usd.is_none() {
                continue;
            }
            let tree = self.totals(link.run).tree;
            if let Some(limit) = link.max_tokens
                && past(tree.tokens(), limit)
            {
                return Some(Crossing {
                    run: link.run,
                    budget: BudgetKind::MaxTokens,
                    limit,
                    used: tree.tokens(),
                });
            }
            if let Some(limit) = link.max_usd
                && past(tree.cost_usd.0, limit.0)
            {
                return Some(Crossing {
                    run: link.run,
                    budget: BudgetKind::MaxUsd,
                    limit: limit.0,
                    used: tree.cost_usd.0,
                });
            }
        }
        None
    }

    /// Charges `usage` to `run` and to the tree totals of `ancestors`;
    /// returns the durable write, to go with the call's journal entry.
    pub(crate) fn charge(&self, run: RunId, ancestors: &[RunId], usage: &ModelUsage) -> Write {
        let mut rows = self.rows.lock();
        for (id, own) in std::iter::once((run, true)).chain(ancestors.iter().map(|a| (*a, false))) {
            let row = match rows.get_mut(&id) {
                Some(r) => r,
                None => {
                    let loaded = self.load(id);
                    rows.entry(id).or_insert(loaded)
                }
            };
            if own {
                row.own.add(usage);
            }
            row.tree.add(usage);
        }
        Write::ChargeModel {
            run,
            ancestors: ancestors.to_vec(),
            usage: *usage,
        }
    }

    /// Drops a run that ended from memory (its totals stay in the store).
    pub(crate) fn forget(&self, run: RunId) {
        self.rows.lock().remove(&run);
    }
}
