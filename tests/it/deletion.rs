//! The conversations people trust us with (issue 29): deleting a meeting
//! (a live one is ended first) and an agent, what the tombstone keeps and
//! that nothing late brings anything back; retention; the transcript as
//! text, Markdown and WebVTT. Each on SQLite and PostgreSQL.

mod export;
mod live;
mod locks;
mod retention;

use reqwest::StatusCode;
use scribe::store::{RowsOf, Store};
use scribe_actors::ids::MeetingId;
use serde_json::{Value, json};

use crate::helpers::{API_TOKEN, TestApp, each_backend, expect_error, expect_json};
use crate::running::{
    DEADLINE, driver, new_meeting, sim, start_call, wait_for_lines, wait_for_status,
};
use scribe_actors::domain::MeetingStatus;
use scribe_sim::script::{Script, Step, Transcription, Turn};

pub fn turn(n: usize) -> Turn {
    Turn::numbered("call", n, Transcription::Before)
}

pub async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("sent")
}

pub async fn rows(store: &Store, meeting: &str) -> RowsOf {
    let id: MeetingId = meeting.parse().expect("id");
    store.rows_of(id).await.expect("rows")
}

/// Every answer about a deleted meeting is 410 to the API token and to its
/// old page key, 404 to a key it never had; every format of its transcript
/// too; it is in no listing.
pub async fn assert_gone(app: &TestApp, meeting: &str, key: &str) {
    for path in [
        format!("/api/meetings/{meeting}"),
        format!("/api/meetings/{meeting}/status"),
        format!("/api/meetings/{meeting}/transcript"),
        format!("/api/meetings/{meeting}/transcript?format=vtt"),
        format!("/api/meetings/{meeting}/transcript?format=txt"),
        format!("/api/meetings/{meeting}/notes"),
        format!("/api/meetings/{meeting}/usage"),
        format!("/api/meetings/{meeting}/events"),
    ] {
        expect_error(app.get_authed(&path).await, StatusCode::GONE, "deleted").await;
    }
    let admin = app
        .client
        .get(app.url(&format!("/admin/meetings/{meeting}")))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .expect("sent");
    expect_error(admin, StatusCode::GONE, "deleted").await;
    let page = app.get(&format!("/meetings/{meeting}?key={key}")).await;
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.expect("body").contains("deleted"));
    let stream = app
        .get(&format!("/api/meetings/{meeting}/events?key={key}"))
        .await;
    assert_eq!(stream.status(), StatusCode::GONE);
    let wrong = app
        .get(&format!("/meetings/{meeting}?key={}", "ab".repeat(32)))
        .await;
    assert_eq!(
        wrong.status(),
        StatusCode::NOT_FOUND,
        "a key it never had opens nothing"
    );
    expect_error(
        delete(app, &format!("/api/meetings/{meeting}")).await,
        StatusCode::GONE,
        "deleted",
    )
    .await;
    let listed = expect_json(
        app.get_authed("/api/meetings?limit=500").await,
        StatusCode::OK,
    )
    .await;
    assert!(
        !listed["meetings"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["id"] == meeting),
        "a tombstone is in no listing"
    );
}

/// The tombstone: its id, agent and times, nothing it said.
pub async fn assert_tombstone(store: &Store, meeting: &str, agent: &Value) {
    let id: MeetingId = meeting.parse().expect("id");
    let stone = store
        .meeting(id)
        .await
        .expect("query")
        .expect("the row stays");
    assert!(stone.deleted_at.is_some());
    assert_eq!(
        stone.agent_id.to_string(),
        agent.as_str().expect("agent id")
    );
    assert_eq!((stone.name.as_str(), stone.user_id.as_str()), ("", ""));
    assert_eq!(
        (stone.summary, stone.progress, stone.error, stone.prompt),
        (None, None, None, None)
    );
    assert!(!stone.transcript_collected);
    assert_eq!(
        rows(store, meeting).await,
        RowsOf::default(),
        "nothing of it is left"
    );
}

#[tokio::test]
async fn a_finished_meeting_is_deleted_whole_and_its_tombstone_keeps_only_ids_and_times() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![Step::Turn(turn(1)), Step::Turn(turn(2))],
        };
        let peer = sim(move |_| script.clone()).await;
        let app = crate::running::live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let key = app.page_key(&meeting).await;
        let call = start_call(&app, &meeting).await;
        wait_for_lines(&app.store, &meeting, 4).await;
        crate::running::end_call(&app, &call).await;
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        let record = expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert!(record["summary"].is_string());
        let before = rows(&app.store, &meeting).await;
        assert!(
            before.lines == 4 && before.events > 0 && before.jobs == 1,
            "{before:?}"
        );

        // Bad input changes nothing.
        assert_eq!(
            app.client
                .delete(app.url(&format!("/api/meetings/{meeting}")))
                .send()
                .await
                .expect("sent")
                .status(),
            StatusCode::NOT_FOUND,
            "no credential: the id alone opens nothing"
        );
        let as_page = app
            .client
            .delete(app.url(&format!("/api/meetings/{meeting}?key={key}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(
            as_page.status(),
            StatusCode::NOT_FOUND,
            "the page key cannot delete"
        );
        expect_error(
            delete(&app, "/api/meetings/not-a-uuid").await,
            StatusCode::BAD_REQUEST,
            "",
        )
        .await;
        expect_error(
            delete(&app, &format!("/api/meetings/{}", MeetingId::new())).await,
            StatusCode::NOT_FOUND,
            "not found",
        )
        .await;
        assert_eq!(rows(&app.store, &meeting).await, before);

        let deleted = expect_json(
            delete(&app, &format!("/api/meetings/{meeting}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            deleted,
            json!({ "meeting_id": meeting, "call_ended": false })
        );
        assert_tombstone(&app.store, &meeting, &record["agent_id"]).await;
        let id: MeetingId = meeting.parse().expect("id");
        let stone = app.store.meeting(id).await.expect("query").expect("row");
        assert_eq!(
            stone.started_at.map(|t| t.timestamp_micros()),
            record["started_at"].as_str().map(|t| t
                .parse::<chrono::DateTime<chrono::Utc>>()
                .expect("time")
                .timestamp_micros())
        );
        assert!(stone.ended_at.is_some());
        assert_gone(&app, &meeting, &key).await;

        // Late webhooks about it change nothing.
        let hooks = driver(&app);
        let late_end = expect_json(
            hooks.session_ended(&call).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(late_end["status"], "deleted");
        let late_start = expect_json(
            hooks.session_started(&call).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(late_start["status"], "deleted");
        assert_eq!(rows(&app.store, &meeting).await, RowsOf::default());
        assert_eq!(
            crate::running::status_of(&app.store, &meeting).await,
            MeetingStatus::Cancelled
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn an_agent_is_deleted_with_its_meetings_and_makes_no_more() {
    each_backend(|_, url| async move {
        let app = crate::helpers::spawn_app(&url).await;
        let agent = app
            .create_agent(json!({ "name": "Desk", "instructions": "Be kind.", "phone_numbers": ["+18005550111"] }))
            .await;
        let agent_id = agent["id"].as_str().expect("id").to_owned();
        let first = app.create_meeting(&agent_id, "u1").await["id"].as_str().expect("id").to_owned();
        let second = app.create_meeting(&agent_id, "u2").await["id"].as_str().expect("id").to_owned();
        let other = new_meeting(&app).await;

        let deleted = expect_json(delete(&app, &format!("/api/agents/{agent_id}")).await, StatusCode::OK).await;
        assert_eq!(
            deleted,
            json!({ "agent_id": agent_id, "meetings_deleted": 2, "calls_ended": 0 })
        );
        expect_error(app.get_authed(&format!("/api/agents/{agent_id}")).await, StatusCode::GONE, "deleted").await;
        expect_error(delete(&app, &format!("/api/agents/{agent_id}")).await, StatusCode::GONE, "deleted").await;
        for meeting in [&first, &second] {
            expect_error(app.get_authed(&format!("/api/meetings/{meeting}")).await, StatusCode::GONE, "deleted").await;
            assert_tombstone(&app.store, meeting, &agent["id"]).await;
        }
        expect_json(app.get_authed(&format!("/api/meetings/{other}")).await, StatusCode::OK).await;
        let agents = expect_json(app.get_authed("/api/agents").await, StatusCode::OK).await;
        assert!(!agents["agents"].as_array().expect("list").iter().any(|a| a["id"] == agent_id.as_str()));
        // No meeting is made for it; its number reaches nobody, and may
        // be another agent's.
        let body = json!({ "name": "Late", "agent_id": agent_id, "user_id": "u3" });
        expect_error(app.post_json("/api/meetings", &body).await, StatusCode::UNPROCESSABLE_ENTITY, "agent_id").await;
        let number = scribe::domain::phone::PhoneNumber::parse("number", "+18005550111").expect("number");
        assert_eq!(app.store.agent_for_number(&number).await.expect("query"), None);
        app.create_agent(json!({ "name": "New desk", "instructions": "Hi.", "phone_numbers": ["+18005550111"] }))
            .await;
        expect_error(delete(&app, &format!("/api/agents/{}", uuid::Uuid::new_v4())).await, StatusCode::NOT_FOUND, "not found").await;
        expect_error(delete(&app, "/api/agents/nope").await, StatusCode::BAD_REQUEST, "").await;
        app.stop().await.expect("clean stop");
    })
    .await;
}
