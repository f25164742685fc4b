//! `POST /api/webhook`: every bad input gets its exact code and changes nothing.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use scribe::stream::signature::sign;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::webhook::SimCall;
use serde_json::{Value, json};

use crate::helpers::{STREAM_SECRET, each_backend, expect_error, expect_json, spawn_app};
use crate::running::{
    driver, force_active, live_app, new_meeting, sim, status_of, wait_until_ended,
};
use scribe_sim::script::Script;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

#[tokio::test]
async fn bad_webhooks_get_their_exact_code_and_change_nothing() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = SimCall::new(&meeting);
        let hooks = driver(&app);
        let body = call.event("call.session_started").to_string();
        let post = |body: Vec<u8>, signature: Option<String>| {
            let mut request = app
                .client
                .post(app.url("/api/webhook"))
                .header("content-type", "application/json")
                .header("x-webhook-id", uuid::Uuid::new_v4().to_string());
            // Stream says a compressed body is gzip in its header.
            if body.starts_with(&[0x1f, 0x8b]) {
                request = request.header("content-encoding", "gzip");
            }
            let mut request = request.body(body);
            if let Some(signature) = signature {
                request = request.header("x-signature", signature);
            }
            request.send()
        };
        let signed = |b: &[u8]| Some(sign(STREAM_SECRET.as_bytes(), b));

        let missing = post(body.clone().into_bytes(), None).await.expect("sent");
        expect_error(missing, StatusCode::UNAUTHORIZED, "missing X-Signature").await;
        let wrong_key = post(body.clone().into_bytes(), Some(sign(b"other-secret", body.as_bytes()))).await.expect("sent");
        expect_error(wrong_key, StatusCode::UNAUTHORIZED, "invalid webhook signature").await;
        let garbage_sig = post(body.clone().into_bytes(), Some("zz-not-hex".into())).await.expect("sent");
        expect_error(garbage_sig, StatusCode::UNAUTHORIZED, "invalid webhook signature").await;
        // Re-serialized JSON never verifies: the signature is over the raw bytes.
        let reserialized = serde_json::to_string_pretty(&call.event("call.session_started")).expect("json");
        let tampered = post(reserialized.into_bytes(), signed(body.as_bytes())).await.expect("sent");
        expect_error(tampered, StatusCode::UNAUTHORIZED, "invalid webhook signature").await;
        let not_json = b"{not json".to_vec();
        let unparsable = post(not_json.clone(), signed(&not_json)).await.expect("sent");
        expect_error(unparsable, StatusCode::BAD_REQUEST, "not a Stream event").await;
        let no_type = br#"{"call_cid":"default:x"}"#.to_vec();
        let typeless = post(no_type.clone(), signed(&no_type)).await.expect("sent");
        expect_error(typeless, StatusCode::BAD_REQUEST, "missing field `type`").await;
        let huge = vec![b' '; 2 * 1024 * 1024];
        let too_big = post(huge.clone(), signed(&huge)).await.expect("sent");
        expect_error(too_big, StatusCode::PAYLOAD_TOO_LARGE, "length limit").await;
        // A gzip bomb: small on the wire, over the limit inflated.
        let mut inflated = body.clone().into_bytes();
        inflated.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
        let bomb = post(gzip(&inflated), signed(&inflated)).await.expect("sent");
        expect_error(bomb, StatusCode::PAYLOAD_TOO_LARGE, "inflated webhook body exceeds").await;
        let broken_gzip = vec![0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02];
        let broken = post(broken_gzip, signed(b"")).await.expect("sent");
        expect_error(broken, StatusCode::BAD_REQUEST, "gzip body does not inflate").await;

        // Routing: unknown meetings are 404; a meeting id that cannot be
        // one of ours is unroutable (200: Stream retries anything else);
        // other events 200 and ignored.
        let stranger = SimCall::new(&uuid::Uuid::new_v4().to_string());
        let unknown = hooks.session_started(&stranger).await.expect("sent");
        assert_eq!(expect_json(unknown, StatusCode::NOT_FOUND).await, json!({ "error": "Meeting not found" }));
        for kind in ["call.session_started", "call.session_ended"] {
            let malformed = SimCall::new("not-a-meeting-id").event(kind).to_string().into_bytes();
            let answer = hooks.post(&malformed, &uuid::Uuid::new_v4().to_string()).await.expect("sent");
            assert_eq!(expect_json(answer, StatusCode::OK).await, json!({ "status": "unroutable" }), "{kind}");
        }
        for (event, status) in [
            // A participant event is acted on (issue 24), but one without
            // its session or participant names nobody.
            (json!({ "type": "call.session_participant_joined", "created_at": 1_764_324_000_000_000_000_i64, "call_cid": call.cid() }), "unroutable"),
            (json!({ "type": "call.recording_ready", "created_at": "2026-11-28T10:00:00Z", "call_cid": call.cid(), "extra": [1] }), "ignored"),
            (
                json!({ "type": "call.session_started", "created_at": "2026-11-28T10:00:00Z", "call_cid": "default:x", "session_id": "s", "call": { "id": "x", "custom": {} } }),
                "unroutable",
            ),
        ] {
            let bytes = event.to_string().into_bytes();
            let answer = hooks.post(&bytes, &uuid::Uuid::new_v4().to_string()).await.expect("sent");
            assert_eq!(expect_json(answer, StatusCode::OK).await, json!({ "status": status }));
        }
        // Nothing changed: the meeting is still upcoming and nobody connected.
        assert_eq!(status_of(&app.store, &meeting).await, MeetingStatus::Upcoming);
        assert!(peer.connections().is_empty(), "no realtime connection was made");

        // A gzip body that verifies is accepted like a plain one.
        let zipped = post(gzip(body.as_bytes()), signed(body.as_bytes())).await.expect("sent");
        assert_eq!(expect_json(zipped, StatusCode::OK).await, json!({ "status": "started" }));
        assert_eq!(status_of(&app.store, &meeting).await, MeetingStatus::Active);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn meetings_that_cannot_start_are_404_and_stay_as_they_are() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let id = meeting.parse().expect("id");
        // Make it processing through the store, as a finished call would be.
        force_active(&app.store, id).await;
        scribe_actors::ports::CallStore::finalize(&app.store, id, scribe::domain::now(), None)
            .await
            .expect("processing");
        let hooks = driver(&app);
        let answer = hooks
            .session_started(&SimCall::new(&meeting))
            .await
            .expect("sent");
        expect_error(
            answer,
            StatusCode::NOT_FOUND,
            "Meeting is processing and cannot start a call",
        )
        .await;
        assert_eq!(
            status_of(&app.store, &meeting).await,
            MeetingStatus::Processing
        );
        assert!(peer.connections().is_empty());
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn without_a_stream_secret_webhooks_are_refused_as_unconfigured() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let body = br#"{"type":"call.session_started"}"#;
        let answer = app
            .client
            .post(app.url("/api/webhook"))
            .header("x-signature", sign(b"anything", body))
            .body(body.to_vec())
            .send()
            .await
            .expect("sent");
        expect_error(
            answer,
            StatusCode::SERVICE_UNAVAILABLE,
            "STREAM_API_SECRET is not set",
        )
        .await;
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_late_session_ended_records_when_stream_says_the_call_ended() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let app = live_app(&url, &peer).await;
        let hooks = driver(&app);
        // Stream's two forms of an instant: RFC 3339 with nanoseconds, and
        // integer nanoseconds. Each end is stamped after its call started
        // and reaches scribe later than it says; one stamped 40 s before
        // scribe saw the call start (a late `session_started`) is recorded
        // as ending when it started: never earlier.
        type Form = fn(chrono::DateTime<chrono::Utc>) -> Value;
        let forms: [(Form, i64); 3] = [
            (
                |t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
                0,
            ),
            (|t| json!(t.timestamp_nanos_opt().expect("in range")), 0),
            (
                |t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
                -40,
            ),
        ];
        for (form, shift) in forms {
            let meeting = new_meeting(&app).await;
            let call = SimCall::new(&meeting);
            let started = hooks.session_started(&call).await.expect("sent");
            assert_eq!(
                expect_json(started, StatusCode::OK).await,
                json!({ "status": "started" })
            );
            let ended = chrono::Utc::now() + chrono::Duration::seconds(shift);
            let created_at = form(ended);
            let mut event = call.event("call.session_ended");
            event["created_at"] = created_at.clone();
            let body = event.to_string().into_bytes();
            let answer = hooks
                .post(&body, &uuid::Uuid::new_v4().to_string())
                .await
                .expect("sent");
            assert_eq!(
                expect_json(answer, StatusCode::OK).await,
                json!({ "status": "ending" })
            );
            wait_until_ended(&app.store, &meeting).await;
            let stored = app
                .store
                .meeting(meeting.parse().expect("id"))
                .await
                .expect("query")
                .expect("found");
            let ended = if shift < 0 {
                stored.started_at.expect("started")
            } else {
                ended
            };
            let stored_at = stored.ended_at.expect("ended_at is set");
            assert_eq!(
                stored_at.timestamp_micros(),
                ended.timestamp_micros(),
                "{created_at}: ended_at is the event's created_at"
            );
        }
        app.stop().await.expect("clean stop");
    })
    .await;
}
