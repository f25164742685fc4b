//! The ways the batched writer can send lines to PostgreSQL
//! ([`PgLines`]): each must store exactly what the default does, awkward
//! text and absent values included, and stay idempotent on (meeting,
//! sequence number). `examples/ingest` measures their speed.

use scribe::domain::agent::NewAgent;
use scribe::domain::meeting::NewMeeting;
use scribe::domain::now;
use scribe::store::PgLines;
use scribe_actors::domain::{ChunkStatus, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::WriteBatch;
use scribe_actors::transcript::Line;

use crate::helpers::{Backend, TestDb, backends, init_test_log};

fn line(seq: i64, text: &str, item_id: Option<&str>, span: Option<(i64, i64)>) -> Line {
    Line {
        sequence_number: seq,
        speaker: if seq % 2 == 1 {
            Speaker::User
        } else {
            Speaker::Agent
        },
        text: text.into(),
        status: if seq == 3 {
            ChunkStatus::Partial
        } else {
            ChunkStatus::Completed
        },
        item_id: item_id.map(str::to_owned),
        timestamp: now(),
        start_ms: span.map(|s| s.0),
        end_ms: span.map(|s| s.1),
        ready_at: std::time::Instant::now(),
    }
}

/// Text COPY's escapes, a NULL marker spelled out, non-ASCII, an empty
/// line, item ids and GPT-Live spans present and absent.
fn awkward(meeting: MeetingId) -> Vec<(MeetingId, Line)> {
    [
        line(1, "tab\there, newline\nthere", Some("item_1"), None),
        line(2, "a back\\slash and a literal \\N", None, Some((0, 1_250))),
        line(
            3,
            "carriage\rreturn; ümlaut, 日本語, emoji 🎙",
            Some("it\tem"),
            None,
        ),
        line(4, "", None, None),
        line(5, "plain", Some("item_5"), Some((9_000, 12_500))),
    ]
    .into_iter()
    .map(|l| (meeting, l))
    .collect()
}

#[tokio::test]
async fn postgres_every_way_of_sending_lines_stores_the_same_and_stays_idempotent() {
    init_test_log();
    if !backends().contains(&Backend::Postgres) {
        // CI sets the URL and fails without it (`store_suite::postgres_suite_is_enabled_under_ci`).
        eprintln!("no PostgreSQL configured: these paths are PostgreSQL's");
        return;
    }
    let db = TestDb::create(Backend::Postgres).await;
    let store = TestDb::store_at(&db.url).await;
    let agent = store
        .insert_agent(NewAgent::parse("Coach", "Help.", None).expect("valid"))
        .await
        .expect("agent");
    let mut stored = Vec::new();
    for how in [PgLines::Arrays, PgLines::CopyText, PgLines::CopyBinary] {
        let store = store.clone().writing_lines_by(how);
        let meeting = store
            .insert_meeting(NewMeeting::parse("Call", "u", agent.id, None).expect("valid"))
            .await
            .expect("meeting")
            .id;
        let batch = WriteBatch {
            lines: awkward(meeting),
            ..WriteBatch::default()
        };
        assert_eq!(
            store.write_batch(&batch).await.expect("write"),
            5,
            "{how:?}"
        );
        // Written again, with one new line and one old number carrying
        // other text: only the new line is stored.
        let mut again = batch.clone();
        again.lines[0].1.text = "DIFFERENT".into();
        again.lines.push((meeting, line(6, "six", None, None)));
        assert_eq!(
            store.write_batch(&again).await.expect("again"),
            1,
            "{how:?}"
        );
        // A second batch on the same connection (the staging table is
        // emptied by each commit, not carried over).
        let next = WriteBatch {
            lines: vec![(meeting, line(7, "seven", None, None))],
            ..WriteBatch::default()
        };
        assert_eq!(store.write_batch(&next).await.expect("next"), 1, "{how:?}");
        let transcript = store.transcript(meeting).await.expect("read");
        let view: Vec<_> = transcript
            .into_iter()
            .map(|c| {
                (
                    c.sequence_number,
                    c.speaker,
                    c.text,
                    c.status,
                    c.item_id,
                    c.start_ms,
                    c.end_ms,
                )
            })
            .collect();
        assert_eq!(view.len(), 7, "{how:?}");
        stored.push((how, view));
    }
    let (_, arrays) = &stored[0];
    assert_eq!(arrays[0].2, "tab\there, newline\nthere");
    assert_eq!(arrays[1].2, "a back\\slash and a literal \\N");
    assert_eq!(arrays[2].4.as_deref(), Some("it\tem"));
    assert_eq!(arrays[4].5, Some(9_000));
    for (how, view) in &stored[1..] {
        assert_eq!(view, arrays, "{how:?} stores what the default stores");
    }
    db.destroy().await;
}
