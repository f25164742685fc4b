//! `SCRIBE_LOG_FORMAT=json` on the real binary: a call over Stream's
//! webhooks to `scribe serve --simulate` (its built-in realtime peer and
//! model), from its start to its analysis. Every line on stderr is one JSON
//! object, and every line about the call (every line that names its
//! meeting anywhere) carries the meeting id, its trace id and its call
//! path.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use scribe_sim::webhook::{SimCall, WebhookDriver};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::binary::{collect_stderr, read_until_listening};
use crate::helpers::expect_json;
use crate::running::eventually;

const SECRET: &str = "json-logs-stream-secret";
const TOKEN: &str = "json-logs-api-token-0123456789abcdef0123456789";

#[tokio::test]
async fn every_line_about_a_call_names_its_meeting_trace_and_call_path() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scribe"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--simulate"])
        .env_remove("DATABASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("SCRIBE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("STREAM_API_SECRET", SECRET)
        .env("SCRIBE_API_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("scribe starts");
    let logs = collect_stderr(&mut child);
    let address = read_until_listening(&mut child, &mut Vec::new()).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{address}{path}"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let agent = expect_json(
        post(
            "/api/agents",
            json!({ "name": "Coach", "instructions": "Help." }),
        )
        .await
        .expect("agent"),
        StatusCode::CREATED,
    )
    .await;
    let meeting = expect_json(
        post(
            "/api/meetings",
            json!({ "name": "Call", "agent_id": agent["id"], "user_id": "u1" }),
        )
        .await
        .expect("meeting"),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let stream = WebhookDriver::new(&address, SECRET.as_bytes(), "stream-key");
    let call = SimCall::new(&meeting);
    let started = stream.session_started(&call).await.expect("sent");
    assert_eq!(
        expect_json(started, StatusCode::OK).await["status"],
        "started"
    );
    let get = |path: String| {
        client
            .get(format!("{address}{path}"))
            .bearer_auth(TOKEN)
            .send()
    };
    eventually("two lines stored", || async {
        let answer = get(format!("/api/meetings/{meeting}/transcript"))
            .await
            .ok()?;
        let body: Value = answer.json().await.ok()?;
        (body["chunks"].as_array()?.len() >= 2).then_some(())
    })
    .await;
    let ended = stream.session_ended(&call).await.expect("sent");
    assert_eq!(expect_json(ended, StatusCode::OK).await["status"], "ending");
    eventually("the analysis completed", || async {
        let answer = get(format!("/api/meetings/{meeting}")).await.ok()?;
        let body: Value = answer.json().await.ok()?;
        (body["status"] == "completed").then_some(())
    })
    .await;
    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(killed.expect("kill runs").success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .expect("wait");
    let logs = logs.await.expect("stderr collected");

    let trace = meeting.replace('-', "");
    let mut about = Vec::new();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let object: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target"] {
            assert!(object[key].is_string(), "no {key}: {line}");
        }
        if line.contains(&meeting) {
            assert_eq!(object["meeting_id"], meeting.as_str(), "{line}");
            assert_eq!(object["trace_id"], trace.as_str(), "{line}");
            about.push((line, object));
        }
    }
    // The meeting is made before it has a call (any path may start it):
    // from the call's start on, every line names the call's path.
    let start = about
        .iter()
        .position(|(_, o)| o["call_path"] == "stream")
        .expect("a line names the call path");
    for (line, object) in &about[..start] {
        assert_eq!(
            object["message"], "meeting created",
            "before the call: {line}"
        );
    }
    for (line, object) in &about[start..] {
        assert_eq!(object["call_path"], "stream", "{line}");
        // Named once the call's actor has named it.
        if !object["voice_api"].is_null() {
            assert_eq!(object["voice_api"], "realtime", "{line}");
        }
    }
    assert!(about.iter().any(|(_, o)| o["voice_api"] == "realtime"));
    let about = about.len();
    for said in ["meeting actor started", "call ended", "analysis completed"] {
        assert!(
            logs.lines()
                .any(|l| l.contains(said) && l.contains(&meeting)),
            "no `{said}` line about the call in:\n{logs}"
        );
    }
    assert!(about >= 5, "{about} lines about the call in:\n{logs}");
}
