//! `/api/agents` over HTTP.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{API_TOKEN, each_backend, expect_error, expect_json, spawn_app};

fn coach() -> serde_json::Value {
    json!({
        "name": "Coach",
        "instructions": "Help the user plan their week.",
        "blueprint": { "sessions": [
            { "session_name": "Intro", "goals": ["Learn the user's goals"] },
            { "session_name": "Plan", "goals": ["Write the plan"] }
        ]}
    })
}

#[tokio::test]
async fn create_then_read_and_list_an_agent() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let created = app.create_agent(coach()).await;
        let id = created["id"].as_str().expect("id");
        assert_eq!(created["name"], "Coach");
        assert_eq!(created["blueprint"]["sessions"][1]["session_name"], "Plan");
        assert!(created["created_at"].is_string());

        let read = expect_json(
            app.get_authed(&format!("/api/agents/{id}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(read, created);

        let plain = app
            .create_agent(json!({ "name": "Plain", "instructions": "Talk." }))
            .await;
        assert_eq!(plain["blueprint"], serde_json::Value::Null);
        let list = expect_json(app.get_authed("/api/agents").await, StatusCode::OK).await;
        let names: Vec<&str> = list["agents"]
            .as_array()
            .expect("agents array")
            .iter()
            .map(|a| a["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["Plain", "Coach"]);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn agent_routes_need_the_api_token() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let no_token = app
            .client
            .post(app.url("/api/agents"))
            .json(&coach())
            .send()
            .await
            .expect("sent");
        assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
        expect_error(no_token, StatusCode::UNAUTHORIZED, "bearer token").await;
        let wrong = app
            .client
            .post(app.url("/api/agents"))
            .bearer_auth(format!("{API_TOKEN}x"))
            .json(&coach())
            .send()
            .await
            .expect("sent");
        expect_error(wrong, StatusCode::UNAUTHORIZED, "bearer token").await;
        // Unauthenticated garbage is refused for the token, before the body is read.
        let garbage = app
            .client
            .post(app.url("/api/agents"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("sent");
        assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
        let list = app.get("/api/agents").await;
        assert_eq!(list.status(), StatusCode::UNAUTHORIZED);
        let show = app
            .get(&format!("/api/agents/{}", uuid::Uuid::new_v4()))
            .await;
        assert_eq!(show.status(), StatusCode::UNAUTHORIZED);
        assert!(
            app.store.agents(10).await.expect("list").is_empty(),
            "nothing stored"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn bad_agent_bodies_get_a_clear_error_and_store_nothing() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let post_raw = |body: String, content_type: &'static str| {
            app.client
                .post(app.url("/api/agents"))
                .bearer_auth(API_TOKEN)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let cases = [
            ("{\"name\":", StatusCode::BAD_REQUEST, "EOF"),
            ("42", StatusCode::UNPROCESSABLE_ENTITY, "expected a map"),
            // serde would read the struct from an array by field order.
            ("[\"A\",\"B\"]", StatusCode::UNPROCESSABLE_ENTITY, "expected a map"),
            (
                "{\"name\":\"A\",\"instructions\":\"B\",\"blueprint\":[[[\"S\",[]]]]}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "blueprint: invalid type: sequence, expected a map",
            ),
            ("{\"name\":\"A\\u0000\",\"instructions\":\"B\"}", StatusCode::UNPROCESSABLE_ENTITY, "U+0000"),
            ("{\"name\":\"A\"}", StatusCode::UNPROCESSABLE_ENTITY, "missing field `instructions`"),
            (
                "{\"name\":\"A\",\"instructions\":\"B\",\"colour\":1}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field `colour`",
            ),
            ("{\"name\":\"  \",\"instructions\":\"B\"}", StatusCode::UNPROCESSABLE_ENTITY, "`name` must not be empty"),
            (
                "{\"name\":\"A\",\"instructions\":\"B\",\"blueprint\":{\"sessions\":[]}}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "at least one session",
            ),
            (
                "{\"name\":\"A\",\"instructions\":\"B\",\"blueprint\":{\"sessions\":[{\"session_name\":\"X\"}]}}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "missing field `goals`",
            ),
            (
                "{\"name\":\"A\",\"instructions\":\"B\",\"blueprint\":{\"sessions\":[{\"session_name\":\"X\",\"goals\":[\"\"]}]}}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "`blueprint.sessions[0].goals[0]` must not be empty",
            ),
        ];
        for (body, status, needle) in cases {
            let response = post_raw(body.to_owned(), "application/json").await.expect("sent");
            expect_error(response, status, needle).await;
        }
        let wrong_type = post_raw(coach().to_string(), "text/plain").await.expect("sent");
        expect_error(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json").await;
        let huge = json!({ "name": "A", "instructions": "x".repeat(300 * 1024) }).to_string();
        let too_big = post_raw(huge, "application/json").await.expect("sent");
        expect_error(too_big, StatusCode::PAYLOAD_TOO_LARGE, "length limit").await;
        let long = json!({ "name": "A", "instructions": "x".repeat(20_001) }).to_string();
        let too_long = post_raw(long, "application/json").await.expect("sent");
        expect_error(too_long, StatusCode::UNPROCESSABLE_ENTITY, "the limit is 20000").await;

        assert!(app.store.agents(10).await.expect("list").is_empty(), "nothing stored");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn unknown_and_malformed_agent_ids() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let missing = app
            .get_authed(&format!("/api/agents/{}", uuid::Uuid::new_v4()))
            .await;
        let body = expect_json(missing, StatusCode::NOT_FOUND).await;
        assert_eq!(body, json!({ "error": "Agent not found" }));
        let malformed = app.get_authed("/api/agents/not-a-uuid").await;
        expect_error(malformed, StatusCode::BAD_REQUEST, "not a valid agent id").await;
        app.stop().await.expect("clean stop");
    })
    .await;
}
