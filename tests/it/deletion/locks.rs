//! PostgreSQL's row locks around a deletion (migrations 0010 and 0011): a
//! write racing a deletion lands before it (and is deleted with the rest)
//! or waits for it and is skipped; and the lock a log entry takes to be
//! sure of that holds up nothing else (a call's end, a status change).
//! SQLite runs one writer at a time: nothing to race there.

use sqlx::Connection;

use super::*;
use crate::helpers::{Backend, TestDb, backends, init_test_log};
use crate::running::eventually;
use scribe_actors::domain::EventKind;
use scribe_actors::ports::{LoggedEvent, WriteBatch};

/// A PostgreSQL database with a store and a meeting, or `None` without one.
async fn postgres() -> Option<(TestDb, Store, MeetingId)> {
    init_test_log();
    if !backends().contains(&Backend::Postgres) {
        // CI sets the URL and fails without it (`store_suite::postgres_suite_is_enabled_under_ci`).
        eprintln!("no PostgreSQL configured: row locks are PostgreSQL's");
        return None;
    }
    let db = TestDb::create(Backend::Postgres).await;
    let store = TestDb::store_at(&db.url).await;
    let agent = retention::agent(&store).await;
    let new = scribe::domain::meeting::NewMeeting::parse("M", "u", agent, None).expect("valid");
    let meeting = store.insert_meeting(new).await.expect("stored").id;
    Some((db, store, meeting))
}

fn one_event(meeting: MeetingId) -> WriteBatch {
    WriteBatch {
        events: vec![LoggedEvent {
            meeting,
            kind: EventKind::RealtimeError,
            detail: json!({ "late": true }),
            at: chrono::Utc::now(),
        }],
        ..WriteBatch::default()
    }
}

/// A session with a transaction open.
async fn begin(db: &TestDb) -> sqlx::PgConnection {
    let mut session = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut session)
        .await
        .expect("begin");
    session
}

async fn commit(session: &mut sqlx::PgConnection) {
    sqlx::query("COMMIT")
        .execute(session)
        .await
        .expect("commit");
}

/// A session that has done what a deletion does first to the row `id` of
/// `table` (locked it `FOR UPDATE`, set `deleted_at`) and not committed it.
async fn tombstone_not_committed(db: &TestDb, table: &str, id: uuid::Uuid) -> sqlx::PgConnection {
    let mut deletion = begin(db).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .execute(&mut deletion)
    .await
    .expect("locked");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET deleted_at = now() WHERE id = $1"
    )))
    .bind(id)
    .execute(&mut deletion)
    .await
    .expect("tombstone");
    deletion
}

/// A session that has written an event-log entry for `meeting` and not
/// committed it.
async fn log_entry_not_committed(db: &TestDb, meeting: MeetingId) -> sqlx::PgConnection {
    let mut writer = begin(db).await;
    sqlx::query(
        "INSERT INTO meeting_events (meeting_id, kind, detail, created_at) \
         VALUES ($1, 'realtime_error', '{}', now())",
    )
    .bind(meeting.as_uuid())
    .execute(&mut writer)
    .await
    .expect("entry written, not committed");
    writer
}

/// Waits until some session of the database waits for a row lock.
async fn someone_waits(db: &TestDb) {
    let watch = sqlx::PgPool::connect(&db.url).await.expect("connect");
    eventually("a session waiting for a lock", || {
        let watch = watch.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&watch)
            .await
            .expect("read");
            (waiting > 0).then_some(())
        }
    })
    .await;
    watch.close().await;
}

#[tokio::test]
async fn postgres_a_log_entry_racing_a_deletion_waits_for_it_and_is_skipped() {
    let Some((db, store, meeting)) = postgres().await else {
        return;
    };
    // The deletion has the row and made it a tombstone, not committed yet.
    let mut deletion = tombstone_not_committed(&db, "meetings", meeting.as_uuid()).await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.write_batch(&one_event(meeting)).await })
    };
    someone_waits(&db).await;
    assert!(
        !writer.is_finished(),
        "the log entry waits for the deletion"
    );
    commit(&mut deletion).await;
    writer.await.expect("joined").expect("written");
    assert_eq!(
        store.rows_of(meeting).await.expect("rows").events,
        0,
        "the entry saw the tombstone and was skipped"
    );
    drop(db);
}

#[tokio::test]
async fn postgres_a_deletion_waits_for_a_log_entry_being_written_and_deletes_it() {
    let Some((db, store, meeting)) = postgres().await else {
        return;
    };
    let mut writer = log_entry_not_committed(&db, meeting).await;
    let deletion = {
        let store = store.clone();
        tokio::spawn(async move { store.delete_meeting(meeting).await })
    };
    someone_waits(&db).await;
    assert!(!deletion.is_finished(), "the deletion waits for the entry");
    commit(&mut writer).await;
    let done = deletion.await.expect("joined").expect("deleted");
    assert!(
        matches!(done, scribe::store::Deletion::Deleted(_)),
        "{done:?}"
    );
    assert_eq!(store.rows_of(meeting).await.expect("rows").events, 0);
    drop(db);
}

#[tokio::test]
async fn postgres_a_log_entry_being_written_holds_up_no_change_of_its_call() {
    let Some((db, store, meeting)) = postgres().await else {
        return;
    };
    let mut writer = log_entry_not_committed(&db, meeting).await;
    // Under 0010's FOR SHARE this waited for the writer's commit (forever
    // here: the deadline fails the test).
    let cancelled = tokio::time::timeout(
        crate::running::DEADLINE,
        store.cancel_meeting(meeting, "called off", None),
    )
    .await
    .expect("the status change does not wait for the log entry")
    .expect("cancelled");
    assert!(cancelled);
    commit(&mut writer).await;
    assert_eq!(store.rows_of(meeting).await.expect("rows").events, 2);
    drop(db);
}

#[tokio::test]
async fn postgres_a_meeting_made_while_its_agent_is_deleted_waits_and_is_refused() {
    let Some((db, store, meeting)) = postgres().await else {
        return;
    };
    let agent = store
        .meeting(meeting)
        .await
        .expect("read")
        .expect("found")
        .agent_id;
    let mut deletion = tombstone_not_committed(&db, "agents", agent.as_uuid()).await;
    let insert = {
        let store = store.clone();
        tokio::spawn(async move {
            let new = scribe::domain::meeting::NewMeeting::parse("Late", "u", agent, None)
                .expect("valid");
            store.insert_meeting(new).await
        })
    };
    someone_waits(&db).await;
    assert!(
        !insert.is_finished(),
        "the new meeting waits for the deletion"
    );
    commit(&mut deletion).await;
    let made = insert.await.expect("joined");
    assert!(made.is_err(), "no meeting for a deleted agent: {made:?}");
    drop(db);
}
