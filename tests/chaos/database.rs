//! The database link failing under live calls: PostgreSQL behind a
//! fault-injecting proxy (connections reset and refused; the link stalled),
//! and SQLite locked by another writer past its busy timeout. Calls go on,
//! lines wait in memory, and everything is committed once the database
//! answers again, with nothing lost or duplicated.

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use reqwest::StatusCode;
use scribe_actors::domain::MeetingStatus;
use sqlx::{Connection, Executor};

use crate::fleet::{Service, finish_chaotic_calls, fleet_meetings, fleet_peer, start_calls};
use crate::helpers::{
    ADMIN_TOKEN, Backend, TestDb, backends, expect_json, init_test_log, live_settings,
    spawn_app_with,
};
use crate::proxy::{FaultProxy, Link};
use crate::running::{transcript, wait_for_lines, wait_for_status};

/// The app under test, with the test's reads going straight to the
/// database rather than through the faulty link.
pub struct Direct<'a> {
    pub app: &'a crate::helpers::TestApp,
    pub store: &'a scribe::store::Store,
}

impl Service for Direct<'_> {
    fn address(&self) -> &str {
        &self.app.address
    }
    fn store(&self) -> &scribe::store::Store {
        self.store
    }
    fn client(&self) -> &reqwest::Client {
        &self.app.client
    }
}

/// A fault-injecting proxy in front of the PostgreSQL at `database`, and
/// the URL that reaches it through the proxy.
pub async fn behind_proxy(database: &str) -> (url::Url, FaultProxy) {
    let mut url = url::Url::parse(database).expect("postgres url");
    let upstream: SocketAddr = (
        url.host_str().expect("host").to_owned(),
        url.port().unwrap_or(5432),
    )
        .to_socket_addrs()
        .expect("resolves")
        .next()
        .expect("an address");
    let proxy = FaultProxy::start(upstream).await;
    url.set_port(Some(proxy.addr().port())).expect("port");
    (url, proxy)
}

/// How many lines the app has read but not committed, over all `meetings`.
async fn lines_waiting(
    app: &crate::helpers::TestApp,
    direct: &scribe::store::Store,
    meetings: &[String],
) -> i64 {
    let response = app
        .client
        .get(app.url("/admin/actors"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request sent");
    let list = expect_json(response, StatusCode::OK).await;
    let mut waiting = 0;
    for actor in list["actors"].as_array().expect("actors") {
        let Some(meeting) = actor["meeting_id"].as_str() else {
            continue;
        };
        if !meetings.iter().any(|m| m == meeting) {
            continue;
        }
        let read = actor["next_sequence"].as_i64().map_or(0, |n| n - 1);
        let committed = transcript(direct, meeting).await.len() as i64;
        waiting += (read - committed).max(0);
    }
    waiting
}

/// Holds the fault for `outage`, sampling every second how many lines wait
/// in memory; returns the most seen.
async fn hold_fault(
    outage: Duration,
    app: &crate::helpers::TestApp,
    direct: &scribe::store::Store,
    meetings: &[String],
) -> i64 {
    let until = tokio::time::Instant::now() + outage;
    let mut most = 0;
    let mut seconds = tokio::time::interval(Duration::from_secs(1));
    while tokio::time::Instant::now() < until {
        seconds.tick().await;
        most = most.max(lines_waiting(app, direct, meetings).await);
    }
    most
}

/// Calls talk through a PostgreSQL outage of `outage` (`link` at the proxy),
/// then end: every transcript complete, in order, no duplicate, nothing lost.
async fn calls_survive_a_postgres_outage(link: Link, outage: Duration, pace: f64) {
    init_test_log();
    if !backends().contains(&Backend::Postgres) {
        // CI sets the URL and fails without it (`store_suite::postgres_suite_is_enabled_under_ci`).
        eprintln!("no PostgreSQL configured: the proxy test needs it");
        return;
    }
    const CALLS: usize = 10;
    let db = TestDb::create(Backend::Postgres).await;
    let (url, proxy) = behind_proxy(&db.url).await;
    let direct = TestDb::store_at(&db.url).await;
    // The test's own reads never go through the faulty link.

    let peer = fleet_peer(pace).await;
    let realtime = peer.url();
    // Six of these run at once (two tests, three faults each): small pools
    // keep them within PostgreSQL's 100 connections.
    let app = spawn_app_with(url.as_str(), |s| {
        live_settings(s, &realtime);
        s.database_pool_size = 6;
    })
    .await;
    let meetings = fleet_meetings(&app, CALLS).await;
    let calls = start_calls(&app, &meetings).await;
    for meeting in &meetings {
        wait_for_lines(&direct, meeting, 1).await;
    }

    proxy.set(link);
    let most = hold_fault(outage, &app, &direct, &meetings).await;
    proxy.set(Link::Up);
    eprintln!(
        "{link:?} for {} s: up to {most} lines waited in memory",
        outage.as_secs()
    );
    assert!(most > 0, "the calls went on talking during the outage");

    let reads_direct = Direct {
        app: &app,
        store: &direct,
    };
    finish_chaotic_calls(&reads_direct, &peer, &calls, false).await;
    for meeting in &meetings {
        wait_for_status(&direct, meeting, MeetingStatus::Completed).await;
    }
    app.stop().await.expect("clean stop");
    direct.close().await;
    db.destroy().await;
}

/// PostgreSQL for 10 s, on three instances side by side: every
/// connection reset (new ones too), new connections refused (open ones
/// work), and the link stalled (nothing flows, connections stay open).
/// Calls go on; lines wait in memory and are all committed after recovery,
/// in order, with no duplicate and nothing lost.
#[tokio::test]
async fn postgres_reset_refused_or_stalled_for_10_s_loses_nothing() {
    let outage = Duration::from_secs(10);
    tokio::join!(
        calls_survive_a_postgres_outage(Link::Reset, outage, 0.3),
        calls_survive_a_postgres_outage(Link::Refuse, outage, 0.3),
        calls_survive_a_postgres_outage(Link::Stall, outage, 0.3),
    );
}

/// The same three faults for 60 s: stalled writes time out and are
/// retried, reset ones back off and retry; calls go on; every line is
/// committed after recovery, with nothing lost or duplicated.
#[tokio::test]
async fn postgres_reset_refused_or_stalled_for_60_s_loses_nothing() {
    let outage = Duration::from_secs(60);
    tokio::join!(
        calls_survive_a_postgres_outage(Link::Reset, outage, 1.0),
        calls_survive_a_postgres_outage(Link::Refuse, outage, 1.0),
        calls_survive_a_postgres_outage(Link::Stall, outage, 1.0),
    );
}

/// SQLite locked by another process's write transaction for 15 s (past the
/// 10 s busy timeout): calls go on; the writer retries; every line is
/// committed once the lock is gone, nothing lost or duplicated.
#[tokio::test]
async fn sqlite_locked_by_another_writer_loses_nothing() {
    init_test_log();
    const CALLS: usize = 5;
    let db = TestDb::create(Backend::Sqlite).await;
    let peer = fleet_peer(0.3).await;
    let realtime = peer.url();
    let app = spawn_app_with(&db.url, |s| live_settings(s, &realtime)).await;
    let meetings = fleet_meetings(&app, CALLS).await;
    let calls = start_calls(&app, &meetings).await;
    for meeting in &meetings {
        wait_for_lines(&app.store, meeting, 1).await;
    }

    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url).expect("sqlite url");
    let mut other = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("a second writer connects");
    other
        .execute("BEGIN EXCLUSIVE")
        .await
        .expect("the second writer takes the lock");
    let most = hold_fault(Duration::from_secs(15), &app, &app.store, &meetings).await;
    other.execute("COMMIT").await.expect("lock released");
    other.close().await.expect("closed");
    eprintln!("SQLite locked for 15 s: up to {most} lines waited in memory");
    assert!(
        most > 0,
        "the calls went on talking while the database was locked"
    );

    finish_chaotic_calls(&app, &peer, &calls, false).await;
    for meeting in &meetings {
        wait_for_status(&app.store, meeting, MeetingStatus::Completed).await;
    }
    app.stop().await.expect("clean stop");
}
