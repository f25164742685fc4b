//! Calls OpenAI carries, continued: re-attaching after a drop or a kill, phone calls and their webhooks, phone numbers.

use super::*;

#[tokio::test]
async fn a_dropped_sideband_re_attaches_fetches_the_missed_reply_and_marks_the_hole() {
    each_backend(|_, url| async move { recover_after(&url, "dropped sideband").await }).await;
}

#[tokio::test]
async fn a_killed_actor_re_attaches_fetches_the_missed_reply_and_marks_the_hole() {
    each_backend(|_, url| async move { recover_after(&url, "actor kill").await }).await;
}

/// An agent whose phone number reaches it, and the webhook sender.
async fn phone_agent(app: &TestApp, number: &str) -> Value {
    app.create_agent(json!({
        "name": "Front desk",
        "instructions": "Answer the phone kindly.",
        "phone_numbers": [number],
    }))
    .await
}

fn webhooks(app: &TestApp) -> OpenAiWebhooks {
    let key = scribe::openai::webhook::secret_key(WEBHOOK_SECRET).expect("secret");
    OpenAiWebhooks::new(&app.url("/api/openai/webhook"), &key)
}

#[tokio::test]
async fn a_phone_call_to_an_agents_number_is_accepted_attached_recorded_and_ends_with_the_caller() {
    each_backend(|_, url| async move {
        let app = calls_app(
            &url,
            |_| Script {
                steps: vec![Step::Turn(turn(1)), Step::Mark("spoken".into()), Step::Hold],
            },
            EndedAnswer::NotFound,
        )
        .await;
        let agent = phone_agent(&app, "+18005550100").await;
        assert_eq!(agent["phone_numbers"], json!(["+18005550100"]));
        let call_id = app.llm.calls().ring();
        let event = OpenAiWebhooks::incoming_call(&call_id, "+14155550123", "+18005550100");
        let answer = webhooks(&app).send(&event).await.expect("sent");
        let body = expect_json(answer, StatusCode::OK).await;
        assert_eq!(body["status"], "accepted");
        let meeting = body["meeting_id"].as_str().expect("meeting id").to_owned();
        let record = meeting_json(&app, &meeting).await;
        assert_eq!(record["name"], "Call from +14155550123");
        assert_eq!(record["user_id"], "+14155550123");
        assert_eq!(record["agent_id"], agent["id"]);
        assert_eq!(record["transport"], "sip");
        assert_eq!(record["provider_call_id"], call_id.as_str());
        assert_eq!(record["status"], "active");
        let call = app.llm.calls().call(&call_id).expect("the call");
        assert_eq!(call.status(), CallStatus::Live, "accepted");
        assert_eq!(call.session()["instructions"], "Answer the phone kindly.");
        assert!(app.llm.calls().wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 2).await;
        // The caller hangs up.
        app.llm.calls().end(&call_id);
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn openai_webhooks_get_their_exact_answer_and_each_call_is_accepted_once() {
    each_backend(|_, url| async move {
        let app = calls_app(&url, |_| Script::hold(), EndedAnswer::NotFound).await;
        phone_agent(&app, "+18005550100").await;
        let hooks = webhooks(&app);
        let key = scribe::openai::webhook::secret_key(WEBHOOK_SECRET).expect("secret");
        let now = chrono::Utc::now().timestamp();
        let call_id = app.llm.calls().ring();
        let event = OpenAiWebhooks::incoming_call(&call_id, "+14155550123", "+18005550100");
        let body = event.to_string().into_bytes();

        let bad = hooks.post_signed(&body, "wh_1", now, "v1,AAAA").await.expect("sent");
        expect_error(bad, StatusCode::UNAUTHORIZED, "invalid webhook signature").await;
        let stale = hooks.post_at(&body, "wh_1", now - 301).await.expect("sent");
        expect_error(stale, StatusCode::UNAUTHORIZED, "more than 300 s").await;
        // Well past the limit: the server's clock may have ticked since `now`.
        let future = hooks.post_at(&body, "wh_1", now + 330).await.expect("sent");
        expect_error(future, StatusCode::UNAUTHORIZED, "more than 300 s").await;
        assert!(app.store.meeting_for_call(&call_id).await.expect("query").is_none());
        assert_eq!(app.llm.calls().call(&call_id).expect("call").status(), CallStatus::Ringing);

        // Several signatures, one valid: accepted.
        let good = scribe::openai::webhook::sign(&key, "wh_1", now, &body);
        let several = format!("v1,bm90IGl0 {good} v1,YWxzbyBub3Q=");
        let accepted = hooks.post_signed(&body, "wh_1", now, &several).await.expect("sent");
        assert_eq!(expect_json(accepted, StatusCode::OK).await["status"], "accepted");
        // The same delivery again: a duplicate; the same call in a new
        // delivery: a duplicate too.
        let again = hooks.post_at(&body, "wh_1", now).await.expect("sent");
        assert_eq!(expect_json(again, StatusCode::OK).await, json!({ "status": "duplicate" }));
        let redelivered = hooks.send(&event).await.expect("sent");
        assert_eq!(expect_json(redelivered, StatusCode::OK).await, json!({ "status": "duplicate" }));

        // Two deliveries of one new call at once: one meeting, one accept.
        let twice = app.llm.calls().ring();
        let event = OpenAiWebhooks::incoming_call(&twice, "+14155550199", "+18005550100");
        let (a, b) = tokio::join!(hooks.send(&event), hooks.send(&event));
        let mut answers = [
            expect_json(a.expect("sent"), StatusCode::OK).await["status"].clone(),
            expect_json(b.expect("sent"), StatusCode::OK).await["status"].clone(),
        ];
        answers.sort_by_key(|v| v.to_string());
        assert_eq!(answers, [json!("accepted"), json!("duplicate")]);

        // A number no agent lists: rejected with SIP 404.
        let stranger = app.llm.calls().ring();
        let event = OpenAiWebhooks::incoming_call(&stranger, "+14155550123", "+19995550000");
        let rejected = hooks.send(&event).await.expect("sent");
        assert_eq!(expect_json(rejected, StatusCode::OK).await, json!({ "status": "rejected" }));
        assert_eq!(app.llm.calls().call(&stranger).expect("call").rejected_with(), Some(404));
        assert!(app.store.meeting_for_call(&stranger).await.expect("query").is_none());

        // Other events: acknowledged and ignored.
        let other = json!({"object":"event","id":"evt_x","type":"response.completed","created_at":now,"data":{"id":"resp_1"}});
        let ignored = hooks.send(&other).await.expect("sent");
        assert_eq!(expect_json(ignored, StatusCode::OK).await, json!({ "status": "ignored" }));
        let not_json = b"{nope".to_vec();
        let unparsable = hooks.post_at(&not_json, "wh_9", now).await.expect("sent");
        expect_error(unparsable, StatusCode::BAD_REQUEST, "not an OpenAI event").await;
        app.stop().await.expect("clean stop");

        // Without a secret nothing is verified, so nothing is taken.
        let unconfigured = spawn_app_with(&url, |s| live_settings(s, "ws://127.0.0.1:9/v1/realtime")).await;
        let hooks = OpenAiWebhooks::new(&unconfigured.url("/api/openai/webhook"), &key);
        let refused = hooks.send(&json!({"id":"evt","type":"realtime.call.incoming"})).await.expect("sent");
        expect_error(refused, StatusCode::SERVICE_UNAVAILABLE, "OPENAI_WEBHOOK_SECRET").await;
        unconfigured.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn phone_numbers_are_e164_and_each_reaches_one_agent() {
    each_backend(|_, url| async move {
        let app = calls_app(&url, |_| Script::hold(), EndedAnswer::NotFound).await;
        phone_agent(&app, "+18005550100").await;
        let taken = app
            .post_json(
                "/api/agents",
                &json!({ "name": "Other", "instructions": "x", "phone_numbers": ["+18005550100"] }),
            )
            .await;
        expect_error(taken, StatusCode::CONFLICT, "already reaches another agent").await;
        for bad in [
            "18005550100",
            "+1 800 555 0100",
            "+0800",
            "tel:+18005550100",
        ] {
            let invalid = app
                .post_json(
                    "/api/agents",
                    &json!({ "name": "Other", "instructions": "x", "phone_numbers": [bad] }),
                )
                .await;
            expect_error(invalid, StatusCode::UNPROCESSABLE_ENTITY, "E.164").await;
        }
        let listed = expect_json(app.get_authed("/api/agents").await, StatusCode::OK).await;
        assert_eq!(
            listed["agents"].as_array().map(Vec::len),
            Some(1),
            "nothing stored for refused agents"
        );
        let _ = Duration::ZERO;
        app.stop().await.expect("clean stop");
    })
    .await;
}
