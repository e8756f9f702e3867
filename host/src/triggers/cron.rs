//! Cron triggers: `[[triggers.cron]]` schedules (5 or 6 fields, UTC).
//!
//! Each trigger's next fire time is persisted, so a fire missed while the
//! host was down fires once on start. Each scheduled instant starts at most
//! one run, across restarts: the run's idempotency key is the slug, the
//! trigger and the instant.

use crate::Host;
use crate::store::Write;
use crate::types::now_ms;
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

/// One pass: for each trigger, fire if due (once, for the latest due
/// instant) and persist the next fire time.
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
            // A changed schedule starts afresh.
            let key = format!("{}#{i}#{}", wf.slug, trigger.schedule);
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
            // Due (perhaps long ago, while the host was down): one run for
            // that instant, whatever the number of instants missed.
            let input = trigger
                .input
                .clone()
                .unwrap_or_else(|| serde_json::json!({}));
            let run_key = format!("cron:{}:{i}:{next}", wf.slug);
            // A full queue delays the fire to a later tick (the instant
            // still fires once: its key).
            let bound = host.config().server.max_queued_runs;
            match host
                .start_admitted(&wf.slug, input, Some(run_key), bound)
                .await
            {
                Ok(s) if s.created => {
                    tracing::info!(workflow = %wf.slug, run = %s.id, at = next, "cron fired")
                }
                Ok(_) => {}
                Err(e) if e.retry_after().is_some() => {
                    // Passes by itself: the instant fires on a later tick.
                    tracing::warn!(workflow = %wf.slug, error = %e, "cron could not start a run yet");
                    continue;
                }
                Err(e) => {
                    tracing::error!(workflow = %wf.slug, error = %e, "cron could not start a run")
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
