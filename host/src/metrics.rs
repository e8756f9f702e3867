//! Prometheus metrics. The host records through the `metrics` facade, a
//! no-op until `runway serve` installs the exporter, so embedded runs pay
//! nothing for it.

use crate::types::RunRecord;

/// A run was queued.
pub(crate) fn run_started(workflow: &str) {
    metrics::counter!("runway_runs_started_total", "workflow" => workflow.to_owned()).increment(1);
}

/// A run ended.
pub(crate) fn run_finished(run: &RunRecord) {
    let workflow = run.workflow.clone();
    metrics::counter!(
        "runway_runs_finished_total",
        "workflow" => workflow.clone(),
        "status" => run.status.as_str()
    )
    .increment(1);
    if let (Some(a), Some(b)) = (run.started_at, run.finished_at) {
        metrics::histogram!("runway_run_duration_seconds", "workflow" => workflow)
            .record((b - a).as_seconds_f64().max(0.0));
    }
    metrics::counter!("runway_fuel_consumed_total").increment(run.usage.fuel);
}

/// A call across the sandbox executed (not answered from the journal).
pub(crate) fn host_call(call: &'static str) {
    let (interface, _) = call.rsplit_once('.').unwrap_or((call, ""));
    metrics::counter!("runway_host_calls_total", "interface" => interface).increment(1);
}

/// A webhook delivery: `outcome` is `verified` or the rejection reason.
pub(crate) fn webhook(slug: &str, outcome: &'static str) {
    metrics::counter!("runway_webhooks_received_total", "workflow" => slug.to_owned()).increment(1);
    if outcome == "verified" {
        metrics::counter!("runway_webhooks_verified_total", "workflow" => slug.to_owned())
            .increment(1);
    } else {
        metrics::counter!(
            "runway_webhooks_rejected_total",
            "workflow" => slug.to_owned(),
            "reason" => outcome
        )
        .increment(1);
    }
}

/// An HTTP request was answered.
pub(crate) fn http_request(route: String, method: &str, status: u16) {
    metrics::counter!(
        "runway_http_requests_total",
        "route" => route,
        "method" => method.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// A run stopped for want of host capacity (memory, instances), to resume
/// by replay.
pub(crate) fn capacity_wait() {
    metrics::counter!("runway_capacity_waits_total").increment(1);
}

/// The store entered (`true`) or left the degraded state.
pub(crate) fn store_degraded(degraded: bool) {
    metrics::gauge!("runway_store_degraded").set(f64::from(u8::from(degraded)));
    if degraded {
        metrics::counter!("runway_store_faults_total").increment(1);
    }
}

/// A run stopped because the store or the disk refused it, to resume by
/// replay.
pub(crate) fn storage_wait() {
    metrics::counter!("runway_storage_waits_total").increment(1);
}

/// An outbound HTTP request: `outcome` is the status class (`2xx`) or the
/// failure code (`EGRESS_DENIED`, ...).
pub(crate) fn http_call(host: &str, outcome: &str) {
    metrics::counter!(
        "runway_http_requests_total",
        "host" => host.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
    if outcome == "EGRESS_DENIED" {
        metrics::counter!("runway_egress_denied_total", "host" => host.to_owned()).increment(1);
    }
}

/// Gauges read at scrape time.
pub(crate) fn gauges(warm: usize, queued: usize, live: usize, run_memory: u64) {
    metrics::gauge!("runway_run_memory_bytes").set(run_memory as f64);
    metrics::gauge!("runway_warm_instances").set(warm as f64);
    metrics::gauge!("runway_queue_depth").set(queued as f64);
    metrics::gauge!("runway_live_runs").set(live as f64);
}

/// A model call the host made: its outcome, and its tokens and cost when
/// the provider answered.
pub(crate) fn model_call(provider: &str, usage: Option<&crate::types::ModelUsage>) {
    let outcome = if usage.is_some() {
        "answered"
    } else {
        "failed"
    };
    metrics::counter!("runway_model_calls_total", "provider" => provider.to_owned(), "outcome" => outcome)
        .increment(1);
    if let Some(u) = usage {
        metrics::counter!("runway_model_tokens_total", "provider" => provider.to_owned(), "direction" => "input")
            .increment(u.input_tokens);
        metrics::counter!("runway_model_tokens_total", "provider" => provider.to_owned(), "direction" => "output")
            .increment(u.output_tokens);
        metrics::counter!("runway_model_cost_nano_usd_total", "provider" => provider.to_owned())
            .increment(u.cost_usd.0);
    }
}
