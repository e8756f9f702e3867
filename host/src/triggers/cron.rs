//! Cron triggers: `[[triggers.cron]]` schedules (5 or 6 fields, UTC).
//!
//! Each trigger's next fire time is persisted, so a fire missed while the
//! host was down fires once on start. Each scheduled instant starts at most
//! one run, across restarts: the run's idempotency key is the slug, the
//! trigger and the instant.

use crate::Host;
use crate::store::Write;
use crate::types::{CronState, now_ms};
use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use std::time::Duration;

/// How often the schedules are checked (and new deploys noticed).
const TICK: Duration = Duration::from_millis(200);

/// Parses a 5-field (minute precision) or 6-field (with seconds) schedule.
pub fn parse(schedule: &str) -> Result<Cron, String> {
    let fields = schedule.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "{schedule:?} has {fields} fields; a schedule has 5 (minute hour day month weekday) or 6 (with seconds first)"
        ));
    }
    Cron::new(schedule)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("{schedule:?}: {e}"))
}

/// The first fire time strictly after `after_ms`.
pub fn next_after(cron: &Cron, after_ms: u64) -> Option<u64> {
    let t: DateTime<Utc> = Utc.timestamp_millis_opt(after_ms as i64).single()?;
    cron.find_next_occurrence(&t, false)
        .ok()
        .map(|n| n.timestamp_millis().max(0) as u64)
}

/// Fires due schedules of every deployed workflow until the host closes.
pub async fn run(host: Host, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = tick(&host).await {
            tracing::error!(error = %e, "cron tick failed");
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The store key of trigger `index` of `slug` (a changed schedule starts
/// afresh).
fn key(slug: &str, index: usize, schedule: &str) -> String {
    format!("{slug}#{index}#{schedule}")
}

/// One pass: for each trigger, fire if due (once, for the latest due
/// instant) and persist the next fire time. A paused trigger's due
/// instants are skipped.
async fn tick(host: &Host) -> Result<(), crate::HostError> {
    if host.store().degraded().is_some() {
        // Nothing could be started: due schedules fire once it recovers.
        return Ok(());
    }
    let now = now_ms();
    for wf in host.store().workflows()? {
        let Ok(manifest) = host.manifest(&wf) else {
            continue;
        };
        for (i, trigger) in manifest.triggers.cron.iter().enumerate() {
            let Ok(cron) = parse(&trigger.schedule) else {
                continue;
            };
            let key = key(&wf.slug, i, &trigger.schedule);
            let next = match host.store().cron_next(&key)? {
                Some(n) => n,
                None => {
                    let Some(n) = next_after(&cron, now) else {
                        continue;
                    };
                    host.store()
                        .client_commit(vec![Write::CronNext(key.clone(), n)])
                        .await?;
                    continue;
                }
            };
            if next > now {
                continue;
            }
            let state = host.store().cron_state(&key)?;
            if !state.paused {
                // Due (perhaps long ago, while the host was down): one run
                // for that instant, whatever the number of instants missed.
                let run_key = format!("cron:{}:{i}:{next}", wf.slug);
                let input = trigger.input.clone();
                match fire_one(host, &wf.slug, input, &key, run_key, next, state).await {
                    Ok(_) => {}
                    Err(e) if e.retry_after().is_some() => {
                        // A full queue or a full disk: the instant fires on a
                        // later tick (still once: its key).
                        tracing::warn!(workflow = %wf.slug, error = %e, "cron could not start a run yet");
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(workflow = %wf.slug, error = %e, "cron could not start a run")
                    }
                }
            }
            if let Some(n) = next_after(&cron, now) {
                host.store()
                    .client_commit(vec![Write::CronNext(key, n)])
                    .await?;
            }
        }
    }
    Ok(())
}

/// Starts the run of one fire (admitted against the queue bound) and
/// records it as the trigger's last.
async fn fire_one(
    host: &Host,
    slug: &str,
    input: Option<serde_json::Value>,
    key: &str,
    run_key: String,
    at: u64,
    mut state: CronState,
) -> Result<crate::Started, crate::HostError> {
    let input = input.unwrap_or_else(|| serde_json::json!({}));
    let bound = host.config().server.max_queued_runs;
    let started = host
        .start_admitted(
            slug,
            input,
            Some(run_key.clone()),
            bound,
            crate::types::Trigger::new("cron", run_key),
        )
        .await?;
    if started.created {
        tracing::info!(workflow = %slug, run = %started.id, at, "cron fired");
    }
    state.last_fire_ms = Some(at);
    state.last_run = Some(started.id);
    host.store()
        .client_commit(vec![Write::CronState(key.to_owned(), state)])
        .await?;
    Ok(started)
}

/// One cron trigger of a workflow, as `GET /v1/workflows/{slug}/cron`
/// shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CronView {
    /// Its position in the manifest's `[[triggers.cron]]`.
    pub index: usize,
    pub schedule: String,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    pub paused: bool,
    /// The next instant it fires at (RFC 3339; none if it never does).
    pub next_fire: Option<String>,
    pub last_fire: Option<String>,
    #[schema(value_type = Option<String>)]
    pub last_run: Option<crate::types::RunId>,
    pub last_run_status: Option<crate::types::RunStatus>,
}

fn rfc3339(ms: u64) -> Option<String> {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl Host {
    /// The cron triggers of the newest version of `slug`.
    pub fn cron_triggers(&self, slug: &str) -> Result<Vec<CronView>, crate::HostError> {
        let wf = self
            .store()
            .workflow(slug, None)?
            .ok_or_else(|| crate::HostError::WorkflowNotFound(slug.to_owned()))?;
        let manifest = self.manifest(&wf)?;
        let now = now_ms();
        let mut out = Vec::new();
        for (index, t) in manifest.triggers.cron.iter().enumerate() {
            let key = key(slug, index, &t.schedule);
            let state = self.store().cron_state(&key)?;
            let next = match self.store().cron_next(&key)? {
                Some(n) => Some(n),
                None => parse(&t.schedule).ok().and_then(|c| next_after(&c, now)),
            };
            let last_run_status = match state.last_run {
                Some(id) => self.store().run(id)?.map(|r| r.status),
                None => None,
            };
            out.push(CronView {
                index,
                schedule: t.schedule.clone(),
                input: t.input.clone().unwrap_or_else(|| serde_json::json!({})),
                paused: state.paused,
                next_fire: next.and_then(rfc3339),
                last_fire: state.last_fire_ms.and_then(rfc3339),
                last_run: state.last_run,
                last_run_status,
            });
        }
        Ok(out)
    }

    /// Pauses (or resumes) trigger `index` of `slug`: a paused trigger's
    /// instants pass without a run.
    pub async fn pause_cron(
        &self,
        slug: &str,
        index: usize,
        paused: bool,
    ) -> Result<CronView, crate::HostError> {
        let (schedule, _, key) = self.cron_trigger(slug, index)?;
        let mut state = self.store().cron_state(&key)?;
        state.paused = paused;
        self.store()
            .client_commit(vec![Write::CronState(key, state)])
            .await?;
        tracing::info!(workflow = %slug, index, %schedule, paused, "cron paused or resumed");
        self.cron_view(slug, index)
    }

    /// Fires trigger `index` of `slug` now (paused or not), with its input.
    pub async fn fire_cron(
        &self,
        slug: &str,
        index: usize,
    ) -> Result<crate::Started, crate::HostError> {
        let (_, input, key) = self.cron_trigger(slug, index)?;
        let state = self.store().cron_state(&key)?;
        let run_key = format!("cron:{slug}:{index}:manual:{}", ulid::Ulid::new());
        fire_one(self, slug, input, &key, run_key, now_ms(), state).await
    }

    /// Trigger `index` of `slug`: its schedule, input and store key.
    fn cron_trigger(
        &self,
        slug: &str,
        index: usize,
    ) -> Result<(String, Option<serde_json::Value>, String), crate::HostError> {
        let wf = self
            .store()
            .workflow(slug, None)?
            .ok_or_else(|| crate::HostError::WorkflowNotFound(slug.to_owned()))?;
        let trigger = self
            .manifest(&wf)?
            .triggers
            .cron
            .get(index)
            .cloned()
            .ok_or_else(|| crate::HostError::CronNotFound(slug.to_owned(), index))?;
        let key = key(slug, index, &trigger.schedule);
        Ok((trigger.schedule, trigger.input, key))
    }

    fn cron_view(&self, slug: &str, index: usize) -> Result<CronView, crate::HostError> {
        self.cron_triggers(slug)?
            .into_iter()
            .nth(index)
            .ok_or_else(|| crate::HostError::CronNotFound(slug.to_owned(), index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_schedules_parse_and_step() {
        let every_second = parse("* * * * * *").unwrap();
        assert_eq!(next_after(&every_second, 1_000), Some(2_000));
        assert_eq!(next_after(&every_second, 1_500), Some(2_000));
        let hourly = parse("0 * * * *").unwrap();
        assert_eq!(next_after(&hourly, 0), Some(3_600_000));
        assert!(parse("* * *").is_err());
        assert!(parse("61 * * * *").is_err());
    }
}
