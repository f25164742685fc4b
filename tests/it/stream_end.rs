//! Stream calls end when the people leave (issue 24, point 2). Stream ends
//! a session only when its last participant leaves, and scribe's agent is
//! one, so `call.session_ended` may never come while scribe is connected.
//! The call ends at the first of: the participant leaving after whom only
//! scribe's agent remains, `call.ended`, `call.session_ended`; the rest
//! are duplicates. The events are Stream's documented payloads
//! (`tests/fixtures/stream`), with only their values changed.

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_sim::script::{Script, Step, Transcription};
use scribe_sim::webhook::{SimCall, WebhookDriver};
use serde_json::{Value, json};

use crate::helpers::{TestApp, each_backend, expect_json};
use crate::running::*;

const AGENT: &str = scribe::realtime::AGENT_USER_ID;

/// A documented payload with this call's values and `created_at` now
/// (written as the fixture writes it: text, or integer nanoseconds).
fn stream_event(file: &str, call: &SimCall) -> Value {
    let path = format!(
        "{}/tests/fixtures/stream/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let now = chrono::Utc::now();
    event["created_at"] = if event["created_at"].is_number() {
        json!(now.timestamp_nanos_opt().expect("in range"))
    } else {
        json!(now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    };
    event["call_cid"] = json!(call.cid());
    if event.get("session_id").is_some() {
        event["session_id"] = json!(call.session_id);
    }
    if let Some(c) = event.get_mut("call") {
        c["id"] = json!(call.call_id);
        c["cid"] = json!(call.cid());
        c["current_session_id"] = json!(call.session_id);
        c["custom"] = json!({ "meetingId": call.meeting_id });
    }
    event
}

/// `call.session_participant_joined` / `_left` for `user` in its session
/// `user_session`.
fn participant(file: &str, call: &SimCall, user: &str, user_session: &str) -> Value {
    let mut event = stream_event(file, call);
    event["participant"]["user"]["id"] = json!(user);
    event["participant"]["user_session_id"] = json!(user_session);
    event
}

const JOINED: &str = "session_participant_joined.json";
const LEFT: &str = "session_participant_left.json";

async fn status(hooks: &WebhookDriver, event: &Value) -> Value {
    expect_json(hooks.send(event).await.expect("sent"), StatusCode::OK).await["status"].clone()
}

/// The answer to `user` (in its session `user_session`) joining or leaving.
async fn moved(
    hooks: &WebhookDriver,
    file: &str,
    call: &SimCall,
    user: &str,
    user_session: &str,
) -> Value {
    status(hooks, &participant(file, call, user, user_session)).await
}

/// A started call with the sim peer talking, and the webhook driver.
async fn started(
    url: &str,
    peer: &scribe_sim::realtime::SimRealtime,
) -> (TestApp, SimCall, WebhookDriver) {
    let app = live_app(url, peer).await;
    let meeting = new_meeting(&app).await;
    let call = SimCall::new(&meeting);
    let hooks = driver(&app);
    let started = hooks.session_started(&call).await.expect("sent");
    assert_eq!(
        expect_json(started, StatusCode::OK).await,
        json!({ "status": "started" })
    );
    (app, call, hooks)
}

fn one_turn() -> Script {
    Script {
        steps: vec![
            Step::Turn(turn(1, Transcription::Before)),
            Step::Mark("spoken".into()),
            Step::Hold,
        ],
    }
}

#[tokio::test]
async fn a_call_where_two_people_talk_ends_when_both_have_left_and_not_before() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let (app, call, hooks) = started(&url, &peer).await;
        let meeting = call.meeting_id.clone();
        for (user, session) in [
            ("alice", "us-alice"),
            ("bob", "us-bob"),
            (AGENT, "us-agent"),
        ] {
            assert_eq!(moved(&hooks, JOINED, &call, user, session).await, "joined");
        }
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 2).await;

        // Alice leaves, twice over (a redelivery under a new id): Bob is
        // still there, and so is the call.
        for _ in 0..2 {
            assert_eq!(
                moved(&hooks, LEFT, &call, "alice", "us-alice").await,
                "left"
            );
        }
        // Bob on a second device leaves it: he is still in the call.
        assert_eq!(
            moved(&hooks, JOINED, &call, "bob", "us-bob-phone").await,
            "joined"
        );
        assert_eq!(
            moved(&hooks, LEFT, &call, "bob", "us-bob-phone").await,
            "left"
        );
        assert_eq!(status_of(&app.store, &meeting).await, MeetingStatus::Active);

        // Bob leaves: only scribe's agent remains, the call ends.
        assert_eq!(moved(&hooks, LEFT, &call, "bob", "us-bob").await, "ending");
        wait_until_ended(&app.store, &meeting).await;
        // scribe closed its agent's socket (which makes Stream end the session).
        eventually("the agent's socket to close", || async {
            peer.connections_for(&meeting)
                .iter()
                .all(|c| c.ended && !c.closed_by_peer)
                .then_some(())
        })
        .await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        assert_eq!(transcript(&app.store, &meeting).await.len(), 2);

        // Whatever else says the call ended: a duplicate, answered 200.
        assert_eq!(moved(&hooks, LEFT, &call, AGENT, "us-agent").await, "left");
        assert_eq!(
            status(&hooks, &stream_event("call_ended.json", &call)).await,
            "duplicate"
        );
        let ended = hooks.session_ended(&call).await.expect("sent");
        assert_eq!(
            expect_json(ended, StatusCode::OK).await,
            json!({ "status": "duplicate" })
        );
        assert_eq!(
            moved(&hooks, LEFT, &call, "bob", "us-bob").await,
            "duplicate"
        );
        let ends = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "call_ended")
            .count();
        assert_eq!(ends, 1, "finalized once");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn call_ended_ends_the_call_and_the_participants_leaving_after_is_a_duplicate() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let (app, call, hooks) = started(&url, &peer).await;
        let meeting = call.meeting_id.clone();
        assert_eq!(
            moved(&hooks, JOINED, &call, "alice", "us-alice").await,
            "joined"
        );
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 2).await;
        assert_eq!(
            status(&hooks, &stream_event("call_ended.json", &call)).await,
            "ending"
        );
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        // Timestamps as integer nanoseconds, as the newer schema types them.
        let left = participant(
            "session_participant_left_int_ns.json",
            &call,
            "alice",
            "us-alice",
        );
        assert!(left["created_at"].is_number());
        assert_eq!(status(&hooks, &left).await, "duplicate");
        let ended = hooks.session_ended(&call).await.expect("sent");
        assert_eq!(
            expect_json(ended, StatusCode::OK).await,
            json!({ "status": "duplicate" })
        );
        // The same delivery twice: a duplicate without a second look.
        let joined = participant(JOINED, &call, "carol", "us-carol").to_string();
        let first = hooks
            .post(joined.as_bytes(), "wh-carol")
            .await
            .expect("sent");
        assert_eq!(expect_json(first, StatusCode::OK).await["status"], "joined");
        let again = hooks
            .post(joined.as_bytes(), "wh-carol")
            .await
            .expect("sent");
        assert_eq!(
            expect_json(again, StatusCode::OK).await["status"],
            "duplicate"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Who is in the call is kept in the database: a restarted process (or
/// another instance) counts the same.
#[tokio::test]
async fn who_is_in_the_call_survives_a_restart() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let (app, call, hooks) = started(&url, &peer).await;
        let meeting = call.meeting_id.clone();
        for (user, session) in [("alice", "us-alice"), ("bob", "us-bob")] {
            assert_eq!(moved(&hooks, JOINED, &call, user, session).await, "joined");
        }
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        app.stop().await.expect("clean stop");

        let app = live_app(&url, &peer).await;
        let hooks = driver(&app);
        assert_eq!(status_of(&app.store, &meeting).await, MeetingStatus::Active);
        assert_eq!(
            moved(&hooks, LEFT, &call, "alice", "us-alice").await,
            "left"
        );
        assert_eq!(status_of(&app.store, &meeting).await, MeetingStatus::Active);
        assert_eq!(moved(&hooks, LEFT, &call, "bob", "us-bob").await, "ending");
        wait_until_ended(&app.store, &meeting).await;
        app.stop().await.expect("clean stop");
    })
    .await;
}
