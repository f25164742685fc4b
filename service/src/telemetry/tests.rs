use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;

use super::{OtlpConfig, json, root_span_id, trace_id};
use scribe_actors::ids::MeetingId;

fn config(vars: &[(&str, &str)]) -> anyhow::Result<Option<OtlpConfig>> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    OtlpConfig::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn nothing_is_exported_without_an_endpoint_or_when_told_not_to() {
    assert_eq!(config(&[]).expect("valid"), None);
    assert_eq!(
        config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]).expect("valid"),
        None
    );
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
    assert_eq!(
        config(&[endpoint, ("OTEL_SDK_DISABLED", "true")]).expect("valid"),
        None
    );
    assert_eq!(
        config(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).expect("valid"),
        None
    );
}

#[test]
fn the_traces_path_is_added_to_the_base_endpoint_and_a_signal_endpoint_is_taken_as_is() {
    let base = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
        .expect("valid")
        .expect("on");
    assert_eq!(base.traces_endpoint, "http://collector:4318/v1/traces");
    let signal = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://traces.example/custom",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ])
    .expect("valid")
    .expect("on");
    assert_eq!(signal.traces_endpoint, "https://traces.example/custom");
}

#[test]
fn an_unsupported_protocol_exporter_or_url_is_an_error_that_names_it() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
    let grpc = config(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).expect_err("grpc");
    assert!(
        grpc.to_string()
            .contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        "{grpc}"
    );
    let zipkin = config(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]).expect_err("zipkin");
    assert!(zipkin.to_string().contains("zipkin"), "{zipkin}");
    let url = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).expect_err("url");
    assert!(url.to_string().contains("collector:4318"), "{url}");
}

#[test]
fn a_meetings_trace_and_root_span_come_from_its_id() {
    let meeting: MeetingId = "0b5e8f3c-1d2a-4e6f-9a7b-c8d9e0f1a2b3"
        .parse()
        .expect("uuid");
    assert_eq!(
        trace_id(meeting).to_string(),
        "0b5e8f3c1d2a4e6f9a7bc8d9e0f1a2b3"
    );
    assert_eq!(root_span_id(meeting).to_string(), "9a7bc8d9e0f1a2b3");
    let zero_low: MeetingId = "0b5e8f3c-1d2a-4e6f-0000-000000000000"
        .parse()
        .expect("uuid");
    assert_ne!(
        root_span_id(zero_low),
        opentelemetry::trace::SpanId::INVALID
    );
}

/// A writer the JSON lines are kept in.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lines").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_lines(emit: impl FnOnce()) -> Vec<Value> {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::JsonLines)
            .with_writer(move || writer.clone()),
    );
    tracing::subscriber::with_default(subscriber, emit);
    let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn json_lines_name_the_meeting_its_call_path_and_its_trace_on_every_line_about_a_call() {
    let meeting: MeetingId = "0b5e8f3c-1d2a-4e6f-9a7b-c8d9e0f1a2b3"
        .parse()
        .expect("uuid");
    let lines = json_lines(|| {
        tracing::info!(port = 8080, "not about a call");
        let call = tracing::info_span!(target: "scribe::log", "call", meeting = %meeting, call.path = "sip", voice.api = "live");
        call.in_scope(|| {
            tracing::warn!(attempt = 2, "socket ended");
            let open = tracing::info_span!(target: "scribe::call", "session.open", meeting.id = %meeting, reattach = true);
            open.in_scope(|| tracing::info!("attached"));
        });
        tracing::info!(%meeting, "call ended");
    });
    assert_eq!(lines.len(), 4, "{lines:?}");
    let plain = &lines[0];
    assert_eq!(plain["message"], "not about a call");
    assert_eq!(plain["level"], "INFO");
    assert_eq!(plain["fields"]["port"], 8080);
    assert!(plain.get("meeting_id").is_none() && plain.get("trace_id").is_none());
    for line in &lines[1..] {
        assert_eq!(line["meeting_id"], meeting.to_string(), "{line}");
        assert_eq!(
            line["trace_id"], "0b5e8f3c1d2a4e6f9a7bc8d9e0f1a2b3",
            "{line}"
        );
    }
    assert_eq!(lines[1]["call_path"], "sip");
    assert_eq!(lines[1]["voice_api"], "live");
    assert_eq!(lines[1]["fields"]["attempt"], 2);
    assert_eq!(lines[1]["spans"], serde_json::json!(["call"]));
    assert_eq!(lines[2]["call_path"], "sip");
    assert_eq!(
        lines[2]["spans"],
        serde_json::json!(["call", "session.open"])
    );
    assert_eq!(lines[3]["message"], "call ended");
    assert!(
        lines[3].get("fields").is_none(),
        "the meeting is not repeated: {}",
        lines[3]
    );
    assert_eq!(
        lines[3]["call_path"], "sip",
        "a line naming only its meeting gets the path its call's lines named"
    );
    assert_eq!(lines[3]["voice_api"], "live");
}
