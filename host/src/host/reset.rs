//! Reset: a new run that replays another run's journal up to an event and
//! goes on live from there ("fork from here").
//!
//! The fork point is a commit of the original: the last one whose events
//! all come at or before the event asked for (each commit's last journal
//! entry carries its [`Mark`]). At a commit boundary the stored journal,
//! events and output agree, so the new run is exactly the original as a
//! crash right after that commit would have left it — and resuming from
//! such a state is what every run already does after a crash. What the
//! original did after the fork point is not copied: the new run makes those
//! calls again, live.
//!
//! Copied with the prefix: the events, the journal, how much output is
//! recorded, the signals the prefix consumed (so their inbox positions
//! match), the artifacts and approvals it wrote, and the model usage of its
//! calls (so budgets count them). Children started before the fork point
//! are the original's: a replayed `start` or `join` answers from the
//! journal, and a child that has not ended is not started again.

use super::Host;
use crate::error::HostError;
use crate::sandbox::journal::{JournalEntry, Mark};
use crate::store::Write;
use crate::types::{ArtifactMeta, Event, EventBody, ModelUsage, RunId, Signal, Trigger, Usd, now};
use std::collections::{BTreeMap, BTreeSet};

/// The part of a run a reset keeps.
#[derive(Debug, PartialEq)]
struct Prefix {
    /// Journal entries kept: a prefix of the journal.
    entries: usize,
    /// Where the kept commits left the events and output (none: the
    /// fork starts from nothing, like a rerun).
    mark: Option<Mark>,
}

/// The last commit whose events all come at or before event `to`.
fn prefix(journal: &[JournalEntry], to: u64) -> Prefix {
    let mut kept = Prefix {
        entries: 0,
        mark: None,
    };
    for (i, e) in journal.iter().enumerate() {
        match e.mark {
            // Marks grow along the journal: the first past `to` ends it.
            Some(m) if m.event > to => break,
            Some(m) => {
                kept = Prefix {
                    entries: i + 1,
                    mark: Some(m),
                }
            }
            None => {}
        }
    }
    kept
}

/// What the prefix's events say was consumed, written and charged.
#[derive(Default)]
struct Copied {
    /// The highest inbox position a kept `signal_received` names.
    signals: u64,
    /// Artifacts by name: the last write of each.
    artifacts: BTreeMap<String, (String, u64, String, crate::types::Timestamp)>,
    asked: BTreeSet<String>,
    decided: BTreeSet<String>,
    usage: ModelUsage,
}

fn copied(events: &[Event]) -> Copied {
    let mut c = Copied::default();
    for e in events {
        match &e.body {
            EventBody::SignalReceived { signal_seq, .. } => c.signals = c.signals.max(*signal_seq),
            EventBody::ArtifactWritten {
                name,
                digest,
                size,
                content_type,
            } => {
                c.artifacts.insert(
                    name.clone(),
                    (digest.clone(), *size, content_type.clone(), e.at),
                );
            }
            EventBody::ApprovalRequested { name, .. } => {
                c.asked.insert(name.clone());
            }
            EventBody::ApprovalDecided { name, .. } => {
                c.decided.insert(name.clone());
            }
            EventBody::ModelCall {
                input_tokens,
                output_tokens,
                cached_tokens,
                cost_usd,
                error: None,
                ..
            } => {
                c.usage.calls += 1;
                c.usage.input_tokens += input_tokens;
                c.usage.output_tokens += output_tokens;
                c.usage.cached_tokens += cached_tokens;
                c.usage.cost_usd = Usd(c.usage.cost_usd.0.saturating_add(cost_usd.0));
            }
            _ => {}
        }
    }
    c
}

impl Host {
    /// Starts a new run that replays run `id` up to its event `to` (the
    /// last commit at or before it) and goes on live from there, on the
    /// same version with the same input. Linked like a rerun: its trigger
    /// is `reset` with `rerun_of` and `reset_to` (the event the copy ends
    /// at), and `id` lists it among its reruns.
    pub async fn reset(&self, id: RunId, to: u64, by: String) -> Result<crate::Started, HostError> {
        let original = self.run_record(id).await?;
        let store = self.store();
        let last = store
            .events(id, to.saturating_sub(1), 2)?
            .into_iter()
            .map(|e| e.seq)
            .find(|s| *s == to);
        if to == 0 || last.is_none() {
            return Err(HostError::InvalidResetPoint(
                id,
                to,
                "the run has no such event".into(),
            ));
        }
        let journal = store.journal(id)?;
        let kept = prefix(&journal, to);
        let wf = store
            .workflow(&original.workflow, Some(original.version))?
            .ok_or_else(|| {
                HostError::VersionNotFound(original.workflow.clone(), original.version)
            })?;
        // Loaded (and so checked) before anything is stored.
        self.manifest(&wf)?;
        let mut record = super::new_record(&wf, original.input.clone());
        // The same random streams: the replayed prefix draws what it drew.
        record.seed = original.seed;
        let key = format!(
            "rerun:{id}:{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        record.idempotency_key = Some(key.clone());
        let mut trigger = Trigger::new("reset", by);
        trigger.rerun_of = Some(id);
        trigger.reset_to = Some(kept.mark.map_or(0, |m| m.event));
        record.trigger = Some(trigger);

        let mut events = match kept.mark {
            Some(m) => store.events(id, 0, m.event as usize)?,
            None => Vec::new(),
        };
        let queued = match events.first() {
            Some(Event {
                body: EventBody::Queued { .. },
                ..
            }) => events.remove(0),
            _ => Event {
                seq: 1,
                at: record.created_at,
                body: EventBody::Queued {
                    workflow: wf.slug.clone(),
                    version: wf.version,
                },
            },
        };
        let new = record.id;
        let mut writes = Vec::new();
        if let Some(m) = kept.mark {
            // Executed before: the driver resumes it from its journal.
            record.started_at = Some(now());
            let c = copied(&events);
            writes.push(Write::AppendEvents(new, events));
            writes.push(Write::AppendJournal(new, journal[..kept.entries].to_vec()));
            writes.push(Write::Progress(new, m.output));
            let signals: Vec<Signal> = store
                .signals(id)?
                .into_iter()
                .filter(|s| s.seq <= c.signals)
                .collect();
            writes.extend(signals.into_iter().map(|s| Write::Signal(new, Box::new(s))));
            for (name, (digest, size, content_type, at)) in c.artifacts {
                let metadata = store
                    .artifact(id, &name)?
                    .filter(|a| a.digest == digest)
                    .and_then(|a| a.metadata);
                writes.push(Write::PutArtifact(Box::new(ArtifactMeta {
                    run_id: new,
                    name,
                    content_type,
                    digest,
                    size,
                    metadata,
                    created_at: at,
                })));
            }
            for name in &c.asked {
                if let Some(mut a) = store.approval(id, name)? {
                    a.run_id = new;
                    if !c.decided.contains(name) {
                        a.decision = None;
                        a.status = "pending".into();
                    }
                    writes.push(Write::PutApproval(Box::new(a)));
                }
            }
            if c.usage.calls > 0 {
                writes.push(Write::ChargeModel {
                    run: new,
                    ancestors: Vec::new(),
                    usage: c.usage,
                });
            }
        }
        writes.insert(
            0,
            Write::StartRun {
                record: Box::new(record.clone()),
                queued,
                key: Some(key),
            },
        );
        store.writable()?;
        store.client_commit(writes).await?;
        tracing::info!(run = %new, original = %id, to, entries = kept.entries, "run reset");
        self.launch_started(record);
        Ok(crate::Started {
            id: new,
            created: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn entry(seq: u64, mark: Option<u64>) -> JournalEntry {
        JournalEntry {
            seq,
            call: "c".into(),
            args: String::new(),
            result: RawValue::from_string("null".into()).unwrap(),
            pending: false,
            parked: false,
            mark: mark.map(|event| Mark {
                event,
                output: [event, 0],
            }),
        }
    }

    #[test]
    fn the_fork_is_the_last_commit_at_or_before_the_event() {
        // Commits: entries 1-2 (events to 4), entry 3 (to 6), entry 4 (to 9).
        let j = [
            entry(1, None),
            entry(2, Some(4)),
            entry(3, Some(6)),
            entry(4, Some(9)),
        ];
        let at = |to| prefix(&j, to);
        assert_eq!(
            at(3),
            Prefix {
                entries: 0,
                mark: None
            }
        );
        assert_eq!(at(4).entries, 2);
        assert_eq!(at(5).entries, 2);
        assert_eq!(at(6).entries, 3);
        assert_eq!(at(6).mark.unwrap().output, [6, 0]);
        assert_eq!(at(8).entries, 3);
        assert_eq!(at(100).entries, 4);
        // A journal from before marks were kept forks from nothing.
        assert_eq!(prefix(&[entry(1, None), entry(2, None)], 9).entries, 0);
    }
}
