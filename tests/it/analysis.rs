//! Post-call analysis: hand-off at call end, blueprint progress and the next
//! session, the classic summary, failure and retry, killed analyses.

use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use scribe_sim::llm::LlmFault;
use scribe_sim::script::{Script, Step, Transcription, Turn};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, each_backend, expect_error, expect_json, live_settings, spawn_app_with,
};
use crate::running::{
    DEADLINE, coach_with_plan, end_call, events, eventually, meeting_with, one_turn, sim,
    start_call, status_of, wait_for_lines, wait_for_status,
};

async fn stages(app: &TestApp, meeting: &str) -> Vec<String> {
    events(&app.store, meeting)
        .await
        .into_iter()
        .filter(|(k, _)| k == "analysis_stage")
        .map(|(_, d)| d["stage"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Speaks one turn and ends the call.
async fn call(app: &TestApp, peer: &scribe_sim::realtime::SimRealtime, meeting: &str) {
    let call = start_call(app, meeting).await;
    assert!(peer.wait_for_mark("spoken", DEADLINE).await);
    wait_for_lines(&app.store, meeting, 2).await;
    end_call(app, &call).await;
}

#[tokio::test]
async fn a_blueprint_call_completes_with_progress_and_exactly_one_next_session() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        let meeting = meeting_with(&app, coach_with_plan(), "Intro").await;
        call(&app, &peer, &meeting).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;

        let done = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert!(
            done["summary"]
                .as_str()
                .expect("summary")
                .contains("\"call user line 1\""),
            "the summary quotes the conversation: {done}"
        );
        assert_eq!(done["progress"][0]["status"], "completed");
        assert_eq!(done["progress"][1]["status"], "not_started");
        assert!(done["completed_at"].is_string());
        let next_id = done["next_meeting_id"]
            .as_str()
            .expect("a next meeting")
            .to_owned();
        let next = expect_json(
            app.get_authed(&format!("/api/meetings/{next_id}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(next["status"], "upcoming");
        assert_eq!(next["name"], "Plan");
        assert_eq!(next["previous_meeting_id"], meeting.as_str());
        assert_eq!(next["user_id"], "u1");
        assert_eq!(next["progress"], done["progress"], "progress carried");
        assert!(next["prompt"].as_str().expect("prompt").contains("Plan"));
        // The model was asked for JSON with the transcript, speakers named.
        let request = &app.llm.requests()[0].body;
        assert_eq!(request["response_format"]["type"], "json_schema");
        assert_eq!(request["response_format"]["json_schema"]["strict"], true);
        let user = request["messages"][1]["content"]
            .as_str()
            .expect("user message");
        assert!(user.contains("User: call user line 1"), "{user}");
        assert!(user.contains("Coach: call agent reply 1"), "{user}");
        let stages = stages(&app, &meeting).await;
        for stage in [
            "analysis_actor_started",
            "transcript_collected",
            "llm_attempt_started",
            "answer_received",
            "results_saved",
            "next_meeting_created",
        ] {
            assert!(stages.iter().any(|s| s == stage), "{stage} in {stages:?}");
        }
        let job = app
            .store
            .analysis_job(meeting.parse().expect("id"))
            .await
            .expect("q")
            .expect("job");
        assert_eq!((job.state.as_str(), job.attempt), ("completed", 1));
        assert!(job.finished_at >= job.started_at && job.started_at.is_some());
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn an_agent_without_a_blueprint_gets_a_summary() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        let meeting = meeting_with(
            &app,
            json!({ "name": "Coach", "instructions": "Talk." }),
            "Chat",
        )
        .await;
        call(&app, &peer, &meeting).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let done = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert!(
            done["summary"]
                .as_str()
                .expect("summary")
                .contains("call agent reply 1"),
            "{done}"
        );
        assert_eq!(done["next_meeting_id"], Value::Null);
        let request = &app.llm.requests()[0].body;
        assert!(
            request["messages"][0]["content"]
                .as_str()
                .expect("system")
                .contains("expert summarizer")
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_failing_model_fails_the_meeting_and_retry_completes_it() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        app.llm.push_faults([
            LlmFault::ServerError,
            LlmFault::RateLimited {
                retry_after_secs: 0,
            },
            LlmFault::NotJson,
        ]);
        let meeting = meeting_with(&app, coach_with_plan(), "Intro").await;
        call(&app, &peer, &meeting).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Failed).await;
        let status = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}/status"))
                .await,
            StatusCode::OK,
        )
        .await;
        let error = status["error"].as_str().expect("an error");
        assert!(
            error.starts_with(
                "the analysis model failed 3 attempt(s); last error: answer did not validate"
            ),
            "{error}"
        );
        assert_eq!(app.llm.requests().len(), 3);

        let unauthenticated = app
            .client
            .post(app.url(&format!("/api/meetings/{meeting}/retry")))
            .send()
            .await
            .expect("sent");
        // Without a credential, the answer for no such meeting.
        assert_eq!(unauthenticated.status(), StatusCode::NOT_FOUND);
        let retried = app
            .post_json(&format!("/api/meetings/{meeting}/retry"), &json!({}))
            .await;
        assert_eq!(
            expect_json(retried, StatusCode::ACCEPTED).await,
            json!({ "status": "processing" })
        );
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let again = app
            .post_json(&format!("/api/meetings/{meeting}/retry"), &json!({}))
            .await;
        expect_error(again, StatusCode::CONFLICT, "Meeting is completed").await;
        let unknown = app
            .post_json(
                &format!("/api/meetings/{}/retry", uuid::Uuid::new_v4()),
                &json!({}),
            )
            .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// A blueprint call that has ended, with its analysis's first model request
/// hanging (until the client gives up or dies).
async fn analysis_in_flight(url: &str) -> (scribe_sim::realtime::SimRealtime, TestApp, String) {
    let peer = sim(|_| one_turn()).await;
    let realtime = peer.url();
    let app = spawn_app_with(url, |s| live_settings(s, &realtime)).await;
    app.llm
        .push_faults([LlmFault::Stall(Duration::from_secs(30))]);
    let meeting = meeting_with(&app, coach_with_plan(), "Intro").await;
    call(&app, &peer, &meeting).await;
    eventually("the analysis in flight", || async {
        (app.llm.requests().len() == 1).then_some(())
    })
    .await;
    (peer, app, meeting)
}

/// Killed mid-request, the analysis is restarted, resumes the same job and
/// completes; the meeting gets exactly one next session.
#[tokio::test]
async fn a_killed_analysis_is_restarted_and_completes_once() {
    each_backend(|_, url| async move {
        let (_peer, app, meeting) = analysis_in_flight(&url).await;
        let kill = app
            .admin_post(&format!("/admin/actors/{meeting}/kill?kind=analysis"))
            .await;
        expect_json(kill, StatusCode::ACCEPTED).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let id: MeetingId = meeting.parse().expect("id");
        let job = app.store.analysis_job(id).await.expect("q").expect("job");
        assert_eq!(
            (job.state.as_str(), job.attempt),
            ("completed", 2),
            "resumed once"
        );
        let next: Vec<_> = app
            .store
            .meetings(&scribe::domain::meeting::MeetingFilter {
                limit: 50,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_iter()
            .filter(|m| m.previous_meeting_id == Some(id))
            .collect();
        assert_eq!(next.len(), 1, "exactly one next meeting");
        let stages = stages(&app, &meeting).await;
        assert!(
            stages.iter().any(|s| s == "analysis_actor_restarted"),
            "{stages:?}"
        );
        assert_eq!(
            status_of(&app.store, &meeting).await,
            MeetingStatus::Completed
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// A process that stops mid-analysis leaves the job `running`; the next
/// process resumes it at startup and completes it.
#[tokio::test]
async fn a_restarted_process_resumes_unfinished_analyses() {
    each_backend(|_, url| async move {
        let (peer, app, meeting) = analysis_in_flight(&url).await;
        app.stop().await.expect("graceful stop");
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let job = app
            .store
            .analysis_job(meeting.parse().expect("id"))
            .await
            .expect("q")
            .expect("job");
        assert_eq!(job.state, "completed");
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// With one permit, analyses run one at a time: the second request reaches
/// the model only after the first answered.
#[tokio::test]
async fn analyses_run_within_the_concurrency_bound() {
    each_backend(|_, url| async move {
        let peer = sim(|c| Script {
            steps: vec![
                Step::Turn(Turn::numbered("call", 1, Transcription::Before)),
                Step::Mark(format!("spoken:{}", c.meeting.clone().unwrap_or_default())),
                Step::Hold,
            ],
        })
        .await;
        let slow =
            scribe_sim::llm::SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::from_millis(400))
                .await
                .expect("slow llm");
        let (realtime, llm_url) = (peer.url(), slow.base_url());
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.openai_base_url = llm_url;
            s.analysis_concurrency = 1;
        })
        .await;
        let a = meeting_with(&app, coach_with_plan(), "Intro").await;
        let b = meeting_with(&app, coach_with_plan(), "Intro").await;
        let mut calls = Vec::new();
        for meeting in [&a, &b] {
            let call = start_call(&app, meeting).await;
            assert!(
                peer.wait_for_mark(&format!("spoken:{meeting}"), DEADLINE)
                    .await
            );
            wait_for_lines(&app.store, meeting, 2).await;
            calls.push(call);
        }
        let (first, second) = (calls.remove(0), calls.remove(0));
        futures::join!(end_call(&app, &first), end_call(&app, &second));
        wait_for_status(&app.store, &a, MeetingStatus::Completed).await;
        wait_for_status(&app.store, &b, MeetingStatus::Completed).await;
        let seen = slow.requests();
        assert_eq!(seen.len(), 2);
        assert!(
            seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(400),
            "the second analysis waited for the first"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn an_empty_transcript_is_analysed_with_a_warning() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script {
            steps: vec![Step::Mark("spoken".into()), Step::Hold],
        })
        .await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| live_settings(s, &realtime)).await;
        let meeting = meeting_with(
            &app,
            json!({ "name": "Coach", "instructions": "Talk." }),
            "Silent",
        )
        .await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        end_call(&app, &call).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let stages = stages(&app, &meeting).await;
        assert!(stages.iter().any(|s| s == "empty_transcript"), "{stages:?}");
        let done = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert!(
            done["summary"]
                .as_str()
                .expect("summary")
                .contains("nothing was said"),
            "{done}"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}
