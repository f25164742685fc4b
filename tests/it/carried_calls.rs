//! Calls a browser (WebRTC) or a phone (SIP) carries, with scribe attached
//! as the sideband: creation, hang-up, the OpenAI webhook, the provider
//! ending a call, and what a re-attach recovers. OpenAI is the simulated
//! HTTP API (`SimLlm`: chat completions, calls, sidebands on one base URL).

use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::carried::media::{self, MediaCounts};
use scribe_sim::carried::{CallStatus, CallsConfig, EndedAnswer, StartOn};
use scribe_sim::openai_webhook::OpenAiWebhooks;
use scribe_sim::realtime::SimRealtimeConfig;
use scribe_sim::script::{Script, Step, Transcription, Turn};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::{
    ADMIN_TOKEN, API_TOKEN, TestApp, each_backend, expect_error, expect_json, live_settings,
    spawn_app_with,
};
use crate::running::{
    DEADLINE, after_hang_up, ended_at_openai, events, eventually, hang_up, new_meeting, status_of,
    transcript, wait_for_lines, wait_for_status, wait_until_ended,
};

pub const OPENAI_KEY: &str = "sk-sim-calls";
pub const WEBHOOK_SECRET: &str = "whsec_c2NyaWJlIHRlc3Qgd2ViaG9vayBzZWNyZXQ=";

/// A real offer (the simulator's WebRTC endpoint as the caller), for
/// requests whose media never flows.
pub async fn offer() -> String {
    scribe_sim::carried::media::offer()
        .await
        .expect("an offer")
        .0
}

fn turn(n: usize) -> Turn {
    Turn::numbered("call", n, Transcription::Before)
}

/// An app whose OpenAI is the simulated HTTP API, with a key and a
/// webhook secret; its calls play `script`.
pub async fn calls_app(
    url: &str,
    script: impl Fn(&scribe_sim::realtime::ConnectionInfo) -> Script + Send + Sync + 'static,
    ended: EndedAnswer,
) -> TestApp {
    calls_app_starting(url, script, ended, StartOn::Attach).await
}

/// As [`calls_app`], the conversation starting on `start`.
pub async fn calls_app_starting(
    url: &str,
    script: impl Fn(&scribe_sim::realtime::ConnectionInfo) -> Script + Send + Sync + 'static,
    ended: EndedAnswer,
    start: StartOn,
) -> TestApp {
    let app = spawn_app_with(url, |s| {
        live_settings(s, "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime");
        s.openai_api_key = Some(OPENAI_KEY.into());
        s.openai_webhook_secret = Some(WEBHOOK_SECRET.into());
    })
    .await;
    app.llm.calls().configure(CallsConfig {
        realtime: SimRealtimeConfig::scripted(script),
        start,
        ended,
        api_key: Some(OPENAI_KEY.into()),
    });
    app
}

/// `POST /api/meetings/{id}/call` with `content_type`, `body` and `auth`
/// (a header name and value).
pub async fn post_call(
    app: &TestApp,
    meeting: &str,
    content_type: &str,
    body: &str,
    auth: Option<(&str, String)>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/meetings/{meeting}/call")))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    request.send().await.expect("sent")
}

pub fn bearer() -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {API_TOKEN}")))
}

/// Every sideband attached at the simulated OpenAI so far.
fn sidebands(app: &TestApp) -> Vec<scribe_sim::realtime::ConnectionRecord> {
    app.llm
        .calls()
        .records
        .connections
        .lock()
        .expect("lock")
        .clone()
}

async fn meeting_json(app: &TestApp, meeting: &str) -> Value {
    expect_json(
        app.get_authed(&format!("/api/meetings/{meeting}")).await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn a_browser_call_is_created_at_openai_attached_recorded_and_hung_up() {
    each_backend(|_, url| async move {
        // The conversation starts when the caller's first audio packet
        // reaches OpenAI's media endpoint (real ICE, DTLS and SRTP).
        let app = calls_app_starting(
            &url,
            |_| Script {
                steps: vec![
                    Step::Turn(turn(1)),
                    Step::Turn(turn(2)),
                    Step::Mark("done".into()),
                    Step::Hold,
                ],
            },
            EndedAnswer::NotFound,
            StartOn::Audio,
        )
        .await;
        let meeting = new_meeting(&app).await;
        let (offer_sdp, offering) = media::offer().await.expect("an offer");
        let answer = post_call(&app, &meeting, "application/sdp", &offer_sdp, bearer()).await;
        assert_eq!(answer.status(), StatusCode::CREATED);
        assert_eq!(answer.headers()["content-type"], "application/sdp");
        let sdp = answer.text().await.expect("body");
        // The answer comes once the sideband is attached, so the call is
        // heard from its first word.
        let attached = sidebands(&app).len();
        assert_eq!(attached, 1, "attached before the browser got its answer");
        let caller = offering.accept(&sdp).expect("the answer fits the offer");
        let (caller_stops, stop) = watch::channel(false);
        let (counts, mut heard) = watch::channel(MediaCounts::default());
        let caller = tokio::spawn(caller.run(stop, None, Some(counts)));

        let record = meeting_json(&app, &meeting).await;
        assert_eq!(record["status"], "active");
        assert_eq!(record["transport"], "webrtc");
        let call_id = record["provider_call_id"]
            .as_str()
            .expect("the call id")
            .to_owned();
        let call = app
            .llm
            .calls()
            .call(&call_id)
            .expect("the call exists at OpenAI");
        // The session OpenAI was asked for: the meeting's prompt, input
        // transcription on, server VAD, the voice and the model.
        let session = call.session();
        assert_eq!(session["type"], "realtime");
        assert_eq!(session["model"], "gpt-realtime-2.1");
        assert_eq!(session["instructions"], "Meeting prompt.");
        assert_eq!(
            session["audio"]["input"]["transcription"]["model"],
            "gpt-live-transcribe"
        );
        assert_eq!(
            session["audio"]["input"]["turn_detection"]["type"],
            "server_vad"
        );
        assert_eq!(session["audio"]["output"]["voice"], "marin");
        let statuses: Vec<Value> = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "status_changed")
            .map(|(_, d)| d["to"].clone())
            .collect();
        assert_eq!(statuses, ["active"], "the status change is logged");

        assert!(app.llm.calls().wait_for_mark("done", DEADLINE).await);
        let lines = wait_for_lines(&app.store, &meeting, 4).await;
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "call user line 1",
                "call agent reply 1 with a few words",
                "call user line 2",
                "call agent reply 2 with a few words"
            ]
        );
        let connections = sidebands(&app);
        assert_eq!(connections.len(), 1, "one sideband");
        assert_eq!(
            connections[0].authorization.as_deref(),
            Some(format!("Bearer {OPENAI_KEY}").as_str())
        );

        let hung = hang_up(&app, &meeting).await;
        assert_eq!(
            expect_json(hung, StatusCode::ACCEPTED).await,
            json!({ "status": "processing", "ended": "attached_call" })
        );
        assert_eq!(ended_at_openai(&call).await, "hangup", "hung up at OpenAI");
        // Audio went both ways while the call was live.
        tokio::time::timeout(DEADLINE, heard.wait_for(|c| c.sent > 0 && c.received > 0))
            .await
            .expect("audio both ways")
            .expect("caller running");
        assert!(call.media.borrow().received > 0, "OpenAI heard the caller");
        caller_stops.send_replace(true);
        assert_eq!(caller.await.expect("caller"), media::PeerEnd::Stopped);
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let (hung_up, after) = after_hang_up(&app.store, &meeting).await;
        assert_eq!(hung_up, json!({"how":"hangup","confirmed":true}));
        assert!(
            !after.iter().any(|k| k == "socket_reconnecting"),
            "nothing re-attaches after scribe's hang-up: {after:?}"
        );
        let again = hang_up(&app, &meeting).await;
        expect_error(again, StatusCode::CONFLICT, "only an active call").await;
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn calls_created_for_one_meeting_are_rate_limited_with_retry_after() {
    each_backend(|_, url| async move {
        let app = calls_app(&url, |_| Script::hold(), EndedAnswer::NotFound).await;
        // OpenAI refuses every call (the key), so the meeting stays
        // upcoming and each request would reach OpenAI again.
        app.llm.calls().configure(CallsConfig {
            api_key: Some("sk-another-key".into()),
            ..CallsConfig::default()
        });
        let meeting = new_meeting(&app).await;
        for _ in 0..3 {
            let refused =
                post_call(&app, &meeting, "application/sdp", &offer().await, bearer()).await;
            expect_error(refused, StatusCode::BAD_GATEWAY, "HTTP 401").await;
        }
        let limited = post_call(&app, &meeting, "application/sdp", &offer().await, bearer()).await;
        let retry_after: u64 = limited
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!((1..=20).contains(&retry_after), "{retry_after}");
        expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "too many calls").await;
        assert_eq!(
            status_of(&app.store, &meeting).await,
            MeetingStatus::Upcoming
        );
        // Another meeting has its own bucket.
        let other = new_meeting(&app).await;
        let refused = post_call(&app, &other, "application/sdp", &offer().await, bearer()).await;
        expect_error(refused, StatusCode::BAD_GATEWAY, "HTTP 401").await;
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn call_requests_get_their_exact_code_and_change_nothing() {
    each_backend(|_, url| async move {
        let app = calls_app(&url, |_| Script::hold(), EndedAnswer::NotFound).await;
        let meeting = new_meeting(&app).await;
        let page_key: secrecy::SecretString =
            app.store.page_secret().await.expect("page key").into();
        let page_token = app.page_key(&meeting).await;

        // Without a credential, or with another meeting's key: the answer
        // for no such meeting.
        let no_auth = post_call(&app, &meeting, "application/sdp", &offer().await, None).await;
        expect_error(no_auth, StatusCode::NOT_FOUND, "Meeting not found").await;
        let wrong_bearer = post_call(
            &app,
            &meeting,
            "application/sdp",
            &offer().await,
            Some(("authorization", "Bearer nope".into())),
        )
        .await;
        expect_error(wrong_bearer, StatusCode::UNAUTHORIZED, "bearer token").await;
        let other =
            scribe::http::auth::meeting_token(&page_key, scribe_actors::ids::MeetingId::new(), 0);
        let wrong_page = post_call(
            &app,
            &meeting,
            "application/sdp",
            &offer().await,
            Some(("x-meeting-token", other)),
        )
        .await;
        assert_eq!(wrong_page.status(), StatusCode::NOT_FOUND);
        let text = post_call(&app, &meeting, "text/plain", &offer().await, bearer()).await;
        expect_error(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/sdp").await;
        let garbage = post_call(&app, &meeting, "application/sdp", "hello", bearer()).await;
        expect_error(garbage, StatusCode::BAD_REQUEST, "not an SDP offer").await;
        let unknown = uuid::Uuid::new_v4().to_string();
        let missing = post_call(&app, &unknown, "application/sdp", &offer().await, bearer()).await;
        expect_error(missing, StatusCode::NOT_FOUND, "Meeting not found").await;
        let malformed = post_call(
            &app,
            "not-a-uuid",
            "application/sdp",
            &offer().await,
            bearer(),
        )
        .await;
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        assert!(app.llm.calls().all().is_empty(), "OpenAI was never asked");
        assert_eq!(
            status_of(&app.store, &meeting).await,
            MeetingStatus::Upcoming
        );

        // OpenAI refuses (here: the key): 502 naming OpenAI's status in
        // scribe's words; OpenAI's own (which quote part of the key) go to
        // the log only.
        app.llm.calls().configure(CallsConfig {
            api_key: Some("sk-another-key".into()),
            ..CallsConfig::default()
        });
        let refused = post_call(&app, &meeting, "application/sdp", &offer().await, bearer()).await;
        let message = expect_error(refused, StatusCode::BAD_GATEWAY, "HTTP 401").await;
        assert!(!message.contains("Incorrect API key provided"), "{message}");
        assert!(!message.contains("sk-"), "{message}");
        assert_eq!(
            status_of(&app.store, &meeting).await,
            MeetingStatus::Upcoming
        );
        // An offer that looks like one to scribe but that OpenAI's media
        // endpoint cannot answer (no ICE credentials, no fingerprint): the
        // caller's offer is at fault, 422 naming OpenAI's 400.
        app.llm.calls().configure(CallsConfig {
            api_key: Some(OPENAI_KEY.into()),
            ..CallsConfig::default()
        });
        let hollow = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        let refused = post_call(&app, &meeting, "application/sdp", hollow, bearer()).await;
        let message = expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "HTTP 400").await;
        assert_eq!(
            message,
            "OpenAI refused the offer: OpenAI answered HTTP 400 (the server log has its words)"
        );
        assert_eq!(
            status_of(&app.store, &meeting).await,
            MeetingStatus::Upcoming
        );
        app.llm.calls().configure(CallsConfig {
            api_key: Some(OPENAI_KEY.into()),
            ..CallsConfig::default()
        });

        // The page's own capability may start its call; two at once make one.
        let (first, second) = (offer().await, offer().await);
        let (a, b) = tokio::join!(
            post_call(
                &app,
                &meeting,
                "application/sdp",
                &first,
                Some(("x-meeting-token", page_token.clone()))
            ),
            post_call(&app, &meeting, "application/sdp", &second, bearer()),
        );
        let mut codes = [a.status(), b.status()];
        codes.sort();
        assert_eq!(codes, [StatusCode::CREATED, StatusCode::CONFLICT]);
        eventually("the extra call hung up, if one was made", || async {
            let live = app
                .llm
                .calls()
                .all()
                .iter()
                .filter(|c| c.status() == CallStatus::Live)
                .count();
            (live == 1).then_some(())
        })
        .await;
        let again = post_call(&app, &meeting, "application/sdp", &offer().await, bearer()).await;
        expect_error(again, StatusCode::CONFLICT, "Meeting is active").await;

        // Hang-up: the same auth; only an active meeting.
        let upcoming = new_meeting(&app).await;
        let not_active = hang_up(&app, &upcoming).await;
        expect_error(not_active, StatusCode::CONFLICT, "Meeting is upcoming").await;
        let no_auth = app
            .client
            .post(app.url(&format!("/api/meetings/{meeting}/hangup")))
            .send()
            .await
            .expect("sent");
        assert_eq!(no_auth.status(), StatusCode::NOT_FOUND);
        app.stop().await.expect("clean stop");

        // Without OPENAI_API_KEY scribe cannot create calls at all.
        let keyless =
            spawn_app_with(&url, |s| live_settings(s, "ws://127.0.0.1:9/v1/realtime")).await;
        let meeting = new_meeting(&keyless).await;
        let unconfigured = post_call(
            &keyless,
            &meeting,
            "application/sdp",
            &offer().await,
            bearer(),
        )
        .await;
        expect_error(
            unconfigured,
            StatusCode::SERVICE_UNAVAILABLE,
            "OPENAI_API_KEY",
        )
        .await;
        keyless.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_call_the_provider_ends_is_finalized_whatever_a_re_attach_answers() {
    each_backend(|_, url| async move {
        for ended in [
            EndedAnswer::NotFound,
            EndedAnswer::ErrorThenClose,
            EndedAnswer::Close,
        ] {
            let app = calls_app(
                &url,
                |_| Script {
                    steps: vec![Step::Turn(turn(1)), Step::Mark("spoken".into()), Step::Hold],
                },
                ended,
            )
            .await;
            let meeting = new_meeting(&app).await;
            let answer =
                post_call(&app, &meeting, "application/sdp", &offer().await, bearer()).await;
            assert_eq!(answer.status(), StatusCode::CREATED, "{ended:?}");
            assert!(app.llm.calls().wait_for_mark("spoken", DEADLINE).await);
            wait_for_lines(&app.store, &meeting, 2).await;
            let call_id = meeting_json(&app, &meeting).await["provider_call_id"]
                .as_str()
                .expect("call id")
                .to_owned();
            // The caller closes the tab: OpenAI ends the call.
            assert!(app.llm.calls().end(&call_id));
            wait_until_ended(&app.store, &meeting).await;
            let over: Vec<Value> = events(&app.store, &meeting)
                .await
                .into_iter()
                .filter(|(k, _)| k == "call_over")
                .map(|(_, d)| d)
                .collect();
            assert_eq!(over.len(), 1, "{ended:?}");
            wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
            assert_eq!(transcript(&app.store, &meeting).await.len(), 2, "{ended:?}");
            app.stop().await.expect("clean stop");
        }
    })
    .await;
}

/// What a re-attach recovers after `interrupt` takes scribe away while turn
/// 2 is said: the agent's reply of turn 2 is fetched back and stored before
/// turn 3, the user's words of turn 2 cannot be (a retrieved item names no
/// predecessor): that hole is marked, never filled.
async fn recover_after(url: &str, interrupt: &str) {
    let app = calls_app(
        url,
        |_| crate::running::away_script(),
        EndedAnswer::NotFound,
    )
    .await;
    let calls = app.llm.calls().clone();
    let meeting = new_meeting(&app).await;
    let answer = post_call(&app, &meeting, "application/sdp", &offer().await, bearer()).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert!(calls.wait_for_mark("one", DEADLINE).await);
    wait_for_lines(&app.store, &meeting, 2).await;
    let call_id = meeting_json(&app, &meeting).await["provider_call_id"]
        .as_str()
        .expect("call id")
        .to_owned();
    calls.block_attaches(true);
    match interrupt {
        "dropped sideband" => assert!(calls.drop_sidebands(&call_id)),
        "actor kill" => {
            calls.drop_sidebands(&call_id);
            let killed = app
                .client
                .post(app.url(&format!("/admin/actors/{meeting}/kill?kind=meeting")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("sent");
            assert_eq!(killed.status(), StatusCode::ACCEPTED);
        }
        other => panic!("no such interruption {other}"),
    }
    calls.open_gate("two");
    assert!(calls.wait_for_mark("two", DEADLINE).await);
    calls.block_attaches(false);
    eventually("scribe to attach again", || async {
        let attached = calls
            .call(&call_id)
            .map(|c| c.attaches.load(std::sync::atomic::Ordering::SeqCst));
        (attached >= Some(2)).then_some(())
    })
    .await;
    calls.open_gate("three");
    assert!(calls.wait_for_mark("three", DEADLINE).await);
    let lines = wait_for_lines(&app.store, &meeting, 5).await;
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        crate::running::AWAY_LINES,
        "{interrupt}: the reply of turn 2 is fetched back and stored in its place"
    );
    let numbers: Vec<i64> = lines.iter().map(|l| l.sequence_number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5], "{interrupt}: nothing duplicated");
    let api = expect_json(
        app.get_authed(&format!("/api/meetings/{meeting}/transcript"))
            .await,
        StatusCode::OK,
    )
    .await;
    let holes = api["holes"].as_array().expect("holes").clone();
    assert!(
        holes.iter().any(|h| h["after"] == 2 && h["before"] == 3),
        "{interrupt}: the possible hole before the fetched line is marked: {holes:?}"
    );
    let recovered = events(&app.store, &meeting)
        .await
        .into_iter()
        .filter(|(k, _)| k == "item_recovered")
        .count();
    assert_eq!(recovered, 1, "{interrupt}");
    app.stop().await.expect("clean stop");
}

mod phones;
