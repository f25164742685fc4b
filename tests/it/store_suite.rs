//! The store suite: every test runs against each backend (see `each_backend`).

use chrono::Duration;
use scribe::domain::agent::{Blueprint, BlueprintSession, NewAgent};
use scribe::domain::meeting::{MeetingFilter, NewMeeting};
use scribe::domain::now;
use scribe::store::{SessionStart, StoreError, WebhookDelivery};
use scribe_actors::domain::EventKind;
use scribe_actors::domain::{ChunkStatus, MeetingStatus, Speaker};
use scribe_actors::ids::{AgentId, MeetingId};
use scribe_actors::ports::{CallStore, LoggedEvent, WriteBatch};
use scribe_actors::transcript::Line;
use serde_json::json;

use crate::helpers::{POSTGRES_ENV, TestDb, backends, each_backend};

fn coach() -> NewAgent {
    NewAgent::parse(
        "Coach",
        "Help the user plan their week.",
        Some(Blueprint {
            sessions: vec![
                BlueprintSession {
                    session_name: "Intro".into(),
                    goals: vec!["Learn the user's goals".into()],
                },
                BlueprintSession {
                    session_name: "Plan".into(),
                    goals: vec![],
                },
            ],
        }),
    )
    .expect("valid agent")
}

fn chunk(meeting_id: MeetingId, seq: i64, speaker: Speaker, text: &str) -> (MeetingId, Line) {
    (
        meeting_id,
        Line {
            sequence_number: seq,
            speaker,
            text: text.into(),
            status: ChunkStatus::Completed,
            item_id: Some(format!("item_{seq}")),
            timestamp: now(),
            start_ms: None,
            end_ms: None,
            ready_at: std::time::Instant::now(),
        },
    )
}

fn lines(lines: &[(MeetingId, Line)]) -> WriteBatch {
    WriteBatch {
        lines: lines.to_vec(),
        ..WriteBatch::default()
    }
}

#[tokio::test]
async fn postgres_suite_is_enabled_under_ci() {
    if std::env::var("CI").as_deref() == Ok("true") {
        assert!(
            backends().len() == 2,
            "CI=true but {POSTGRES_ENV} is not set: the PostgreSQL suite would not run"
        );
    }
}

#[tokio::test]
async fn migrations_apply_and_reapply_cleanly() {
    each_backend(|backend, url| async move {
        let db_store = scribe::store::Store::connect(&url, scribe::store::PoolSize(2))
            .await
            .expect("connect");
        db_store.migrate().await.expect("first migration");
        db_store
            .migrate()
            .await
            .expect("second migration is a no-op");
        db_store.ping().await.expect("ping");
        assert_eq!(format!("{backend:?}"), format!("{:?}", db_store.backend()));
        db_store.close().await;
        assert!(db_store.is_closed());
    })
    .await;
}

#[tokio::test]
async fn agent_round_trips_with_its_blueprint() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let created = store.insert_agent(coach()).await.expect("insert");
        let read = store
            .agent(created.id)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(read, created);
        assert_eq!(read.blueprint.expect("blueprint").sessions.len(), 2);
        assert!(store.agent(AgentId::new()).await.expect("query").is_none());
        let plain = store
            .insert_agent(NewAgent::parse("Plain", "Just talk.", None).expect("valid"))
            .await
            .expect("insert");
        let listed = store.agents(10).await.expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].id, plain.id, "newest first");
        assert_eq!(store.agents(1).await.expect("list").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn meeting_is_stored_upcoming_and_reads_back_equal() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let agent = store.insert_agent(coach()).await.expect("agent");
        let new = NewMeeting::parse("Intro", "user-1", agent.id, Some("Be brief.")).expect("valid");
        let meeting = store.insert_meeting(new).await.expect("insert");
        assert_eq!(meeting.status, MeetingStatus::Upcoming);
        assert_eq!(meeting.prompt.as_deref(), Some("Be brief."));
        assert!(!meeting.transcript_collected);
        assert_eq!(meeting.next_meeting_id, None);
        assert!(meeting.created_at <= now() && meeting.created_at > now() - Duration::minutes(1));
        let read = store
            .meeting(meeting.id)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(read, meeting);
        assert!(
            store
                .meeting(MeetingId::new())
                .await
                .expect("query")
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn meeting_for_an_unknown_agent_is_refused_and_not_stored() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let missing = AgentId::new();
        let new = NewMeeting::parse("Intro", "user-1", missing, None).expect("valid");
        let err = store.insert_meeting(new).await.expect_err("unknown agent");
        assert!(
            matches!(err, StoreError::UnknownAgent(id) if id == missing),
            "{err:?}"
        );
        let all = store
            .meetings(&MeetingFilter {
                limit: 10,
                ..MeetingFilter::default()
            })
            .await
            .expect("list");
        assert!(all.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_meeting_has_at_most_one_next_meeting() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let agent = store.insert_agent(coach()).await.expect("agent");
        let first = store
            .insert_meeting(NewMeeting::parse("Intro", "u", agent.id, None).expect("valid"))
            .await
            .expect("first");
        let next = |name: &str| NewMeeting {
            previous_meeting_id: Some(first.id),
            progress: Some(
                json!([{ "session_name": "Intro", "status": "completed", "notes": "" }]),
            ),
            ..NewMeeting::parse(name, "u", agent.id, None).expect("valid")
        };
        let second = store.insert_meeting(next("Plan")).await.expect("second");
        assert_eq!(second.previous_meeting_id, Some(first.id));
        assert_eq!(
            second.progress.as_ref().expect("progress")[0]["status"],
            "completed"
        );
        let err = store
            .insert_meeting(next("Plan again"))
            .await
            .expect_err("a second next meeting");
        assert!(err.is_unique_violation(), "{err:?}");
        let first = store
            .meeting(first.id)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(first.next_meeting_id, Some(second.id));
    })
    .await;
}

#[tokio::test]
async fn meetings_filter_by_status_user_and_agent_newest_first() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let a = store.insert_agent(coach()).await.expect("agent");
        let b = store.insert_agent(coach()).await.expect("agent");
        let mut ids = Vec::new();
        for (agent, user) in [(a.id, "ann"), (a.id, "bob"), (b.id, "ann")] {
            let m = store
                .insert_meeting(NewMeeting::parse("Call", user, agent, None).expect("valid"))
                .await
                .expect("insert");
            ids.push(m.id);
        }
        let list = |filter: MeetingFilter| {
            let store = store.clone();
            async move {
                store
                    .meetings(&MeetingFilter {
                        limit: 50,
                        ..filter
                    })
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|m| m.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(MeetingFilter::default()).await,
            [ids[2], ids[1], ids[0]]
        );
        let ann = MeetingFilter {
            user_id: Some("ann".into()),
            ..MeetingFilter::default()
        };
        assert_eq!(list(ann.clone()).await, [ids[2], ids[0]]);
        let ann_a = MeetingFilter {
            agent_id: Some(a.id),
            ..ann
        };
        assert_eq!(list(ann_a).await, [ids[0]]);
        let upcoming = MeetingFilter {
            status: Some(MeetingStatus::Upcoming),
            ..MeetingFilter::default()
        };
        assert_eq!(list(upcoming).await.len(), 3);
        let active = MeetingFilter {
            status: Some(MeetingStatus::Active),
            ..MeetingFilter::default()
        };
        assert!(list(active).await.is_empty());
        let page = store
            .meetings(&MeetingFilter {
                limit: 2,
                ..MeetingFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(page.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn chunks_are_stored_once_per_sequence_number_and_read_in_order() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let agent = store.insert_agent(coach()).await.expect("agent");
        let meeting = store
            .insert_meeting(NewMeeting::parse("Call", "u", agent.id, None).expect("valid"))
            .await
            .expect("meeting");
        let rows = [
            chunk(meeting.id, 2, Speaker::Agent, "Hello, how can I help?"),
            chunk(meeting.id, 1, Speaker::User, "Hi there."),
            chunk(meeting.id, 3, Speaker::User, "I need a plan."),
        ];
        assert_eq!(store.write_batch(&lines(&rows)).await.expect("insert"), 3);
        // A retried batch (same numbers, other text) changes nothing.
        let retry = [
            chunk(meeting.id, 2, Speaker::Agent, "DIFFERENT"),
            chunk(meeting.id, 4, Speaker::Agent, "Sure."),
        ];
        assert_eq!(store.write_batch(&lines(&retry)).await.expect("insert"), 1);
        let transcript = store.transcript(meeting.id).await.expect("read");
        let seen: Vec<(i64, Speaker, &str)> = transcript
            .iter()
            .map(|c| {
                (
                    c.sequence_number,
                    c.speaker.expect("speaker"),
                    c.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, Speaker::User, "Hi there."),
                (2, Speaker::Agent, "Hello, how can I help?"),
                (3, Speaker::User, "I need a plan."),
                (4, Speaker::Agent, "Sure."),
            ]
        );
        assert_eq!(transcript[0].item_id.as_deref(), Some("item_1"));
        assert_eq!(transcript[0].status, ChunkStatus::Completed);
        assert_eq!(
            store
                .write_batch(&WriteBatch::default())
                .await
                .expect("empty"),
            0
        );
    })
    .await;
}

/// A writer batch as large as the writer makes (500 lines of three calls,
/// far more than one PostgreSQL statement carries), with event-log entries
/// and high-water marks: every line lands once, events keep their order.
#[tokio::test]
async fn a_full_batch_of_several_calls_is_stored_whole_and_in_order() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let agent = store.insert_agent(coach()).await.expect("agent");
        let mut meetings = Vec::new();
        for user in ["a", "b", "c"] {
            let new = NewMeeting::parse("Call", user, agent.id, None).expect("valid");
            meetings.push(store.insert_meeting(new).await.expect("meeting").id);
        }
        let text = "a sentence of ordinary length, as people say them on calls".repeat(2);
        let rows: Vec<(MeetingId, Line)> = (0..500)
            .map(|i| {
                let speaker = if i % 2 == 0 {
                    Speaker::User
                } else {
                    Speaker::Agent
                };
                chunk(
                    meetings[i % 3],
                    (i / 3) as i64 + 1,
                    speaker,
                    &format!("{i}: {text}"),
                )
            })
            .collect();
        let events: Vec<LoggedEvent> = (0..40)
            .map(|i| LoggedEvent {
                meeting: meetings[0],
                kind: EventKind::RealtimeError,
                detail: json!({ "n": i }),
                at: now(),
            })
            .collect();
        let batch = WriteBatch {
            lines: rows.clone(),
            high_water: meetings.iter().map(|m| (*m, 200)).collect(),
            events,
            ..WriteBatch::default()
        };
        assert_eq!(store.write_batch(&batch).await.expect("written"), 500);
        assert_eq!(store.write_batch(&batch).await.expect("again"), 0);
        for (k, meeting) in meetings.iter().enumerate() {
            let stored = store.transcript(*meeting).await.expect("read");
            let want: Vec<(i64, String)> = rows
                .iter()
                .filter(|(m, _)| m == meeting)
                .map(|(_, l)| (l.sequence_number, l.text.clone()))
                .collect();
            let got: Vec<(i64, String)> = stored
                .iter()
                .map(|c| (c.sequence_number, c.text.clone()))
                .collect();
            assert_eq!(got, want, "call {k}");
            let context = store
                .call_context(*meeting)
                .await
                .expect("ctx")
                .expect("exists");
            assert_eq!(context.next_sequence, 201, "call {k}");
        }
        let logged: Vec<i64> = store
            .events(meetings[0])
            .await
            .expect("events")
            .iter()
            .filter(|e| e.kind == EventKind::RealtimeError)
            .map(|e| e.detail["n"].as_i64().expect("n"))
            .collect();
        // Written twice: the log holds both, each in its order.
        let want: Vec<i64> = (0..40).chain(0..40).collect();
        assert_eq!(logged, want);
    })
    .await;
}

#[tokio::test]
async fn chunks_of_an_unknown_meeting_are_refused() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let stray = chunk(MeetingId::new(), 1, Speaker::User, "hello");
        let err = store
            .write_batch(&lines(&[stray]))
            .await
            .expect_err("no such meeting");
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_missing_sqlite_file_is_created() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("fresh.db");
    assert!(!path.exists());
    let store = scribe::store::Store::connect(
        &format!("sqlite://{}", path.display()),
        scribe::store::PoolSize(1),
    )
    .await
    .expect("connect creates the file");
    store.migrate().await.expect("migrate");
    assert!(path.exists());
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_named_without_their_password() {
    let err =
        scribe::store::Store::connect("mysql://app:hunter2@db/scribe", scribe::store::PoolSize(1))
            .await
            .expect_err("mysql is not supported");
    let message = err.to_string();
    assert!(message.contains("mysql://app:***@db/scribe"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

async fn active_meeting(store: &scribe::store::Store) -> MeetingId {
    let agent = store.insert_agent(coach()).await.expect("agent");
    let meeting = store
        .insert_meeting(NewMeeting::parse("Call", "u", agent.id, Some("Be brief.")).expect("valid"))
        .await
        .expect("meeting");
    let started = store
        .start_session(
            &delivery("w-start", "call.session_started", "s1"),
            meeting.id,
            scribe_actors::domain::Transport::OpenAi,
        )
        .await
        .expect("start");
    assert_eq!(started, SessionStart::Started);
    meeting.id
}

fn delivery(webhook_id: &str, kind: &str, session: &str) -> WebhookDelivery {
    WebhookDelivery {
        webhook_id: Some(webhook_id.into()),
        event_type: kind.into(),
        call_cid: Some("default:call-1".into()),
        session_id: Some(session.into()),
    }
}

mod calls;
