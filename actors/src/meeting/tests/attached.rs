//! Attached calls on every path, as OpenAI ends them and as scribe ends
//! them: a sideband is never rotated, a re-attach asks only for what may
//! change, scribe's hang-up ends the provider's call the way its path ends
//! (and re-attaches nothing), and GPT-Live's `session.closed` is final.

use std::time::Duration;

use serde_json::{Value, json};

use super::{lines_of, turn_frames};
use crate::domain::{EventKind, MeetingStatus, Transport, VoiceApi};
use crate::fakes::connector::Outcome;
use crate::fakes::tree::{TestTree, budget};
use crate::ids::MeetingId;
use crate::supervisor::outcome::StartOutcome;

async fn attached(tree: &TestTree, api: VoiceApi, transport: Transport, call: &str) -> MeetingId {
    let meeting = tree.store.add_attached_on(api, transport, call);
    let started = tree.calls.start(meeting).await.expect("answers");
    assert_eq!(started, StartOutcome::Started);
    tree.connector.wait_for_sessions(1).await;
    meeting
}

fn kinds(tree: &TestTree, meeting: MeetingId) -> Vec<EventKind> {
    tree.store
        .read(|m| m.meeting(meeting).events.iter().map(|(k, _)| *k).collect())
}

/// The stored lines' texts, in order.
fn texts(tree: &TestTree, meeting: MeetingId) -> Vec<String> {
    tree.store.read(|m| {
        m.meeting(meeting)
            .lines
            .values()
            .map(|l| l.text.clone())
            .collect()
    })
}

fn logged(tree: &TestTree, meeting: MeetingId, kind: EventKind) -> Vec<Value> {
    tree.store.read(|m| {
        m.meeting(meeting)
            .logged(kind)
            .into_iter()
            .cloned()
            .collect()
    })
}

/// Point 4: a sideband's `session.created` carries the call's own limit.
/// Nothing rotates or re-attaches because of it, however close it is; the
/// call goes on being recorded and ends when OpenAI ends it.
#[tokio::test(start_paused = true)]
async fn a_sideband_is_never_rotated_however_close_its_expiry() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = attached(&tree, VoiceApi::Realtime, Transport::Sip, "rtc_near_limit").await;
    let expires_at = chrono::Utc::now().timestamp() + 90;
    tree.connector.send(
        0,
        &json!({"type":"session.created","event_id":"e0","session":{"id":"sess_1","object":"realtime.session","type":"realtime","expires_at":expires_at}}).to_string(),
    );
    for frame in turn_frames("u1", None, "a1", "Hello.") {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 2).await;
    // Past the rotation's lead and past the limit itself: the same socket.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(tree.connector.opened(), 1, "no rotation, no re-attach");
    for frame in turn_frames("u2", Some("a1"), "a2", "Still here.") {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 4).await;
    // OpenAI ends the call at its limit: the sideband ends, the call is gone.
    tree.connector.plan([Outcome::Gone]);
    tree.connector.send(
        0,
        r#"{"type":"error","event_id":"e9","error":{"type":"invalid_request_error","code":"session_expired","message":"Your session hit the maximum duration of 60 minutes.","param":null,"event_id":null}}"#,
    );
    tree.connector.drop_session(0);
    tree.store
        .wait_for_status(meeting, MeetingStatus::Completed)
        .await;
    let kinds = kinds(&tree, meeting);
    assert!(
        !kinds.contains(&EventKind::SocketRotated) && !kinds.contains(&EventKind::RotationForced),
        "{kinds:?}"
    );
    assert_eq!(
        texts(&tree, meeting),
        ["u1 said", "Hello.", "u2 said", "Still here."]
    );
    tree.stop();
}

/// The service as OpenAI documents it for `session.update`: the voice
/// cannot change once the assistant has spoken (`cannot_update_voice`);
/// anything else is confirmed.
fn answer_updates(tree: &TestTree, session: usize, spoken: bool) {
    for frame in tree.connector.sent(session) {
        let event: Value = serde_json::from_str(&frame).expect("json");
        if event["type"] != "session.update" {
            continue;
        }
        let answer = if spoken && !event["session"]["audio"]["output"]["voice"].is_null() {
            json!({"type":"error","event_id":"e_cuv","error":{"type":"invalid_request_error","code":"cannot_update_voice","message":"Cannot update a conversation's voice if assistant audio is present.","param":"session.audio.output.voice","event_id":event["event_id"]}})
        } else {
            json!({"type":"session.updated","event_id":"e_su","session":{"type":"realtime","audio":{"input":{"transcription":event["session"]["audio"]["input"]["transcription"]}}}})
        };
        tree.connector.send(session, &answer.to_string());
    }
}

/// Point 5: every attach asks only for input transcription; a re-attach
/// after the assistant spoke shows no configuration error.
#[tokio::test(start_paused = true)]
async fn a_re_attach_asks_only_for_what_may_change_and_shows_no_refusal() {
    let tree = TestTree::start(budget(5), 4).await;
    let meeting = attached(&tree, VoiceApi::Realtime, Transport::WebRtc, "rtc_voice").await;
    tree.connector
        .wait_for_sent(0, "session.update", |f| f.contains("session.update"))
        .await;
    answer_updates(&tree, 0, false);
    for frame in turn_frames("u1", None, "a1", "Hi there.") {
        tree.connector.send(0, &frame);
    }
    lines_of(&tree, meeting, 2).await;
    tree.connector.drop_session(0);
    tree.connector.wait_for_sessions(2).await;
    tree.connector
        .wait_for_sent(1, "session.update", |f| f.contains("session.update"))
        .await;
    answer_updates(&tree, 1, true);
    for frame in turn_frames("u2", Some("a1"), "a2", "Again.") {
        tree.connector.send(1, &frame);
    }
    lines_of(&tree, meeting, 4).await;
    for session in 0..2 {
        for frame in tree.connector.sent(session) {
            let event: Value = serde_json::from_str(&frame).expect("json");
            if event["type"] == "session.update" {
                assert_eq!(
                    event["session"],
                    json!({"type":"realtime","audio":{"input":{"transcription":{"model":crate::voice::realtime::DEFAULT_TRANSCRIPTION_MODEL}}}}),
                    "session {session}: only what may change"
                );
            }
        }
    }
    // Past the confirmation deadline: nothing about the settings is shown.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        logged(&tree, meeting, EventKind::ConfigurationError).is_empty(),
        "{:?}",
        kinds(&tree, meeting)
    );
    assert_eq!(tree.store.read(|m| m.meeting(meeting).error.clone()), None);
    tree.stop();
}

/// Point 6: scribe's hang-up of an attached call ends it at the provider,
/// the way its path ends, and the sideband's end that follows re-attaches
/// nothing (point 7's last part).
#[tokio::test(start_paused = true)]
async fn scribes_hang_up_ends_each_path_the_right_way_and_re_attaches_nothing() {
    for (api, transport, call) in [
        (VoiceApi::Realtime, Transport::WebRtc, "rtc_web"),
        (VoiceApi::Realtime, Transport::Sip, "rtc_sip"),
        (VoiceApi::Live, Transport::Sip, "live_sip"),
        (VoiceApi::Live, Transport::WebRtc, "live_web"),
    ] {
        let tree = TestTree::start(budget(5), 4).await;
        let meeting = attached(&tree, api, transport, call).await;
        tree.calls
            .end(meeting, chrono::Utc::now())
            .await
            .expect("answers");
        if (api, transport) == (VoiceApi::Live, Transport::WebRtc) {
            // The documented end of a GPT-Live WebRTC session: `session.close`
            // on the sideband, then `session.closed`.
            tree.connector
                .wait_for_sent(0, "session.close", |f| f.contains("\"session.close\""))
                .await;
            tree.connector.send(
                0,
                r#"{"type":"session.closed","event_id":"c","reason":"close_requested","session":{"id":"live_web","expires_at":1,"model":"gpt-live-1.1","status":"active"},"usage":{"seconds":3.0}}"#,
            );
        }
        // The provider closes the sideband of a call that ended.
        tree.connector.drop_session(0);
        tree.store
            .wait_for_status(meeting, MeetingStatus::Completed)
            .await;
        let hung_up = logged(&tree, meeting, EventKind::HungUp);
        if (api, transport) == (VoiceApi::Live, Transport::WebRtc) {
            assert!(
                tree.control.hung_up().is_empty(),
                "no REST hang-up for {call}"
            );
            assert_eq!(hung_up, [json!({"how":"session.close","confirmed":true})]);
        } else {
            assert_eq!(tree.control.hung_up(), [(api, call.to_owned())]);
            assert_eq!(hung_up, [json!({"how":"hangup","confirmed":true})]);
        }
        let kinds = kinds(&tree, meeting);
        assert!(
            !kinds.contains(&EventKind::SocketReconnecting),
            "{call}: {kinds:?}"
        );
        assert_eq!(tree.connector.opened(), 1, "{call}: no re-attach");
        tree.stop();
    }
}

/// Point 7: on an attached GPT-Live call, `session.closed` finalizes the
/// meeting at once whatever its reason, with no re-attach, and nothing on
/// the meeting for a normal end.
#[tokio::test(start_paused = true)]
async fn a_live_session_closed_is_final_for_every_documented_reason() {
    for (reason, shown) in [
        ("close_requested", false),
        ("expired", false),
        ("remote_hangup", false),
        ("content", true),
        ("connection_lost", true),
    ] {
        let tree = TestTree::start(budget(5), 4).await;
        let meeting = attached(&tree, VoiceApi::Live, Transport::WebRtc, "live_1").await;
        tree.connector.send(
            0,
            &json!({"type":"session.input_transcript.delta","event_id":"f1","delta":"Hello","start_ms":0,"end_ms":400}).to_string(),
        );
        tree.connector.send(
            0,
            &json!({"type":"session.closed","event_id":"c","reason":reason,"session":{"id":"live_1","expires_at":1,"model":"gpt-live-1.1","status":"active"},"usage":{"seconds":3.0}}).to_string(),
        );
        tree.connector.drop_session(0);
        tree.store
            .wait_for_status(meeting, MeetingStatus::Completed)
            .await;
        assert_eq!(tree.connector.opened(), 1, "{reason}: no re-attach");
        let kinds = kinds(&tree, meeting);
        assert!(
            !kinds.contains(&EventKind::SocketReconnecting),
            "{reason}: {kinds:?}"
        );
        let over = logged(&tree, meeting, EventKind::CallOver);
        assert_eq!(over.len(), 1, "{reason}");
        let error = tree.store.read(|m| m.meeting(meeting).error.clone());
        assert_eq!(error.is_some(), shown, "{reason}: {error:?}");
        assert!(
            tree.control.hung_up().is_empty(),
            "{reason}: the provider ended it"
        );
        assert_eq!(texts(&tree, meeting), ["Hello"], "{reason}");
        tree.stop();
    }
}
