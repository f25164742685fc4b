//! `/api/meetings` over HTTP: the agent -> meeting -> status flow and its
//! error cases.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{each_backend, expect_error, expect_json, spawn_app};

fn agent() -> serde_json::Value {
    json!({ "name": "Coach", "instructions": "Help the user plan." })
}

#[tokio::test]
async fn agent_then_meeting_then_status() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let agent = app.create_agent(agent()).await;
        let agent_id = agent["id"].as_str().expect("agent id");
        let body = json!({ "name": "Intro", "agent_id": agent_id, "user_id": "user-7", "prompt": "Start gently." });
        let created = expect_json(app.post_json("/api/meetings", &body).await, StatusCode::CREATED).await;
        let id = created["id"].as_str().expect("meeting id");
        assert_eq!(created["status"], "upcoming");
        assert_eq!(created["agent_id"], agent_id);
        assert_eq!(created["user_id"], "user-7");
        assert_eq!(created["prompt"], "Start gently.");
        for field in ["summary", "progress", "error", "next_meeting_id", "previous_meeting_id", "ended_at"] {
            assert_eq!(created[field], serde_json::Value::Null, "{field}");
        }
        assert_eq!(created["transcript_collected"], false);

        // Reads of one meeting need no token.
        let read = expect_json(app.get_authed(&format!("/api/meetings/{id}")).await, StatusCode::OK).await;
        assert_eq!(read, created);

        let status = expect_json(app.get_authed(&format!("/api/meetings/{id}/status")).await, StatusCode::OK).await;
        assert_eq!(
            status,
            json!({
                "status": "upcoming",
                "error": null,
                "endedAt": null,
                "processingStartedAt": null,
                "transcriptCollected": false
            })
        );

        let transcript = expect_json(app.get_authed(&format!("/api/meetings/{id}/transcript")).await, StatusCode::OK).await;
        assert_eq!(transcript, json!({ "meeting_id": id, "chunks": [], "holes": [] }));
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn unknown_and_malformed_meeting_ids() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let unknown = uuid::Uuid::new_v4();
        for suffix in ["", "/status", "/transcript"] {
            let response = app
                .get_authed(&format!("/api/meetings/{unknown}{suffix}"))
                .await;
            let body = expect_json(response, StatusCode::NOT_FOUND).await;
            assert_eq!(body, json!({ "error": "Meeting not found" }), "{suffix}");
            let malformed = app.get(&format!("/api/meetings/12345{suffix}")).await;
            expect_error(
                malformed,
                StatusCode::BAD_REQUEST,
                "`12345` is not a valid meeting id",
            )
            .await;
        }
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn bad_meeting_bodies_get_a_clear_error_and_store_nothing() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let agent = app.create_agent(agent()).await;
        let agent_id = agent["id"].as_str().expect("agent id");
        let cases = [
            (
                json!({ "name": "A", "user_id": "u" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing field `agent_id`",
            ),
            (
                json!({ "name": "A", "agent_id": "nope", "user_id": "u" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "agent_id",
            ),
            (
                json!({ "name": "A", "agent_id": uuid::Uuid::new_v4(), "user_id": "u" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "does not name an existing agent",
            ),
            (
                json!({ "name": "", "agent_id": agent_id, "user_id": "u" }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "`name` must not be empty",
            ),
            (
                json!({ "name": "A", "agent_id": agent_id, "user_id": " " }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "`user_id` must not be empty",
            ),
            (
                json!({ "name": "A", "agent_id": agent_id, "user_id": "u", "agentId": agent_id }),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field `agentId`",
            ),
        ];
        for (body, status, needle) in cases {
            expect_error(app.post_json("/api/meetings", &body).await, status, needle).await;
        }
        let unauthenticated = app
            .client
            .post(app.url("/api/meetings"))
            .json(&json!({ "name": "A", "agent_id": agent_id, "user_id": "u" }))
            .send()
            .await
            .expect("sent");
        expect_error(unauthenticated, StatusCode::UNAUTHORIZED, "bearer token").await;
        let list = expect_json(app.get_authed("/api/meetings").await, StatusCode::OK).await;
        assert_eq!(list, json!({ "meetings": [] }), "nothing stored");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn listing_filters_and_needs_the_token() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let agent = app.create_agent(agent()).await;
        let agent_id = agent["id"].as_str().expect("agent id");
        let ann = app.create_meeting(agent_id, "ann").await;
        let bob = app.create_meeting(agent_id, "bob").await;

        let ids = |list: serde_json::Value| -> Vec<String> {
            list["meetings"]
                .as_array()
                .expect("meetings")
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned())
                .collect()
        };
        let all = expect_json(app.get_authed("/api/meetings").await, StatusCode::OK).await;
        assert_eq!(
            ids(all),
            [
                bob["id"].as_str().expect("id"),
                ann["id"].as_str().expect("id")
            ]
        );
        let by_user = expect_json(
            app.get_authed("/api/meetings?user_id=ann").await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(ids(by_user), [ann["id"].as_str().expect("id")]);
        let upcoming = expect_json(
            app.get_authed(&format!(
                "/api/meetings?status=upcoming&agent_id={agent_id}"
            ))
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(ids(upcoming).len(), 2);
        let active = expect_json(
            app.get_authed("/api/meetings?status=active").await,
            StatusCode::OK,
        )
        .await;
        assert!(ids(active).is_empty());
        let limited = expect_json(
            app.get_authed("/api/meetings?limit=1").await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(ids(limited).len(), 1);

        expect_error(
            app.get_authed("/api/meetings?status=done").await,
            StatusCode::BAD_REQUEST,
            "`done` is not a valid meeting status",
        )
        .await;
        expect_error(
            app.get_authed("/api/meetings?limit=0").await,
            StatusCode::BAD_REQUEST,
            "`limit` must be between 1 and 500",
        )
        .await;
        expect_error(
            app.get_authed("/api/meetings?limit=x").await,
            StatusCode::BAD_REQUEST,
            "limit",
        )
        .await;
        expect_error(
            app.get_authed("/api/meetings?colour=red").await,
            StatusCode::BAD_REQUEST,
            "unknown field `colour`",
        )
        .await;
        expect_error(
            app.get_authed("/api/meetings?agent_id=7").await,
            StatusCode::BAD_REQUEST,
            "not a valid agent id",
        )
        .await;
        let unauthenticated = app.get("/api/meetings").await;
        assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
        let wrong = app
            .client
            .get(app.url("/api/meetings"))
            .bearer_auth("nope")
            .send()
            .await
            .expect("sent");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        app.stop().await.expect("clean stop");
    })
    .await;
}
