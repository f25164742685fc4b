//! What the HTTP server bounds before a handler runs: slow clients, event
//! streams, requests in flight; probes that never query per scrape; calls
//! that go on with thousands of idle connections and hundreds of streams.

use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, TestDb, each_backend, expect_json, spawn_app_with};
use crate::running::{DEADLINE, coach_with_plan, end_call, meeting_with, one_turn, sim};

/// How long the server may take to drop a trickling client: its 10 s
/// deadline, with room for a slow machine.
const DROPPED_WITHIN: Duration = Duration::from_secs(20);

/// Writes `head` then one more byte of `trickle` every 500 ms, until the
/// server closes the connection; returns what the server sent.
async fn trickle(address: &str, head: String, trickle: u8) -> String {
    let stream = TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .expect("connects");
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.expect("head sent");
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if write.write_all(&[trickle]).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read_all = read.read_to_end(&mut answer);
    let outcome = tokio::time::timeout(DROPPED_WITHIN, read_all).await;
    writer.abort();
    assert!(
        outcome.is_ok(),
        "the server did not drop a client trickling for {DROPPED_WITHIN:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_trickling_its_head_or_its_body_is_dropped() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = spawn_app_with(&db.url, |s| {
        s.stream_api_secret = Some(crate::helpers::STREAM_SECRET.into());
    })
    .await;
    let head_only = trickle(
        &app.address,
        "GET /healthz HTTP/1.1\r\nHost: scribe\r\nX-Slow: ".into(),
        b'a',
    );
    // A webhook whose 1 MiB body would take days at this pace (its head
    // passes: the body is read, until its deadline).
    let body = trickle(
        &app.address,
        "POST /api/webhook HTTP/1.1\r\nHost: scribe\r\nContent-Type: application/json\r\n\
         X-Signature: 00\r\nContent-Length: 1048576\r\n\r\n{"
            .into(),
        b' ',
    );
    let (head_only, body) = tokio::join!(head_only, body);
    assert!(
        !head_only.contains("200 OK"),
        "an incomplete head is never served: {head_only}"
    );
    assert!(
        body.starts_with("HTTP/1.1 408"),
        "a body that does not arrive in time gets 408: {body}"
    );
    assert!(body.contains("did not arrive within 10 s"), "{body}");
    // The server goes on serving everyone else.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.stop().await.expect("stopped");
    db.destroy().await;
}

/// Opens the meeting's event stream; the response once its head is in.
async fn open_stream(app: &TestApp, meeting: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/meetings/{meeting}/events")))
        .bearer_auth(crate::helpers::API_TOKEN)
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn event_streams_are_bounded_per_meeting_and_in_all_and_end_when_the_server_stops() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |s| {
            s.http.max_streams = 3;
            s.http.max_streams_per_meeting = 2;
        })
        .await;
        let a = meeting_with(&app, coach_with_plan(), "A").await;
        let b = meeting_with(&app, coach_with_plan(), "B").await;
        let a1 = open_stream(&app, &a).await;
        let a2 = open_stream(&app, &a).await;
        assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
        let refused = open_stream(&app, &a).await;
        assert_eq!(refused.headers()["retry-after"], "5");
        let body = expect_json(refused, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(
            body["error"]
                .as_str()
                .expect("error")
                .contains("this meeting has 2"),
            "{body}"
        );
        let b1 = open_stream(&app, &b).await;
        assert_eq!(b1.status(), StatusCode::OK);
        let full = open_stream(&app, &b).await;
        let body = expect_json(full, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(
            body["error"]
                .as_str()
                .expect("error")
                .contains("the server has 3"),
            "{body}"
        );
        // A reader that leaves gives its place back.
        drop(a1);
        crate::running::eventually("the place given back", || async {
            let again = open_stream(&app, &b).await;
            (again.status() == StatusCode::OK).then_some(again)
        })
        .await;
        // Stopping the server ends every open stream.
        let readers: Vec<_> = [a2, b1]
            .into_iter()
            .map(|mut stream| {
                tokio::spawn(async move { while let Ok(Some(_)) = stream.chunk().await {} })
            })
            .collect();
        app.stop().await.expect("stops with streams open");
        for reader in readers {
            tokio::time::timeout(DEADLINE, reader)
                .await
                .expect("the stream ended with the server")
                .expect("reader");
        }
    })
    .await;
}

#[tokio::test]
async fn probes_and_scrapes_never_query_the_database_themselves() {
    each_backend(|_, url| async move {
        let app = spawn_app_with(&url, |_| {}).await;
        let began = tokio::time::Instant::now();
        let before = app.probe.checks();
        let scrapes = (0..300).map(|n| {
            let path = if n % 2 == 0 { "/metrics" } else { "/readyz" };
            app.get(path)
        });
        for answer in futures::future::join_all(scrapes).await {
            assert_eq!(answer.status(), StatusCode::OK);
        }
        let checks = app.probe.checks() - before;
        // The background check runs once a second, whatever the scrapes.
        let seconds = began.elapsed().as_secs();
        assert!(
            checks <= seconds + 2,
            "{checks} database checks in {seconds} s for 300 scrapes"
        );
        let text = app.get("/metrics").await.text().await.expect("text");
        assert!(text.contains("scribe_meetings"), "counts still served");
        app.stop().await.expect("stopped");
    })
    .await;
}

#[tokio::test]
async fn calls_go_on_with_2000_idle_connections_and_500_streams_open() {
    each_backend(|_, url| async move {
        let peer = sim(|_| one_turn()).await;
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| crate::helpers::live_settings(s, &realtime)).await;
        let address = app.address.trim_start_matches("http://").to_owned();
        // 2,000 connections that never send a byte.
        let mut idle = Vec::new();
        for _ in 0..2000 {
            idle.push(TcpStream::connect(&address).await.expect("connects"));
        }
        // 500 event streams: 20 on each of 25 meetings (the per-meeting
        // limit), read by nobody in particular.
        let mut streams = Vec::new();
        for n in 0..25 {
            let meeting = meeting_with(&app, coach_with_plan(), &format!("Watched {n}")).await;
            for _ in 0..20 {
                let stream = open_stream(&app, &meeting).await;
                assert_eq!(stream.status(), StatusCode::OK);
                streams.push(stream);
            }
        }
        let began = tokio::time::Instant::now();
        let health = app.get("/healthz").await;
        eprintln!(
            "healthz with 2000 idle connections and 500 streams: {:?}",
            began.elapsed()
        );
        assert_eq!(health.status(), StatusCode::OK);
        // A call goes on: it is recorded and ends in processing, then
        // completed.
        let meeting = meeting_with(&app, coach_with_plan(), "Intro").await;
        let call = crate::running::start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        crate::running::wait_for_lines(&app.store, &meeting, 2).await;
        end_call(&app, &call).await;
        crate::running::wait_for_status(&app.store, &meeting, MeetingStatus::Completed).await;
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        drop(idle);
        app.stop().await.expect("stops with 500 streams open");
        drop(streams);
    })
    .await;
}
