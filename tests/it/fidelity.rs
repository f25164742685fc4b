//! Realtime fidelity: what a live service's stream says is what the
//! transcript stores, line by line, and a session that cannot work says
//! why on the meeting at once. The simulated peer plays each case with the
//! shapes of OpenAI's generated types and Stream's documented frames.

use reqwest::StatusCode;
use scribe_actors::domain::ChunkStatus;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Reply, Script, Step, Transcription, Turn};
use serde_json::Value;

use crate::helpers::{TestApp, each_backend, expect_json, live_settings, spawn_app_with};
use crate::running::{
    DEADLINE, actor_where, assert_transcript, end_call, events, eventually, live_app, new_meeting,
    start_call, transcript, wait_for_lines,
};

async fn peer(config: SimRealtimeConfig) -> SimRealtime {
    SimRealtime::start(([127, 0, 0, 1], 0).into(), config)
        .await
        .expect("sim realtime starts")
}

/// A script of `turns`, then a mark and an open socket.
fn script_of(turns: Vec<Turn>) -> Script {
    let mut steps: Vec<Step> = turns.into_iter().map(Step::Turn).collect();
    steps.push(Step::Mark("done".into()));
    steps.push(Step::Hold);
    Script { steps }
}

fn turn(n: usize, transcription: Transcription) -> Turn {
    Turn::numbered("call", n, transcription)
}

/// The log entries of `kind`, in order.
async fn logged(app: &TestApp, meeting: &str, kind: &str) -> Vec<Value> {
    events(&app.store, meeting)
        .await
        .into_iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, d)| d)
        .collect()
}

/// `GET /api/meetings/{id}/status`, once its `error` is set.
async fn status_with_error(app: &TestApp, meeting: &str) -> Value {
    eventually("the meeting to show an error", || async {
        let status = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}/status"))
                .await,
            StatusCode::OK,
        )
        .await;
        status["error"].is_string().then_some(status)
    })
    .await
}

/// A call on a new meeting whose peer plays `turns`: once the peer has said
/// everything and the store holds `lines` lines (while the call is live),
/// the app, the call, what a faithful transcript holds, and what is stored.
struct Played {
    app: TestApp,
    _peer: SimRealtime,
    meeting: String,
    call: scribe_sim::webhook::SimCall,
    expected: Vec<scribe_sim::script::SentLine>,
    live: Vec<scribe::store::StoredChunk>,
}

async fn play_live(url: &str, turns: Vec<Turn>, lines: usize) -> Played {
    let script = script_of(turns);
    let expected = script.expected_lines();
    let peer = peer(SimRealtimeConfig::scripted(move |_| script.clone())).await;
    let app = live_app(url, &peer).await;
    let meeting = new_meeting(&app).await;
    let call = start_call(&app, &meeting).await;
    assert!(peer.wait_for_mark("done", DEADLINE).await);
    let live = wait_for_lines(&app.store, &meeting, lines).await;
    Played {
        app,
        _peer: peer,
        meeting,
        call,
        expected,
        live,
    }
}

#[tokio::test]
async fn replies_that_end_cancelled_or_failed_are_stored_interrupted_at_once() {
    each_backend(|_, url| async move {
        let turns = vec![
            turn(1, Transcription::Before).ending(Reply::Cancelled {
                words: 3,
                output_words: None,
            }),
            turn(2, Transcription::Before).ending(Reply::Cancelled {
                words: 2,
                output_words: Some(4),
            }),
            turn(3, Transcription::Before).ending(Reply::Failed { words: 2 }),
            turn(4, Transcription::Before),
        ];
        // Every line is stored while the call is still live: nothing waits
        // for the session to end.
        let Played {
            app,
            meeting,
            call,
            expected,
            live,
            ..
        } = play_live(&url, turns, 8).await;
        assert_transcript(&live, &expected);
        let statuses: Vec<ChunkStatus> = live.iter().map(|l| l.status).collect();
        use ChunkStatus::{Completed, Interrupted};
        assert_eq!(
            statuses,
            [
                Completed,
                Interrupted,
                Completed,
                Interrupted,
                Completed,
                Interrupted,
                Completed,
                Completed
            ]
        );
        assert_eq!(
            live[3].text, "call agent reply 2 ",
            "the output's transcript (4 words), not the 2 streamed"
        );
        let interrupted = logged(&app, &meeting, "reply_interrupted").await;
        let seen: Vec<(&str, &str, Value)> = interrupted
            .iter()
            .map(|d| {
                (
                    d["status"].as_str().unwrap_or_default(),
                    d["reason"].as_str().unwrap_or("-"),
                    d["lines"].clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("cancelled", "turn_detected", serde_json::json!([2])),
                ("cancelled", "turn_detected", serde_json::json!([4])),
                ("failed", "-", serde_json::json!([6])),
            ]
        );
        end_call(&app, &call).await;
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_reply_the_user_cut_off_is_interrupted_keeps_its_text_and_the_cut_is_logged() {
    each_backend(|_, url| async move {
        let turns = vec![
            turn(1, Transcription::Before).ending(Reply::Truncated { audio_end_ms: 1500 }),
            turn(2, Transcription::Before),
        ];
        let Played {
            app,
            meeting,
            call,
            expected,
            ..
        } = play_live(&url, turns, 4).await;
        // The reply was final before the user cut it off: its stored line
        // becomes `interrupted`, with the whole text kept.
        let cut = eventually("line 2 to be interrupted", || async {
            let lines = transcript(&app.store, &meeting).await;
            (lines[1].status == ChunkStatus::Interrupted).then_some(lines)
        })
        .await;
        assert_transcript(&cut, &expected);
        assert_eq!(cut[1].text, "call agent reply 1 with a few words");
        let truncated = logged(&app, &meeting, "reply_truncated").await;
        assert_eq!(truncated.len(), 1);
        assert_eq!(truncated[0]["audio_end_ms"], 1500);
        assert_eq!(truncated[0]["sequence_number"], 2);
        let api = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}/transcript"))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(api["chunks"][1]["status"], "interrupted");
        end_call(&app, &call).await;
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn transcription_deltas_then_a_failure_keep_the_text_received_as_partial() {
    each_backend(|_, url| async move {
        let turns = vec![
            turn(1, Transcription::DeltasThenFailed { words: 3 }),
            turn(2, Transcription::DeltasThenFailed { words: 0 }),
            turn(3, Transcription::Before),
        ];
        let Played {
            app,
            meeting,
            call,
            expected,
            live,
            ..
        } = play_live(&url, turns, 6).await;
        assert_transcript(&live, &expected);
        assert_eq!(
            (live[0].text.as_str(), live[0].status),
            ("call user line", ChunkStatus::Partial)
        );
        assert_eq!(
            (live[2].text.as_str(), live[2].status),
            ("", ChunkStatus::TranscriptionFailed),
            "empty only when nothing arrived"
        );
        let failures = logged(&app, &meeting, "transcription_failed").await;
        let seen: Vec<(Value, Value)> = failures
            .iter()
            .map(|d| (d["sequence_number"].clone(), d["error"]["code"].clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (1.into(), "audio_unintelligible".into()),
                (3.into(), "audio_unintelligible".into())
            ]
        );
        end_call(&app, &call).await;
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_refused_session_update_is_shown_on_the_meeting_naming_the_field() {
    each_backend(|_, url| async move {
        let script = script_of(vec![turn(1, Transcription::Before)]);
        let peer = peer(SimRealtimeConfig {
            reject_session_update: Some("session.audio.input.transcription.model".into()),
            ..SimRealtimeConfig::scripted(move |_| script.clone())
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        let status = status_with_error(&app, &meeting).await;
        assert_eq!(status["status"], "active", "the call goes on");
        assert_eq!(
            status["error"],
            "OpenAI Realtime refused scribe's session settings (session.update): invalid_value for `session.audio.input.transcription.model`"
        );
        let actor = actor_where(&app, &meeting, "the actor's error", |a| {
            a["error"].is_string()
        }).await;
        assert!(
            actor["error"]
                .as_str()
                .is_some_and(|e| e.contains("Invalid value for 'session.audio.input.transcription.model'")),
            "/admin/actors has the service's own words: {actor}"
        );
        let refused = logged(&app, &meeting, "configuration_error").await;
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0]["param"], "session.audio.input.transcription.model");
        // The service records with its defaults: no user transcription.
        assert!(peer.wait_for_mark("done", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 1).await;
        end_call(&app, &call).await;
        let stored = transcript(&app.store, &meeting).await;
        let statuses: Vec<ChunkStatus> = stored.iter().map(|l| l.status).collect();
        assert_eq!(
            statuses,
            [ChunkStatus::TranscriptionFailed, ChunkStatus::Completed]
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_session_update_never_confirmed_is_a_configuration_error() {
    each_backend(|_, url| async move {
        let peer = peer(SimRealtimeConfig {
            ignore_session_update: true,
            ..SimRealtimeConfig::scripted(|_| Script::hold())
        })
        .await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.call.session_update_timeout = std::time::Duration::from_millis(300);
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let status = status_with_error(&app, &meeting).await;
        assert_eq!(
            status["error"],
            "OpenAI Realtime did not confirm scribe's session settings within 300 ms"
        );
        assert_eq!(status["status"], "active");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_refused_upgrade_is_a_configuration_error_without_the_key_and_is_not_retried() {
    each_backend(|_, url| async move {
        let peer = peer(SimRealtimeConfig {
            reject_upgrade: Some(401),
            ..SimRealtimeConfig::scripted(|_| Script::hold())
        })
        .await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.openai_api_key = Some("sk-marker-secret-key".into());
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let status = status_with_error(&app, &meeting).await;
        let error = status["error"].as_str().expect("error");
        assert!(
            error.starts_with("OpenAI Realtime refused the connection (HTTP 401)"),
            "{error}"
        );
        assert!(!error.contains("sk-marker"), "the key is never shown");
        let actor = actor_where(&app, &meeting, "a configuration error", |a| {
            a["socket"] == "configuration_error"
        })
        .await;
        assert!(!actor.to_string().contains("sk-marker"));
        // No retry is scheduled: one refused upgrade, no reconnection logged.
        assert_eq!(peer.refused_upgrades(), 1);
        assert!(
            logged(&app, &meeting, "socket_reconnecting")
                .await
                .is_empty()
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_model_is_a_configuration_error_with_openais_code() {
    each_backend(|_, url| async move {
        let peer = peer(SimRealtimeConfig::scripted(|_| Script::hold())).await;
        let realtime = peer
            .url()
            .replace("model=gpt-realtime", "model=gpt-realtime-x");
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let status = status_with_error(&app, &meeting).await;
        assert_eq!(
            status["error"],
            "OpenAI Realtime refused the session: invalid_model"
        );
        actor_where(&app, &meeting, "a configuration error", |a| {
            a["socket"] == "configuration_error"
        })
        .await;
        assert_eq!(peer.connections().len(), 1, "not retried");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn streams_flat_refusal_is_shown_and_retried_no_sooner_than_a_minute() {
    each_backend(|_, url| async move {
        let peer = peer(SimRealtimeConfig::scripted(|_| Script {
            steps: vec![Step::StreamRefusal, Step::Hold],
        }))
        .await;
        let stream_url = format!(
            "ws://{}/video/connect_agent?model=gpt-realtime",
            peer.addr()
        );
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &stream_url);
            s.stream_api_key = Some("stream-key".into());
            s.openai_api_key = Some("sk-sim".into());
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let status = status_with_error(&app, &meeting).await;
        assert_eq!(
            status["error"],
            "Stream's agent endpoint refused the session: server_error 42 Error:  code"
        );
        let refused = logged(&app, &meeting, "session_refused").await;
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0]["code"], "42");
        let retry = eventually("the retry to be scheduled", || async {
            logged(&app, &meeting, "socket_reconnecting")
                .await
                .first()
                .cloned()
        })
        .await;
        assert!(
            retry["delay_ms"].as_u64().is_some_and(|d| d >= 60_000),
            "at most one retry a minute: {retry}"
        );
        assert_eq!(peer.connections().len(), 1, "no storm");
        app.stop().await.expect("clean stop");
    })
    .await;
}
