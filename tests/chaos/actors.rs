//! Killed and panicking actors: the MeetingActor, the AnalysisActor, the
//! CallSupervisor itself. Whatever dies, nothing read is lost and nothing
//! stays stuck.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::llm::LlmFault;
use scribe_sim::script::{Script, SentLine, Step, Transcription, Turn};
use serde_json::Value;

use crate::fleet::{
    finish_chaotic_calls, fleet_meetings, fleet_peer, requests_mentioning, start_calls,
};
use crate::helpers::{each_backend, expect_json, live_settings, spawn_app_with};
use crate::running::{
    DEADLINE, actor_where, assert_transcript, end_call, event_count, events, eventually,
    new_meeting, sim, start_call, transcript, wait_for_lines, wait_for_status,
};

fn turn(n: usize, transcription: Transcription) -> Turn {
    Turn::numbered("call", n, transcription)
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
                    .admin_post(&format!("/admin/actors/{meeting}/kill?kind=meeting"))
                    .await;
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
        assert_eq!(
            event_count(&app.store, &meeting, "actor_restarted").await,
            ROUNDS
        );
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
            event_count(&app.store, &meeting, "restart_budget_exhausted").await,
            1
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Invariants 1-3 at scale: 50 calls run at once while random MeetingActors
/// die at random instants (ractor kill, the admin endpoint, a panic in a
/// handler), mid-turn and with lines waiting in the writer's open batch.
/// Every transcript holds only what the peer said, in the order it said
/// it, numbered without gaps, with no duplicate and nothing lost (a line
/// cut by a kill is kept as `partial` / `transcription_failed`); every call
/// ends and its analysis completes.
#[tokio::test]
async fn fifty_calls_under_random_kills_and_panics_lose_nothing_and_stay_in_order() {
    each_backend(|_, url| async move {
        const CALLS: usize = 50;
        const KILLS: usize = 150;
        let peer = fleet_peer(0.02).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.restart_budget.max_restarts = 1_000;
            // Lines wait in an open batch for a while: kills land mid-batch.
            s.writer.max_delay = Duration::from_millis(100);
        })
        .await;
        let meetings = fleet_meetings(&app, CALLS).await;
        let calls = start_calls(&app, &meetings).await;

        let seed: u64 = rand::random();
        eprintln!("chaos seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut instants = tokio::time::interval(Duration::from_millis(5));
        let mut landed = 0;
        for round in 0..KILLS {
            // A random instant: 5-40 ms after the previous blow.
            for _ in 0..rng.random_range(1..=8) {
                instants.tick().await;
            }
            let meeting = &meetings[rng.random_range(0..CALLS)];
            let id = meeting.parse().expect("id");
            let hit = match round % 3 {
                0 => app.calls.kill(id).await.expect("supervisor answers"),
                1 => app.calls.panic(id).await.expect("supervisor answers"),
                _ => {
                    let answer = app
                        .admin_post(&format!("/admin/actors/{meeting}/kill?kind=meeting"))
                        .await;
                    // 404 when the actor is between death and restart.
                    assert!(
                        matches!(
                            answer.status(),
                            StatusCode::ACCEPTED | StatusCode::NOT_FOUND
                        ),
                        "{}",
                        answer.status()
                    );
                    answer.status() == StatusCode::ACCEPTED
                }
            };
            landed += usize::from(hit);
        }
        assert!(landed > KILLS / 2, "most blows hit a live actor: {landed}");

        finish_chaotic_calls(&app, &peer, &calls, false).await;
        let mut restarts = 0;
        for meeting in &meetings {
            restarts += event_count(&app.store, meeting, "actor_restarted").await;
            wait_for_status(&app.store, meeting, MeetingStatus::Completed).await;
        }
        // Two blows can land on one actor before it dies (a panic queued
        // behind a kill): at most one restart per blow, and most blows count.
        assert!(
            restarts <= landed && restarts > landed / 2,
            "{restarts} restarts for {landed} blows"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Analyses killed mid-request (each of 10 while its model request hangs)
/// are restarted, resume the same job and complete exactly once.
#[tokio::test]
async fn analyses_killed_mid_request_are_restarted_and_complete_once() {
    each_backend(|_, url| async move {
        const CALLS: usize = 10;
        let peer = fleet_peer(0.0).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.analysis_concurrency = CALLS;
        })
        .await;
        // Every first request hangs until the actor dies.
        app.llm
            .push_faults((0..CALLS).map(|_| LlmFault::Stall(Duration::from_secs(120))));
        let meetings = fleet_meetings(&app, CALLS).await;
        let calls = start_calls(&app, &meetings).await;
        finish_chaotic_calls(&app, &peer, &calls, false).await;
        let asked = |meeting: &str| requests_mentioning(&app.llm, meeting);
        // Every first request hangs (so the stalls are theirs alone), then
        // each actor dies in the middle of its request.
        eventually("every first request in flight", || async {
            (app.llm.requests().len() == CALLS).then_some(())
        })
        .await;
        for meeting in &meetings {
            assert_eq!(asked(meeting), 1);
            let kill = app
                .admin_post(&format!("/admin/actors/{meeting}/kill?kind=analysis"))
                .await;
            expect_json(kill, StatusCode::ACCEPTED).await;
        }
        for meeting in &meetings {
            wait_for_status(&app.store, meeting, MeetingStatus::Completed).await;
            let job = app
                .store
                .analysis_job(meeting.parse().expect("id"))
                .await
                .expect("query")
                .expect("job");
            assert_eq!((job.state.as_str(), job.attempt), ("completed", 2));
            assert_eq!(asked(meeting), 2, "one hung request, one that answered");
        }
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Killing the CallSupervisor itself (and with it every actor) while 10
/// calls talk and 5 analyses wait on the model: the application starts a
/// new supervisor, which re-adopts every live call (a new realtime session,
/// numbering continued) and resumes every analysis; all complete, nothing
/// lost.
#[tokio::test]
async fn a_killed_supervisor_is_replaced_and_every_call_and_analysis_resumes() {
    each_backend(|_, url| async move {
        const LIVE: usize = 10;
        const ANALYSING: usize = 5;
        let peer = fleet_peer(0.05).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        app.llm
            .push_faults((0..ANALYSING).map(|_| LlmFault::Stall(Duration::from_secs(120))));
        let meetings = fleet_meetings(&app, LIVE + ANALYSING).await;
        let (analysing, live) = meetings.split_at(ANALYSING);
        let ended = start_calls(&app, analysing).await;
        finish_chaotic_calls(&app, &peer, &ended, false).await;
        eventually("every analysis waiting on the model", || async {
            (app.llm.requests().len() == ANALYSING).then_some(())
        })
        .await;
        let calls = start_calls(&app, live).await;
        for meeting in live {
            wait_for_lines(&app.store, meeting, 1).await;
        }

        let answer = app.admin_post("/admin/supervisor/kill").await;
        expect_json(answer, StatusCode::ACCEPTED).await;

        for meeting in live {
            eventually("a second session", || async {
                (peer.connections_for(meeting).len() >= 2).then_some(())
            })
            .await;
        }
        finish_chaotic_calls(&app, &peer, &calls, false).await;
        for meeting in &meetings {
            wait_for_status(&app.store, meeting, MeetingStatus::Completed).await;
        }
        for meeting in live {
            let restarted: Vec<Value> = events(&app.store, meeting)
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
                    .contains("re-adopted"),
                "{restarted:?}"
            );
            assert_eq!(
                event_count(&app.store, meeting, "possible_gap").await,
                0,
                "nothing lost"
            );
        }
        assert_eq!(
            app.llm.requests().len(),
            ANALYSING * 2 + LIVE,
            "each hung analysis asked once more; each live call once"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}
