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

#[tokio::test]
async fn session_start_is_deduplicated_by_webhook_id_and_by_session() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let meeting = active_meeting(&store).await;
        let read = store.meeting(meeting).await.expect("query").expect("found");
        assert_eq!(read.status, MeetingStatus::Active);
        let started_at = read.started_at.expect("started_at set");
        // Same webhook id, and a new id for the same (cid, session, type).
        for again in [
            delivery("w-start", "call.session_started", "s1"),
            delivery("w-other", "call.session_started", "s1"),
        ] {
            let outcome = store
                .start_session(&again, meeting, scribe_actors::domain::Transport::OpenAi)
                .await
                .expect("dedupe");
            assert_eq!(outcome, SessionStart::Duplicate);
        }
        // A new session of the same call starts again and keeps started_at.
        let next = store
            .start_session(
                &delivery("w-2", "call.session_started", "s2"),
                meeting,
                scribe_actors::domain::Transport::OpenAi,
            )
            .await
            .expect("second session");
        assert_eq!(next, SessionStart::Started);
        let read = store.meeting(meeting).await.expect("query").expect("found");
        assert_eq!(read.started_at, Some(started_at));
        let context = store
            .call_context(meeting)
            .await
            .expect("context")
            .expect("exists");
        assert_eq!(context.call_id.as_deref(), Some("call-1"));
        assert_eq!(context.call_type.as_deref(), Some("default"));
        assert_eq!(
            context.instructions, "Be brief.",
            "the meeting's prompt first"
        );
        // Without a prompt, the agent's instructions.
        let plain = store
            .insert_meeting(
                NewMeeting::parse("No prompt", "u", read.agent_id, None).expect("valid"),
            )
            .await
            .expect("meeting");
        let context = store
            .call_context(plain.id)
            .await
            .expect("context")
            .expect("exists");
        assert_eq!(context.instructions, "Help the user plan their week.");
        assert_eq!(context.next_sequence, 1);
    })
    .await;
}

#[tokio::test]
async fn a_refused_start_records_nothing() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let missing = MeetingId::new();
        let d = delivery("w-x", "call.session_started", "s0");
        assert_eq!(
            store
                .start_session(&d, missing, scribe_actors::domain::Transport::OpenAi)
                .await
                .expect("query"),
            SessionStart::NotFound
        );
        // The same delivery id is not a duplicate afterwards.
        let meeting = active_meeting(&store).await;
        store
            .finalize(meeting, now(), None)
            .await
            .expect("finalize");
        let d2 = delivery("w-y", "call.session_started", "s9");
        assert_eq!(
            store
                .start_session(&d2, meeting, scribe_actors::domain::Transport::OpenAi)
                .await
                .expect("query"),
            SessionStart::NotStartable(MeetingStatus::Processing)
        );
        assert!(
            store.record_delivery(&d).await.expect("record"),
            "refused start left no record"
        );
        assert!(
            !store.record_delivery(&d).await.expect("record"),
            "second time is a duplicate"
        );
    })
    .await;
}

#[tokio::test]
async fn the_counter_high_water_only_grows_and_feeds_the_next_number() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let meeting = active_meeting(&store).await;
        let reserve = |n| WriteBatch {
            high_water: vec![(meeting, n)],
            ..WriteBatch::default()
        };
        store.write_batch(&reserve(7)).await.expect("reserve");
        store
            .write_batch(&reserve(3))
            .await
            .expect("lower is ignored");
        let context = store
            .call_context(meeting)
            .await
            .expect("context")
            .expect("exists");
        assert_eq!(context.next_sequence, 8);
        // A stored line above the mark counts too.
        store
            .write_batch(&lines(&[chunk(meeting, 9, Speaker::User, "hi")]))
            .await
            .expect("line");
        let context = store
            .call_context(meeting)
            .await
            .expect("context")
            .expect("exists");
        assert_eq!(context.next_sequence, 10);
    })
    .await;
}

/// A mark above what the call's own conversation handed out is a number it
/// gave back (a user turn that was silence): not a lost line. Gaps below
/// it still are.
#[tokio::test]
async fn finalize_with_the_conversations_count_fills_no_line_for_a_number_given_back() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let meeting = active_meeting(&store).await;
        let batch = WriteBatch {
            lines: vec![
                chunk(meeting, 1, Speaker::User, "one"),
                chunk(meeting, 3, Speaker::Agent, "three"),
            ],
            high_water: vec![(meeting, 4)],
            ..WriteBatch::default()
        };
        store.write_batch(&batch).await.expect("write");
        let done = store
            .finalize(meeting, now(), Some(3))
            .await
            .expect("finalize");
        assert_eq!(done.lines, 3);
        assert_eq!(done.lost, [2], "a gap below the count is still lost");
        let numbers: Vec<i64> = store
            .transcript(meeting)
            .await
            .expect("transcript")
            .iter()
            .map(|c| c.sequence_number)
            .collect();
        assert_eq!(numbers, [1, 2, 3], "gapless, and nothing past the count");
    })
    .await;
}

#[tokio::test]
async fn finalize_fills_gaps_as_lost_lines_and_moves_to_processing_once() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let meeting = active_meeting(&store).await;
        let batch = WriteBatch {
            lines: vec![
                chunk(meeting, 1, Speaker::User, "one"),
                chunk(meeting, 2, Speaker::Agent, "two"),
                chunk(meeting, 5, Speaker::Agent, "five"),
            ],
            high_water: vec![(meeting, 6)],
            events: vec![scribe_actors::ports::LoggedEvent {
                meeting,
                kind: EventKind::SocketConnected,
                detail: json!({ "session": 1 }),
                at: now(),
            }],
            ..WriteBatch::default()
        };
        store.write_batch(&batch).await.expect("write");
        let ended_at = now();
        let done = store
            .finalize(meeting, ended_at, None)
            .await
            .expect("finalize");
        assert_eq!(done.lines, 6);
        assert_eq!(done.lost, [3, 4, 6]);
        assert!(done.transitioned);
        let transcript = store.transcript(meeting).await.expect("transcript");
        let numbers: Vec<i64> = transcript.iter().map(|c| c.sequence_number).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6], "gapless");
        let lost: Vec<i64> = transcript
            .iter()
            .filter(|c| c.status == ChunkStatus::Lost)
            .map(|c| c.sequence_number)
            .collect();
        assert_eq!(lost, [3, 4, 6]);
        assert!(
            transcript
                .iter()
                .filter(|c| c.status == ChunkStatus::Lost)
                .all(|c| c.speaker.is_none())
        );
        let m = store.meeting(meeting).await.expect("query").expect("found");
        assert_eq!(m.status, MeetingStatus::Processing);
        assert_eq!(m.ended_at, Some(ended_at));
        // The hand-off: its analysis job exists, pending, from the same instant.
        let job = store
            .analysis_job(meeting)
            .await
            .expect("query")
            .expect("job created");
        assert_eq!((job.state.as_str(), job.attempt), ("pending", 0));
        assert_eq!(Some(job.created_at), m.processing_started_at);
        assert!(m.transcript_collected);
        assert!(m.processing_started_at.is_some());
        let events = store.events(meeting).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::SocketConnected && e.detail["session"] == 1)
        );
        let gaps: Vec<(i64, i64)> = events
            .iter()
            .filter(|e| e.kind == EventKind::Gap)
            .map(|e| {
                (
                    e.detail["from"].as_i64().expect("from"),
                    e.detail["to"].as_i64().expect("to"),
                )
            })
            .collect();
        assert_eq!(gaps, [(3, 4), (6, 6)]);
        // A second finalize changes nothing.
        let again = store
            .finalize(meeting, now(), None)
            .await
            .expect("finalize again");
        assert!(!again.transitioned);
        let same = store
            .analysis_job(meeting)
            .await
            .expect("query")
            .expect("job");
        assert_eq!(same.created_at, job.created_at, "one job per meeting");
        assert!(again.lost.is_empty());
        let m2 = store.meeting(meeting).await.expect("query").expect("found");
        assert_eq!(m2.ended_at, Some(ended_at));
    })
    .await;
}

#[tokio::test]
async fn fail_sets_the_error_unless_already_terminal() {
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let meeting = active_meeting(&store).await;
        store
            .fail(meeting, "the agent connection failed 6 times in 60 s")
            .await
            .expect("fail");
        let m = store.meeting(meeting).await.expect("query").expect("found");
        assert_eq!(m.status, MeetingStatus::Failed);
        assert_eq!(
            m.error.as_deref(),
            Some("the agent connection failed 6 times in 60 s")
        );
        assert!(store.active_meetings().await.expect("active").is_empty());
    })
    .await;
}

/// The `status_changed` entries of a meeting's log, as (from, to).
async fn status_changes(store: &scribe::store::Store, meeting: MeetingId) -> Vec<(String, String)> {
    store
        .events(meeting)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == EventKind::StatusChanged)
        .map(|e| {
            let text = |v: &serde_json::Value| v.as_str().expect("a status").to_owned();
            (text(&e.detail["from"]), text(&e.detail["to"]))
        })
        .collect()
}

#[tokio::test]
async fn every_status_change_follows_the_state_machine_and_is_logged_once() {
    use scribe::store::RetryOutcome;
    use scribe_actors::ports::AnalysisResult;
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let agent = store.insert_agent(coach()).await.expect("agent");
        let meeting = store
            .insert_meeting(NewMeeting::parse("Call", "u", agent.id, None).expect("valid"))
            .await
            .expect("meeting")
            .id;
        let status = |store: scribe::store::Store| async move {
            store
                .meeting(meeting)
                .await
                .expect("query")
                .expect("found")
                .status
        };
        let summary = AnalysisResult::Summary {
            summary: "Done.".into(),
        };

        // An upcoming meeting: nothing but its start is allowed.
        let finalized = store
            .finalize(meeting, now(), None)
            .await
            .expect("finalize");
        assert!(!finalized.transitioned, "upcoming -> processing is refused");
        store.fail(meeting, "too early").await.expect("fail");
        assert_eq!(
            store.retry_analysis(meeting).await.expect("retry"),
            RetryOutcome::NotFailed(MeetingStatus::Upcoming)
        );
        assert_eq!(status(store.clone()).await, MeetingStatus::Upcoming);
        assert!(status_changes(&store, meeting).await.is_empty());

        let start = delivery("w-1", "call.session_started", "s1");
        assert_eq!(
            store
                .start_session(&start, meeting, scribe_actors::domain::Transport::OpenAi)
                .await
                .expect("start"),
            SessionStart::Started
        );
        // Results for a live call are refused: it is not processing.
        store
            .complete_analysis(meeting, &summary)
            .await
            .expect("complete");
        assert_eq!(status(store.clone()).await, MeetingStatus::Active);
        let stages = store.events(meeting).await.expect("events");
        assert!(
            stages.iter().all(|e| e.kind != EventKind::AnalysisStage),
            "a refused result logs nothing"
        );

        assert!(
            store
                .finalize(meeting, now(), None)
                .await
                .expect("finalize")
                .transitioned
        );
        assert_eq!(
            store.retry_analysis(meeting).await.expect("retry"),
            RetryOutcome::NotFailed(MeetingStatus::Processing)
        );
        store
            .fail_analysis(meeting, "the model failed", Some("HTTP 500: upstream"))
            .await
            .expect("fail");
        assert_eq!(
            store.retry_analysis(meeting).await.expect("retry"),
            RetryOutcome::Queued
        );
        store
            .complete_analysis(meeting, &summary)
            .await
            .expect("complete");
        assert_eq!(status(store.clone()).await, MeetingStatus::Completed);

        // A completed meeting stays completed.
        store.fail(meeting, "late").await.expect("fail");
        assert_eq!(
            store.retry_analysis(meeting).await.expect("retry"),
            RetryOutcome::NotFailed(MeetingStatus::Completed)
        );
        let m = store.meeting(meeting).await.expect("query").expect("found");
        assert_eq!((m.status, m.error), (MeetingStatus::Completed, None));

        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            status_changes(&store, meeting).await,
            [
                pair("upcoming", "active"),
                pair("active", "processing"),
                pair("processing", "failed"),
                pair("failed", "processing"),
                pair("processing", "completed"),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn two_retries_at_once_queue_the_analysis_once() {
    use scribe::store::RetryOutcome;
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let meeting = active_meeting(&store).await;
        store
            .finalize(meeting, now(), None)
            .await
            .expect("finalize");
        store
            .fail_analysis(meeting, "the model failed", Some("HTTP 500: upstream"))
            .await
            .expect("fail");
        let (a, b) = tokio::join!(store.retry_analysis(meeting), store.retry_analysis(meeting));
        let mut outcomes = [a.expect("retry"), b.expect("retry")];
        outcomes.sort_by_key(|o| matches!(o, RetryOutcome::Queued));
        assert_eq!(
            outcomes,
            [
                RetryOutcome::NotFailed(MeetingStatus::Processing),
                RetryOutcome::Queued
            ]
        );
        let retried = status_changes(&store, meeting)
            .await
            .into_iter()
            .filter(|(from, _)| from == "failed")
            .count();
        assert_eq!(retried, 1, "one failed -> processing");
    })
    .await;
}

/// Who is in a Stream session is counted from the participant events, by
/// each participant's own session: repeats change nothing, a `joined`
/// after its `left` brings nobody back, scribe's agent is not counted.
#[tokio::test]
async fn stream_participants_are_counted_by_their_sessions_idempotently() {
    use scribe::store::{Movement, Presence, Remaining};
    each_backend(|_, url| async move {
        let store = TestDb::store_at(&url).await;
        let at = now();
        let who = |user: &'static str, session: &'static str| Presence {
            call_cid: "default:c1",
            session_id: "s1",
            user_session_id: session,
            user_id: user,
        };
        let count = |p: Presence<'static>, m: Movement| {
            let store = store.clone();
            async move {
                store
                    .record_presence(&p, m, at, "scribe-agent")
                    .await
                    .expect("recorded")
            }
        };
        let people = |people, seen| Remaining { people, seen };
        assert_eq!(
            count(who("alice", "a1"), Movement::Joined).await,
            people(1, 1)
        );
        assert_eq!(
            count(who("alice", "a1"), Movement::Joined).await,
            people(1, 1)
        );
        assert_eq!(
            count(who("scribe-agent", "g1"), Movement::Joined).await,
            people(1, 1)
        );
        assert_eq!(
            count(who("bob", "b1"), Movement::Joined).await,
            people(2, 2)
        );
        assert_eq!(
            count(who("bob", "b2"), Movement::Joined).await,
            people(3, 3)
        );
        assert_eq!(count(who("bob", "b1"), Movement::Left).await, people(2, 3));
        assert_eq!(count(who("bob", "b1"), Movement::Left).await, people(2, 3));
        assert_eq!(
            count(who("bob", "b1"), Movement::Joined).await,
            people(2, 3),
            "no comeback"
        );
        // A `left` before its `joined`.
        assert_eq!(
            count(who("carol", "c1"), Movement::Left).await,
            people(2, 4)
        );
        assert_eq!(
            count(who("carol", "c1"), Movement::Joined).await,
            people(2, 4)
        );
        assert_eq!(
            count(who("alice", "a1"), Movement::Left).await,
            people(1, 4)
        );
        assert_eq!(count(who("bob", "b2"), Movement::Left).await, people(0, 4));
        // Another session of the call counts on its own.
        let other = Presence {
            session_id: "s2",
            ..who("alice", "a9")
        };
        assert_eq!(
            store
                .record_presence(&other, Movement::Joined, at, "scribe-agent")
                .await
                .expect("recorded"),
            people(1, 1)
        );
    })
    .await;
}
