//! The database stalls for 10 s while calls start, end and lose their
//! actors: the supervisor waits on the store in tasks, never in its
//! mailbox, so `/admin/actors` answers at once throughout; live calls keep
//! handing lines to their writer's bounded backlog; and every call started
//! or ended during the stall completes after it, nothing lost.
//!
//! PostgreSQL stalls behind the fault-injecting proxy (nothing flows);
//! SQLite is locked by another writer (every write waits).

use std::str::FromStr;
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use scribe_actors::domain::{ChunkStatus, MeetingStatus};
use serde_json::{Value, json};
use sqlx::{Connection, Executor};
use tokio::time::Instant;

use crate::database::{Direct, behind_proxy};
use crate::fleet::{finish_chaotic_calls, fleet_meetings, fleet_peer, start_calls, webhooks};
use crate::helpers::{
    ADMIN_TOKEN, Backend, TestApp, TestDb, backends, expect_json, init_test_log, live_settings,
    spawn_app_with,
};
use crate::proxy::{FaultProxy, Link};
use crate::running::{transcript, wait_for_lines, wait_for_status, wait_until_ended};

/// How long the database stalls.
const STALL: Duration = Duration::from_secs(10);
/// How long `/admin/actors` may take while it does: an answer that waited
/// on the database would take the whole stall.
const AT_ONCE: Duration = Duration::from_secs(2);

/// How the database is made to stall, and undone.
enum Stall {
    Proxy(FaultProxy),
    /// The database's URL, and the other writer once it holds the lock.
    Lock(String, Option<sqlx::SqliteConnection>),
}

impl Stall {
    async fn begin(&mut self) {
        match self {
            Self::Proxy(proxy) => proxy.set(Link::Stall),
            Self::Lock(url, other) => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).expect("url");
                let mut writer = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("a second writer connects");
                writer
                    .execute("BEGIN EXCLUSIVE")
                    .await
                    .expect("the second writer takes the lock");
                *other = Some(writer);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Self::Proxy(proxy) => proxy.set(Link::Up),
            Self::Lock(_, other) => {
                if let Some(mut writer) = other.take() {
                    writer.execute("COMMIT").await.expect("lock released");
                    writer.close().await.expect("closed");
                }
            }
        }
    }
}

/// A webhook delivered as Stream delivers it: again after a server error,
/// until it is answered 200; its answer.
async fn delivered<F, Fut>(send: F) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    crate::running::eventually("a webhook answered 200", || async {
        let answer = send().await.expect("sent");
        if answer.status() == StatusCode::OK {
            return Some(expect_json(answer, StatusCode::OK).await);
        }
        assert!(
            answer.status().is_server_error(),
            "a webhook refused: {}",
            answer.status()
        );
        None
    })
    .await
}

/// `/admin/actors`, timed; the actors it lists.
async fn actors_now(app: &TestApp) -> (Duration, usize) {
    let asked = Instant::now();
    let answer = app
        .client
        .get(app.url("/admin/actors"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request sent");
    let list = expect_json(answer, StatusCode::OK).await;
    let listed = list["actors"].as_array().map_or(0, Vec::len);
    (asked.elapsed(), listed)
}

async fn a_stalled_database_holds_up_no_call(backend: Backend) {
    const TALKING: usize = 6;
    const ENDED: usize = 2;
    const KILLED: usize = 2;
    const STARTED: usize = 3;
    let db = TestDb::create(backend).await;
    let (url, mut stall) = match backend {
        Backend::Postgres => {
            let (url, proxy) = behind_proxy(&db.url).await;
            (url.to_string(), Stall::Proxy(proxy))
        }
        Backend::Sqlite => (db.url.clone(), Stall::Lock(db.url.clone(), None)),
    };
    let direct = TestDb::store_at(&db.url).await;
    let peer = fleet_peer(0.3).await;
    let realtime = peer.url();
    let app = spawn_app_with(&url, |s| {
        live_settings(s, &realtime);
        s.database_pool_size = 6;
    })
    .await;
    let meetings = fleet_meetings(&app, TALKING + STARTED).await;
    let (talking, later) = meetings.split_at(TALKING);
    let calls = start_calls(&app, talking).await;
    for meeting in talking {
        wait_for_lines(&direct, meeting, 1).await;
    }

    stall.begin().await;
    let stalled = Instant::now();
    // During the stall: some calls end, some lose their actor, new ones
    // start. Each request waits on the database as long as it must; none
    // of it may hold up the supervisor.
    let hooks = webhooks(&app);
    let later_calls: Vec<_> = later
        .iter()
        .map(|m| scribe_sim::webhook::SimCall::new(m))
        .collect();
    // Stream retries a delivery that failed; so does the test (SQLite's
    // writes give up at their busy timeout while the lock lasts).
    let ends = join_all(
        calls[..ENDED]
            .iter()
            .map(|c| delivered(|| hooks.session_ended(c))),
    );
    let starts = join_all(
        later_calls
            .iter()
            .map(|c| delivered(|| hooks.session_started(c))),
    );
    let kills = join_all(talking[ENDED..ENDED + KILLED].iter().map(|m| {
        let path = format!("/admin/actors/{m}/kill?kind=meeting");
        let app = &app;
        async move { app.admin_post(&path).await }
    }));
    let watch = async {
        let mut slowest = Duration::ZERO;
        let mut sample = tokio::time::interval(Duration::from_millis(500));
        while stalled.elapsed() < STALL {
            sample.tick().await;
            let (took, listed) = actors_now(&app).await;
            assert!(listed > 0, "the live calls are listed");
            slowest = slowest.max(took);
        }
        slowest
    };
    let lines_before: usize = join_all(talking.iter().map(|m| transcript(&direct, m)))
        .await
        .iter()
        .map(Vec::len)
        .sum();
    let release = async {
        tokio::time::sleep_until(stalled + STALL).await;
        stall.end().await;
    };
    let (ends, starts, kills, slowest, ()) = tokio::join!(ends, starts, kills, watch, release);
    eprintln!(
        "{backend:?} stalled {} s: /admin/actors answered within {} ms at worst",
        STALL.as_secs(),
        slowest.as_millis()
    );
    assert!(
        slowest < AT_ONCE,
        "/admin/actors took {slowest:?} while the database stalled"
    );
    for answer in ends {
        assert_eq!(answer, json!({ "status": "ending" }));
    }
    for answer in starts {
        assert_eq!(answer, json!({ "status": "started" }));
    }
    for answer in kills {
        assert_eq!(
            answer.status(),
            StatusCode::ACCEPTED,
            "the kill was carried out"
        );
    }
    // The calls talked on while the database stalled: their lines waited
    // and are committed once it answers again (the writer retries).
    crate::running::eventually("lines committed after the stall", || async {
        let lines_after: usize = join_all(talking.iter().map(|m| transcript(&direct, m)))
            .await
            .iter()
            .map(Vec::len)
            .sum();
        (lines_after > lines_before).then_some(())
    })
    .await;

    let reads = Direct {
        app: &app,
        store: &direct,
    };
    // The calls ended during the stall: finalized, numbered without a
    // gap, nothing lost.
    for meeting in &talking[..ENDED] {
        wait_until_ended(&direct, meeting).await;
        let stored = transcript(&direct, meeting).await;
        for (n, line) in stored.iter().enumerate() {
            assert_eq!(line.sequence_number, n as i64 + 1, "{meeting}: gapless");
            assert_ne!(line.status, ChunkStatus::Lost, "{meeting}: nothing lost");
        }
    }
    // The ones that lost their actor, the ones still talking and the ones
    // started during the stall end normally, every line they said kept.
    let mut rest = calls[ENDED..].to_vec();
    rest.extend(later_calls);
    finish_chaotic_calls(&reads, &peer, &rest, false).await;
    for meeting in &meetings {
        wait_for_status(&direct, meeting, MeetingStatus::Completed).await;
    }
    app.stop().await.expect("clean stop");
    direct.close().await;
    db.destroy().await;
}

#[tokio::test]
async fn a_stalled_database_holds_up_no_call_on_sqlite_or_postgres() {
    init_test_log();
    for backend in backends() {
        a_stalled_database_holds_up_no_call(backend).await;
    }
}
