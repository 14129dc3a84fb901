//! OTLP trace export (cargo feature `otlp`): the engine's `tracing` spans
//! go to an OpenTelemetry collector over OTLP/HTTP (protobuf) as well as
//! to stderr.
//!
//! The layers, in order: the log lines on stderr with the `--log` filter;
//! the OpenTelemetry layer with its own filter (`jetsaga=info`, so the
//! per-work-item spans are exported whatever `--log` says), feeding a
//! batch span processor on its own thread. Dropping the [`Guard`] flushes
//! what is still buffered.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use super::logging::{self, LogFormat};

/// What the exported spans are filtered by.
const EXPORT_FILTER: &str = "jetsaga=info";

/// Keeps the exporter running; dropping it flushes and stops it.
pub(super) struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(error) = self.0.shutdown() {
            eprintln!("warning: OTLP spans not flushed: {error}");
        }
    }
}

/// Logs to stderr with `filter`; with an `endpoint`, exports spans too.
pub(super) fn init(filter: EnvFilter, format: LogFormat, endpoint: Option<&str>) -> Option<Guard> {
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(logging::ansi()).boxed(),
        LogFormat::Json => fmt.json().with_ansi(false).boxed(),
    }
    .with_filter(filter);
    let provider = endpoint.and_then(|endpoint| match provider(endpoint) {
        Ok(provider) => Some(provider),
        Err(error) => {
            eprintln!("warning: OTLP export to {endpoint} is off: {error}");
            None
        }
    });
    let Some(provider) = provider else {
        let _ = tracing_subscriber::registry().with(fmt).try_init();
        return None;
    };
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("jetsaga")).with_filter(EnvFilter::new(EXPORT_FILTER));
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
    Some(Guard(provider))
}

fn provider(endpoint: &str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = SpanExporter::builder().with_http().with_endpoint(traces_url(endpoint)).build()?;
    let resource = Resource::builder().with_service_name("jetsaga").build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The traces URL of a collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`
/// is a base: the signal's path is appended).
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}
