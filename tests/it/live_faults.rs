//! Live calls under faults: killed and panicking actors, closed and silent
//! sockets, configuration errors, error storms and garbage frames.

use std::time::Duration;

use reqwest::StatusCode;
use scribe::sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe::sim::script::{Script, SentLine, Step, Transcription, Turn};
use scribe_actors::domain::MeetingStatus;
use serde_json::Value;

use crate::helpers::{
    ADMIN_TOKEN, TestApp, each_backend, expect_error, expect_json, live_settings, spawn_app_with,
};
use crate::live_calls::{
    DEADLINE, assert_transcript, driver, end_call, events, eventually, live_app, new_meeting,
    run_call, sim, start_call, transcript, wait_for_lines, wait_for_status,
};

fn turn(n: usize, transcription: Transcription) -> Turn {
    Turn::numbered("call", n, transcription)
}

/// Waits for the meeting's actor to satisfy `predicate` in `/admin/actors`.
async fn actor_where(
    app: &TestApp,
    meeting: &str,
    what: &str,
    predicate: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, || async {
        app.actor(meeting).await.filter(|a| predicate(a))
    })
    .await
}

async fn event_count(app: &TestApp, meeting: &str, kind: &str) -> usize {
    events(&app.store, meeting)
        .await
        .iter()
        .filter(|(k, _)| k == kind)
        .count()
}

/// Waits until the event log holds at least one `kind` entry.
async fn wait_for_event(app: &TestApp, meeting: &str, kind: &str) {
    eventually(&format!("a {kind} event"), || async {
        (event_count(app, meeting, kind).await > 0).then_some(())
    })
    .await;
}

/// Invariants 1-3 under repeated kills and panics: at each round the actor
/// dies (ractor kill or a panic in a handler) with lines still unwritten in
/// the writer or a user line still waiting for its transcription; the heir
/// opens a new session and the transcript ends up exactly what was said,
/// numbered 1..N without gaps or duplicates.
#[tokio::test]
async fn repeated_kills_and_panics_lose_nothing_and_numbering_stays_gapless() {
    each_backend(|_, url| async move {
        const ROUNDS: usize = 6;
        // Session s plays turn s; even rounds withhold the user's transcription,
        // so the actor dies with that line still open.
        let script_for = |s: usize| -> Script {
            if s <= ROUNDS {
                let timing = if s.is_multiple_of(2) {
                    Transcription::Withheld
                } else {
                    Transcription::After
                };
                Script {
                    steps: vec![
                        Step::Turn(turn(s, timing)),
                        Step::Mark(format!("round-{s}")),
                        Step::Hold,
                    ],
                }
            } else {
                Script {
                    steps: vec![
                        Step::Turn(turn(s, Transcription::During)),
                        Step::Mark("last".into()),
                        Step::Hold,
                    ],
                }
            }
        };
        let expected: Vec<SentLine> = (1..=ROUNDS + 1)
            .flat_map(|s| script_for(s).expected_lines())
            .collect();
        let peer = sim(move |c| script_for(c.session)).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.restart_budget.max_restarts = 50;
            // Lines wait in the writer long enough to be unwritten at the kill.
            s.writer.max_delay = Duration::from_millis(300);
        })
        .await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        for round in 1..=ROUNDS {
            assert!(
                peer.wait_for_mark(&format!("round-{round}"), DEADLINE)
                    .await,
                "round {round} played"
            );
            let next = 2 * round as i64 + 1;
            let open = if round.is_multiple_of(2) { 1 } else { 0 };
            // The actor has read the whole turn: both slots numbered, only the
            // withheld user line (if any) still open.
            actor_where(&app, &meeting, "the turn read", |a| {
                a["next_sequence"] == next && a["unflushed"] == open
            })
            .await;
            if round % 3 == 0 {
                let answer = app
                    .client
                    .post(app.url(&format!("/admin/actors/{meeting}/kill?kind=meeting")))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .expect("sent");
                expect_json(answer, StatusCode::ACCEPTED).await;
            } else if round % 3 == 1 {
                assert!(
                    app.calls
                        .kill(meeting.parse().expect("id"))
                        .await
                        .expect("supervisor")
                );
            } else {
                assert!(
                    app.calls
                        .panic(meeting.parse().expect("id"))
                        .await
                        .expect("supervisor")
                );
            }
            actor_where(&app, &meeting, "the heir", |a| {
                a["restarts"] == round as u64 && a["socket"] == "open"
            })
            .await;
        }
        assert!(peer.wait_for_mark("last", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, expected.len()).await;
        end_call(&app, &call).await;
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);
        assert_eq!(event_count(&app, &meeting, "actor_restarted").await, ROUNDS);
        assert_eq!(peer.connections_for(&meeting).len(), ROUNDS + 1);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn an_actor_that_keeps_dying_exhausts_its_budget_and_the_meeting_fails() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.restart_budget.max_restarts = 2;
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let id = meeting.parse().expect("id");
        for round in 0..=2u64 {
            actor_where(&app, &meeting, "a live actor", |a| a["restarts"] == round).await;
            assert!(app.calls.kill(id).await.expect("supervisor"));
        }
        wait_for_status(&app.store, &meeting, MeetingStatus::Failed).await;
        let m = app.store.meeting(id).await.expect("q").expect("found");
        let error = m.error.expect("an error");
        assert!(error.contains("died 3 times within 60 s"), "{error}");
        assert!(app.actor(&meeting).await.is_none(), "no actor left");
        assert_eq!(
            event_count(&app, &meeting, "restart_budget_exhausted").await,
            1
        );
        app.stop().await.expect("clean stop");
    })
    .await;
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
        assert_eq!(event_count(&app, &meeting, "socket_connected").await, 5);
        assert!(event_count(&app, &meeting, "socket_reconnecting").await >= 4);
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
        assert_eq!(event_count(&app, &meeting, "configuration_error").await, 1);
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
        assert_eq!(event_count(&app, &meeting, "realtime_error").await, 20);
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

#[tokio::test]
async fn admin_endpoints_need_the_admin_token_and_kill_needs_chaos() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.chaos = false;
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let no_token = app.get("/admin/actors").await;
        expect_error(no_token, StatusCode::UNAUTHORIZED, "bearer token").await;
        let api_token = app.get_authed("/admin/actors").await;
        expect_error(api_token, StatusCode::UNAUTHORIZED, "bearer token").await;
        let actor = actor_where(&app, &meeting, "the actor", |a| a["socket"] == "open").await;
        for field in [
            "kind",
            "meeting_id",
            "state",
            "uptime_ms",
            "restarts",
            "next_sequence",
            "unflushed",
            "socket",
        ] {
            assert!(actor.get(field).is_some(), "{field} missing in {actor}");
        }
        assert_eq!(actor["state"], "live");
        let kill = app
            .client
            .post(app.url(&format!("/admin/actors/{meeting}/kill?kind=meeting")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("sent");
        expect_error(kill, StatusCode::FORBIDDEN, "SCRIBE_CHAOS").await;
        assert_eq!(
            app.actor(&meeting).await.expect("still live")["restarts"],
            0
        );
        app.stop().await.expect("clean stop");

        // With chaos on: unknown meetings are 404 and kinds are checked.
        let app = live_app(&url, &peer).await;
        let kill = |path: String| {
            app.client
                .post(app.url(&path))
                .bearer_auth(ADMIN_TOKEN)
                .send()
        };
        let unknown = kill(format!(
            "/admin/actors/{}/kill?kind=meeting",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect("sent");
        expect_error(unknown, StatusCode::NOT_FOUND, "no live meeting actor").await;
        let bad_kind = kill(format!(
            "/admin/actors/{}/kill?kind=socket",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect("sent");
        expect_error(bad_kind, StatusCode::BAD_REQUEST, "`kind` must be").await;
        let no_kind = kill(format!("/admin/actors/{}/kill", uuid::Uuid::new_v4()))
            .await
            .expect("sent");
        expect_error(no_kind, StatusCode::BAD_REQUEST, "kind").await;
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Invariant 2 across a process restart: the meeting stays `active`, the
/// next process adopts it at startup, opens a new session with the stored
/// lines replayed, and numbering continues after the highest number.
#[tokio::test]
async fn a_restarted_process_adopts_live_calls_and_numbering_continues() {
    each_backend(|_, url| async move {
        let script_for = |s: usize| Script {
            steps: vec![
                Step::Turn(turn(s, Transcription::Before)),
                // The second turn's transcription never comes: open at shutdown.
                Step::Turn(turn(s + 10, Transcription::Withheld)),
                Step::Mark(format!("s{s}")),
                Step::Hold,
            ],
        };
        let peer = sim(move |c| script_for(c.session)).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("s1", DEADLINE).await);
        actor_where(&app, &meeting, "the first session read", |a| {
            a["next_sequence"] == 5
        })
        .await;
        app.stop().await.expect("graceful stop");
        assert_eq!(
            crate::live_calls::status_of(&crate::helpers::TestDb::store_at(&url).await, &meeting)
                .await,
            MeetingStatus::Active,
            "a live call stays active across a restart"
        );

        let app = live_app(&url, &peer).await;
        assert!(
            peer.wait_for_mark("s2", DEADLINE).await,
            "adopted and reconnected"
        );
        // The second session's withheld user line stays open until the end.
        wait_for_lines(&app.store, &meeting, 7).await;
        end_call(&app, &call).await;
        let mut expected = script_for(1).expected_lines();
        expected.extend(script_for(2).expected_lines());
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);
        let restarted: Vec<Value> = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "actor_restarted")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(restarted.len(), 1, "{restarted:?}");
        assert!(
            restarted[0]["reason"]
                .as_str()
                .expect("reason")
                .contains("adopted")
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// A graceful stop while a call is being finalized (here: waiting out the
/// grace period for a transcription that never comes) finishes the job
/// first: the ended call is `processing`, never left `active` for the next
/// process to adopt.
#[tokio::test]
async fn a_graceful_stop_finishes_calls_that_are_ending() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Withheld)),
                Step::Mark("spoken".into()),
                Step::Hold,
            ],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        actor_where(&app, &meeting, "the turn read", |a| a["next_sequence"] == 3).await;
        let answer = driver(&app).session_ended(&call).await.expect("sent");
        expect_json(answer, StatusCode::OK).await;
        app.stop().await.expect("graceful stop");
        let reopened = crate::helpers::TestDb::store_at(&url).await;
        let status = crate::live_calls::status_of(&reopened, &meeting).await;
        assert!(
            matches!(status, MeetingStatus::Processing | MeetingStatus::Completed),
            "ended, not left active: {status}"
        );
        let lines = transcript(&reopened, &meeting).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].status,
            scribe_actors::domain::ChunkStatus::TranscriptionFailed
        );
    })
    .await;
}
