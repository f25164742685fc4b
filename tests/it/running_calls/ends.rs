//! Running calls, continued: ends without an actor, transcription left off, calls isolated from each other, metrics.

use super::*;

/// `call.session_ended` for an active meeting with no live actor (its actor
/// failed, or the process restarted) still finalizes it from what is stored;
/// numbers handed out but never stored become `lost` lines, logged as a gap.
#[tokio::test]
async fn an_ended_call_without_a_live_actor_is_finalized_from_the_store() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let id: MeetingId = meeting.parse().expect("id");
        // Active in the database, as a crashed process would leave it.
        force_active(&app.store, id).await;
        let line = |n: i64| {
            (
                id,
                scribe_actors::transcript::Line {
                    sequence_number: n,
                    speaker: scribe_actors::domain::Speaker::User,
                    text: format!("line {n}"),
                    status: ChunkStatus::Completed,
                    item_id: None,
                    timestamp: scribe::domain::now(),
                    start_ms: None,
                    end_ms: None,
                    ready_at: std::time::Instant::now(),
                },
            )
        };
        app.store
            .write_batch(&scribe_actors::ports::WriteBatch {
                lines: vec![line(1), line(2)],
                high_water: vec![(id, 4)],
                ..Default::default()
            })
            .await
            .expect("written");
        let call = SimCall::new(&meeting);
        let ended = expect_json(
            driver(&app).session_ended(&call).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(ended["status"], "ending");
        wait_until_ended(&app.store, &meeting).await;
        let stored = transcript(&app.store, &meeting).await;
        let statuses: Vec<ChunkStatus> = stored.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [
                ChunkStatus::Completed,
                ChunkStatus::Completed,
                ChunkStatus::Lost,
                ChunkStatus::Lost
            ]
        );
        let gaps: Vec<Value> = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "gap")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (gaps[0]["from"].as_i64(), gaps[0]["to"].as_i64()),
            (Some(3), Some(4))
        );
        assert!(peer.connections().is_empty());
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn transcription_left_off_by_the_service_is_logged_and_the_call_goes_on() {
    each_backend(|_, url| async move {
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                refuse_transcription: true,
                ..SimRealtimeConfig::scripted(|_| Script {
                    steps: vec![
                        Step::Turn(turn(1, Transcription::Before)),
                        Step::Mark("done".into()),
                        Step::Hold,
                    ],
                })
            },
        )
        .await
        .expect("sim starts");
        let app = live_app(&url, &peer).await;
        // The service sends no user transcription: the agent's line is
        // stored during the call, the user's when the call ends.
        let (meeting, stored) = run_call(&app, &peer, "done", 1).await;
        assert_eq!(stored.len(), 2, "the call went on without transcription");
        assert_eq!(stored[0].status, ChunkStatus::TranscriptionFailed);
        assert_eq!(stored[1].status, ChunkStatus::Completed);
        let off: Vec<Value> = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "transcription_off")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(off.len(), 1);
        assert!(
            off[0]["error"]
                .as_str()
                .expect("error")
                .contains("transcription off")
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Supervision is per call: one call's actor dying, or one call ending,
/// never touches another call.
#[tokio::test]
async fn one_call_dying_or_ending_never_touches_another() {
    each_backend(|_, url| async move {
        let peer = sim(|c| Script {
            steps: vec![
                Step::Turn(turn(c.session, Transcription::Before)),
                Step::Mark(format!(
                    "{}-{}",
                    c.meeting.clone().unwrap_or_default(),
                    c.session
                )),
                Step::Hold,
            ],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let (a, b) = (new_meeting(&app).await, new_meeting(&app).await);
        let (call_a, call_b) = (SimCall::new(&a), SimCall::new(&b));
        let hooks = driver(&app);
        for call in [&call_a, &call_b] {
            expect_json(
                hooks.session_started(call).await.expect("sent"),
                StatusCode::OK,
            )
            .await;
        }
        assert!(peer.wait_for_mark(&format!("{a}-1"), DEADLINE).await);
        assert!(peer.wait_for_mark(&format!("{b}-1"), DEADLINE).await);
        wait_for_lines(&app.store, &a, 2).await;
        let b_actor = eventually("b's actor", || app.actor(&b)).await;
        // A's actor is killed and restarted; then A's call ends.
        assert!(
            app.calls
                .kill(a.parse().expect("id"))
                .await
                .expect("supervisor")
        );
        assert!(peer.wait_for_mark(&format!("{a}-2"), DEADLINE).await);
        wait_for_lines(&app.store, &a, 4).await;
        expect_json(
            hooks.session_ended(&call_a).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        wait_until_ended(&app.store, &a).await;
        // B's actor is the same one, untouched, still on its first session.
        let b_now = app.actor(&b).await.expect("b still live");
        assert_eq!(b_now["restarts"], 0);
        assert!(b_now["uptime_ms"].as_u64() >= b_actor["uptime_ms"].as_u64());
        assert_eq!(peer.connections_for(&b).len(), 1);
        assert_eq!(status_of(&app.store, &b).await, MeetingStatus::Active);
        expect_json(
            hooks.session_ended(&call_b).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        wait_until_ended(&app.store, &b).await;
        assert_eq!(transcript(&app.store, &b).await.len(), 2);
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// The value of the first sample of `metric` whose labels contain every
/// one of `labels`, in Prometheus text.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(metric) && labels.iter().all(|x| l.contains(x)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `GET /metrics` is Prometheus text with what a call did: frames parsed,
/// lines committed (with the commit-lag histogram and batch sizes),
/// webhooks by type and outcome, meetings by status, an analysis and its
/// model attempt. (The recorder is process-wide and other tests run beside
/// this one: counters are checked as at least this call's share.)
#[tokio::test]
async fn metrics_show_what_a_call_did() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Before)),
                Step::Mark("done".into()),
                Step::Hold,
            ],
        };
        let peer = sim(move |_| script.clone()).await;
        let app = live_app(&url, &peer).await;
        let (meeting, _) = run_call(&app, &peer, "done", 2).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let response = app.get("/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/plain")
        );
        let text = response.text().await.expect("body");
        let at_least = |metric: &str, labels: &[&str], floor: f64| {
            let value = sample(&text, metric, labels)
                .unwrap_or_else(|| panic!("{metric} {labels:?} missing in:\n{text}"));
            assert!(value >= floor, "{metric} {labels:?} = {value}");
        };
        at_least("scribe_realtime_frames_total", &[], 10.0);
        at_least("scribe_lines_committed_total", &[], 2.0);
        at_least("scribe_commit_lag_seconds_count", &[], 2.0);
        at_least("scribe_commit_lag_seconds_bucket", &["le=\"+Inf\""], 2.0);
        at_least("scribe_write_batch_lines_count", &[], 1.0);
        at_least(
            "scribe_webhooks_total",
            &["type=\"call.session_started\"", "outcome=\"started\""],
            1.0,
        );
        at_least(
            "scribe_webhooks_total",
            &["type=\"call.session_ended\"", "outcome=\"ending\""],
            1.0,
        );
        at_least("scribe_analyses_total", &["outcome=\"completed\""], 1.0);
        at_least("scribe_analysis_duration_seconds_count", &[], 1.0);
        at_least("scribe_llm_attempts_total", &["outcome=\"ok\""], 1.0);
        assert!(text.contains("scribe_live_actors"), "{text}");
        // Every app's probe in this process sets the one gauge (a status
        // its database lacks to 0): read it until this app's probe wrote
        // last.
        eventually("this meeting counted on /metrics", || async {
            let text = app.get("/metrics").await.text().await.ok()?;
            sample(&text, "scribe_meetings", &["status=\"completed\""])
                .filter(|count| *count >= 1.0)
        })
        .await;
        app.stop().await.expect("clean stop");
    })
    .await;
}
