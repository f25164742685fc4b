//! The store suite, continued: a call's start, numbering, end, failure, status changes, retries and participants on each backend.

use super::*;

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
        let counts = store.meeting_counts().await.expect("counts");
        assert!(
            !counts
                .iter()
                .any(|(status, n)| status == "active" && *n > 0),
            "{counts:?}"
        );
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
