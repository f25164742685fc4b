//! Probes, unknown routes, request ids and graceful shutdown.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{each_backend, expect_error, expect_json, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_answer() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let health = expect_json(app.get("/healthz").await, StatusCode::OK).await;
        assert_eq!(health, json!({ "status": "ok" }));
        let ready = expect_json(app.get("/readyz").await, StatusCode::OK).await;
        assert_eq!(ready, json!({ "status": "ready" }));
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone_while_healthz_stays_up() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        app.store.close().await;
        // The background check (once a second) finds it; the probe itself
        // never queries.
        crate::running::eventually("readyz says the database is gone", || async {
            (app.get("/readyz").await.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        })
        .await;
        let ready = app.get("/readyz").await;
        assert!(ready.headers().contains_key("retry-after"));
        let body = expect_json(ready, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(body, json!({ "error": "the database is unavailable" }));
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json_with_a_request_id() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let missing = app.get("/nope").await;
        let request_id = missing
            .headers()
            .get("x-request-id")
            .expect("request id")
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
        expect_error(missing, StatusCode::NOT_FOUND, "no route for GET /nope").await;
        let wrong_method = app
            .client
            .delete(app.url("/api/meetings"))
            .send()
            .await
            .expect("sent");
        expect_error(
            wrong_method,
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE is not allowed",
        )
        .await;
        // A caller's own request id is kept.
        let echoed = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", "abc-123")
            .send()
            .await
            .expect("sent");
        assert_eq!(echoed.headers()["x-request-id"], "abc-123");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_serving_and_closes_the_pool() {
    each_backend(|_, url| async move {
        let app = spawn_app(&url).await;
        let address = app.url("/healthz");
        let store = app.store.clone();
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        app.stop().await.expect("clean stop");
        assert!(store.is_closed(), "pool closed after shutdown");
        let after = reqwest::Client::new().get(address).send().await;
        assert!(after.is_err(), "still serving after shutdown: {after:?}");
    })
    .await;
}
