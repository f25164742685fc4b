//! The admin surface of the chaos tools (the chaos suite itself is in
//! `tests/chaos`).

use reqwest::StatusCode;
use scribe_sim::script::Script;

use crate::helpers::{ADMIN_TOKEN, each_backend, expect_error, live_settings, spawn_app_with};
use crate::running::{actor_where, live_app, new_meeting, sim, start_call};

#[tokio::test]
async fn admin_endpoints_need_the_admin_token_and_kill_needs_chaos() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            s.chaos = false;
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let no_token = app.get("/admin/actors").await;
        expect_error(no_token, StatusCode::UNAUTHORIZED, "bearer token").await;
        let api_token = app.get_authed("/admin/actors").await;
        expect_error(api_token, StatusCode::UNAUTHORIZED, "bearer token").await;
        let actor = actor_where(&app, &meeting, "the actor", |a| a["socket"] == "open").await;
        for field in [
            "kind",
            "meeting_id",
            "state",
            "uptime_ms",
            "restarts",
            "next_sequence",
            "unflushed",
            "socket",
        ] {
            assert!(actor.get(field).is_some(), "{field} missing in {actor}");
        }
        assert_eq!(actor["state"], "live");
        let kill = app
            .admin_post(&format!("/admin/actors/{meeting}/kill?kind=meeting"))
            .await;
        expect_error(kill, StatusCode::FORBIDDEN, "SCRIBE_CHAOS").await;
        let supervisor = app.admin_post("/admin/supervisor/kill").await;
        expect_error(supervisor, StatusCode::FORBIDDEN, "SCRIBE_CHAOS").await;
        let anonymous = app
            .client
            .post(app.url("/admin/supervisor/kill"))
            .send()
            .await
            .expect("sent");
        expect_error(anonymous, StatusCode::UNAUTHORIZED, "bearer token").await;
        assert_eq!(
            app.actor(&meeting).await.expect("still live")["restarts"],
            0
        );
        app.stop().await.expect("clean stop");

        // With chaos on: unknown meetings are 404 and kinds are checked.
        let app = live_app(&url, &peer).await;
        let kill = |path: String| {
            app.client
                .post(app.url(&path))
                .bearer_auth(ADMIN_TOKEN)
                .send()
        };
        let unknown = kill(format!(
            "/admin/actors/{}/kill?kind=meeting",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect("sent");
        expect_error(unknown, StatusCode::NOT_FOUND, "no live meeting actor").await;
        let bad_kind = kill(format!(
            "/admin/actors/{}/kill?kind=socket",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect("sent");
        expect_error(bad_kind, StatusCode::BAD_REQUEST, "`kind` must be").await;
        let no_kind = kill(format!("/admin/actors/{}/kill", uuid::Uuid::new_v4()))
            .await
            .expect("sent");
        expect_error(no_kind, StatusCode::BAD_REQUEST, "kind").await;
        app.stop().await.expect("clean stop");
    })
    .await;
}
