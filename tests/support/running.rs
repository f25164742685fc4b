//! Live-call helpers shared by the integration and chaos suites: the
//! simulated realtime peer, signed webhooks, polls with a deadline, and the
//! comparison of a stored transcript with what the peer said.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::StatusCode;
use scribe::store::{Store, StoredChunk};
use scribe_actors::domain::{ChunkStatus, MeetingStatus};
use scribe_actors::ids::MeetingId;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Script, SentLine, Transcription, Turn};
use scribe_sim::webhook::{SimCall, WebhookDriver};
use serde_json::{Value, json};

use crate::helpers::{STREAM_SECRET, TestApp, expect_json, live_settings, spawn_app_with};

pub const DEADLINE: Duration = Duration::from_secs(30);

pub async fn sim(
    script: impl Fn(&scribe_sim::realtime::ConnectionInfo) -> Script + Send + Sync + 'static,
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
/// The capability a meeting page embeds (`data-token`).
pub fn page_capability(html: &str) -> String {
    html.split("data-token=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its capability")
        .to_owned()
}

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
/// (`completed` or `failed`) when the analysis was quick.
pub async fn wait_until_ended(store: &Store, meeting: &str) {
    eventually("the call to end", || async {
        matches!(
            status_of(store, meeting).await,
            MeetingStatus::Processing | MeetingStatus::Completed | MeetingStatus::Failed
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
        .map(|e| (e.kind.to_string(), e.detail))
        .collect()
}

/// `POST /api/meetings/{id}/hangup` with the API token.
pub async fn hang_up(app: &TestApp, meeting: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/meetings/{meeting}/hangup")))
        .bearer_auth(crate::helpers::API_TOKEN)
        .send()
        .await
        .expect("sent")
}

/// Waits until the simulated OpenAI call has ended; returns what ended it
/// (`hangup`, `session.close`, `caller`, `connection_lost`).
pub async fn ended_at_openai(call: &scribe_sim::carried::SimCallState) -> &'static str {
    eventually("the call to end at OpenAI", || async {
        (call.status() == scribe_sim::carried::CallStatus::Ended)
            .then(|| call.ended_by())
            .flatten()
    })
    .await
}

/// The meeting's event log after its `hung_up` entry (scribe ended the
/// call at OpenAI): what it logged once it had hung up.
pub async fn after_hang_up(store: &Store, meeting: &str) -> (Value, Vec<String>) {
    let log = events(store, meeting).await;
    let at = log
        .iter()
        .position(|(kind, _)| kind == "hung_up")
        .unwrap_or_else(|| panic!("no hung_up in {log:?}"));
    let hung_up = log[at].1.clone();
    (
        hung_up,
        log[at + 1..].iter().map(|(k, _)| k.clone()).collect(),
    )
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
        .start_session(&delivery, meeting, scribe_actors::domain::Transport::OpenAi)
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

pub fn turn(n: usize, transcription: Transcription) -> Turn {
    Turn::numbered("call", n, transcription)
}

/// Waits for the meeting's actor to satisfy `predicate` in `/admin/actors`.
pub async fn actor_where(
    app: &TestApp,
    meeting: &str,
    what: &str,
    predicate: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, || async {
        app.actor(meeting).await.filter(|a| predicate(a))
    })
    .await
}

pub async fn event_count(store: &Store, meeting: &str, kind: &str) -> usize {
    events(store, meeting)
        .await
        .iter()
        .filter(|(k, _)| k == kind)
        .count()
}

/// Waits until the event log holds at least one `kind` entry.
pub async fn wait_for_event(app: &TestApp, meeting: &str, kind: &str) {
    eventually(&format!("a {kind} event"), || async {
        (event_count(&app.store, meeting, kind).await > 0).then_some(())
    })
    .await;
}

/// An agent with a two-session plan (Intro, Plan).
pub fn coach_with_plan() -> Value {
    json!({
        "name": "Coach",
        "instructions": "Coach the user.",
        "blueprint": { "sessions": [
            { "session_name": "Intro", "goals": ["Meet"] },
            { "session_name": "Plan", "goals": ["Plan the week"] }
        ]}
    })
}

/// A new agent from `agent` and an `upcoming` meeting called `name` for it.
pub async fn meeting_with(app: &TestApp, agent: Value, name: &str) -> String {
    let agent = app.create_agent(agent).await;
    let body = json!({ "name": name, "agent_id": agent["id"], "user_id": "u1" });
    let created = expect_json(
        app.post_json("/api/meetings", &body).await,
        StatusCode::CREATED,
    )
    .await;
    created["id"].as_str().expect("id").to_owned()
}

/// One turn, then the mark `spoken`, then the socket stays open.
pub fn one_turn() -> Script {
    Script {
        steps: vec![
            scribe_sim::script::Step::Turn(Turn::numbered("call", 1, Transcription::Before)),
            scribe_sim::script::Step::Mark("spoken".into()),
            scribe_sim::script::Step::Hold,
        ],
    }
}

/// Three turns: the first, then marks and gates (`one`, gate `two`, turn
/// 2, `two`, gate `three`, turn 3, `three`), so a test can take scribe
/// away while turn 2 is said.
pub fn away_script() -> Script {
    use scribe_sim::script::Step;
    let turn = |n| Step::Turn(Turn::numbered("call", n, Transcription::Before));
    Script {
        steps: vec![
            turn(1),
            Step::Mark("one".into()),
            Step::Gate("two".into()),
            turn(2),
            Step::Mark("two".into()),
            Step::Gate("three".into()),
            turn(3),
            Step::Mark("three".into()),
            Step::Hold,
        ],
    }
}

/// What [`away_script`] leaves stored when scribe was away during turn 2:
/// turn 2's reply fetched back in its place, turn 2's user line missed.
pub const AWAY_LINES: [&str; 5] = [
    "call user line 1",
    "call agent reply 1 with a few words",
    "call agent reply 2 with a few words",
    "call user line 3",
    "call agent reply 3 with a few words",
];

/// Two turns with the gate `second` between them (so a test sees lines
/// arrive while the call is live), then `spoken`.
pub fn gated_call() -> Script {
    use scribe_sim::script::Step;
    Script {
        steps: vec![
            Step::Turn(Turn::numbered("call", 1, Transcription::Before)),
            Step::Gate("second".into()),
            Step::Turn(Turn::numbered("call", 2, Transcription::After)),
            Step::Mark("spoken".into()),
            Step::Hold,
        ],
    }
}
