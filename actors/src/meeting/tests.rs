//! A MeetingActor under its supervisor, on an in-memory realtime session
//! and store, in paused time.

use serde_json::Value;

use crate::domain::{ChunkStatus, EventKind, MeetingStatus, Speaker};
use crate::fakes::connector::Outcome;
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
    tree.connector
        .wait_for_sent(0, "session.update", |f| f.contains("session.update"))
        .await;
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
    let high = tree.store.read(|m| m.meeting(meeting).top_number());
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

// Attached sessions: a sideband to a call someone else carries.

/// A user turn then the agent's reply, as frames, with these item ids.
pub(super) fn turn_frames(
    user: &str,
    previous: Option<&str>,
    agent: &str,
    words: &str,
) -> Vec<String> {
    let prev = previous.map_or("null".to_owned(), |p| format!("\"{p}\""));
    vec![
        format!(
            r#"{{"type":"input_audio_buffer.committed","event_id":"e","item_id":"{user}","previous_item_id":{prev}}}"#
        ),
        format!(
            r#"{{"type":"conversation.item.added","event_id":"e","previous_item_id":{prev},"item":{{"id":"{user}","type":"message","role":"user","status":"completed","content":[{{"type":"input_audio","transcript":null}}]}}}}"#
        ),
        format!(
            r#"{{"type":"conversation.item.input_audio_transcription.completed","event_id":"e","item_id":"{user}","content_index":0,"transcript":"{user} said","usage":{{"type":"duration","seconds":1}}}}"#
        ),
        format!(
            r#"{{"type":"response.created","event_id":"e","response":{{"id":"r_{agent}","status":"in_progress","output":[]}}}}"#
        ),
        format!(
            r#"{{"type":"conversation.item.added","event_id":"e","previous_item_id":"{user}","item":{{"id":"{agent}","type":"message","role":"assistant","status":"in_progress","content":[]}}}}"#
        ),
        format!(
            r#"{{"type":"response.output_audio_transcript.done","event_id":"e","response_id":"r_{agent}","item_id":"{agent}","output_index":0,"content_index":0,"transcript":"{words}"}}"#
        ),
        format!(
            r#"{{"type":"response.done","event_id":"e","response":{{"id":"r_{agent}","status":"completed","output":[]}}}}"#
        ),
    ]
}

async fn attached_call(tree: &TestTree) -> MeetingId {
    let meeting = tree.store.add_attached_meeting("rtc_call_1");
    let started = tree.calls.start(meeting).await.expect("answers");
    assert_eq!(started, StartOutcome::Started);
    tree.connector.wait_for_sessions(1).await;
    meeting
}

pub(super) async fn lines_of(tree: &TestTree, meeting: MeetingId, n: usize) -> Vec<(i64, String)> {
    tree.store
        .wait_for(&format!("{n} lines"), |m| {
            let lines = &m.meeting(meeting).lines;
            (lines.len() >= n).then(|| {
                lines
                    .values()
                    .map(|l| (l.sequence_number, l.text.clone()))
                    .collect()
            })
        })
        .await
}

#[tokio::test(start_paused = true)]
async fn an_attached_call_is_re_attached_without_replay_and_its_conversation_continues() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = attached_call(&tree).await;
    assert_eq!(tree.connector.target(0).attach_to(), Some("rtc_call_1"));
    for frame in turn_frames("u1", None, "a1", "Hello.") {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 2).await;
    tree.connector.drop_session(0);
    tree.connector.wait_for_sessions(2).await;
    assert_eq!(tree.connector.target(1).attach_to(), Some("rtc_call_1"));
    // The next turn follows the last one scribe saw: nothing is missing.
    for frame in turn_frames("u2", Some("a1"), "a2", "Again.") {
        tree.connector.send(1, &frame);
    }
    let lines = lines_of(&tree, meeting, 4).await;
    assert_eq!(
        lines,
        [
            (1, "u1 said".to_owned()),
            (2, "Hello.".to_owned()),
            (3, "u2 said".to_owned()),
            (4, "Again.".to_owned())
        ]
    );
    let sent = tree.connector.sent(1);
    assert!(
        sent.iter()
            .all(|f| !f.contains("conversation.item.create") && !f.contains("item.retrieve")),
        "nothing replayed, nothing to fetch: {sent:?}"
    );
    let holes = tree
        .store
        .read(|m| m.meeting(meeting).logged(EventKind::PossibleGap).len());
    assert_eq!(holes, 0);
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_missed_item_is_fetched_back_stored_before_the_new_one_and_the_hole_is_marked() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = attached_call(&tree).await;
    for frame in turn_frames("u1", None, "a1", "Hello.") {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 2).await;
    tree.connector.drop_session(0);
    tree.connector.wait_for_sessions(2).await;
    // While scribe was away the user said something (item u2_missed); the
    // next turn names it as its predecessor.
    for frame in turn_frames("u3", Some("u2_missed"), "a3", "Sure.") {
        tree.connector.send(1, &frame);
    }
    let ask = tree
        .connector
        .wait_for_sent(1, "a retrieve", |f| {
            f.contains("conversation.item.retrieve")
        })
        .await;
    let ask: Value = serde_json::from_str(&ask).expect("json");
    assert_eq!(ask["item_id"], "u2_missed");
    tree.connector.send(
        1,
        r#"{"type":"conversation.item.retrieved","event_id":"e","item":{"id":"u2_missed","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":"Missed words."}]}}"#,
    );
    let lines = lines_of(&tree, meeting, 5).await;
    assert_eq!(
        lines,
        [
            (1, "u1 said".to_owned()),
            (2, "Hello.".to_owned()),
            (3, "Missed words.".to_owned()),
            (4, "u3 said".to_owned()),
            (5, "Sure.".to_owned())
        ]
    );
    let hole = tree
        .store
        .wait_for("the possible hole", |m| {
            m.meeting(meeting)
                .logged(EventKind::PossibleGap)
                .first()
                .map(|d| (*d).clone())
        })
        .await;
    assert_eq!(
        (hole["after"].clone(), hole["before"].clone()),
        (2.into(), 3.into())
    );
    assert!(hole["from"].is_string() && hole["to"].is_string(), "{hole}");
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn an_item_the_service_cannot_give_back_leaves_a_marked_hole_and_no_made_up_line() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = attached_call(&tree).await;
    for frame in turn_frames("u1", None, "a1", "Hello.") {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 2).await;
    tree.connector.drop_session(0);
    tree.connector.wait_for_sessions(2).await;
    for frame in turn_frames("u3", Some("gone_item"), "a3", "Sure.") {
        tree.connector.send(1, &frame);
    }
    tree.connector
        .wait_for_sent(1, "a retrieve", |f| {
            f.contains("conversation.item.retrieve")
        })
        .await;
    tree.connector.send(
        1,
        r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"item_not_found","message":"Item gone_item not found.","param":null,"event_id":"scribe_retrieve:gone_item"}}"#,
    );
    let lines = lines_of(&tree, meeting, 4).await;
    assert_eq!(
        lines,
        [
            (1, "u1 said".to_owned()),
            (2, "Hello.".to_owned()),
            (3, "u3 said".to_owned()),
            (4, "Sure.".to_owned())
        ]
    );
    let hole = tree
        .store
        .wait_for("the possible hole", |m| {
            m.meeting(meeting)
                .logged(EventKind::PossibleGap)
                .first()
                .map(|d| (*d).clone())
        })
        .await;
    assert_eq!(
        (hole["after"].clone(), hole["before"].clone()),
        (2.into(), 3.into())
    );
    let high = tree.store.read(|m| m.meeting(meeting).top_number());
    assert_eq!(
        high, 4,
        "no number handed out for the item that could not be fetched"
    );
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_retrieval_that_gets_no_answer_is_given_up_after_its_timeout() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = attached_call(&tree).await;
    for frame in turn_frames("u3", Some("silent_item"), "a3", "Sure.") {
        tree.connector.send(0, &frame);
    }
    tree.connector
        .wait_for_sent(0, "a retrieve", |f| {
            f.contains("conversation.item.retrieve")
        })
        .await;
    let started = tokio::time::Instant::now();
    let lines = lines_of(&tree, meeting, 2).await;
    assert_eq!(lines, [(1, "u3 said".to_owned()), (2, "Sure.".to_owned())]);
    assert!(tokio::time::Instant::now() - started >= std::time::Duration::from_secs(5));
    let hole = tree
        .store
        .wait_for("the possible hole", |m| {
            m.meeting(meeting)
                .logged(EventKind::PossibleGap)
                .first()
                .map(|d| (*d).clone())
        })
        .await;
    assert_eq!(hole["after"], Value::Null, "from the start of the call");
    tree.stop();
}

#[tokio::test(start_paused = true)]
async fn a_call_the_provider_no_longer_has_is_finalized_and_analysed() {
    for (outcomes, why) in [
        (vec![Outcome::Gone], "does not exist"),
        (vec![Outcome::OpensThenCloses; 3], "re-attaches in a row"),
        (vec![Outcome::Fails; 200], "stayed attached"),
    ] {
        let tree = TestTree::start(budget(5), 4).await;
        let meeting = attached_call(&tree).await;
        for frame in turn_frames("u1", None, "a1", "Bye.") {
            tree.connector.send(0, &frame);
        }
        lines_of(&tree, meeting, 2).await;
        tree.connector.plan(outcomes);
        tree.connector.drop_session(0);
        tree.store
            .wait_for_status(meeting, MeetingStatus::Completed)
            .await;
        let over = tree.store.read(|m| {
            m.meeting(meeting)
                .logged(EventKind::CallOver)
                .first()
                .map(|d| d["reason"].as_str().unwrap_or_default().to_owned())
        });
        let over = over.expect("the call's end is logged");
        assert!(over.contains(why), "{why}: {over}");
        assert!(tree.actor(meeting, ActorKind::Meeting).await.is_none());
        tree.stop();
    }
}

mod attached;
mod gpt_live;
