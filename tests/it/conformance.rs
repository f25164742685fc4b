//! The conformance suite: sessions recorded against OpenAI's real services
//! (`tests/conformance/sessions`, each with its source, commit and licence
//! in `tests/conformance/README.md`), replayed frame by frame, exactly as
//! recorded, into a real scribe (its MeetingActor, its store on each
//! backend) through a WebSocket peer that plays the recording; the stored
//! transcript is compared line by line, with statuses, with the one written
//! by hand from the documented semantics (`expected.json`).
//!
//! The only change made to a recording is its clock: a `session.created` or
//! `session.updated` that names an `expires_at` (long past) gets one an
//! hour from now, as a live session would.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use scribe_sim::script::{Script, Step};
use scribe_sim::webhook::SimCall;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{each_backend, expect_json};
use crate::running::*;

#[derive(Debug, Deserialize)]
struct Expected {
    api: String,
    path: String,
    lines: Vec<ExpectedLine>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
struct ExpectedLine {
    speaker: String,
    text: String,
    status: String,
}

/// The last frame the peer plays: an `error` the actor logs, so that once
/// it is in the event log every recorded frame before it was applied.
const END_OF_RECORDING: &str = r#"{"type":"error","event_id":"conformance_end","error":{"type":"invalid_request_error","code":"end_of_recording","message":"the recording ends here","param":null,"event_id":null}}"#;

fn sessions() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/sessions");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the recorded sessions")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    all.sort();
    all
}

/// The recording's frames as the peer plays them (the clock moved).
fn frames(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).expect("events.jsonl");
    let in_an_hour = chrono::Utc::now().timestamp() + 3_600;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut event: Value = serde_json::from_str(line).expect("a recorded event");
            let kind = event["type"].as_str().unwrap_or_default();
            if matches!(kind, "session.created" | "session.updated")
                && event["session"]["expires_at"].is_number()
            {
                event["session"]["expires_at"] = json!(in_an_hour);
                return event.to_string();
            }
            line.to_owned()
        })
        .collect()
}

fn expected(dir: &Path) -> Expected {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("an expected transcript")
}

/// Replays one recorded owned Realtime session into a scribe on `url`
/// and returns what it stored.
async fn replay(url: &str, frames: Vec<String>) -> Vec<ExpectedLine> {
    let mut steps: Vec<Step> = frames.into_iter().map(Step::Raw).collect();
    steps.push(Step::Raw(END_OF_RECORDING.into()));
    steps.push(Step::Hold);
    let script = Script { steps };
    let peer = sim(move |_| script.clone()).await;
    let app = live_app(url, &peer).await;
    let meeting = new_meeting(&app).await;
    let call = SimCall::new(&meeting);
    let hooks = driver(&app);
    let started = hooks.session_started(&call).await.expect("sent");
    assert_eq!(
        expect_json(started, StatusCode::OK).await["status"],
        "started"
    );
    eventually("every recorded frame to be applied", || async {
        events(&app.store, &meeting)
            .await
            .iter()
            .any(|(kind, detail)| kind == "realtime_error" && detail["code"] == "end_of_recording")
            .then_some(())
    })
    .await;
    let ended = hooks.session_ended(&call).await.expect("sent");
    assert_eq!(expect_json(ended, StatusCode::OK).await["status"], "ending");
    wait_until_ended(&app.store, &meeting).await;
    let stored = transcript(&app.store, &meeting).await;
    app.stop().await.expect("clean stop");
    stored
        .into_iter()
        .map(|line| ExpectedLine {
            speaker: line.speaker.map_or("none".into(), |s| s.to_string()),
            text: line.text,
            status: line.status.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn every_recorded_session_gives_the_transcript_written_by_hand() {
    let sessions = sessions();
    assert!(sessions.len() >= 8, "{} recorded sessions", sessions.len());
    each_backend(|_, url| {
        let sessions = sessions.clone();
        async move {
            for dir in sessions {
                let name = dir
                    .file_name()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned();
                let expected = expected(&dir);
                assert_eq!(
                    (expected.api.as_str(), expected.path.as_str()),
                    ("realtime", "owned"),
                    "{name}: only owned Realtime sessions were found recorded"
                );
                let stored = replay(&url, frames(&dir)).await;
                assert_eq!(stored, expected.lines, "{name}");
                println!("conformance: {name}: {} lines as expected", stored.len());
            }
        }
    })
    .await;
}
