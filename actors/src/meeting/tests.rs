//! A MeetingActor under its supervisor, on an in-memory realtime session
//! and store, in paused time.

use serde_json::Value;

use crate::domain::{ChunkStatus, EventKind, MeetingStatus, Speaker};
use crate::fakes::tree::{TestTree, budget};
use crate::ids::MeetingId;
use crate::snapshot::{ActorKind, SocketState};
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
    let tree = TestTree::start(budget(5), 4).await;
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
    let tree = TestTree::start(budget(5), 4).await;
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
    let tree = TestTree::start(budget(5), 4).await;
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

/// A session that expires six minutes from now: its rotation (five
/// minutes before the expiry) is due in one minute.
fn session_created_expiring_in_six_minutes() -> String {
    let expires_at = chrono::Utc::now().timestamp() + 6 * 60;
    serde_json::json!({"type":"session.created","event_id":"e0","session":{"id":"sess_1","object":"realtime.session","type":"realtime","expires_at":expires_at}}).to_string()
}

const SPEECH_STARTED: &str = r#"{"type":"input_audio_buffer.speech_started","event_id":"e1","audio_start_ms":1000,"item_id":"u9"}"#;
const SPEECH_STOPPED: &str = r#"{"type":"input_audio_buffer.speech_stopped","event_id":"e2","audio_end_ms":4000,"item_id":"u9"}"#;

#[tokio::test(start_paused = true)]
async fn a_rotation_waits_while_the_user_speaks_and_goes_once_they_stop() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_call(&tree).await;
    tree.connector
        .send(0, &session_created_expiring_in_six_minutes());
    tree.connector.send(0, SPEECH_STARTED);
    // Two minutes on, the rotation has been due for a minute: still waiting.
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    assert_eq!(tree.connector.opened(), 1, "no rotation mid-speech");
    tree.connector.send(0, SPEECH_STOPPED);
    tree.connector.wait_for_sessions(2).await;
    let (rotated, forced) = tree
        .store
        .wait_for("the rotation in the log", |m| {
            let fake = m.meeting(meeting);
            let rotated = fake.logged(EventKind::SocketRotated).len();
            (rotated > 0).then(|| (rotated, fake.logged(EventKind::RotationForced).len()))
        })
        .await;
    assert_eq!((rotated, forced), (1, 0));
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_session_about_to_expire_is_rotated_even_mid_speech() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = live_call(&tree).await;
    let started = tokio::time::Instant::now();
    tree.connector
        .send(0, &session_created_expiring_in_six_minutes());
    tree.connector.send(0, SPEECH_STARTED);
    tree.connector.wait_for_sessions(2).await;
    // Thirty seconds before the expiry, not one rotation retry sooner.
    let waited = tokio::time::Instant::now() - started;
    assert!(
        waited >= std::time::Duration::from_secs(325)
            && waited <= std::time::Duration::from_secs(335),
        "rotated after {waited:?}"
    );
    let forced = tree
        .store
        .wait_for("the forced rotation in the log", |m| {
            let forced = m.meeting(meeting).logged(EventKind::RotationForced).len();
            (forced > 0).then_some(forced)
        })
        .await;
    assert_eq!(forced, 1);
    tree.stop();
}
