//! Traces over OTLP, to an OTLP/HTTP receiver in this process that decodes
//! what it gets with OpenTelemetry's own message types:
//! - as an operator turns them on: the real `scribe` binary (its demo, one
//!   call on each call path on OpenAI Realtime: Stream, SIP, WebRTC) with
//!   OpenTelemetry's standard variables set;
//! - two calls on GPT-Live, the application in this process exporting to
//!   the receiver: a session scribe owns, and a browser's call (WebRTC)
//!   whose sideband is dropped and attached again.
//!
//! Each meeting must be one trace (its id the meeting's id) whose spans all
//! hang from its root: the request that started the call, the session's
//! open, the batches' commits, the finalize, the analysis and its model
//! requests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use scribe_actors::domain::VoiceApi;
use scribe_sim::carried::{CallsConfig, EndedAnswer, StartOn};
use scribe_sim::realtime::SimRealtimeConfig;
use scribe_sim::script::{Script, Step, Transcription, Turn};

#[path = "support/harness.rs"]
mod helpers;
#[path = "support/running.rs"]
mod running;

/// A span as received, with the resource it came from.
#[derive(Debug, Clone)]
struct Received {
    resource: BTreeMap<String, String>,
    span: Span,
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

async fn traces(State(spans): State<Spans>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut kept = spans.lock().expect("spans");
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                kept.push(Received {
                    resource: resource.clone(),
                    span,
                });
            }
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

/// An OTLP/HTTP receiver on a free port: `POST /v1/traces`.
async fn receiver() -> (SocketAddr, Spans) {
    let spans = Spans::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("receiver binds");
    let address = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, spans)
}

/// Runs `scribe demo` with the receiver as its OTLP endpoint; it must
/// succeed (every call complete, nothing lost).
async fn demo(receiver: SocketAddr, args: &[&str]) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_scribe"))
        .current_dir(dir.path())
        .args([
            "demo",
            "--calls",
            "1",
            "--turns",
            "2",
            "--pace",
            "0",
            "--serve=false",
        ])
        .args(args)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver}"))
        .env("OTEL_SERVICE_NAME", "scribe-under-test")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=otlp-test,team=voice",
        )
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .expect("the demo ends within 3 minutes")
        .expect("the demo runs");
    assert!(
        output.status.success(),
        "scribe demo {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What every meeting's trace must hold, by the call path of its root.
fn expected(path: &str) -> Vec<&'static str> {
    let request = match path {
        "stream" => "stream.webhook",
        "sip" => "openai.webhook",
        "webrtc" => "call.request",
        other => panic!("unexpected call path {other}"),
    };
    vec![
        request,
        "session.open",
        "transcript.commit",
        "call.finalize",
        "analysis",
        "model.request",
    ]
}

#[tokio::test]
async fn each_call_path_exports_one_trace_per_meeting_with_every_step_under_its_root() {
    let (address, spans) = receiver().await;
    demo(address, &["--path", "all"]).await;
    let spans = spans.lock().expect("spans").clone();
    assert!(!spans.is_empty(), "no span was exported");
    for received in &spans {
        let resource = &received.resource;
        assert_eq!(
            resource.get("service.name").map(String::as_str),
            Some("scribe-under-test")
        );
        assert_eq!(
            resource.get("deployment.environment").map(String::as_str),
            Some("otlp-test")
        );
        assert_eq!(resource.get("team").map(String::as_str), Some("voice"));
    }
    let paths = check_traces(&spans);
    assert_eq!(
        paths,
        [
            ("sip", "realtime"),
            ("stream", "realtime"),
            ("webrtc", "realtime")
        ]
        .map(|(p, a)| (p.to_owned(), a.to_owned())),
        "one meeting root per call"
    );
}

// Two workers: the flush below blocks one until the receiver, on the
// other, has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpt_live_calls_are_one_trace_each_and_a_re_attach_is_a_session_open() {
    let (address, spans) = receiver().await;
    let otlp = scribe::telemetry::OtlpConfig {
        traces_endpoint: format!("http://{address}/v1/traces"),
    };
    let telemetry =
        scribe::telemetry::init_exporting("warn", scribe::telemetry::LogFormat::Text, Some(otlp))
            .expect("telemetry starts");
    assert!(
        telemetry.exporting(),
        "this test's subscriber is the process's"
    );
    let db = helpers::TestDb::create(helpers::Backend::Sqlite).await;
    let app = helpers::spawn_app_with(&db.url, |s| {
        helpers::live_settings(s, "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime");
        s.voice_api = VoiceApi::Live;
        s.openai_api_key = Some(OPENAI_KEY.into());
    })
    .await;
    let script = Script {
        steps: vec![
            Step::Turn(Turn::numbered("live", 1, Transcription::Before)),
            Step::Turn(Turn::numbered("live", 2, Transcription::Before)),
            Step::Mark("spoken".into()),
            Step::Hold,
        ],
    };
    let lines = script.expected_live_lines().len();
    app.llm.calls().configure(CallsConfig {
        realtime: SimRealtimeConfig::scripted(move |_| script.clone()),
        start: StartOn::Attach,
        ended: EndedAnswer::NotFound,
        api_key: Some(OPENAI_KEY.into()),
    });
    let meeting = running::new_meeting(&app).await;
    let call = running::start_call(&app, &meeting).await;
    assert!(
        app.llm
            .calls()
            .wait_for_mark("spoken", running::DEADLINE)
            .await
    );
    // The last turn's two lines are sealed by the call's end (nobody
    // spoke after it).
    running::wait_for_lines(&app.store, &meeting, lines - 2).await;
    running::end_call(&app, &call).await;
    running::wait_for_status(
        &app.store,
        &meeting,
        scribe_actors::domain::MeetingStatus::Completed,
    )
    .await;
    let browser = live_browser_call_re_attached(&app).await;
    // The analysis span ends as its task ends, just after the status.
    let trace = running::eventually("the analysis spans are exported", || {
        tokio::task::block_in_place(|| telemetry.flush());
        let spans = spans.lock().expect("spans").clone();
        let done = spans.iter().filter(|r| r.span.name == "analysis").count() == 2;
        async move { done.then_some(spans) }
    })
    .await;
    let paths = check_traces(&trace);
    assert_eq!(
        paths,
        [("stream", "live"), ("webrtc", "live")].map(|(p, a)| (p.to_owned(), a.to_owned()))
    );
    // The browser call's sideband was dropped and attached again: its
    // trace has its first open and the re-attaches after it, in the order
    // they were made.
    let mut opens: Vec<&Span> = trace
        .iter()
        .map(|r| &r.span)
        .filter(|s| s.name == "session.open")
        .filter(|s| attributes(&s.attributes)["meeting.id"] == browser)
        .collect();
    opens.sort_by_key(|s| s.start_time_unix_nano);
    let reattaches: Vec<String> = opens
        .iter()
        .map(|s| attributes(&s.attributes)["reattach"].clone())
        .collect();
    // Every attempt is a `session.open` (one made while OpenAI refused
    // attaches fails): the first attaches, every later one re-attaches.
    assert!(reattaches.len() >= 2, "{reattaches:?}");
    assert_eq!(reattaches[0], "false", "{reattaches:?}");
    assert!(
        reattaches[1..].iter().all(|r| r == "true"),
        "{reattaches:?}"
    );
    app.stop().await.expect("stops");
    db.destroy().await;
}

const OPENAI_KEY: &str = "sk-sim-otlp";

/// A browser's call on GPT-Live (WebRTC) whose sideband is dropped after
/// the first turn and attached again, then hung up; returns its meeting.
async fn live_browser_call_re_attached(app: &helpers::TestApp) -> String {
    let calls = app.llm.calls().clone();
    calls.configure(CallsConfig {
        realtime: SimRealtimeConfig::scripted(|_| running::away_script()),
        start: StartOn::Attach,
        ended: EndedAnswer::NotFound,
        api_key: Some(OPENAI_KEY.into()),
    });
    let meeting = running::new_meeting(app).await;
    let offer = scribe_sim::carried::media::offer()
        .await
        .expect("an offer")
        .0;
    let answer = app
        .client
        .post(app.url(&format!("/api/meetings/{meeting}/call")))
        .header("content-type", "application/sdp")
        .bearer_auth(helpers::API_TOKEN)
        .body(offer)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
    let record = helpers::expect_json(
        app.get_authed(&format!("/api/meetings/{meeting}")).await,
        reqwest::StatusCode::OK,
    )
    .await;
    let call_id = record["provider_call_id"]
        .as_str()
        .expect("call id")
        .to_owned();
    let call = calls.call(&call_id).expect("the session at OpenAI");
    assert!(calls.wait_for_mark("one", running::DEADLINE).await);
    running::actor_where(app, &meeting, "turn 1 read", |a| a["unflushed"] == 12).await;
    calls.block_attaches(true);
    assert!(calls.drop_sidebands(&call_id));
    calls.open_gate("two");
    assert!(calls.wait_for_mark("two", running::DEADLINE).await);
    calls.block_attaches(false);
    running::eventually("scribe to attach again", || async {
        (call.attaches.load(std::sync::atomic::Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    calls.open_gate("three");
    assert!(calls.wait_for_mark("three", running::DEADLINE).await);
    let hung = running::hang_up(app, &meeting).await;
    assert_eq!(hung.status(), reqwest::StatusCode::ACCEPTED);
    running::wait_for_status(
        &app.store,
        &meeting,
        scribe_actors::domain::MeetingStatus::Completed,
    )
    .await;
    meeting
}

/// Checks every meeting's trace in `spans`; returns the call path and
/// voice API of each meeting's root, sorted.
fn check_traces(spans: &[Received]) -> Vec<(String, String)> {
    let mut by_trace: BTreeMap<Vec<u8>, Vec<&Span>> = BTreeMap::new();
    for received in spans {
        by_trace
            .entry(received.span.trace_id.clone())
            .or_default()
            .push(&received.span);
    }
    let roots: Vec<&Span> = spans
        .iter()
        .map(|r| &r.span)
        .filter(|s| s.name == "meeting")
        .collect();
    let mut paths: Vec<(String, String)> = roots
        .iter()
        .map(|root| {
            let attrs = attributes(&root.attributes);
            (attrs["call.path"].clone(), attrs["voice.api"].clone())
        })
        .collect();
    paths.sort();
    for root in roots {
        let attrs = attributes(&root.attributes);
        let meeting: uuid::Uuid = attrs["meeting.id"].parse().expect("meeting.id is a UUID");
        assert_eq!(
            root.trace_id,
            meeting.as_bytes(),
            "the trace id is the meeting id"
        );
        assert!(root.parent_span_id.is_empty(), "the root has no parent");
        let trace = &by_trace[&root.trace_id];
        let ids: BTreeSet<&[u8]> = trace.iter().map(|s| s.span_id.as_slice()).collect();
        assert_eq!(ids.len(), trace.len(), "span ids are unique in a trace");
        let names: BTreeSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
        for name in expected(&attrs["call.path"]) {
            assert!(
                names.contains(name),
                "the {} trace of meeting {meeting} has no {name} span: {names:?}",
                attrs["call.path"]
            );
        }
        let by_id: BTreeMap<&[u8], &Span> =
            trace.iter().map(|s| (s.span_id.as_slice(), *s)).collect();
        for span in trace.iter().filter(|s| s.name != "meeting") {
            let parent = by_id
                .get(span.parent_span_id.as_slice())
                .unwrap_or_else(|| {
                    panic!(
                        "{} of meeting {meeting} hangs from no span of its trace",
                        span.name
                    )
                });
            match span.name.as_str() {
                // A model request is its analysis's (or notes update's) child.
                "model.request" => assert!(
                    ["analysis", "notes.update"].contains(&parent.name.as_str()),
                    "model.request under {}",
                    parent.name
                ),
                _ => {
                    assert_eq!(parent.name, "meeting", "{} hangs from the root", span.name);
                    let own = attributes(&span.attributes);
                    assert_eq!(
                        own.get("meeting.id"),
                        Some(&meeting.to_string()),
                        "{} names its meeting",
                        span.name
                    );
                }
            }
            assert!(
                span.end_time_unix_nano >= span.start_time_unix_nano,
                "{} ends after it starts",
                span.name
            );
        }
        let opens: Vec<BTreeMap<String, String>> = trace
            .iter()
            .filter(|s| s.name == "session.open")
            .map(|s| attributes(&s.attributes))
            .collect();
        assert!(
            opens
                .iter()
                .all(|o| o["call.path"] == attrs["call.path"]
                    && o["voice.api"] == attrs["voice.api"]),
            "the session opens name the call's path: {opens:?}"
        );
        let lines: i64 = trace
            .iter()
            .filter(|s| s.name == "transcript.commit")
            .map(|s| {
                attributes(&s.attributes)["lines"]
                    .parse::<i64>()
                    .expect("lines")
            })
            .sum();
        assert_eq!(
            lines.to_string(),
            attrs["lines"],
            "the commits of meeting {meeting} add up to its transcript"
        );
    }
    paths
}
