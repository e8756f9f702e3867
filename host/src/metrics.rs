//! Prometheus metrics. The host records through the `metrics` facade, a
//! no-op until `runway serve` installs the exporter, so embedded runs pay
//! nothing for it.

use crate::types::RunRecord;

/// A run was queued.
pub(crate) fn run_started(workflow: &str) {
    metrics::counter!("runway_runs_started_total", "workflow" => workflow.to_owned()).increment(1);
}

/// Every metric with its help text (the `# HELP` line), and the buckets of
/// the histograms. Called once, as the exporter is installed.
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("runway_build_info", "1, labelled with the runway version");
    describe_counter!("runway_runs_started_total", "Runs queued, by workflow");
    describe_counter!(
        "runway_runs_finished_total",
        "Runs ended, by workflow, status and error code (none for completed runs)"
    );
    describe_histogram!(
        "runway_run_duration_seconds",
        metrics::Unit::Seconds,
        "From a run's first start to its end, by workflow"
    );
    describe_counter!(
        "runway_fuel_consumed_total",
        "Fuel the runs that ended consumed"
    );
    describe_counter!(
        "runway_host_calls_total",
        "Calls across the sandbox that executed (not answered from the journal), by interface"
    );
    describe_histogram!(
        "runway_host_call_duration_seconds",
        metrics::Unit::Seconds,
        "How long a host call that executed took, by interface"
    );
    describe_counter!(
        "runway_webhooks_received_total",
        "Webhook deliveries, by workflow"
    );
    describe_counter!(
        "runway_webhooks_verified_total",
        "Deliveries whose signature verified"
    );
    describe_counter!(
        "runway_webhooks_rejected_total",
        "Deliveries refused, by reason"
    );
    describe_counter!(
        "runway_http_requests_total",
        "API requests answered, by route template, method and status"
    );
    describe_counter!(
        "runway_capacity_waits_total",
        "Runs stopped for want of host capacity (memory, instances), to resume by replay"
    );
    describe_counter!(
        "runway_storage_waits_total",
        "Runs stopped because the store or the disk refused them, to resume by replay"
    );
    describe_gauge!(
        "runway_store_degraded",
        "1 while the store takes no writes (a full or failing disk)"
    );
    describe_counter!(
        "runway_store_faults_total",
        "Times the store became degraded"
    );
    describe_gauge!(
        "runway_run_memory_bytes",
        "Linear memory of the runs in memory"
    );
    describe_gauge!(
        "runway_warm_instances",
        "Parked runs holding a warm instance"
    );
    describe_gauge!("runway_queue_depth", "Runs waiting for an execution slot");
    describe_gauge!(
        "runway_live_runs",
        "Runs this host drives (executing or parked)"
    );
    describe_counter!(
        "runway_model_calls_total",
        "Model calls, by provider and outcome"
    );
    describe_counter!(
        "runway_model_tokens_total",
        "Model tokens, by provider and direction"
    );
    describe_counter!(
        "runway_model_cost_nano_usd_total",
        "Model cost in nano-dollars, by provider"
    );
    describe_counter!(
        "runway_egress_requests_total",
        "Outbound HTTP requests of workflows, by host and outcome (status class or failure code)"
    );
    describe_counter!(
        "runway_egress_denied_total",
        "Outbound requests the egress policy refused, by host"
    );
    describe_counter!(
        "runway_runs_purged_total",
        "Ended runs deleted by retention (children included)"
    );
    metrics::gauge!("runway_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Histogram buckets, in seconds: from a fast host call to a long run.
pub(crate) const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A host call that executed took `d`.
pub(crate) fn host_call_duration(call: &'static str, d: std::time::Duration) {
    let (interface, _) = call.rsplit_once('.').unwrap_or((call, ""));
    metrics::histogram!("runway_host_call_duration_seconds", "interface" => interface)
        .record(d.as_secs_f64());
}

/// A run ended.
pub(crate) fn run_finished(run: &RunRecord) {
    let workflow = run.workflow.clone();
    let code = run.error.as_ref().map_or("", |e| e.code.as_str());
    metrics::counter!(
        "runway_runs_finished_total",
        "workflow" => workflow.clone(),
        "status" => run.status.as_str(),
        "code" => code
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

/// Retention deleted `runs` ended runs.
pub(crate) fn runs_purged(runs: u64) {
    metrics::counter!("runway_runs_purged_total").increment(runs);
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
        "runway_egress_requests_total",
        "host" => host.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
    if outcome == "EGRESS_DENIED" {
        metrics::counter!("runway_egress_denied_total", "host" => host.to_owned()).increment(1);
    }
}

/// An MCP tool call: by server and outcome (`ok` or the failure code).
pub(crate) fn mcp_call(server: &str, outcome: &str) {
    metrics::counter!(
        "runway_mcp_calls_total",
        "server" => server.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
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
