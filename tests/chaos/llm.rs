//! The model misbehaving: server errors, rate limits with `Retry-After`,
//! hung requests, answers that are not JSON, and a slow server while 200
//! analyses queue up. The concurrency bound holds, live calls are not
//! touched, and no analysis is left stuck.

use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use scribe_sim::llm::{LlmFault, SimLlm};
use serde_json::json;

use crate::fleet::{finish_chaotic_calls, fleet_meetings, fleet_peer, start_calls};
use crate::helpers::{each_backend, expect_json, live_settings, spawn_app_with};
use crate::running::{eventually, force_active, status_of, wait_for_status};

/// A slow model (100 ms an answer) that also fails with 500s, 429s with
/// `Retry-After`, hung requests and non-JSON answers, while 200 analyses
/// queue behind 4 permits and 5 calls talk: never more than 4 requests in
/// flight; the calls' transcripts are complete; every analysis reaches a
/// terminal state (none stuck), a failed one carries the model's error,
/// and retrying it completes it.
#[tokio::test]
async fn a_slow_failing_model_with_200_queued_analyses_keeps_its_bound_and_leaves_calls_alone() {
    each_backend(|_, url| async move {
        const QUEUED: usize = 200;
        const PERMITS: usize = 4;
        const LIVE: usize = 5;
        let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::from_millis(100))
            .await
            .expect("sim llm starts");
        let faults = [
            LlmFault::ServerError,
            LlmFault::RateLimited {
                retry_after_secs: 1,
            },
            LlmFault::Stall(Duration::from_secs(30)),
            LlmFault::NotJson,
        ];
        llm.push_faults(faults.iter().cycle().take(24).cloned());
        let peer = fleet_peer(0.2).await;
        let (realtime, model) = (peer.url(), llm.base_url());
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.openai_base_url = model;
            s.analysis_concurrency = PERMITS;
            s.analysis_policy.attempt_timeout = Duration::from_secs(1);
        })
        .await;

        let meetings = fleet_meetings(&app, QUEUED + LIVE).await;
        let (queued, live) = meetings.split_at(QUEUED);
        let calls = start_calls(&app, live).await;
        // 200 calls end at once (empty ones: the model's load is the point).
        for meeting in queued {
            let id: MeetingId = meeting.parse().expect("id");
            force_active(&app.store, id).await;
            app.calls
                .end(id, chrono::Utc::now())
                .await
                .expect("supervisor answers");
        }
        finish_chaotic_calls(&app, &peer, &calls, false).await;

        let mut failed = Vec::new();
        for meeting in &meetings {
            let status = eventually("a terminal state", || async {
                let status = status_of(&app.store, meeting).await;
                matches!(status, MeetingStatus::Completed | MeetingStatus::Failed).then_some(status)
            })
            .await;
            if status == MeetingStatus::Failed {
                failed.push(meeting.clone());
            }
        }
        assert!(
            llm.max_in_flight() <= PERMITS,
            "{} requests in flight at once",
            llm.max_in_flight()
        );
        assert_eq!(
            llm.max_in_flight(),
            PERMITS,
            "the queue filled every permit"
        );
        eprintln!(
            "{} requests for {} analyses; {} failed after every attempt",
            llm.requests().len(),
            meetings.len(),
            failed.len()
        );
        for meeting in &failed {
            let shown = expect_json(
                app.get_authed(&format!("/api/meetings/{meeting}/status"))
                    .await,
                StatusCode::OK,
            )
            .await;
            let error = shown["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("the analysis model failed") && error.contains("last error: "),
                "a readable error: {error}"
            );
            let retry = app
                .post_json(&format!("/api/meetings/{meeting}/retry"), &json!({}))
                .await;
            assert_eq!(retry.status(), StatusCode::ACCEPTED);
            wait_for_status(&app.store, meeting, MeetingStatus::Completed).await;
        }
        app.stop().await.expect("clean stop");
    })
    .await;
}
