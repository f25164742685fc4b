//! Live calls over HTTP: signed webhooks start and end calls; the simulated
//! realtime peer plays scripted conversations; the stored transcript is
//! compared line by line with what the peer said.

use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::{ChunkStatus, MeetingStatus};
use scribe_actors::ids::MeetingId;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Script, SentLine, Step, Transcription};
use scribe_sim::webhook::SimCall;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, each_backend, expect_json, live_settings, spawn_app_with};
use crate::running::*;

#[tokio::test]
async fn transcript_is_in_conversation_order_whenever_user_transcriptions_arrive() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Before)),
                Step::Turn(turn(2, Transcription::During)),
                Step::Turn(turn(3, Transcription::After)),
                Step::Turn(turn(4, Transcription::Failed)),
                Step::Turn(turn(5, Transcription::After)),
                Step::Mark("done".into()),
                Step::Hold,
            ],
        };
        let expected = script.expected_lines();
        let peer = sim(move |_| script.clone()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = SimCall::new(&meeting);
        let hooks = driver(&app);

        let started = hooks.session_started(&call).await.expect("sent");
        assert_eq!(
            expect_json(started, StatusCode::OK).await,
            json!({ "status": "started" })
        );
        assert_eq!(status_of(&app.store, &meeting).await, MeetingStatus::Active);
        assert!(peer.wait_for_mark("done", DEADLINE).await, "script played");
        wait_for_lines(&app.store, &meeting, expected.len()).await;

        let ended = hooks.session_ended(&call).await.expect("sent");
        assert_eq!(
            expect_json(ended, StatusCode::OK).await,
            json!({ "status": "ending" })
        );
        wait_until_ended(&app.store, &meeting).await;
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);

        let m = app
            .store
            .meeting(meeting.parse().expect("id"))
            .await
            .expect("q")
            .expect("found");
        assert!(
            m.transcript_collected && m.ended_at.is_some() && m.processing_started_at.is_some()
        );
        // The agent configured the session as the original design did.
        let connections = peer.connections_for(&meeting);
        assert_eq!(connections.len(), 1, "one realtime connection");
        let update = &connections[0].client_events[0];
        assert_eq!(update["type"], "session.update");
        assert_eq!(update["session"]["instructions"], "Meeting prompt.");
        assert_eq!(
            update["session"]["audio"]["input"]["transcription"]["model"],
            "gpt-live-transcribe"
        );
        assert_eq!(
            update["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"],
            500
        );
        assert!(!connections[0].beta_header, "GA only");
        let kinds: Vec<String> = events(&app.store, &meeting)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for kind in ["actor_started", "socket_connected", "call_ended"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
        }
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn beta_event_names_give_the_same_transcript() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::After)),
                Step::Turn(turn(2, Transcription::Before)),
                Step::Turn(turn(3, Transcription::During)),
                Step::Mark("done".into()),
                Step::Hold,
            ],
        };
        let expected = script.expected_lines();
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                beta: true,
                ..SimRealtimeConfig::scripted(move |_| script.clone())
            },
        )
        .await
        .expect("sim starts");
        let app = live_app(&url, &peer).await;
        let (_meeting, stored) = run_call(&app, &peer, "done", expected.len()).await;
        assert_transcript(&stored, &expected);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn session_expiry_opens_a_new_session_replays_the_lines_and_numbering_continues() {
    each_backend(|_, url| async move {
        let first = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Before)),
                Step::Turn(turn(2, Transcription::After)),
                Step::ExpireMidReply {
                    turn: turn(3, Transcription::After),
                    words_before_expiry: 3,
                },
            ],
        };
        let second = Script {
            steps: vec![
                Step::Turn(turn(4, Transcription::Before)),
                Step::Mark("second".into()),
                Step::Hold,
            ],
        };
        let mut expected = first.expected_lines();
        expected.extend(second.expected_lines());
        let peer = sim(move |c| {
            if c.session == 1 {
                first.clone()
            } else {
                second.clone()
            }
        })
        .await;
        let app = live_app(&url, &peer).await;
        let (meeting, stored) = run_call(&app, &peer, "second", expected.len()).await;
        assert_transcript(&stored, &expected);

        // The new session got session.update, then every stored line with
        // text, in order, as conversation items, and no response.create.
        // (The peer may still be reading the last of them: wait for it.)
        let replayed = expected[..6].iter().filter(|l| !l.text.is_empty()).count();
        let mine = |c: &[scribe_sim::realtime::ConnectionRecord]| {
            c.iter()
                .filter(|r| {
                    r.info.as_ref().and_then(|i| i.meeting.as_deref()) == Some(meeting.as_str())
                })
                .nth(1)
                .is_some_and(|r| r.client_events.len() > replayed)
        };
        assert!(
            peer.wait_until(DEADLINE, mine).await.is_ok(),
            "replay received"
        );
        let connections = peer.connections_for(&meeting);
        assert_eq!(connections.len(), 2);
        let replay = &connections[1].client_events;
        assert_eq!(replay[0]["type"], "session.update");
        let items: Vec<(String, String)> = replay[1..]
            .iter()
            .map(|e| {
                assert_eq!(e["type"], "conversation.item.create", "{e}");
                (
                    e["item"]["role"].as_str().expect("role").to_owned(),
                    e["item"]["content"][0]["text"]
                        .as_str()
                        .expect("text")
                        .to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = expected[..6]
            .iter()
            .filter(|l| !l.text.is_empty())
            .map(|l| {
                let role = if l.speaker == scribe_actors::domain::Speaker::User {
                    "user"
                } else {
                    "assistant"
                };
                (role.to_owned(), l.text.clone())
            })
            .collect();
        assert_eq!(items, want);
        assert!(
            connections
                .iter()
                .flat_map(|c| &c.client_events)
                .all(|e| e["type"] != "response.create"),
            "no response.create is ever sent"
        );
        let kinds: Vec<String> = events(&app.store, &meeting)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "socket_connected").count(),
            2,
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k == "socket_reconnecting"),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k == "realtime_error"),
            "session_expired logged: {kinds:?}"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn duplicate_and_concurrent_deliveries_start_one_actor_and_one_connection() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script {
            steps: vec![Step::Mark("connected".into()), Step::Hold],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = SimCall::new(&meeting);
        let hooks = driver(&app);
        let body = call.event("call.session_started").to_string();
        let answers = futures::future::join_all(
            (0..6).map(|_| hooks.post(body.as_bytes(), "same-webhook-id")),
        )
        .await;
        let mut statuses = Vec::new();
        for answer in answers {
            let json = expect_json(answer.expect("sent"), StatusCode::OK).await;
            statuses.push(json["status"].as_str().expect("status").to_owned());
        }
        statuses.sort();
        assert_eq!(
            statuses,
            [
                "duplicate",
                "duplicate",
                "duplicate",
                "duplicate",
                "duplicate",
                "started"
            ]
        );
        // Another id for the same session is a duplicate too.
        let again = expect_json(
            hooks.post(body.as_bytes(), "other-id").await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(again["status"], "duplicate");
        // A new session of the same call finds the actor already running.
        let next_session = SimCall {
            session_id: "second-session".into(),
            ..call.clone()
        };
        expect_json(
            hooks.session_started(&next_session).await.expect("sent"),
            StatusCode::OK,
        )
        .await;

        assert!(peer.wait_for_mark("connected", DEADLINE).await);
        let actor = eventually("the actor", || app.actor(&meeting)).await;
        assert_eq!(actor["restarts"], 0);
        // Still one of each.
        assert_eq!(
            peer.connections_for(&meeting).len(),
            1,
            "one realtime connection"
        );
        let all = expect_json(
            app.client
                .get(app.url("/admin/actors"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("sent"),
            StatusCode::OK,
        )
        .await;
        let mine = all["actors"]
            .as_array()
            .expect("actors")
            .iter()
            .filter(|a| a["meeting_id"] == meeting.as_str())
            .count();
        assert_eq!(mine, 1, "one actor");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_session_close_to_expiry_is_replaced_between_turns() {
    each_backend(|_, url| async move {
        let script_for = |s: usize| Script {
            steps: vec![
                Step::Turn(turn(s, Transcription::Before)),
                Step::Mark(format!("s{s}")),
                Step::Hold,
            ],
        };
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                session_seconds: 2,
                ..SimRealtimeConfig::scripted(move |c| script_for(c.session))
            },
        )
        .await
        .expect("sim starts");
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            // Sessions "expire" after 2 s; replace them 1 s before.
            s.call.rotate_before_expiry = Duration::from_secs(1);
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        assert!(
            peer.wait_for_mark("s2", DEADLINE).await,
            "a second session after rotation"
        );
        let stored = wait_for_lines(&app.store, &meeting, 4).await;
        let expected: Vec<SentLine> = (1..=2)
            .flat_map(|s| script_for(s).expected_lines())
            .collect();
        assert_transcript(&stored[..4], &expected);
        let connections = peer.connections_for(&meeting);
        assert!(
            !connections[0].closed_by_peer,
            "scribe closed the first session itself"
        );
        // The replay may still be on its way when the second turn is stored.
        let replayed = |c: &[scribe_sim::realtime::ConnectionRecord]| {
            c.iter()
                .filter(|r| {
                    r.info.as_ref().and_then(|i| i.meeting.as_deref()) == Some(meeting.as_str())
                })
                .nth(1)
                .map(|r| {
                    r.client_events
                        .iter()
                        .filter(|e| e["type"] == "conversation.item.create")
                        .count()
                })
        };
        let seen = peer.wait_until(DEADLINE, |c| replayed(c) == Some(2)).await;
        assert!(
            seen.is_ok(),
            "the first session's two lines were replayed: {:?}",
            seen.err().map(|c| replayed(&c))
        );
        let kinds: Vec<String> = events(&app.store, &meeting)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(kinds.iter().any(|k| k == "socket_rotated"), "{kinds:?}");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn pings_are_answered_while_the_call_is_idle() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script {
            steps: vec![Step::Ping, Step::Ping, Step::Ping, Step::Hold],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let answered = peer
            .wait_until(DEADLINE, |c| c.iter().any(|r| r.pongs == 3))
            .await;
        assert!(answered.is_ok(), "three pongs: {answered:?}");
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// At call end, user transcriptions still outstanding get the grace period:
/// one that lands within it is kept; one that never lands is
/// `transcription_failed`, with its number.
#[tokio::test]
async fn finalize_waits_the_grace_period_for_outstanding_transcriptions() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Withheld)),
                Step::Turn(turn(2, Transcription::Withheld)),
                Step::Mark("spoken".into()),
                Step::Gate("late".into()),
                // The first user item's id in the peer's chain is item_u_1.
                Step::Raw(
                    json!({"type":"conversation.item.input_audio_transcription.completed","event_id":"late","item_id":"item_u_1","content_index":0,"transcript":"late but kept"})
                        .to_string(),
                ),
                Step::Hold,
            ],
        };
        let peer = sim(move |_| script.clone()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 2).await; // the two agent lines
        // Not `end_call`: the late transcription is released while the call ends.
        expect_json(driver(&app).session_ended(&call).await.expect("sent"), StatusCode::OK).await;
        peer.open_gate("late");
        wait_until_ended(&app.store, &meeting).await;
        let stored = transcript(&app.store, &meeting).await;
        let got: Vec<(i64, &str, ChunkStatus)> = stored.iter().map(|c| (c.sequence_number, c.text.as_str(), c.status)).collect();
        assert_eq!(
            got,
            [
                (1, "late but kept", ChunkStatus::Completed),
                (2, "call agent reply 1 with a few words", ChunkStatus::Completed),
                (3, "", ChunkStatus::TranscriptionFailed),
                (4, "call agent reply 2 with a few words", ChunkStatus::Completed),
            ]
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

mod ends;
