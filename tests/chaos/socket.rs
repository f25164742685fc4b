//! The realtime socket misbehaving: abrupt TCP close, close 1011, silence,
//! garbage and oversized frames, close 4000, error storms.

use std::time::Duration;

use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Script, SentLine, Step, Transcription, Turn};
use serde_json::Value;

use crate::helpers::{each_backend, live_settings, spawn_app_with};
use crate::running::{
    DEADLINE, actor_where, assert_transcript, event_count, events, live_app, new_meeting, run_call,
    sim, start_call, wait_for_event, wait_for_lines,
};

fn turn(n: usize, transcription: Transcription) -> Turn {
    Turn::numbered("call", n, transcription)
}

#[tokio::test]
async fn closed_and_broken_sockets_reconnect_and_the_transcript_continues() {
    each_backend(|_, url| async move {
        let script_for = |s: usize| -> Script {
            let ending = match s {
                1 => Step::Abort,
                2 => Step::Close(1011),
                3 => Step::Close(1000),
                // An oversized frame: the client refuses it and opens a new session.
                4 => Step::Raw(format!(
                    "{{\"type\":\"x\",\"pad\":\"{}\"}}",
                    "a".repeat(2 << 20)
                )),
                _ => Step::Mark("last".into()),
            };
            Script {
                steps: vec![
                    Step::Turn(turn(s, Transcription::Before)),
                    ending,
                    Step::Hold,
                ],
            }
        };
        let expected: Vec<SentLine> = (1..=5)
            .flat_map(|s| script_for(s).expected_lines())
            .collect();
        let peer = sim(move |c| script_for(c.session)).await;
        let app = live_app(&url, &peer).await;
        let (meeting, stored) = run_call(&app, &peer, "last", expected.len()).await;
        assert_transcript(&stored, &expected);
        assert_eq!(peer.connections_for(&meeting).len(), 5);
        assert_eq!(
            event_count(&app.store, &meeting, "socket_connected").await,
            5
        );
        assert!(event_count(&app.store, &meeting, "socket_reconnecting").await >= 4);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn close_4000_and_a_bad_key_are_configuration_errors_without_retries() {
    each_backend(|_, url| async move {
        // Close 4000 from the peer.
        let peer = sim(|_| Script {
            steps: vec![Step::Close(4000)],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        actor_where(&app, &meeting, "a configuration error", |a| {
            a["socket"] == "configuration_error"
        })
        .await;
        wait_for_event(&app, &meeting, "configuration_error").await;
        assert_eq!(
            event_count(&app.store, &meeting, "configuration_error").await,
            1
        );
        assert_eq!(peer.connections_for(&meeting).len(), 1, "no retry");
        app.stop().await.expect("clean stop");

        // A wrong API key: error `invalid_api_key`, then close 3000.
        let keyed = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                api_key: Some("sk-right".into()),
                ..SimRealtimeConfig::scripted(|_| Script::hold())
            },
        )
        .await
        .expect("sim");
        let realtime = keyed.url();
        let db = crate::helpers::TestDb::create(crate::helpers::Backend::Sqlite).await;
        let app = spawn_app_with(&db.url, |s| {
            live_settings(s, &realtime);
            s.openai_api_key = Some("sk-wrong".into());
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        actor_where(&app, &meeting, "a configuration error", |a| {
            a["socket"] == "configuration_error"
        })
        .await;
        wait_for_event(&app, &meeting, "configuration_error").await;
        let all = events(&app.store, &meeting).await;
        let config_errors: Vec<&Value> = all
            .iter()
            .filter(|(k, _)| k == "configuration_error")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(config_errors.len(), 1, "{all:?}");
        assert!(
            config_errors[0]["error"]
                .as_str()
                .expect("error")
                .contains("invalid_api_key")
        );
        assert_eq!(keyed.connections_for(&meeting).len(), 1, "no retry");
        assert_eq!(
            keyed.connections_for(&meeting)[0].authorization.as_deref(),
            Some("Bearer sk-wrong")
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn error_storms_and_garbage_frames_are_logged_and_the_call_goes_on() {
    each_backend(|_, url| async move {
        let mut steps: Vec<Step> = (0..30)
            .map(|n| Step::Error {
                code: "rate_limited".into(),
                message: format!("non-fatal error {n}"),
            })
            .collect();
        steps.extend([
            Step::Raw("not json at all".into()),
            Step::Raw("{\"type\":5}".into()),
            Step::Raw("{\"type\":\"conversation.item.added\"}".into()),
            Step::Raw("{\"type\":\"brand.new.event\",\"x\":{}}".into()),
            Step::Turn(turn(1, Transcription::After)),
            Step::Mark("done".into()),
            Step::Hold,
        ]);
        let script = Script { steps };
        let expected = script.expected_lines();
        let peer = sim(move |_| script.clone()).await;
        let app = live_app(&url, &peer).await;
        let (meeting, stored) = run_call(&app, &peer, "done", expected.len()).await;
        assert_transcript(&stored, &expected);
        assert_eq!(
            peer.connections_for(&meeting).len(),
            1,
            "the socket stayed open"
        );
        // Logged up to the per-session cap, never a reason to reconnect.
        assert_eq!(
            event_count(&app.store, &meeting, "realtime_error").await,
            20
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_silent_socket_is_replaced() {
    each_backend(|_, url| async move {
        let peer = sim(|c| {
            if c.session == 1 {
                Script::hold()
            } else {
                Script {
                    steps: vec![
                        Step::Turn(turn(1, Transcription::Before)),
                        Step::Mark("second".into()),
                        Step::Hold,
                    ],
                }
            }
        })
        .await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.call.silence_timeout = Duration::from_millis(400);
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        assert!(
            peer.wait_for_mark("second", DEADLINE).await,
            "a new session after the silence"
        );
        wait_for_lines(&app.store, &meeting, 2).await;
        let closed = events(&app.store, &meeting).await;
        assert!(
            closed.iter().any(|(k, d)| k == "socket_closed"
                && d["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("nothing received"))),
            "{closed:?}"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}
