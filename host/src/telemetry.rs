//! Traces: OpenTelemetry over OTLP/HTTP, off unless configured
//! (`[telemetry] otlp_endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT`).
//!
//! A run is one trace that outlives any one process: its trace context
//! (a W3C `traceparent`) is stored with the run when it is queued — the
//! context of the HTTP request that started it (itself the child of a
//! `traceparent` the client sent), of the parent run's `workflows.start`
//! call for a child, or a new trace for a cron fire. Every execution of
//! the run is a `run` span under that context, its host calls spans under
//! the execution, and each park a span of its own; an outbound HTTP call
//! carries the `traceparent` of its span.
//!
//! Spans are `tracing` spans with the target [`TARGET`], bridged by
//! `tracing-opentelemetry`; the log's filter never sees them unless
//! `RUNWAY_LOG` asks for that target. With telemetry off, no span is made.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span exported over OTLP.
pub const TARGET: &str = "runway_otel";

static ON: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Keeps the exporter; dropping it flushes the spans not yet sent.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        ON.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            eprintln!("runway: flushing traces: {e}");
        }
    }
}

/// The exporter for the collector at `endpoint` (its base URL;
/// `/v1/traces` is added unless given), and the layer that feeds it the
/// spans of [`TARGET`].
pub fn layer<S>(endpoint: &str) -> Result<(impl tracing_subscriber::Layer<S>, Telemetry), String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry_otlp::WithExportConfig;
    use tracing_subscriber::Layer;
    let base = endpoint.trim().trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| format!("telemetry: the OTLP endpoint {endpoint:?}: {e}"))?;
    let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_scheduled_delay(std::time::Duration::from_millis(500))
                .with_max_queue_size(65_536)
                .with_max_export_batch_size(4096)
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("runway")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("runway");
    let filter =
        tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::TRACE);
    // Only the attributes the spans declare: no source location, thread or
    // busy/idle timings on every span (they cost more than the span).
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_filter(filter);
    ON.store(true, Ordering::Relaxed);
    Ok((layer, Telemetry { provider }))
}

/// The `traceparent` of the current span, to store with a run queued now.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = Span::current().context();
    let sc = cx.span().span_context().clone();
    // The W3C format, written directly (no propagator, no map).
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The context a stored or received `traceparent` names (none if absent or
/// malformed: the span then starts a trace of its own).
fn context_of(traceparent: Option<&str>) -> opentelemetry::Context {
    let mut carrier = HashMap::new();
    if let Some(t) = traceparent {
        carrier.insert("traceparent".to_owned(), t.to_owned());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// Names a request's span after its method and path, and makes it the
/// child of the `traceparent` the request carried.
pub fn adopt_request<B>(span: &Span, req: &axum::http::Request<B>) {
    if !enabled() {
        return;
    }
    span.record(
        "otel.name",
        format!("{} {}", req.method(), req.uri().path()),
    );
    let parent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    if parent.is_some() {
        let _ = span.set_parent(context_of(parent));
    }
}

/// Adds the current span's `traceparent` to an outbound request.
pub fn inject(headers: &mut reqwest::header::HeaderMap) {
    if let Some(t) = current_traceparent()
        && let Ok(v) = reqwest::header::HeaderValue::from_str(&t)
    {
        headers.insert("traceparent", v);
    }
}

/// The span of one execution of a run, under the run's stored context.
pub fn run_span(run: &crate::types::RunRecord) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        "run",
        otel.name = %format!("run {}", run.workflow),
        runway.workflow = %run.workflow,
        runway.version = run.version,
        runway.run_id = %run.id,
        runway.replay = run.started_at.is_some(),
    );
    let _ = span.set_parent(context_of(run.trace.as_deref()));
    span
}

/// The span of a host call (under the current execution's span).
pub fn call_span(call: &'static str) -> Span {
    if !enabled() {
        return Span::none();
    }
    let name = call.strip_prefix("runway:workflow/").unwrap_or(call);
    tracing::info_span!(target: TARGET, "call", otel.name = name, runway.call = call)
}

/// The span of a park: under the current span (a warm park, inside its
/// execution), or under the run's stored context (an evicted run waiting
/// for its wake).
pub fn park_span(wait: &crate::types::Wait, run: Option<&crate::types::RunRecord>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let kind = wait.status().as_str();
    let span = tracing::info_span!(target: TARGET, "park", otel.name = %format!("park {kind}"), runway.wait = kind);
    if let Some(run) = run {
        let _ = span.set_parent(context_of(run.trace.as_deref()));
    }
    span
}

/// Sets an attribute on the current span (a model call's `gen_ai.*`).
pub fn attribute(key: &'static str, value: impl Into<opentelemetry::Value>) {
    if enabled() {
        Span::current().set_attribute(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_traceparent_is_the_parent_of_the_runs_spans() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_of(Some(t));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(!context_of(Some("garbage")).span().span_context().is_valid());
        assert!(!context_of(None).span().span_context().is_valid());
        // Off: nothing is made, nothing stored.
        assert!(current_traceparent().is_none());
        assert!(run_span_is_none());
    }

    fn run_span_is_none() -> bool {
        call_span("runway:workflow/http.request").is_none()
    }
}
