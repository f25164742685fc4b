//! A MeetingActor on GPT-Live: an owned session started and seeded, its
//! fragments stored as timed lines, `session.closed` by reason, a refused
//! `session.start`, and an attached session's gap after a drop.

use serde_json::{Value, json};

use super::lines_of;
use crate::domain::{ChunkStatus, EventKind, MeetingStatus, Speaker};
use crate::fakes::tree::{TestTree, budget};
use crate::ids::MeetingId;
use crate::snapshot::{ActorKind, SocketState};
use crate::supervisor::outcome::StartOutcome;

async fn live_meeting(tree: &TestTree, attached: Option<&str>) -> MeetingId {
    let meeting = tree.store.add_live_meeting(attached);
    let started = tree.calls.start(meeting).await.expect("answers");
    assert_eq!(started, StartOutcome::Started);
    tree.connector.wait_for_sessions(1).await;
    meeting
}

fn started(expires_in_s: i64) -> String {
    let expires_at = chrono::Utc::now().timestamp() + expires_in_s;
    json!({"type":"session.started","event_id":"e0","session":{"id":"live_1","expires_at":expires_at,"model":"gpt-live-1.1","status":"active"}}).to_string()
}

fn fragment(speaker: Speaker, delta: &str, start_ms: u64, end_ms: u64) -> String {
    let kind = match speaker {
        Speaker::User => "session.input_transcript.delta",
        Speaker::Agent => "session.output_transcript.delta",
    };
    json!({"type": kind, "event_id": "f", "delta": delta, "start_ms": start_ms, "end_ms": end_ms})
        .to_string()
}

fn closed(reason: &str) -> String {
    json!({"type":"session.closed","event_id":"c","reason":reason,"session":{"id":"live_1","expires_at":1,"model":"gpt-live-1.1","status":"active"},"usage":{"seconds":3.0}}).to_string()
}

/// A stored line: number, speaker, text, start and end on the session clock.
type TimedLine = (i64, Speaker, String, Option<i64>, Option<i64>);

fn timed_lines(tree: &TestTree, meeting: MeetingId) -> Vec<TimedLine> {
    tree.store.read(|m| {
        m.meeting(meeting)
            .lines
            .values()
            .map(|l| {
                (
                    l.sequence_number,
                    l.speaker,
                    l.text.clone(),
                    l.start_ms,
                    l.end_ms,
                )
            })
            .collect()
    })
}

#[tokio::test(start_paused = true)]
async fn an_owned_live_session_is_started_and_its_fragments_become_timed_lines() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_meeting(&tree, None).await;
    tree.connector
        .wait_for_sent(0, "session.start", |f| f.contains("session.start"))
        .await;
    let sent = tree.connector.sent(0);
    let first: Value = serde_json::from_str(&sent[0]).expect("json");
    assert_eq!(first["type"], "session.start", "the first message");
    assert_eq!(first["session"]["model"], "gpt-live-1.1");
    assert_eq!(first["session"]["instructions"], "Be brief.");
    assert_eq!(first["session"]["audio"]["output"]["voice"], "marin");
    assert!(first["session"].get("input").is_none(), "nothing to seed");
    assert_eq!(sent.len(), 1, "nothing else before session.started");
    tree.connector.send(0, &started(3_600));
    for frame in [
        fragment(Speaker::User, "Hi", 0, 300),
        fragment(Speaker::User, " there.", 300, 700),
        fragment(Speaker::Agent, "Hello!", 1_000, 1_600),
        fragment(Speaker::User, "Bye.", 2_000, 2_400),
        fragment(Speaker::Agent, "Goodbye.", 2_800, 3_300),
    ] {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 2).await;
    assert_eq!(
        timed_lines(&tree, meeting),
        [
            (1, Speaker::User, "Hi there.".into(), Some(0), Some(700)),
            (2, Speaker::Agent, "Hello!".into(), Some(1_000), Some(1_600)),
        ],
        "sealed lines are stored while the call runs"
    );
    // The caller hangs up: the rest is final, and the call ends at once.
    tree.connector.send(0, &closed("remote_hangup"));
    tree.store
        .wait_for_status(meeting, MeetingStatus::Completed)
        .await;
    let lines = timed_lines(&tree, meeting);
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[3],
        (
            4,
            Speaker::Agent,
            "Goodbye.".into(),
            Some(2_800),
            Some(3_300)
        )
    );
    let statuses = tree.store.read(|m| {
        m.meeting(meeting)
            .lines
            .values()
            .map(|l| l.status)
            .collect::<Vec<_>>()
    });
    assert!(
        statuses.iter().all(|s| *s == ChunkStatus::Completed),
        "{statuses:?}"
    );
    let over = tree
        .store
        .read(|m| m.meeting(meeting).logged(EventKind::CallOver).len());
    assert_eq!(over, 1);
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_refused_session_start_is_a_configuration_error_and_is_not_retried() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_meeting(&tree, None).await;
    tree.connector
        .wait_for_sent(0, "session.start", |f| f.contains("session.start"))
        .await;
    tree.connector.send(0, r#"{"type":"error","event_id":"e1","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"Unknown parameter: 'session.voice'.","param":"session.voice","client_event_id":"scribe_start"}}"#);
    tree.connector.drop_session(0);
    let error = tree
        .store
        .wait_for("the error on the meeting", |m| {
            m.meeting(meeting).error.clone()
        })
        .await;
    assert!(
        error.contains(
            "refused scribe's session (session.start): unknown_parameter for `session.voice`"
        ),
        "{error}"
    );
    let actor = tree.actor(meeting, ActorKind::Meeting).await.expect("live");
    assert_eq!(actor.socket, SocketState::ConfigurationError);
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    assert_eq!(
        tree.connector.opened(),
        1,
        "no retry of a refused configuration"
    );
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn an_expired_owned_session_is_replaced_by_one_seeded_with_the_recent_lines() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_meeting(&tree, None).await;
    tree.connector.send(0, &started(3_600));
    for frame in [
        fragment(Speaker::User, "Plan my week.", 0, 900),
        fragment(Speaker::Agent, "Sure.", 1_200, 1_500),
        fragment(Speaker::User, "Thanks.", 2_000, 2_400),
    ] {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 1).await;
    tree.connector.send(0, &closed("expired"));
    tree.connector.drop_session(0);
    tree.connector.wait_for_sessions(2).await;
    tree.connector
        .wait_for_sent(1, "the seeded session.start", |f| {
            f.contains("session.start")
        })
        .await;
    let start: Value = serde_json::from_str(&tree.connector.sent(1)[0]).expect("json");
    let seed: Vec<(String, String)> = start["session"]["input"]
        .as_array()
        .expect("seeded")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seed,
        [
            ("user".to_owned(), "Plan my week.".to_owned()),
            ("assistant".to_owned(), "Sure.".to_owned()),
            ("user".to_owned(), "Thanks.".to_owned()),
        ]
    );
    let logged = tree
        .store
        .read(|m| m.meeting(meeting).logged(EventKind::SessionClosed).len());
    assert_eq!(logged, 1);
    // The new session's clock starts again; numbering goes on.
    tree.connector.send(1, &started(3_600));
    for frame in [
        fragment(Speaker::Agent, "Anything else?", 0, 800),
        fragment(Speaker::User, "No.", 1_000, 1_200),
    ] {
        tree.connector.send(1, &frame);
    }
    tree.connector.send(1, &closed("close_requested"));
    tree.store
        .wait_for_status(meeting, MeetingStatus::Completed)
        .await;
    let texts: Vec<(i64, String)> = timed_lines(&tree, meeting)
        .into_iter()
        .map(|(n, _, t, _, _)| (n, t))
        .collect();
    assert_eq!(
        texts,
        [
            (1, "Plan my week.".into()),
            (2, "Sure.".into()),
            (3, "Thanks.".into()),
            (4, "Anything else?".into()),
            (5, "No.".into())
        ]
    );
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn an_attached_live_call_sends_nothing_and_records_the_gap_of_a_drop() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_meeting(&tree, Some("live_call_1")).await;
    assert_eq!(tree.connector.target(0).attach_to(), Some("live_call_1"));
    for frame in [
        fragment(Speaker::User, "One.", 0, 500),
        fragment(Speaker::Agent, "Two.", 1_000, 1_500),
        fragment(Speaker::User, "Three.", 2_000, 2_500),
    ] {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 1).await;
    tree.connector.drop_session(0);
    tree.connector.wait_for_sessions(2).await;
    // Back: the session clock went on while scribe was away.
    for frame in [
        fragment(Speaker::Agent, "Seven.", 7_000, 7_500),
        fragment(Speaker::User, "Eight.", 8_000, 8_400),
        fragment(Speaker::Agent, "Nine.", 9_000, 9_300),
    ] {
        tree.connector.send(1, &frame);
    }
    lines_of(&tree, meeting, 4).await;
    for n in 0..2 {
        assert!(
            tree.connector.sent(n).is_empty(),
            "a sideband sends nothing"
        );
    }
    let texts: Vec<(String, ChunkStatus)> = tree.store.read(|m| {
        m.meeting(meeting)
            .lines
            .values()
            .map(|l| (l.text.clone(), l.status))
            .collect()
    });
    assert_eq!(
        texts,
        [
            ("One.".into(), ChunkStatus::Completed),
            ("Two.".into(), ChunkStatus::Partial),
            ("Three.".into(), ChunkStatus::Partial),
            ("Seven.".into(), ChunkStatus::Completed),
        ],
        "what was pending at the drop is kept as partial; nothing is made up"
    );
    let gap = tree.store.read(|m| {
        m.meeting(meeting)
            .logged(EventKind::PossibleGap)
            .first()
            .map(|v| (*v).clone())
    });
    let gap = gap.expect("the gap is recorded");
    assert_eq!(
        (gap["from_ms"].clone(), gap["to_ms"].clone()),
        (json!(2_500), json!(7_000))
    );
    assert_eq!(
        (gap["after"].clone(), gap["before"].clone()),
        (json!(3), json!(4))
    );
    tree.stop();
}
