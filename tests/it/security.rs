//! What a public page reveals and what it allows: the page capability is
//! keyed by a secret of its own, shared by the instances on one database
//! and revoked by rotating it.

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{API_TOKEN, TestApp, each_backend, spawn_app, spawn_app_with};
use crate::running::new_meeting;

/// The capability the meeting's page embeds.
async fn page_token(app: &TestApp, meeting: &str) -> String {
    page_token_at(app, &app.page_url(meeting).await).await
}

/// The capability the page at `link` embeds, as `app` serves it.
async fn page_token_at(app: &TestApp, link: &str) -> String {
    let page = app.get(link).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(
        !html.contains(API_TOKEN),
        "the API token never reaches a page"
    );
    html.split("data-token=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its capability")
        .to_owned()
}

/// What `retry` answers to the key alone: 409 (the meeting is not failed)
/// once the key is accepted, 404 (as for no meeting) when it is not.
async fn retry_with(app: &TestApp, meeting: &str, token: &str) -> StatusCode {
    app.client
        .post(app.url(&format!("/api/meetings/{meeting}/retry")))
        .header("X-Meeting-Token", token)
        .send()
        .await
        .expect("sent")
        .status()
}

/// The capability as it was derived before: an HMAC under the API token of
/// a public message, which let anyone holding one page guess the token.
fn derived_from_the_api_token(meeting: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(API_TOKEN.as_bytes()).expect("key");
    mac.update(b"scribe meeting page v1:");
    mac.update(meeting.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_page_capability_has_its_own_key_shared_by_instances_and_revoked_by_rotation() {
    each_backend(|_, url| async move {
        let first = spawn_app(&url).await;
        let meeting = new_meeting(&first).await;
        let link = first.page_url(&meeting).await;
        let token = page_token(&first, &meeting).await;

        // Keyed by the key kept in the database, not by the API token.
        let stored: SecretString = first.store.page_secret().await.expect("page key").into();
        assert_eq!(
            token,
            scribe::http::auth::meeting_token(&stored, meeting.parse().expect("id"), 0)
        );
        assert_ne!(token, derived_from_the_api_token(&meeting));
        assert_eq!(
            retry_with(&first, &meeting, &token).await,
            StatusCode::CONFLICT
        );

        // A second instance on the same database, with another API token,
        // issues and accepts the same capability.
        let second = spawn_app_with(&url, |s| {
            s.api_token = "another-api-token-0123456789abcdef0123".into();
        })
        .await;
        assert_eq!(page_token_at(&second, &link).await, token);
        assert_eq!(
            retry_with(&second, &meeting, &token).await,
            StatusCode::CONFLICT
        );
        second.stop().await.expect("stopped");
        first.stop().await.expect("stopped");

        // Rotating the stored key revokes every capability issued before.
        let store = crate::helpers::TestDb::store_at(&url).await;
        store.rotate_page_secret().await.expect("rotated");
        store.close().await;
        let rotated = spawn_app(&url).await;
        let fresh = page_token(&rotated, &meeting).await;
        assert_ne!(fresh, token);
        assert_eq!(
            retry_with(&rotated, &meeting, &token).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            retry_with(&rotated, &meeting, &fresh).await,
            StatusCode::CONFLICT
        );
        rotated.stop().await.expect("stopped");

        // A configured SCRIBE_PAGE_SECRET takes precedence; changing it
        // revokes too.
        let configured = spawn_app_with(&url, |s| {
            s.page_secret = Some("configured-page-secret-0123456789abcdef".into());
        })
        .await;
        let own = page_token(&configured, &meeting).await;
        assert_ne!(own, fresh);
        assert_eq!(
            retry_with(&configured, &meeting, &fresh).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            retry_with(&configured, &meeting, &own).await,
            StatusCode::CONFLICT
        );
        configured.stop().await.expect("stopped");
    })
    .await;
}

#[tokio::test]
async fn the_page_and_every_answer_carry_the_security_headers() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |_| {}).await;
        let meeting = new_meeting(&app).await;
        let page = app.page(&meeting).await;
        assert_eq!(page.status(), StatusCode::OK);
        let headers = page.headers().clone();
        let policy = headers["content-security-policy"].to_str().expect("ascii");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "media-src 'self' blob: mediastream:",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(headers["cache-control"], "no-store");
        for path in [
            format!("/meetings/{meeting}"),
            "/assets/meeting.js".into(),
            "/healthz".into(),
            "/api/meetings".into(),
            "/no/such/route".into(),
        ] {
            let answer = app.get(&path).await;
            let h = answer.headers();
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
        }
        // A page that is not there (no key, a wrong key, no such meeting,
        // not an id) has the page's own policy too, and is never cached.
        for path in [
            format!("/meetings/{meeting}"),
            format!("/meetings/{meeting}?key=00"),
            format!("/meetings/{}", uuid::Uuid::new_v4()),
            "/meetings/not-an-id".into(),
        ] {
            let answer = app.get(&path).await;
            assert!(answer.status().is_client_error(), "{path}");
            let h = answer.headers();
            assert_eq!(
                h["content-security-policy"],
                scribe::http::live_page_policy(),
                "{path}"
            );
            assert_eq!(h["cache-control"], "no-store", "{path}");
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
        }

        // A name that looks like a placeholder stays text: the page shows
        // it once escaped, and the capability appears once, in its place.
        let agent = app
            .create_agent(json!({ "name": "Coach", "instructions": "Help." }))
            .await;
        let tricky = crate::helpers::expect_json(
            app.post_json(
                "/api/meetings",
                &json!({
                    "name": "{{TOKEN}} <b>{{MEETING_ID}}</b>",
                    "agent_id": agent["id"],
                    "user_id": "user-1",
                }),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let id = tricky["id"].as_str().expect("id");
        let html = app.page(id).await.text().await.expect("html");
        let token = page_token(&app, id).await;
        assert_eq!(html.matches(&token).count(), 1, "the capability once");
        assert!(html.contains("<h1>{{TOKEN}} &lt;b&gt;{{MEETING_ID}}&lt;/b&gt;</h1>"));
        app.stop().await.expect("stopped");
    })
    .await;
}

/// Reads the meeting's public event stream until `until` appears in it.
pub async fn stream_until(app: &TestApp, meeting: &str, until: &str) -> String {
    let mut response = app
        .client
        .get(app.url(&format!("/api/meetings/{meeting}/events")))
        .header("x-meeting-token", app.page_key(meeting).await)
        .send()
        .await
        .expect("stream opens");
    assert_eq!(response.status(), StatusCode::OK);
    let mut seen = String::new();
    tokio::time::timeout(crate::running::DEADLINE, async {
        while !seen.contains(until) {
            let chunk = response.chunk().await.expect("stream readable");
            let Some(chunk) = chunk else { break };
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{until} streamed in time; seen: {seen}"));
    seen
}

#[tokio::test]
async fn the_providers_own_words_reach_admin_and_never_the_public_error() {
    use scribe_actors::domain::MeetingStatus;
    use scribe_sim::llm::LlmFault;

    use crate::running::{DEADLINE, coach_with_plan, end_call, meeting_with, one_turn, sim};
    const KEY: &str = "sk-proj-marker0123456789wxyz";
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            crate::helpers::live_settings(s, &realtime);
            s.openai_api_key = Some(KEY.into());
            s.analysis_policy.attempts = 1;
        })
        .await;
        app.llm.push_faults([LlmFault::InvalidKey]);
        let meeting = meeting_with(&app, coach_with_plan(), "Intro").await;
        let call = crate::running::start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        crate::running::wait_for_lines(&app.store, &meeting, 2).await;
        end_call(&app, &call).await;
        crate::running::wait_for_status(&app.store, &meeting, MeetingStatus::Failed).await;

        // What OpenAI said quotes part of the key: "sk-***wxyz".
        let quoted = "sk-***wxyz";
        let status = crate::helpers::expect_json(
            app.get_authed(&format!("/api/meetings/{meeting}/status"))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            status["error"],
            "the analysis model failed 1 attempt(s); last error: the model answered HTTP 401"
        );
        let shown = app
            .get_authed(&format!("/api/meetings/{meeting}"))
            .await
            .text()
            .await
            .expect("body");
        let streamed = stream_until(&app, &meeting, "\"failed\"").await;
        for public in [&shown, &streamed] {
            assert!(!public.contains(quoted), "{public}");
            assert!(!public.contains("Incorrect API key"), "{public}");
        }
        assert!(
            streamed.contains("the model answered HTTP 401"),
            "the stream says what happened in scribe's words: {streamed}"
        );

        // /admin has the provider's words, for the operator.
        let admin = crate::helpers::expect_json(
            app.client
                .get(app.url(&format!("/admin/meetings/{meeting}")))
                .bearer_auth(crate::helpers::ADMIN_TOKEN)
                .send()
                .await
                .expect("sent"),
            StatusCode::OK,
        )
        .await;
        let detail = admin["error_detail"].as_str().expect("a detail");
        assert!(detail.contains("Incorrect API key provided"), "{detail}");
        assert!(detail.contains(quoted), "{detail}");
        assert_eq!(admin["status"], "failed");
        // Without the admin token: nothing.
        let refused = app.get(&format!("/admin/meetings/{meeting}")).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

        // A retry that succeeds clears both.
        let retried = app
            .post_json(&format!("/api/meetings/{meeting}/retry"), &json!({}))
            .await;
        assert_eq!(retried.status(), StatusCode::ACCEPTED);
        crate::running::wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        assert_eq!(
            app.store
                .error_detail(meeting.parse().expect("id"))
                .await
                .expect("read"),
            None
        );
        app.stop().await.expect("stopped");
    })
    .await;
}
