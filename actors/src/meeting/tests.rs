//! A MeetingActor under its supervisor, on an in-memory realtime session
//! and store, in paused time.

use serde_json::Value;

use crate::domain::{ChunkStatus, EventKind, MeetingStatus, Speaker};
use crate::fakes::tree::TestTree;
use crate::ids::MeetingId;
use crate::snapshot::{ActorKind, SocketState};
use crate::supervisor::budget::RestartBudget;
use crate::supervisor::outcome::StartOutcome;

async fn live_call(tree: &TestTree) -> MeetingId {
    let meeting = tree.store.add_meeting(MeetingStatus::Active);
    let started = tree.calls.start(meeting).await.expect("answers");
    assert_eq!(started, StartOutcome::Started);
    tree.connector.wait_for_sessions(1).await;
    meeting
}

#[tokio::test(start_paused = true)]
async fn the_session_is_opened_for_the_call_and_configured_before_anything_else() {
    let tree = TestTree::start(RestartBudget::default(), 4).await;
    let meeting = live_call(&tree).await;
    assert_eq!(tree.connector.target(0).meeting_id, meeting);
    let sent = tree.connector.sent(0);
    let first: Value = serde_json::from_str(&sent[0]).expect("json");
    assert_eq!(first["type"], "session.update");
    assert_eq!(first["session"]["instructions"], "Be brief.");
    assert_eq!(sent.len(), 1, "nothing to replay in a new call");
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_session_that_ends_is_replaced_after_a_backoff() {
    let tree = TestTree::start(RestartBudget::default(), 4).await;
    let meeting = live_call(&tree).await;
    tree.connector.drop_session(0);
    tree.connector.wait_for_sessions(2).await;
    let kinds: Vec<EventKind> = tree
        .store
        .wait_for("the second connection", |m| {
            let kinds: Vec<EventKind> = m.meeting(meeting).events.iter().map(|(k, _)| *k).collect();
            (kinds
                .iter()
                .filter(|k| **k == EventKind::SocketConnected)
                .count()
                == 2)
                .then_some(kinds)
        })
        .await;
    let closed = kinds.iter().position(|k| *k == EventKind::SocketClosed);
    let reconnecting = kinds
        .iter()
        .position(|k| *k == EventKind::SocketReconnecting);
    assert!(closed < reconnecting && closed.is_some(), "{kinds:?}");
    let actor = tree.actor(meeting, ActorKind::Meeting).await.expect("live");
    assert_eq!((actor.restarts, actor.socket), (0, SocketState::Open));
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_turn_read_from_the_session_is_stored_in_conversation_order() {
    let tree = TestTree::start(RestartBudget::default(), 4).await;
    let meeting = live_call(&tree).await;
    // The user's transcription completes after the agent's reply (GA shapes).
    for frame in [
        r#"{"type":"input_audio_buffer.committed","event_id":"e1","item_id":"u1","previous_item_id":null}"#,
        r#"{"type":"conversation.item.added","event_id":"e2","previous_item_id":null,"item":{"id":"u1","type":"message","role":"user","status":"completed","content":[{"type":"input_audio","transcript":null}]}}"#,
        r#"{"type":"response.created","event_id":"e3","response":{"id":"r1","status":"in_progress","output":[]}}"#,
        r#"{"type":"conversation.item.added","event_id":"e4","previous_item_id":"u1","item":{"id":"a1","type":"message","role":"assistant","status":"in_progress","content":[]}}"#,
        r#"{"type":"response.output_audio_transcript.delta","event_id":"e5","response_id":"r1","item_id":"a1","output_index":0,"content_index":0,"delta":"Hello "}"#,
        r#"{"type":"response.output_audio_transcript.done","event_id":"e6","response_id":"r1","item_id":"a1","output_index":0,"content_index":0,"transcript":"Hello there."}"#,
        r#"{"type":"response.done","event_id":"e7","response":{"id":"r1","status":"completed","output":[]}}"#,
        r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"e8","item_id":"u1","content_index":0,"transcript":"Hi."}"#,
    ] {
        tree.connector.send(0, frame);
    }
    let lines: Vec<(i64, Speaker, String, ChunkStatus)> = tree
        .store
        .wait_for("both lines", |m| {
            let lines = &m.meeting(meeting).lines;
            (lines.len() == 2).then(|| {
                lines
                    .values()
                    .map(|l| (l.sequence_number, l.speaker, l.text.clone(), l.status))
                    .collect()
            })
        })
        .await;
    assert_eq!(
        lines,
        [
            (1, Speaker::User, "Hi.".to_owned(), ChunkStatus::Completed),
            (
                2,
                Speaker::Agent,
                "Hello there.".to_owned(),
                ChunkStatus::Completed
            ),
        ]
    );
    let high = tree.store.read(|m| m.meeting(meeting).high_water);
    assert_eq!(high, 2);
    tree.stop();
}
