//! Hardening, continued: retry budgets, request ids, outside ids, encodings, timestamps, the SQLite file, creation limits, hang-up answers.

use super::*;

/// A retry refused for the meeting's status (409) spends nothing: after
/// five of them the meeting's three retries are all there; the fourth is
/// 429. On both backends (the status lives in the database).
#[tokio::test]
async fn a_retry_refused_for_its_status_spends_nothing_of_the_allowance() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |s| s.analysis_policy.attempts = 1).await;
        let meeting = new_meeting(&app).await;
        let retry = || {
            app.client
                .post(app.url(&format!("/api/meetings/{meeting}/retry")))
                .bearer_auth(API_TOKEN)
                .send()
        };
        for _ in 0..5 {
            let answer = retry().await.expect("sent");
            expect_error(answer, StatusCode::CONFLICT, "is upcoming").await;
        }
        make_failed(&app, &meeting).await;
        app.llm.push_faults([
            LlmFault::ServerError,
            LlmFault::ServerError,
            LlmFault::ServerError,
        ]);
        for n in 0..3 {
            let answer = retry().await.expect("sent");
            assert_eq!(answer.status(), StatusCode::ACCEPTED, "retry {n}");
            eventually("the analysis failed again", || async {
                (status_of(&app.store, &meeting).await == MeetingStatus::Failed).then_some(())
            })
            .await;
        }
        let limited = retry().await.expect("sent");
        let retry_after: u64 = limited.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("whole seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "too many retries").await;
        assert_eq!(
            status_of(&app.store, &meeting).await,
            MeetingStatus::Failed,
            "a refused retry changes nothing"
        );
        // Another meeting has its own allowance.
        let other = new_meeting(&app).await;
        make_failed(&app, &other).await;
        let answer = app
            .client
            .post(app.url(&format!("/api/meetings/{other}/retry")))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        app.stop().await.expect("stopped");
    })
    .await;
}

#[tokio::test]
async fn a_request_id_is_kept_only_when_short_and_plain() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |_| {}).await;
    let with_id = |id: &str| {
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", id)
            .send()
    };
    let kept = with_id("req-0123_abc.9").await.expect("sent");
    assert_eq!(kept.headers()["x-request-id"], "req-0123_abc.9");
    for bad in [
        "a".repeat(65),
        "has space".into(),
        "semi;colon".into(),
        "ünï".into(),
    ] {
        let answer = with_id(&bad).await.expect("sent");
        let given = answer.headers()["x-request-id"].to_str().expect("ascii");
        assert_ne!(given, bad);
        assert!(uuid::Uuid::parse_str(given).is_ok(), "a new one: {given}");
    }
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// Ids from outside longer than 256 characters are a 400 before they reach
/// an index (a 3,000-character `webhook-id` was a 500 on PostgreSQL), and
/// nothing is stored.
#[tokio::test]
async fn ids_from_outside_over_their_bound_are_a_400_on_both_backends() {
    use scribe::openai::webhook::{secret_key, sign};
    const SECRET: &str = "whsec_c2NyaWJlLXRlc3Qtd2ViaG9vay1zZWNyZXQ=";
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |s| {
            s.stream_api_secret = Some(STREAM_SECRET.into());
            s.openai_webhook_secret = Some(SECRET.into());
            s.openai_api_key = Some("sk-test".into());
        })
        .await;
        let long = "w".repeat(3000);
        let key = secret_key(SECRET).expect("key");
        let now = chrono::Utc::now().timestamp();
        let openai = |id: String, body: Value| {
            let body = body.to_string();
            let signature = sign(&key, &id, now, body.as_bytes());
            app.client
                .post(app.url("/api/openai/webhook"))
                .header("webhook-id", id)
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", signature)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let event = json!({ "object": "event", "id": "evt_1", "type": "some.other", "created_at": now, "data": {} });
        let answer = openai(long.clone(), event).await.expect("sent");
        expect_error(answer, StatusCode::BAD_REQUEST, "`webhook-id` is over 256").await;
        let incoming = json!({ "object": "event", "id": "evt_2", "type": "realtime.call.incoming",
            "created_at": now, "data": { "call_id": long, "sip_headers": [] } });
        let answer = openai("wh_ok".into(), incoming).await.expect("sent");
        expect_error(answer, StatusCode::BAD_REQUEST, "call_id` is over 256").await;
        let long_type = json!({ "object": "event", "id": "evt_3", "type": long, "created_at": now, "data": {} });
        let answer = openai("wh_ok2".into(), long_type).await.expect("sent");
        expect_error(answer, StatusCode::BAD_REQUEST, "`type` is over 256").await;

        let stream = |id: &str, body: Value| {
            let body = body.to_string();
            app.client
                .post(app.url("/api/webhook"))
                .header("x-webhook-id", id)
                .header("x-signature", scribe::stream::signature::sign(STREAM_SECRET.as_bytes(), body.as_bytes()))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let started = json!({ "type": "call.session_started", "call_cid": "default:c", "session_id": "s",
            "call": { "custom": { "meetingId": uuid::Uuid::new_v4() } } });
        let answer = stream(&long, started).await.expect("sent");
        expect_error(answer, StatusCode::BAD_REQUEST, "`X-Webhook-Id` is over 256").await;
        let long_cid = json!({ "type": "call.session_started", "call_cid": long, "session_id": "s" });
        let answer = stream("wh-1", long_cid).await.expect("sent");
        expect_error(answer, StatusCode::BAD_REQUEST, "over 256 characters").await;
        assert!(
            app.store
                .meetings(&scribe::domain::meeting::MeetingFilter {
                    status: None,
                    user_id: None,
                    agent_id: None,
                    limit: 10,
                })
                .await
                .expect("read")
                .is_empty(),
            "nothing stored"
        );
        app.stop().await.expect("stopped");
    })
    .await;
}

#[tokio::test]
async fn only_a_gzip_content_encoding_is_inflated() {
    use std::io::Write;
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        s.stream_api_secret = Some(STREAM_SECRET.into());
    })
    .await;
    let body = json!({ "type": "some.other.event" }).to_string();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).expect("gzip");
    let zipped = encoder.finish().expect("gzip");
    let signature = scribe::stream::signature::sign(STREAM_SECRET.as_bytes(), body.as_bytes());
    let post = |bytes: Vec<u8>, encoding: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/api/webhook"))
            .header("x-signature", signature.clone())
            .header("content-type", "application/json")
            .body(bytes);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        request.send()
    };
    let inflated = post(zipped.clone(), Some("gzip")).await.expect("sent");
    assert_eq!(
        expect_json(inflated, StatusCode::OK).await["status"],
        "ignored"
    );
    // Gzip bytes without the header are the body as sent: they do not
    // verify against the JSON's signature.
    let raw = post(zipped.clone(), None).await.expect("sent");
    expect_error(raw, StatusCode::UNAUTHORIZED, "invalid webhook signature").await;
    let other = post(zipped.clone(), Some("br")).await.expect("sent");
    expect_error(other, StatusCode::UNSUPPORTED_MEDIA_TYPE, "only gzip").await;
    // A second gzip member after the first is a body nobody signed for.
    let mut twice = zipped.clone();
    twice.extend(&zipped);
    let appended = post(twice, Some("gzip")).await.expect("sent");
    expect_error(appended, StatusCode::BAD_REQUEST, "data after its end").await;
    // Elsewhere no encoding is taken: the body is read as sent.
    let agent = app
        .client
        .post(app.url("/api/agents"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body(json!({ "name": "A", "instructions": "B" }).to_string())
        .send()
        .await
        .expect("sent");
    expect_error(
        agent,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Encoding: br",
    )
    .await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// A call's end is never recorded before its start, whatever time the
/// provider's clock (or a webhook's `created_at`) gives.
#[tokio::test]
async fn ended_at_is_never_earlier_than_started_at() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |_| {}).await;
        let meeting = new_meeting(&app).await;
        let id: MeetingId = meeting.parse().expect("id");
        force_active(&app.store, id).await;
        let started = app
            .store
            .meeting(id)
            .await
            .expect("read")
            .and_then(|m| m.started_at)
            .expect("started");
        app.store
            .finalize(id, started - chrono::Duration::hours(1), None)
            .await
            .expect("finalized");
        let stored = app.store.meeting(id).await.expect("read").expect("there");
        assert_eq!(stored.ended_at, Some(started));
        app.stop().await.expect("stopped");
    })
    .await;
}

/// The SQLite file and its log are the owner's alone, and the log is
/// bounded and checkpointed.
#[tokio::test]
async fn the_sqlite_file_is_private_and_its_log_bounded() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |_| {}).await;
    for _ in 0..20 {
        new_meeting(&app).await;
    }
    let path = db
        .url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .expect("a path")
        .to_owned();
    for file in [path.clone(), format!("{path}-wal")] {
        let mode = std::fs::metadata(&file)
            .expect("the file is there")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
    }
    let (log, copied) = app
        .store
        .checkpoint()
        .await
        .expect("checkpoint")
        .expect("SQLite checkpoints");
    assert_eq!(log, copied, "nothing holds the log back");
    let limit: (i64,) = sqlx::query_as("PRAGMA journal_size_limit")
        .fetch_one(&sqlx::SqlitePool::connect(&db.url).await.expect("pool"))
        .await
        .expect("pragma");
    // A fresh connection has SQLite's default; scribe's have the bound.
    assert_eq!(limit.0, -1, "SQLite's own default, for contrast");
    assert_eq!(
        app.store
            .sqlite_pragma("journal_size_limit")
            .await
            .expect("pragma"),
        Some(scribe::store::SQLITE_WAL_LIMIT_BYTES)
    );
    app.stop().await.expect("stopped");
    db.destroy().await;
}

#[tokio::test]
async fn meetings_and_agents_created_per_minute_are_limited() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        s.http.meetings_per_minute = 3;
        s.http.agents_per_minute = 2;
    })
    .await;
    let agent = app
        .create_agent(json!({ "name": "Coach", "instructions": "Help." }))
        .await;
    let body = json!({ "name": "Call", "agent_id": agent["id"], "user_id": "u" });
    for _ in 0..3 {
        expect_json(
            app.post_json("/api/meetings", &body).await,
            StatusCode::CREATED,
        )
        .await;
    }
    let limited = app.post_json("/api/meetings", &body).await;
    assert!(limited.headers().contains_key("retry-after"));
    expect_error(
        limited,
        StatusCode::TOO_MANY_REQUESTS,
        "too many meetings created",
    )
    .await;
    app.create_agent(json!({ "name": "Second", "instructions": "Help." }))
        .await;
    let third = app
        .post_json(
            "/api/agents",
            &json!({ "name": "Third", "instructions": "Help." }),
        )
        .await;
    expect_error(
        third,
        StatusCode::TOO_MANY_REQUESTS,
        "too many agents created",
    )
    .await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// A hang-up says what it ended: here the session scribe owns on a Stream
/// call (its agent leaves; the Stream call is not scribe's to end).
#[tokio::test]
async fn a_hang_up_of_an_owned_session_says_so() {
    each_backend(|_, url| async move {
        let peer = crate::running::sim(|_| crate::running::one_turn()).await;
        let app = crate::running::live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let _call = crate::running::start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        crate::running::wait_for_lines(&app.store, &meeting, 2).await;
        let answer = expect_json(
            crate::running::hang_up(&app, &meeting).await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(
            answer,
            json!({ "status": "processing", "ended": "owned_session" })
        );
        wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        app.stop().await.expect("stopped");
    })
    .await;
}
