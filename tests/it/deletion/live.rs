//! Deleting a meeting whose call is live: the call ends first (its actor
//! stopped, its socket closed, a phone call hung up at OpenAI), and
//! nothing written after the delete survives: a late Stream end, a late
//! OpenAI webhook, a re-attach, a takeover, the old actor's queued lines.

use std::time::Duration;

use futures::StreamExt;
use scribe_actors::domain::{EventKind, Speaker};
use scribe_actors::ports::{CallStore, LoggedEvent, WriteBatch};
use scribe_actors::supervisor::outcome::StartOutcome;
use scribe_sim::carried::{CallStatus, EndedAnswer};
use scribe_sim::openai_webhook::OpenAiWebhooks;

use super::*;
use crate::running::{actor_where, eventually};

/// Waits until the meeting's event stream (opened with its page key)
/// says `deleted`, then ends.
async fn stream_says_deleted(
    app: &TestApp,
    meeting: &str,
    key: &str,
) -> tokio::task::JoinHandle<()> {
    let response = app
        .get(&format!("/api/meetings/{meeting}/events?key={key}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut seen = String::new();
        let read = async {
            while let Some(chunk) = body.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
                if seen.contains("event: deleted") {
                    break;
                }
            }
            // Then the stream ends.
            while body.next().await.is_some() {}
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("the stream says deleted and ends");
    })
}

#[tokio::test]
async fn a_live_call_deleted_is_ended_first_and_nothing_late_brings_it_back() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![Step::Turn(turn(1)), Step::Mark("spoken".into()), Step::Hold],
        };
        let peer = sim(move |_| script.clone()).await;
        let app = crate::running::live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let id: MeetingId = meeting.parse().expect("id");
        let key = app.page_key(&meeting).await;
        let record = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 2).await;
        actor_where(&app, &meeting, "its actor", |_| true).await;
        let lease = app
            .store
            .call_context(id)
            .await
            .expect("context")
            .expect("live")
            .lease;
        let stream = stream_says_deleted(&app, &meeting, &key).await;

        let deleted = expect_json(
            delete(&app, &format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            deleted,
            json!({ "meeting_id": meeting, "call_ended": true })
        );
        stream.await.expect("stream task");
        // Its actor stopped; its socket closed by scribe.
        eventually("its actor to stop", || async {
            app.actor(&meeting).await.is_none().then_some(())
        })
        .await;
        peer.wait_until(DEADLINE, |c| {
            c.iter()
                .filter(|c| {
                    c.info.as_ref().and_then(|i| i.meeting.as_deref()) == Some(meeting.as_str())
                })
                .all(|c| c.ended)
        })
        .await
        .expect("the socket closed");

        // What its actor had queued, under the lease it held: refused.
        let line = scribe_actors::domain::Line {
            sequence_number: 3,
            speaker: Speaker::User,
            text: "said after the delete".into(),
            status: scribe_actors::domain::ChunkStatus::Completed,
            item_id: None,
            timestamp: chrono::Utc::now(),
            start_ms: None,
            end_ms: None,
            ready_at: std::time::Instant::now(),
        };
        let late = WriteBatch {
            lines: vec![(id, line)],
            high_water: vec![(id, 3)],
            leases: vec![(id, lease)],
            events: vec![LoggedEvent {
                meeting: id,
                kind: EventKind::SocketConnected,
                detail: json!({ "session": 2 }),
                at: chrono::Utc::now(),
            }],
            ..WriteBatch::default()
        };
        let refused = scribe_actors::ports::TranscriptSink::write(&app.store, &late)
            .await
            .expect("the store answers");
        assert_eq!(refused, vec![id]);
        // A re-attach (an actor started again) and a takeover find nothing to run.
        assert_eq!(
            app.calls
                .adopt(id, "re-attach after the delete")
                .await
                .expect("answers"),
            StartOutcome::NotActive(MeetingStatus::Cancelled)
        );
        let other = scribe_actors::ports::LeaseStore::join(&app.store, "another-instance")
            .await
            .expect("joins");
        let taken =
            scribe_actors::ports::LeaseStore::take_over(&app.store, &other, Duration::ZERO, 500)
                .await
                .expect("takes");
        assert!(
            !taken.iter().any(|c| c.meeting == id),
            "a tombstone is nobody's to take"
        );
        // A late Stream end.
        let late_end = expect_json(
            driver(&app).session_ended(&call).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(late_end["status"], "deleted");

        assert_tombstone(&app.store, &meeting, &record["agent_id"]).await;
        assert_gone(&app, &meeting, &key).await;
        assert_eq!(
            crate::running::status_of(&app.store, &meeting).await,
            MeetingStatus::Cancelled
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_live_phone_call_deleted_is_hung_up_and_its_late_webhook_changes_nothing() {
    use crate::carried_calls::{WEBHOOK_SECRET, calls_app};
    each_backend(|_, url| async move {
        let app = calls_app(
            &url,
            |_| Script {
                steps: vec![Step::Turn(turn(1)), Step::Mark("spoken".into()), Step::Hold],
            },
            EndedAnswer::NotFound,
        )
        .await;
        app.create_agent(json!({
            "name": "Front desk",
            "instructions": "Answer the phone kindly.",
            "phone_numbers": ["+18005550100"],
        }))
        .await;
        let key = scribe::openai::webhook::secret_key(WEBHOOK_SECRET).expect("secret");
        let hooks = OpenAiWebhooks::new(&app.url("/api/openai/webhook"), &key);
        let call_id = app.llm.calls().ring();
        let event = OpenAiWebhooks::incoming_call(&call_id, "+14155550123", "+18005550100");
        let body = expect_json(hooks.send(&event).await.expect("sent"), StatusCode::OK).await;
        assert_eq!(body["status"], "accepted");
        let meeting = body["meeting_id"].as_str().expect("meeting id").to_owned();
        let record = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        let page = app.page_key(&meeting).await;
        assert!(app.llm.calls().wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 2).await;

        let deleted = expect_json(
            delete(&app, &format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(deleted["call_ended"], true);
        let sim_call = app.llm.calls().call(&call_id).expect("the call");
        eventually("the call to end at OpenAI", || async {
            (sim_call.status() == CallStatus::Ended).then_some(())
        })
        .await;
        eventually("its actor to stop", || async {
            app.actor(&meeting).await.is_none().then_some(())
        })
        .await;

        // OpenAI delivers the incoming call again (a new delivery id).
        let again = expect_json(hooks.send(&event).await.expect("sent"), StatusCode::OK).await;
        assert_eq!(again["status"], "deleted");
        let id: MeetingId = meeting.parse().expect("id");
        assert_eq!(
            app.store.meeting_for_call(&call_id).await.expect("query"),
            Some(id),
            "no new meeting"
        );
        assert_tombstone(&app.store, &meeting, &record["agent_id"]).await;
        assert_gone(&app, &meeting, &page).await;
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// On PostgreSQL the instance that holds the call hears of its deletion at
/// once (`NOTIFY` in the deletion's transaction), not at a renewal (here
/// 200 s apart): its actor stops, its socket closes.
#[tokio::test]
async fn postgres_a_call_another_instance_holds_stops_there_when_deleted() {
    use crate::helpers::{Backend, TestDb, backends, init_test_log, live_settings, spawn_app_with};
    init_test_log();
    if !backends().contains(&Backend::Postgres) {
        // CI sets the URL and fails without it (`store_suite::postgres_suite_is_enabled_under_ci`).
        eprintln!("no PostgreSQL configured: notifications are PostgreSQL's");
        return;
    }
    let db = TestDb::create(Backend::Postgres).await;
    let script = Script {
        steps: vec![Step::Turn(turn(1)), Step::Hold],
    };
    let peer = sim(move |_| script.clone()).await;
    let slow_renewal = |name: &'static str| {
        let realtime = peer.url();
        move |s: &mut scribe::config::Settings| {
            live_settings(s, &realtime);
            s.lease.owner = name.into();
            s.lease.ttl = Duration::from_secs(600);
            s.lease.renew_every = Duration::from_secs(200);
        }
    };
    let a = spawn_app_with(&db.url, slow_renewal("holder")).await;
    let b = spawn_app_with(&db.url, slow_renewal("deleter")).await;
    let meeting = new_meeting(&a).await;
    start_call(&a, &meeting).await;
    wait_for_lines(&a.store, &meeting, 2).await;
    let deleted = expect_json(
        delete(&b, &format!("/api/meetings/{meeting}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(deleted["call_ended"], true);
    eventually("the holder's actor to stop", || async {
        a.actor(&meeting).await.is_none().then_some(())
    })
    .await;
    peer.wait_until(DEADLINE, |c| !c.is_empty() && c.iter().all(|c| c.ended))
        .await
        .expect("the holder closed the socket");
    assert_eq!(rows(&a.store, &meeting).await, RowsOf::default());
    a.stop().await.expect("clean stop");
    b.stop().await.expect("clean stop");
    db.destroy().await;
}

/// Whether an analysis actor of `meeting` runs, as `/admin/actors` shows it.
async fn analysing(app: &TestApp, meeting: &str) -> bool {
    let list = expect_json(
        app.client
            .get(app.url("/admin/actors"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .expect("sent"),
        StatusCode::OK,
    )
    .await;
    list["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .any(|a| a["meeting_id"] == meeting && a["kind"] == "analysis")
}

#[tokio::test]
async fn a_meeting_deleted_while_its_analysis_runs_stops_it_and_keeps_no_result() {
    use scribe_sim::llm::{Pace, SimLlm};
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![Step::Turn(turn(1))],
        };
        let peer = sim(move |_| script.clone()).await;
        // A model that answers long after the test is over.
        let llm = SimLlm::start_paced(
            ([127, 0, 0, 1], 0).into(),
            Pace::Fixed(Duration::from_secs(600)),
        )
        .await
        .expect("sim llm starts");
        let (realtime, base) = (peer.url(), llm.base_url());
        let app = crate::helpers::spawn_app_with(&url, |s| {
            crate::helpers::live_settings(s, &realtime);
            s.openai_base_url = base;
        })
        .await;
        let meeting = new_meeting(&app).await;
        let key = app.page_key(&meeting).await;
        let record = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        let call = start_call(&app, &meeting).await;
        wait_for_lines(&app.store, &meeting, 2).await;
        crate::running::end_call(&app, &call).await;
        eventually("its analysis to run", || async {
            analysing(&app, &meeting).await.then_some(())
        })
        .await;

        let deleted = expect_json(
            delete(&app, &format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(deleted["call_ended"], false);
        eventually("its analysis to stop", || async {
            (!analysing(&app, &meeting).await).then_some(())
        })
        .await;
        assert_tombstone(&app.store, &meeting, &record["agent_id"]).await;
        assert_gone(&app, &meeting, &key).await;
        app.stop().await.expect("clean stop");
    })
    .await;
}
