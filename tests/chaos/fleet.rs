//! Many calls at once under chaos: each realtime session of a call plays
//! its own few turns (text unique to the meeting and the session), so a
//! transcript can be checked against everything the peer said whatever
//! session a kill cut short. The helpers work on the in-process app and on
//! the real binary alike ([`Service`]).

use std::collections::HashSet;
use std::time::Duration;

use scribe::store::StoredChunk;
use scribe_actors::domain::{ChunkStatus, Speaker};
use scribe_sim::carried::media;
use scribe_sim::llm::SimLlm;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Script, SentLine, Step, Transcription, Turn};

use futures::future::join_all;
use reqwest::StatusCode;
use scribe::store::Store;
use scribe_sim::webhook::{SimCall, WebhookDriver};
use serde_json::{Value, json};

use crate::helpers::{API_TOKEN, STREAM_SECRET, TestApp, admin_actor, expect_json};
use crate::running::{DEADLINE, events, eventually, transcript, wait_until_ended};

pub const TURNS_PER_SESSION: usize = 3;

/// What session `session` of `meeting` says, then `done` marks it.
pub fn session_script(meeting: &str, session: usize) -> Script {
    const TIMINGS: [Transcription; 3] = [
        Transcription::Before,
        Transcription::During,
        Transcription::After,
    ];
    let tag = format!("{} s{session}", &meeting[..8]);
    let mut steps: Vec<Step> = (0..TURNS_PER_SESSION)
        .map(|n| Step::Turn(Turn::numbered(&tag, n + 1, TIMINGS[(n + session) % 3])))
        .collect();
    steps.push(Step::Mark(done_mark(meeting, session)));
    steps.push(Step::Hold);
    Script { steps }
}

pub fn done_mark(meeting: &str, session: usize) -> String {
    format!("{meeting} s{session} done")
}

/// A peer whose every connection plays [`session_script`] at `pace`.
pub async fn fleet_peer(pace: f64) -> SimRealtime {
    peer_playing(pace, session_script).await
}

/// A peer whose every connection plays `script(meeting, session)` at `pace`.
pub async fn peer_playing(pace: f64, script: fn(&str, usize) -> Script) -> SimRealtime {
    SimRealtime::start(
        ([127, 0, 0, 1], 0).into(),
        SimRealtimeConfig {
            pace,
            ..SimRealtimeConfig::scripted(move |c| match &c.meeting {
                Some(meeting) => script(meeting, c.session),
                None => Script::hold(),
            })
        },
    )
    .await
    .expect("sim realtime starts")
}

/// Waits until the meeting's latest session has said everything (no new
/// session started meanwhile); returns how many sessions it had.
pub async fn wait_for_last_session(app: &impl Service, peer: &SimRealtime, meeting: &str) -> usize {
    eventually("the call's first connection", || async {
        (!peer.connections_for(meeting).is_empty()).then_some(())
    })
    .await;
    // A restart may still be under way: always wait on the latest session.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // The latest session is the one of a live actor with its socket open
    // that stays the same incarnation while the session plays out.
    let incarnation = |actor: Option<serde_json::Value>| {
        actor
            .filter(|a| a["socket"] == "open")
            .map(|a| a["restarts"].clone())
    };
    loop {
        let before = incarnation(actor_of(app, meeting).await);
        let sessions = peer.connections_for(meeting).len();
        let done = peer
            .wait_for_mark(&done_mark(meeting, sessions), Duration::from_millis(250))
            .await;
        if done
            && before.is_some()
            && incarnation(actor_of(app, meeting).await) == before
            && peer.connections_for(meeting).len() == sessions
        {
            return sessions;
        }
        if tokio::time::Instant::now() > deadline {
            let actor = actor_of(app, meeting).await;
            let log = events(app.store(), meeting).await;
            let tail = &log[log.len().saturating_sub(12)..];
            panic!(
                "session {sessions} of {meeting} did not finish; actor: {actor:?}; last events: {tail:#?}"
            );
        }
    }
}

/// Checks a transcript written while the call's actor was killed at random:
///
/// - numbered 1..n with no duplicate, and no `lost` line unless
///   `allow_lost` (a process killed outright loses its unwritten lines;
///   finalizing records their numbers as `lost`);
/// - every stored line is something the peer said, in the order it said it
///   (a line cut by a kill is a `partial` prefix of the agent's words or a
///   `transcription_failed` user line: recorded, not silently dropped);
/// - the last session, which no kill interrupted, is stored complete.
pub fn check_chaotic_transcript(
    meeting: &str,
    stored: &[StoredChunk],
    sessions: usize,
    allow_lost: bool,
) {
    let said: Vec<SentLine> = (1..=sessions)
        .flat_map(|s| session_script(meeting, s).expected_lines())
        .collect();
    let mut seen = HashSet::new();
    let mut last_place: Option<usize> = None;
    for (i, chunk) in stored.iter().enumerate() {
        let context = || {
            format!(
                "meeting {meeting}, line {}: {chunk:?}",
                chunk.sequence_number
            )
        };
        assert_eq!(
            chunk.sequence_number,
            i as i64 + 1,
            "gapless: {}",
            context()
        );
        let place = match chunk.status {
            ChunkStatus::Completed => said
                .iter()
                .position(|l| Some(l.speaker) == chunk.speaker && l.text == chunk.text),
            // An agent line cut before its first word: nothing to place.
            ChunkStatus::Partial | ChunkStatus::Interrupted if chunk.text.is_empty() => continue,
            // Several replies share their first words: the first one after
            // the previous line is the one that was cut.
            ChunkStatus::Partial | ChunkStatus::Interrupted => {
                let start = last_place.map_or(0, |p| p + 1);
                said[start..]
                    .iter()
                    .position(|l| {
                        l.speaker == Speaker::Agent
                            && Some(Speaker::Agent) == chunk.speaker
                            && l.text.starts_with(&chunk.text)
                    })
                    .map(|p| p + start)
            }
            ChunkStatus::TranscriptionFailed => {
                assert_eq!(chunk.speaker, Some(Speaker::User), "{}", context());
                continue;
            }
            ChunkStatus::Lost if allow_lost => continue,
            ChunkStatus::Lost => panic!("nothing may be lost: {}", context()),
        };
        let place = place.unwrap_or_else(|| panic!("never said: {}", context()));
        // Two cuts can leave the same few first words: only whole lines
        // are unique.
        assert!(
            chunk.status != ChunkStatus::Completed
                || seen.insert((chunk.speaker, chunk.text.clone())),
            "stored twice: {}",
            context()
        );
        assert!(
            last_place.is_none_or(|p| place > p),
            "out of order: {}",
            context()
        );
        last_place = Some(place);
    }
    let last = session_script(meeting, sessions).expected_lines();
    let tail: Vec<(Option<Speaker>, &str, ChunkStatus)> = stored
        [stored.len().saturating_sub(last.len())..]
        .iter()
        .map(|c| (c.speaker, c.text.as_str(), c.status))
        .collect();
    let want: Vec<(Option<Speaker>, &str, ChunkStatus)> = last
        .iter()
        .map(|l| (Some(l.speaker), l.text.as_str(), l.status))
        .collect();
    assert_eq!(tail, want, "meeting {meeting}: the last session complete");
}

/// A running scribe, in this process or a child process.
pub trait Service {
    fn address(&self) -> &str;
    fn store(&self) -> &Store;
    fn client(&self) -> &reqwest::Client;
}

impl Service for TestApp {
    fn address(&self) -> &str {
        &self.address
    }
    fn store(&self) -> &Store {
        &self.store
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// The meeting's live actor, as `/admin/actors` shows it.
pub async fn actor_of(app: &impl Service, meeting: &str) -> Option<Value> {
    admin_actor(app.client(), app.address(), meeting).await
}

/// How many model requests carried the meeting's transcript.
pub fn requests_mentioning(llm: &SimLlm, meeting: &str) -> usize {
    let tag = &meeting[..8];
    llm.requests()
        .iter()
        .filter(|r| r.body.to_string().contains(tag))
        .count()
}

/// `n` upcoming meetings of one agent.
pub async fn fleet_meetings(app: &impl Service, n: usize) -> Vec<String> {
    let post = |path: &str, body: Value| {
        app.client()
            .post(format!("{}{path}", app.address()))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
    };
    let agent = expect_json(
        post(
            "/api/agents",
            json!({ "name": "Coach", "instructions": "Agent instructions." }),
        )
        .await
        .expect("sent"),
        StatusCode::CREATED,
    )
    .await;
    join_all((0..n).map(|i| {
        let body = json!({ "name": format!("Call {i}"), "agent_id": agent["id"], "user_id": format!("u{i}") });
        let created = post("/api/meetings", body);
        async move {
            let created = expect_json(created.await.expect("sent"), StatusCode::CREATED).await;
            created["id"].as_str().expect("id").to_owned()
        }
    }))
    .await
}

/// Starts a browser call on `meeting` at OpenAI through scribe (`POST
/// /api/meetings/{id}/call` with a real SDP offer); returns the caller's
/// side, to be kept while the call runs.
pub async fn start_browser_call(app: &impl Service, meeting: &str) -> media::Offering {
    let (offer, caller) = media::offer().await.expect("an offer");
    let created = app
        .client()
        .post(format!("{}/api/meetings/{meeting}/call", app.address()))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    caller
}

pub fn webhooks(app: &impl Service) -> WebhookDriver {
    WebhookDriver::new(app.address(), STREAM_SECRET.as_bytes(), "stream-key")
}

/// Sends a signed `call.session_started` for each meeting.
pub async fn start_calls(app: &impl Service, meetings: &[String]) -> Vec<SimCall> {
    let driver = webhooks(app);
    join_all(meetings.iter().map(|meeting| {
        let call = SimCall::new(meeting);
        let driver = &driver;
        async move {
            let answer = driver.session_started(&call).await.expect("sent");
            assert_eq!(
                expect_json(answer, StatusCode::OK).await,
                json!({ "status": "started" })
            );
            call
        }
    }))
    .await
}

/// Waits until the meeting's last session is stored in full, then ends the
/// call and checks its transcript (see [`check_chaotic_transcript`]).
pub async fn finish_chaotic_call(
    app: &impl Service,
    peer: &SimRealtime,
    call: &SimCall,
    allow_lost: bool,
) {
    let meeting = call.meeting_id.as_str();
    let sessions = wait_for_last_session(app, peer, meeting).await;
    let last = session_script(meeting, sessions).expected_lines();
    eventually("the last session stored", || async {
        let stored = transcript(app.store(), meeting).await;
        let tail = &stored[stored.len().saturating_sub(last.len())..];
        (tail.len() == last.len() && tail.iter().zip(&last).all(|(c, l)| c.text == l.text))
            .then_some(())
    })
    .await;
    let answer = webhooks(app).session_ended(call).await.expect("sent");
    assert_eq!(
        expect_json(answer, StatusCode::OK).await,
        json!({ "status": "ending" })
    );
    wait_until_ended(app.store(), meeting).await;
    check_chaotic_transcript(
        meeting,
        &transcript(app.store(), meeting).await,
        sessions,
        allow_lost,
    );
}

/// Finishes every call (see [`finish_chaotic_call`]) at once.
pub async fn finish_chaotic_calls(
    app: &impl Service,
    peer: &SimRealtime,
    calls: &[SimCall],
    allow_lost: bool,
) {
    join_all(
        calls
            .iter()
            .map(|c| finish_chaotic_call(app, peer, c, allow_lost)),
    )
    .await;
}
