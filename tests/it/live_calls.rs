//! Live calls over HTTP: signed webhooks start and end calls; the simulated
//! realtime peer plays scripted conversations; the stored transcript is
//! compared line by line with what the peer said.

use std::time::Duration;

use reqwest::StatusCode;
use scribe::sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe::sim::script::{Script, SentLine, Step, Transcription, Turn};
use scribe::sim::webhook::{SimCall, WebhookDriver};
use scribe::store::{Store, StoredChunk};
use scribe_actors::domain::{ChunkStatus, MeetingStatus};
use scribe_actors::ids::MeetingId;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, STREAM_SECRET, TestApp, each_backend, expect_json, live_settings, spawn_app_with,
};

pub const DEADLINE: Duration = Duration::from_secs(30);

pub async fn sim(
    script: impl Fn(&scribe::sim::realtime::ConnectionInfo) -> Script + Send + Sync + 'static,
) -> SimRealtime {
    SimRealtime::start(
        ([127, 0, 0, 1], 0).into(),
        SimRealtimeConfig::scripted(script),
    )
    .await
    .expect("sim realtime starts")
}

pub async fn live_app(url: &str, peer: &SimRealtime) -> TestApp {
    let realtime = peer.url();
    spawn_app_with(url, |s| live_settings(s, &realtime)).await
}

pub fn driver(app: &TestApp) -> WebhookDriver {
    WebhookDriver::new(&app.address, STREAM_SECRET.as_bytes(), "stream-key")
}

/// An agent and an `upcoming` meeting with a prompt; returns the meeting id.
pub async fn new_meeting(app: &TestApp) -> String {
    let agent = app
        .create_agent(json!({ "name": "Coach", "instructions": "Agent instructions." }))
        .await;
    let body = json!({ "name": "Call", "agent_id": agent["id"], "user_id": "u1", "prompt": "Meeting prompt." });
    let created = expect_json(
        app.post_json("/api/meetings", &body).await,
        StatusCode::CREATED,
    )
    .await;
    created["id"].as_str().expect("id").to_owned()
}

/// Polls `probe` until it returns `Some`, up to the deadline.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut poll = poll_interval();
    loop {
        poll.tick().await;
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

/// The pace of polls on state that offers no event to await (rows in the
/// database): every 20 ms, always bounded by [`DEADLINE`].
fn poll_interval() -> tokio::time::Interval {
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll
}

pub async fn status_of(store: &Store, meeting: &str) -> MeetingStatus {
    let id: MeetingId = meeting.parse().expect("meeting id");
    store
        .meeting(id)
        .await
        .expect("query")
        .expect("exists")
        .status
}

pub async fn transcript(store: &Store, meeting: &str) -> Vec<StoredChunk> {
    store
        .transcript(meeting.parse().expect("meeting id"))
        .await
        .expect("transcript")
}

/// Waits until the meeting's stored transcript has `n` lines.
pub async fn wait_for_lines(store: &Store, meeting: &str, n: usize) -> Vec<StoredChunk> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut poll = poll_interval();
    loop {
        poll.tick().await;
        let lines = transcript(store, meeting).await;
        if lines.len() >= n {
            return lines;
        }
        if tokio::time::Instant::now() > deadline {
            let log = events(store, meeting).await;
            panic!("timed out waiting for {n} stored lines; stored: {lines:#?}\nevents: {log:#?}");
        }
    }
}

/// Waits until the call has ended: `processing`, or already past it
/// (`completed`) when the analysis was quick.
pub async fn wait_until_ended(store: &Store, meeting: &str) {
    eventually("the call to end", || async {
        matches!(
            status_of(store, meeting).await,
            MeetingStatus::Processing | MeetingStatus::Completed
        )
        .then_some(())
    })
    .await;
}

pub async fn wait_for_status(store: &Store, meeting: &str, status: MeetingStatus) {
    eventually(&format!("status {status}"), || async {
        (status_of(store, meeting).await == status).then_some(())
    })
    .await;
}

/// Asserts the transcript is exactly `expected`, numbered 1..=n.
pub fn assert_transcript(stored: &[StoredChunk], expected: &[SentLine]) {
    let got: Vec<(i64, Option<_>, &str, ChunkStatus)> = stored
        .iter()
        .map(|c| (c.sequence_number, c.speaker, c.text.as_str(), c.status))
        .collect();
    let want: Vec<(i64, Option<_>, &str, ChunkStatus)> = expected
        .iter()
        .enumerate()
        .map(|(i, l)| (i as i64 + 1, Some(l.speaker), l.text.as_str(), l.status))
        .collect();
    assert_eq!(got, want);
}

pub async fn events(store: &Store, meeting: &str) -> Vec<(String, Value)> {
    store
        .events(meeting.parse().expect("meeting id"))
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.kind, e.detail))
        .collect()
}

/// Makes the meeting `active` in the store alone, with no actor started
/// (as a process that crashed mid-call leaves it).
pub async fn force_active(store: &Store, meeting: MeetingId) {
    let delivery = scribe::store::WebhookDelivery {
        webhook_id: None,
        event_type: "test-setup".into(),
        call_cid: Some("default:c".into()),
        session_id: None,
    };
    let started = store
        .start_session(&delivery, meeting)
        .await
        .expect("store answers");
    assert_eq!(started, scribe::store::SessionStart::Started);
}

/// Sends a signed `call.session_started` for `meeting`; returns the call.
pub async fn start_call(app: &TestApp, meeting: &str) -> SimCall {
    let call = SimCall::new(meeting);
    let answer = driver(app).session_started(&call).await.expect("sent");
    assert_eq!(
        expect_json(answer, StatusCode::OK).await,
        json!({ "status": "started" })
    );
    call
}

/// Sends a signed `call.session_ended` and waits for `processing`.
pub async fn end_call(app: &TestApp, call: &SimCall) {
    let answer = driver(app).session_ended(call).await.expect("sent");
    assert_eq!(
        expect_json(answer, StatusCode::OK).await,
        json!({ "status": "ending" })
    );
    wait_until_ended(&app.store, &call.meeting_id).await;
}

/// Plays a whole call on a new meeting: start, the peer's script up to
/// `mark`, `lines` lines stored, end, `processing`. Returns the meeting id
/// and its final transcript.
pub async fn run_call(
    app: &TestApp,
    peer: &SimRealtime,
    mark: &str,
    lines: usize,
) -> (String, Vec<StoredChunk>) {
    let meeting = new_meeting(app).await;
    let call = start_call(app, &meeting).await;
    assert!(
        peer.wait_for_mark(mark, DEADLINE).await,
        "the peer reached {mark}"
    );
    wait_for_lines(&app.store, &meeting, lines).await;
    end_call(app, &call).await;
    let stored = transcript(&app.store, &meeting).await;
    (meeting, stored)
}

fn turn(n: usize, transcription: Transcription) -> Turn {
    Turn::numbered("call", n, transcription)
}

#[tokio::test]
async fn transcript_is_in_conversation_order_whenever_user_transcriptions_arrive() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Before)),
                Step::Turn(turn(2, Transcription::During)),
                Step::Turn(turn(3, Transcription::After)),
                Step::Turn(turn(4, Transcription::Failed)),
                Step::Turn(turn(5, Transcription::After)),
                Step::Mark("done".into()),
                Step::Hold,
            ],
        };
        let expected = script.expected_lines();
        let peer = sim(move |_| script.clone()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = SimCall::new(&meeting);
        let hooks = driver(&app);

        let started = hooks.session_started(&call).await.expect("sent");
        assert_eq!(
            expect_json(started, StatusCode::OK).await,
            json!({ "status": "started" })
        );
        assert_eq!(status_of(&app.store, &meeting).await, MeetingStatus::Active);
        assert!(peer.wait_for_mark("done", DEADLINE).await, "script played");
        wait_for_lines(&app.store, &meeting, expected.len()).await;

        let ended = hooks.session_ended(&call).await.expect("sent");
        assert_eq!(
            expect_json(ended, StatusCode::OK).await,
            json!({ "status": "ending" })
        );
        wait_until_ended(&app.store, &meeting).await;
        assert_transcript(&transcript(&app.store, &meeting).await, &expected);

        let m = app
            .store
            .meeting(meeting.parse().expect("id"))
            .await
            .expect("q")
            .expect("found");
        assert!(
            m.transcript_collected && m.ended_at.is_some() && m.processing_started_at.is_some()
        );
        // The agent configured the session as the original design did.
        let connections = peer.connections_for(&meeting);
        assert_eq!(connections.len(), 1, "one realtime connection");
        let update = &connections[0].client_events[0];
        assert_eq!(update["type"], "session.update");
        assert_eq!(update["session"]["instructions"], "Meeting prompt.");
        assert_eq!(
            update["session"]["audio"]["input"]["transcription"]["model"],
            "gpt-4o-transcribe"
        );
        assert_eq!(
            update["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"],
            500
        );
        assert!(!connections[0].beta_header, "GA only");
        let kinds: Vec<String> = events(&app.store, &meeting)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for kind in ["actor_started", "socket_connected", "call_ended"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
        }
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn beta_event_names_give_the_same_transcript() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::After)),
                Step::Turn(turn(2, Transcription::Before)),
                Step::Turn(turn(3, Transcription::During)),
                Step::Mark("done".into()),
                Step::Hold,
            ],
        };
        let expected = script.expected_lines();
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                beta: true,
                ..SimRealtimeConfig::scripted(move |_| script.clone())
            },
        )
        .await
        .expect("sim starts");
        let app = live_app(&url, &peer).await;
        let (_meeting, stored) = run_call(&app, &peer, "done", expected.len()).await;
        assert_transcript(&stored, &expected);
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn session_expiry_opens_a_new_session_replays_the_lines_and_numbering_continues() {
    each_backend(|_, url| async move {
        let first = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Before)),
                Step::Turn(turn(2, Transcription::After)),
                Step::ExpireMidReply {
                    turn: turn(3, Transcription::After),
                    words_before_expiry: 3,
                },
            ],
        };
        let second = Script {
            steps: vec![
                Step::Turn(turn(4, Transcription::Before)),
                Step::Mark("second".into()),
                Step::Hold,
            ],
        };
        let mut expected = first.expected_lines();
        expected.extend(second.expected_lines());
        let peer = sim(move |c| {
            if c.session == 1 {
                first.clone()
            } else {
                second.clone()
            }
        })
        .await;
        let app = live_app(&url, &peer).await;
        let (meeting, stored) = run_call(&app, &peer, "second", expected.len()).await;
        assert_transcript(&stored, &expected);

        // The new session got session.update, then every stored line with
        // text, in order, as conversation items, and no response.create.
        // (The peer may still be reading the last of them: wait for it.)
        let replayed = expected[..6].iter().filter(|l| !l.text.is_empty()).count();
        let mine = |c: &[scribe::sim::realtime::ConnectionRecord]| {
            c.iter()
                .filter(|r| {
                    r.info.as_ref().and_then(|i| i.meeting.as_deref()) == Some(meeting.as_str())
                })
                .nth(1)
                .is_some_and(|r| r.client_events.len() > replayed)
        };
        assert!(
            peer.wait_until(DEADLINE, mine).await.is_ok(),
            "replay received"
        );
        let connections = peer.connections_for(&meeting);
        assert_eq!(connections.len(), 2);
        let replay = &connections[1].client_events;
        assert_eq!(replay[0]["type"], "session.update");
        let items: Vec<(String, String)> = replay[1..]
            .iter()
            .map(|e| {
                assert_eq!(e["type"], "conversation.item.create", "{e}");
                (
                    e["item"]["role"].as_str().expect("role").to_owned(),
                    e["item"]["content"][0]["text"]
                        .as_str()
                        .expect("text")
                        .to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = expected[..6]
            .iter()
            .filter(|l| !l.text.is_empty())
            .map(|l| {
                let role = if l.speaker == scribe_actors::domain::Speaker::User {
                    "user"
                } else {
                    "assistant"
                };
                (role.to_owned(), l.text.clone())
            })
            .collect();
        assert_eq!(items, want);
        assert!(
            connections
                .iter()
                .flat_map(|c| &c.client_events)
                .all(|e| e["type"] != "response.create"),
            "no response.create is ever sent"
        );
        let kinds: Vec<String> = events(&app.store, &meeting)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "socket_connected").count(),
            2,
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k == "socket_reconnecting"),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k == "realtime_error"),
            "session_expired logged: {kinds:?}"
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn duplicate_and_concurrent_deliveries_start_one_actor_and_one_connection() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script {
            steps: vec![Step::Mark("connected".into()), Step::Hold],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = SimCall::new(&meeting);
        let hooks = driver(&app);
        let body = call.event("call.session_started").to_string();
        let answers = futures::future::join_all(
            (0..6).map(|_| hooks.post(body.as_bytes(), "same-webhook-id")),
        )
        .await;
        let mut statuses = Vec::new();
        for answer in answers {
            let json = expect_json(answer.expect("sent"), StatusCode::OK).await;
            statuses.push(json["status"].as_str().expect("status").to_owned());
        }
        statuses.sort();
        assert_eq!(
            statuses,
            [
                "duplicate",
                "duplicate",
                "duplicate",
                "duplicate",
                "duplicate",
                "started"
            ]
        );
        // Another id for the same session is a duplicate too.
        let again = expect_json(
            hooks.post(body.as_bytes(), "other-id").await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(again["status"], "duplicate");
        // A new session of the same call finds the actor already running.
        let next_session = SimCall {
            session_id: "second-session".into(),
            ..call.clone()
        };
        expect_json(
            hooks.session_started(&next_session).await.expect("sent"),
            StatusCode::OK,
        )
        .await;

        assert!(peer.wait_for_mark("connected", DEADLINE).await);
        let actor = eventually("the actor", || app.actor(&meeting)).await;
        assert_eq!(actor["restarts"], 0);
        // Still one of each.
        assert_eq!(
            peer.connections_for(&meeting).len(),
            1,
            "one realtime connection"
        );
        let all = expect_json(
            app.client
                .get(app.url("/admin/actors"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("sent"),
            StatusCode::OK,
        )
        .await;
        let mine = all["actors"]
            .as_array()
            .expect("actors")
            .iter()
            .filter(|a| a["meeting_id"] == meeting.as_str())
            .count();
        assert_eq!(mine, 1, "one actor");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_session_close_to_expiry_is_replaced_between_turns() {
    each_backend(|_, url| async move {
        let script_for = |s: usize| Script {
            steps: vec![
                Step::Turn(turn(s, Transcription::Before)),
                Step::Mark(format!("s{s}")),
                Step::Hold,
            ],
        };
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                session_seconds: 2,
                ..SimRealtimeConfig::scripted(move |c| script_for(c.session))
            },
        )
        .await
        .expect("sim starts");
        let realtime = peer.url();
        let app = spawn_app_with(&url, |s| {
            live_settings(s, &realtime);
            // Sessions "expire" after 2 s; replace them 1 s before.
            s.call.rotate_before_expiry = Duration::from_secs(1);
        })
        .await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        assert!(
            peer.wait_for_mark("s2", DEADLINE).await,
            "a second session after rotation"
        );
        let stored = wait_for_lines(&app.store, &meeting, 4).await;
        let expected: Vec<SentLine> = (1..=2)
            .flat_map(|s| script_for(s).expected_lines())
            .collect();
        assert_transcript(&stored[..4], &expected);
        let connections = peer.connections_for(&meeting);
        assert!(
            !connections[0].closed_by_peer,
            "scribe closed the first session itself"
        );
        // The replay may still be on its way when the second turn is stored.
        let replayed = |c: &[scribe::sim::realtime::ConnectionRecord]| {
            c.iter()
                .filter(|r| {
                    r.info.as_ref().and_then(|i| i.meeting.as_deref()) == Some(meeting.as_str())
                })
                .nth(1)
                .map(|r| {
                    r.client_events
                        .iter()
                        .filter(|e| e["type"] == "conversation.item.create")
                        .count()
                })
        };
        let seen = peer.wait_until(DEADLINE, |c| replayed(c) == Some(2)).await;
        assert!(
            seen.is_ok(),
            "the first session's two lines were replayed: {:?}",
            seen.err().map(|c| replayed(&c))
        );
        let kinds: Vec<String> = events(&app.store, &meeting)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(kinds.iter().any(|k| k == "socket_rotated"), "{kinds:?}");
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn pings_are_answered_while_the_call_is_idle() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script {
            steps: vec![Step::Ping, Step::Ping, Step::Ping, Step::Hold],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        start_call(&app, &meeting).await;
        let answered = peer
            .wait_until(DEADLINE, |c| c.iter().any(|r| r.pongs == 3))
            .await;
        assert!(answered.is_ok(), "three pongs: {answered:?}");
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// At call end, user transcriptions still outstanding get the grace period:
/// one that lands within it is kept; one that never lands is
/// `transcription_failed`, with its number.
#[tokio::test]
async fn finalize_waits_the_grace_period_for_outstanding_transcriptions() {
    each_backend(|_, url| async move {
        let script = Script {
            steps: vec![
                Step::Turn(turn(1, Transcription::Withheld)),
                Step::Turn(turn(2, Transcription::Withheld)),
                Step::Mark("spoken".into()),
                Step::Gate("late".into()),
                // The first user item's id in the peer's chain is item_u_1.
                Step::Raw(
                    json!({"type":"conversation.item.input_audio_transcription.completed","event_id":"late","item_id":"item_u_1","content_index":0,"transcript":"late but kept"})
                        .to_string(),
                ),
                Step::Hold,
            ],
        };
        let peer = sim(move |_| script.clone()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let call = start_call(&app, &meeting).await;
        assert!(peer.wait_for_mark("spoken", DEADLINE).await);
        wait_for_lines(&app.store, &meeting, 2).await; // the two agent lines
        // Not `end_call`: the late transcription is released while the call ends.
        expect_json(driver(&app).session_ended(&call).await.expect("sent"), StatusCode::OK).await;
        peer.open_gate("late");
        wait_until_ended(&app.store, &meeting).await;
        let stored = transcript(&app.store, &meeting).await;
        let got: Vec<(i64, &str, ChunkStatus)> = stored.iter().map(|c| (c.sequence_number, c.text.as_str(), c.status)).collect();
        assert_eq!(
            got,
            [
                (1, "late but kept", ChunkStatus::Completed),
                (2, "call agent reply 1 with a few words", ChunkStatus::Completed),
                (3, "", ChunkStatus::TranscriptionFailed),
                (4, "call agent reply 2 with a few words", ChunkStatus::Completed),
            ]
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// `call.session_ended` for an active meeting with no live actor (its actor
/// failed, or the process restarted) still finalizes it from what is stored;
/// numbers handed out but never stored become `lost` lines, logged as a gap.
#[tokio::test]
async fn an_ended_call_without_a_live_actor_is_finalized_from_the_store() {
    each_backend(|_, url| async move {
        let peer = sim(|_| Script::hold()).await;
        let app = live_app(&url, &peer).await;
        let meeting = new_meeting(&app).await;
        let id: MeetingId = meeting.parse().expect("id");
        // Active in the database, as a crashed process would leave it.
        force_active(&app.store, id).await;
        let line = |n: i64| {
            (
                id,
                scribe_actors::transcript::Line {
                    sequence_number: n,
                    speaker: scribe_actors::domain::Speaker::User,
                    text: format!("line {n}"),
                    status: ChunkStatus::Completed,
                    item_id: None,
                    timestamp: scribe::domain::now(),
                },
            )
        };
        app.store
            .write_batch(&scribe_actors::ports::WriteBatch {
                lines: vec![line(1), line(2)],
                high_water: vec![(id, 4)],
                ..Default::default()
            })
            .await
            .expect("written");
        let call = SimCall::new(&meeting);
        let ended = expect_json(
            driver(&app).session_ended(&call).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        assert_eq!(ended["status"], "ending");
        wait_until_ended(&app.store, &meeting).await;
        let stored = transcript(&app.store, &meeting).await;
        let statuses: Vec<ChunkStatus> = stored.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [
                ChunkStatus::Completed,
                ChunkStatus::Completed,
                ChunkStatus::Lost,
                ChunkStatus::Lost
            ]
        );
        let gaps: Vec<Value> = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "gap")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (gaps[0]["from"].as_i64(), gaps[0]["to"].as_i64()),
            (Some(3), Some(4))
        );
        assert!(peer.connections().is_empty());
        app.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn transcription_left_off_by_the_service_is_logged_and_the_call_goes_on() {
    each_backend(|_, url| async move {
        let peer = SimRealtime::start(
            ([127, 0, 0, 1], 0).into(),
            SimRealtimeConfig {
                refuse_transcription: true,
                ..SimRealtimeConfig::scripted(|_| Script {
                    steps: vec![
                        Step::Turn(turn(1, Transcription::Before)),
                        Step::Mark("done".into()),
                        Step::Hold,
                    ],
                })
            },
        )
        .await
        .expect("sim starts");
        let app = live_app(&url, &peer).await;
        let (meeting, stored) = run_call(&app, &peer, "done", 2).await;
        assert_eq!(stored.len(), 2, "the call went on without transcription");
        let off: Vec<Value> = events(&app.store, &meeting)
            .await
            .into_iter()
            .filter(|(k, _)| k == "transcription_off")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(off.len(), 1);
        assert!(
            off[0]["error"]
                .as_str()
                .expect("error")
                .contains("transcription off")
        );
        app.stop().await.expect("clean stop");
    })
    .await;
}

/// Supervision is per call: one call's actor dying, or one call ending,
/// never touches another call.
#[tokio::test]
async fn one_call_dying_or_ending_never_touches_another() {
    each_backend(|_, url| async move {
        let peer = sim(|c| Script {
            steps: vec![
                Step::Turn(turn(c.session, Transcription::Before)),
                Step::Mark(format!(
                    "{}-{}",
                    c.meeting.clone().unwrap_or_default(),
                    c.session
                )),
                Step::Hold,
            ],
        })
        .await;
        let app = live_app(&url, &peer).await;
        let (a, b) = (new_meeting(&app).await, new_meeting(&app).await);
        let (call_a, call_b) = (SimCall::new(&a), SimCall::new(&b));
        let hooks = driver(&app);
        for call in [&call_a, &call_b] {
            expect_json(
                hooks.session_started(call).await.expect("sent"),
                StatusCode::OK,
            )
            .await;
        }
        assert!(peer.wait_for_mark(&format!("{a}-1"), DEADLINE).await);
        assert!(peer.wait_for_mark(&format!("{b}-1"), DEADLINE).await);
        wait_for_lines(&app.store, &a, 2).await;
        let b_actor = eventually("b's actor", || app.actor(&b)).await;
        // A's actor is killed and restarted; then A's call ends.
        assert!(
            app.calls
                .kill(a.parse().expect("id"))
                .await
                .expect("supervisor")
        );
        assert!(peer.wait_for_mark(&format!("{a}-2"), DEADLINE).await);
        wait_for_lines(&app.store, &a, 4).await;
        expect_json(
            hooks.session_ended(&call_a).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        wait_until_ended(&app.store, &a).await;
        // B's actor is the same one, untouched, still on its first session.
        let b_now = app.actor(&b).await.expect("b still live");
        assert_eq!(b_now["restarts"], 0);
        assert!(b_now["uptime_ms"].as_u64() >= b_actor["uptime_ms"].as_u64());
        assert_eq!(peer.connections_for(&b).len(), 1);
        assert_eq!(status_of(&app.store, &b).await, MeetingStatus::Active);
        expect_json(
            hooks.session_ended(&call_b).await.expect("sent"),
            StatusCode::OK,
        )
        .await;
        wait_until_ended(&app.store, &b).await;
        assert_eq!(transcript(&app.store, &b).await.len(), 2);
        app.stop().await.expect("clean stop");
    })
    .await;
}
