//! Logs and traces.
//!
//! - **Logs** go to stderr, filtered by `RUST_LOG` (default: `info` for
//!   scribe, `warn` for its dependencies): human-readable lines, or with
//!   `SCRIBE_LOG_FORMAT=json` one JSON object a line ([`json`]), which
//!   names the meeting, its call path and its trace id on every line about
//!   a call.
//! - **Traces** are exported over OTLP/HTTP (protobuf) when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//!   is set, named by `OTEL_SERVICE_NAME` (default `scribe`) and
//!   `OTEL_RESOURCE_ATTRIBUTES`. One trace per meeting: its id is the
//!   meeting's id, so every instance that touches a call puts its spans in
//!   the same trace without passing anything along, and a log line's
//!   `trace_id` finds it. Unset, no exporter, no OpenTelemetry layer: the
//!   spans only the exporter wants are never made.

mod ids;
pub mod json;

use std::io::IsTerminal;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use scribe_actors::ids::MeetingId;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use ids::{meeting_context, root_span_id, trace_id};

/// The filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn,scribe=info,scribe_actors=info,tower_http=info";

/// How log lines are written (`SCRIBE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (ANSI colours on a terminal).
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Where traces go, read from OpenTelemetry's standard variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The full URL spans are posted to (`.../v1/traces`).
    pub traces_endpoint: String,
}

impl OtlpConfig {
    /// The exporter's settings from `lookup` (the environment in
    /// production): `None` when no endpoint is set, or when
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` says not to.
    /// Only OTLP over HTTP with protobuf is built in: another
    /// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` is an error, not a silent
    /// fallback.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Self>> {
        let set = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match set("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => anyhow::bail!(
                "OTEL_TRACES_EXPORTER={other} is not supported: scribe exports traces over OTLP only (otlp, or none)"
            ),
        }
        let traces_endpoint = match (
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            set("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => url,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = set(name).filter(|p| p != "http/protobuf") {
                anyhow::bail!(
                    "{name}={protocol} is not supported: scribe exports OTLP over HTTP with protobuf (http/protobuf; a collector's port 4318)"
                );
            }
        }
        url_is_http(&traces_endpoint)?;
        Ok(Some(Self { traces_endpoint }))
    }
}

fn url_is_http(url: &str) -> anyhow::Result<()> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(())
    } else {
        anyhow::bail!("the OTLP endpoint {url:?} is not an http:// or https:// URL")
    }
}

/// The process's telemetry; dropping it sends the spans still buffered.
#[must_use = "dropping it ends trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when traces are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends every span ended so far (tests; shutdown does it too).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("scribe: the last spans were not exported: {error}");
        }
    }
}

/// Installs the global subscriber (human-readable logs, traces when the
/// environment asks for them). Calling it twice is harmless: the second
/// call keeps the first subscriber, which lets tests call it freely.
pub fn init() -> anyhow::Result<Telemetry> {
    init_with(DEFAULT_FILTER, LogFormat::Text)
}

/// Like [`init`], with another filter when `RUST_LOG` is not set and the
/// log format given.
pub fn init_with(default_filter: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    let otlp = OtlpConfig::from_lookup(|name| std::env::var(name).ok())?;
    init_exporting(default_filter, format, otlp)
}

/// Like [`init_with`], exporting traces where `otlp` says (none: no
/// export) whatever the environment says.
pub fn init_exporting(
    default_filter: &str,
    format: LogFormat,
    otlp: Option<OtlpConfig>,
) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The spans only the exporter wants are never the logs' (even with
    // `RUST_LOG=trace`): without an exporter they are never made.
    let filter = match format!("{}=off", scribe_actors::trace::COMMITS).parse() {
        Ok(off) => filter.add_directive(off),
        Err(_) => filter,
    };
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let Some(otlp) = otlp else {
        let _ = tracing_subscriber::registry().with(logs).try_init();
        return Ok(Telemetry { provider: None });
    };
    let provider = tracer_provider(&otlp)?;
    let tracer = provider.tracer("scribe");
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_level(false)
        .with_target(false)
        .with_filter(
            Targets::new()
                .with_target(scribe_actors::trace::CALL, Level::INFO)
                .with_target(scribe_actors::trace::COMMITS, Level::INFO),
        );
    if tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_err()
    {
        // Another subscriber was installed first: it gets the spans.
        let _ = provider.shutdown();
        return Ok(Telemetry { provider: None });
    }
    scribe_actors::trace::install(join_meeting);
    ids::install(provider.clone());
    tracing::info!(endpoint = %otlp.traces_endpoint, "exporting traces over OTLP");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

fn tracer_provider(otlp: &OtlpConfig) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(otlp.traces_endpoint.clone())
        .build()
        .context("building the OTLP trace exporter")?;
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by the SDK's
    // own detectors; without a name the service is `scribe`.
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none()
        && !std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="))
    {
        resource = resource.with_service_name("scribe");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .with_id_generator(ids::MeetingIds)
        .build())
}

/// Gives a span the meeting's trace as its parent (the hook the actors'
/// [`scribe_actors::trace::join`] calls).
fn join_meeting(span: &tracing::Span, meeting: MeetingId) {
    let _ = span.set_parent(meeting_context(meeting));
}

/// Exports a meeting's root span (`meeting`, from its creation to its
/// call's end), once its call is finalized; every other span of the
/// meeting is its child. Nothing when traces are not exported.
pub fn meeting_ended(
    meeting: MeetingId,
    created_at: chrono::DateTime<chrono::Utc>,
    ended_at: chrono::DateTime<chrono::Utc>,
    attributes: Vec<opentelemetry::KeyValue>,
) {
    ids::export_root(meeting, created_at, ended_at, attributes);
}

#[cfg(test)]
mod tests;
