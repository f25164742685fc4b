//! The second hardening pass (issue 25): what an outsider found, each with
//! a test that fails on the code before it. Storage-bound points run on
//! both backends.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use scribe::sim::llm::LlmFault;
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::CallStore;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{
    API_TOKEN, Backend, STREAM_SECRET, TestApp, TestDb, each_backend, expect_error, expect_json,
    spawn_app_with,
};
use crate::running::{DEADLINE, eventually, force_active, new_meeting, status_of, wait_for_status};

fn server(app: &TestApp) -> SocketAddr {
    app.address
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address")
}

/// A connection to the app from the loopback address `from`
/// (`127.0.0.x`), with a small receive buffer when `small`.
async fn connect_from(app: &TestApp, from: [u8; 4], small: bool) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if small {
        socket.set_recv_buffer_size(4096).expect("buffer size");
    }
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("a loopback source address");
    socket.connect(server(app)).await.expect("connects")
}

/// Sends `request` and reads the answer's status line, within `within`.
async fn status_within(stream: &mut TcpStream, request: &[u8], within: Duration) -> Option<u16> {
    tokio::time::timeout(within, async {
        stream.write_all(request).await.ok()?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&head).into_owned();
        line.split(' ').nth(1)?.parse().ok()
    })
    .await
    .ok()
    .flatten()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: scribe\r\nConnection: close\r\n\r\n";

/// 60 connections that pipeline 100 requests each and read nothing, from
/// one address, against a server that takes 60 connections: before, every
/// one stayed open and `/healthz` waited in the accept queue for ever.
/// Now that address holds 40 at most, the rest are closed at once, and
/// the stalled ones are closed after the write stall (1 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cannot_starve_the_probes() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        s.http.max_connections = 60;
        s.http.max_connections_per_address = 40;
        s.http.cap_private_addresses = true;
        s.http.write_stall = Duration::from_secs(1);
    })
    .await;
    let pipelined = b"GET /api/openapi.json HTTP/1.1\r\nHost: scribe\r\n\r\n".repeat(100);
    let mut attackers = Vec::new();
    for _ in 0..60 {
        let mut stream = connect_from(&app, [127, 0, 0, 1], true).await;
        // A connection closed at once may refuse the write: that is fine.
        let _ = stream.write_all(&pipelined).await;
        attackers.push(stream);
    }
    // Another client's probe answers at once.
    let mut probe = connect_from(&app, [127, 0, 0, 2], false).await;
    assert_eq!(
        status_within(&mut probe, HEALTHZ, Duration::from_millis(100)).await,
        Some(200),
        "/healthz answers within 100 ms while 60 connections read nothing"
    );
    // The stalled connections are closed: the attacking address gets a
    // place again, though its 40 sockets are still open on its side.
    eventually("the stalled connections closed", || async {
        let mut again = connect_from(&app, [127, 0, 0, 1], false).await;
        status_within(&mut again, HEALTHZ, Duration::from_secs(1))
            .await
            .filter(|s| *s == 200)
    })
    .await;
    drop(attackers);
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// The head of a request whose body is not sent (yet).
fn held(method_path: &str, length: u64, extra: &str) -> Vec<u8> {
    format!(
        "{method_path} HTTP/1.1\r\nHost: scribe\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n{extra}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn bodies_are_refused_by_their_length_and_credentials_before_they_are_read() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        s.stream_api_secret = Some(STREAM_SECRET.into());
    })
    .await;
    let bearer = format!("Authorization: Bearer {API_TOKEN}\r\n");
    // A declared length over the route's limit: 413 at once (it waited for
    // the 10 s body deadline before), for the JSON API and a webhook.
    for (route, extra) in [
        ("POST /api/meetings", bearer.as_str()),
        ("POST /api/webhook", "X-Signature: 00\r\n"),
        ("POST /api/meetings", ""),
    ] {
        let mut stream = connect_from(&app, [127, 0, 0, 1], false).await;
        assert_eq!(
            status_within(
                &mut stream,
                &held(route, 10_000_000_000, extra),
                Duration::from_secs(2)
            )
            .await,
            Some(413),
            "{route}"
        );
    }
    // Within the limit but without the credential: 401 at once, the body
    // never read (it waited for the whole body before).
    for (route, extra, status) in [
        ("POST /api/meetings", "", 401),
        ("POST /api/agents", "Authorization: Bearer wrong\r\n", 401),
        ("POST /api/webhook", "", 401),
    ] {
        let mut stream = connect_from(&app, [127, 0, 0, 1], false).await;
        assert_eq!(
            status_within(
                &mut stream,
                &held(route, 200_000, extra),
                Duration::from_secs(2)
            )
            .await,
            Some(status),
            "{route}"
        );
    }
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// A body being read counts against the requests in flight: two held
/// webhook bodies fill a limit of two, and the next request is 503 (before,
/// bodies were read outside the limit and took memory without bound).
#[tokio::test]
async fn a_body_being_read_counts_against_the_requests_in_flight() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        s.stream_api_secret = Some(STREAM_SECRET.into());
        s.http.max_requests = 2;
    })
    .await;
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from(&app, [127, 0, 0, 1], false).await;
        stream
            .write_all(&held("POST /api/webhook", 1000, "X-Signature: 00\r\n"))
            .await
            .expect("head sent");
        stream.write_all(b"{\"type\":").await.expect("a little");
        holders.push(stream);
    }
    let busy = eventually("both bodies in flight", || async {
        let answer = app.get_authed("/api/meetings").await;
        (answer.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
    })
    .await;
    expect_error(busy, StatusCode::SERVICE_UNAVAILABLE, "in flight").await;
    drop(holders);
    eventually("the held bodies gone", || async {
        (app.get_authed("/api/meetings").await.status() == StatusCode::OK).then_some(())
    })
    .await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// A meeting made `failed` in the store (a call that ended, an analysis
/// that failed).
async fn make_failed(app: &TestApp, meeting: &str) {
    let id: MeetingId = meeting.parse().expect("id");
    force_active(&app.store, id).await;
    app.store
        .finalize(id, chrono::Utc::now(), None)
        .await
        .expect("finalized");
    app.store
        .fail_analysis(id, "the analysis model failed", None)
        .await
        .expect("failed");
    wait_for_status(&app.store, meeting, MeetingStatus::Failed).await;
}

/// With nothing but a meeting's id, every route on the meeting answers
/// 404 as for no meeting, and nothing changes: no page, no stream, no
/// record, no call, no hang-up, no retry, no new link.
#[tokio::test]
async fn an_id_alone_opens_nothing_and_changes_nothing() {
    each_backend(|_, url| async move {
        let app = crate::carried_calls::calls_app(
            &url,
            |_| scribe::sim::script::Script::hold(),
            scribe::sim::carried::EndedAnswer::NotFound,
        )
        .await;
        let upcoming = new_meeting(&app).await;
        let active = new_meeting(&app).await;
        force_active(&app.store, active.parse().expect("id")).await;
        let failed = new_meeting(&app).await;
        make_failed(&app, &failed).await;
        let offer = crate::carried_calls::offer().await;
        for meeting in [&upcoming, &active, &failed] {
            for (method, path) in [
                ("GET", format!("/api/meetings/{meeting}")),
                ("GET", format!("/api/meetings/{meeting}/status")),
                ("GET", format!("/api/meetings/{meeting}/transcript")),
                ("GET", format!("/api/meetings/{meeting}/events")),
                ("POST", format!("/api/meetings/{meeting}/call")),
                ("POST", format!("/api/meetings/{meeting}/hangup")),
                ("POST", format!("/api/meetings/{meeting}/retry")),
                ("POST", format!("/api/meetings/{meeting}/page-link")),
            ] {
                let mut request = app
                    .client
                    .request(method.parse().expect("method"), app.url(&path));
                if path.ends_with("/call") {
                    request = request
                        .header("content-type", "application/sdp")
                        .body(offer.clone());
                }
                let answer = request.send().await.expect("sent");
                let body = expect_json(answer, StatusCode::NOT_FOUND).await;
                assert_eq!(
                    body,
                    json!({ "error": "Meeting not found" }),
                    "{method} {path}"
                );
            }
            let page = app.get(&format!("/meetings/{meeting}")).await;
            assert_eq!(page.status(), StatusCode::NOT_FOUND);
            let html = page.text().await.expect("html");
            assert!(!html.contains("data-token"), "no key on a refused page");
        }
        // Nothing changed.
        for (meeting, status) in [
            (&upcoming, MeetingStatus::Upcoming),
            (&active, MeetingStatus::Active),
            (&failed, MeetingStatus::Failed),
        ] {
            assert_eq!(status_of(&app.store, meeting).await, status);
        }
        assert!(app.llm.calls().all().is_empty(), "OpenAI was never asked");
        app.stop().await.expect("stopped");
    })
    .await;
}

/// The page link is the capability: it opens the page, the stream, the
/// status and transcript, and acts on its meeting, but not the record (API
/// token only); issuing a new link revokes it everywhere at once.
#[tokio::test]
async fn the_page_link_is_the_key_and_a_new_link_revokes_the_old_one() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |_| {}).await;
        let meeting = new_meeting(&app).await;
        let link = app.page_url(&meeting).await;
        let key = app.page_key(&meeting).await;
        assert_ne!(key, meeting, "the key is not the id");
        assert_eq!(app.get(&link).await.status(), StatusCode::OK);
        let with_key = |path: String, key: String| {
            app.client
                .get(app.url(&path))
                .header("x-meeting-token", key)
                .send()
        };
        for suffix in ["/status", "/transcript"] {
            let answer = with_key(format!("/api/meetings/{meeting}{suffix}"), key.clone())
                .await
                .expect("sent");
            assert_eq!(answer.status(), StatusCode::OK, "{suffix}");
        }
        let record = with_key(format!("/api/meetings/{meeting}"), key.clone())
            .await
            .expect("sent");
        assert_eq!(
            record.status(),
            StatusCode::NOT_FOUND,
            "the record is the API's"
        );
        let events = app
            .client
            .get(app.url(&format!("/api/meetings/{meeting}/events?key={key}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(events.status(), StatusCode::OK);
        drop(events);
        // Another meeting's key opens nothing here.
        let other = new_meeting(&app).await;
        let other_key = app.page_key(&other).await;
        let crossed = with_key(format!("/api/meetings/{meeting}/status"), other_key)
            .await
            .expect("sent");
        assert_eq!(crossed.status(), StatusCode::NOT_FOUND);

        // A new link: the old key opens nothing, the new one everything,
        // and a stream opened with the old key ends.
        let opened = app
            .client
            .get(app.url(&format!("/api/meetings/{meeting}/events?key={key}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(opened.status(), StatusCode::OK);
        let fresh = expect_json(
            app.client
                .post(app.url(&format!("/api/meetings/{meeting}/page-link")))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .expect("sent"),
            StatusCode::CREATED,
        )
        .await;
        let fresh_url = fresh["page_url"].as_str().expect("a link");
        let fresh_key = fresh_url.split_once("?key=").expect("a key").1.to_owned();
        assert_ne!(fresh_key, key);
        assert_eq!(app.get(&link).await.status(), StatusCode::NOT_FOUND);
        let old = with_key(format!("/api/meetings/{meeting}/status"), key.clone())
            .await
            .expect("sent");
        assert_eq!(old.status(), StatusCode::NOT_FOUND);
        let new = with_key(format!("/api/meetings/{meeting}/status"), fresh_key.clone())
            .await
            .expect("sent");
        assert_eq!(new.status(), StatusCode::OK);
        assert_eq!(
            app.page_key(&meeting).await,
            fresh_key,
            "the record shows the new link"
        );
        let text = read_to_end(opened).await;
        assert!(text.contains("event: status"), "{text}");
        // A wrong bearer token is told so (401), not taken for no credential.
        let wrong = app
            .client
            .get(app.url(&format!("/api/meetings/{meeting}/status")))
            .bearer_auth("not-the-token")
            .send()
            .await
            .expect("sent");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        app.stop().await.expect("stopped");
    })
    .await;
}

/// Reads a stream's raw text until it ends, within the deadline.
async fn read_to_end(mut response: reqwest::Response) -> String {
    let mut seen = String::new();
    tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(chunk)) = response.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream ended in time; seen: {seen}"));
    seen
}

#[tokio::test]
async fn event_streams_are_capped_per_client_and_end_at_their_lifetime() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        s.http.max_streams_per_address = 2;
        s.http.cap_private_addresses = true;
        s.http.stream_lifetime = Duration::from_secs(1);
    })
    .await;
    let meetings = [
        new_meeting(&app).await,
        new_meeting(&app).await,
        new_meeting(&app).await,
    ];
    let open = |meeting: &str| {
        app.client
            .get(app.url(&format!("/api/meetings/{meeting}/events")))
            .bearer_auth(API_TOKEN)
            .send()
    };
    let first = open(&meetings[0]).await.expect("sent");
    let second = open(&meetings[1]).await.expect("sent");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = open(&meetings[2]).await.expect("sent");
    expect_error(third, StatusCode::SERVICE_UNAVAILABLE, "this client has 2").await;
    // Each stream ends at its lifetime, telling the reader to come back
    // soon; the resumed stream goes on from where it was.
    let text = read_to_end(first).await;
    assert!(text.contains("retry: 250"), "{text}");
    assert!(text.contains("event: status"), "{text}");
    drop(second);
    eventually("a place again", || async {
        let again = open(&meetings[2]).await.expect("sent");
        (again.status() == StatusCode::OK).then_some(())
    })
    .await;
    app.stop().await.expect("stopped");
    db.destroy().await;
}

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
