//! Logs and traces of a server process: `tracing` events to stderr (filter
//! `log`), and — when `otlp_endpoint` is set — spans exported over OTLP/gRPC
//! (filter `trace_filter`), with the W3C trace context carried across RPCs
//! so one trace follows a request, an election or a migration from node to
//! node.

use std::collections::HashMap;

use anyhow::{Context, Result};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use raftkv_core::trace::{Propagator, TRACEPARENT};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Longest `traceparent` accepted from the network (a valid one has 55 bytes).
const MAX_TRACEPARENT: usize = 256;

/// The W3C trace-context propagator, over the OpenTelemetry layer's spans.
#[derive(Debug, Default)]
pub struct OtelPropagator(TraceContextPropagator);

impl Propagator for OtelPropagator {
    fn inject(&self, span: &tracing::Span) -> Option<String> {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        self.0.inject_context(&cx, &mut carrier);
        carrier.remove(TRACEPARENT)
    }

    fn extract(&self, span: &tracing::Span, traceparent: &str) {
        if traceparent.len() > MAX_TRACEPARENT {
            return;
        }
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
        let cx = self.0.extract(&carrier);
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
}

/// The layer that turns `tracing` spans passing `filter` into OpenTelemetry
/// spans of `provider`.
pub fn otel_layer<S>(provider: &SdkTracerProvider, filter: &str) -> Result<impl Layer<S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("configuration key `trace_filter` = {filter:?}"))?;
    Ok(tracing_opentelemetry::layer().with_tracer(provider.tracer("raftkv")).with_filter(filter))
}

/// The process's telemetry; [`Telemetry::shutdown`] flushes what is buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Install logging to stderr and, if `otlp_endpoint` is not empty, span
    /// export to it. Call from inside the tokio runtime (the exporter's
    /// connection lives on it).
    pub fn init(log: &str, otlp_endpoint: &str, trace_filter: &str) -> Result<Self> {
        let log_filter = EnvFilter::try_new(log).with_context(|| format!("configuration key `log` = {log:?}"))?;
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(log_filter);
        if otlp_endpoint.is_empty() {
            tracing_subscriber::registry().with(fmt).try_init().ok();
            return Ok(Self { provider: None });
        }
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otlp_endpoint)
            .build()
            .with_context(|| format!("OTLP exporter for {otlp_endpoint}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("raftkv-server").build())
            .build();
        let otel = otel_layer(&provider, trace_filter)?;
        tracing_subscriber::registry().with(fmt).with(otel).try_init().ok();
        raftkv_core::trace::set_propagator(OtelPropagator::default());
        Ok(Self { provider: Some(provider) })
    }

    /// Export what is buffered and stop the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                eprintln!("raftkv-server: flushing traces: {e}");
            }
        }
    }
}
