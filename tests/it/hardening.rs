//! The second hardening pass (issue 25): what an outsider found, each with
//! a test that fails on the code before it. Storage-bound points run on
//! both backends.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::CallStore;
use scribe_sim::llm::LlmFault;
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
            |_| scribe_sim::script::Script::hold(),
            scribe_sim::carried::EndedAnswer::NotFound,
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
                ("GET", format!("/api/meetings/{meeting}/notes")),
                ("GET", format!("/api/meetings/{meeting}/usage")),
                ("GET", format!("/api/meetings/{meeting}/events")),
                ("POST", format!("/api/meetings/{meeting}/call")),
                ("POST", format!("/api/meetings/{meeting}/hangup")),
                ("POST", format!("/api/meetings/{meeting}/retry")),
                ("POST", format!("/api/meetings/{meeting}/page-link")),
                ("DELETE", format!("/api/meetings/{meeting}")),
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
        for suffix in ["/status", "/transcript", "/notes"] {
            let answer = with_key(format!("/api/meetings/{meeting}{suffix}"), key.clone())
                .await
                .expect("sent");
            assert_eq!(answer.status(), StatusCode::OK, "{suffix}");
        }
        for record in ["", "/usage"] {
            let answer = with_key(format!("/api/meetings/{meeting}{record}"), key.clone())
                .await
                .expect("sent");
            assert_eq!(
                answer.status(),
                StatusCode::NOT_FOUND,
                "the record and its costs are the API's: {record}"
            );
        }
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

mod bounds;
