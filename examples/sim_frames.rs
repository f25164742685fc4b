//! Prints, one JSON line each, every frame the simulated realtime peer sends
//! for a script that plays every case it knows (turns with each
//! transcription timing, transcription deltas then a failure, cancelled,
//! failed and truncated replies, a non-fatal error, a session expiry) and
//! for a refused `session.update`; then, after a line `--- live`, every
//! frame a simulated GPT-Live session sends for the same script (as timed
//! fragments, then `session.closed`), for a refused `session.start`, and
//! on a GPT-Live SIP call's sideband (the audio reflected to it too);
//! then, after a line `--- chat`, every `chat.completion.chunk` the
//! simulated model streams (a summary, a structured blueprint answer,
//! an answer cut off at its limit, a refusal, a stream that breaks off),
//! and after `--- completion` its unstreamed `chat.completion` answers.
//! `.ci/run` pipes them into
//! `scripts/check_sim_shapes.py`, which validates each against OpenAI's own
//! generated types (`openai` on PyPI): the simulator speaks the real shapes.
//!
//! ```sh
//! cargo run --example sim_frames | python3 scripts/check_sim_shapes.py
//! ```

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use scribe::realtime::ws_base;
use scribe_actors::domain::Speaker;
use scribe_sim::carried::CallsConfig;
use scribe_sim::llm::SimLlm;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Reply, Script, Step, Transcription, Turn};
use tokio_tungstenite::tungstenite::Message;

/// How long a quiet socket means the script has played out.
const QUIET: Duration = Duration::from_millis(500);

fn every_case() -> Script {
    let turn = |n, t| Turn::numbered("sim", n, t);
    Script {
        steps: vec![
            Step::Turn(turn(1, Transcription::Before)),
            Step::Turn(turn(2, Transcription::During)),
            Step::Turn(turn(3, Transcription::After)),
            Step::Turn(turn(4, Transcription::Failed)),
            Step::Turn(turn(5, Transcription::DeltasThenFailed { words: 2 })),
            Step::Turn(turn(6, Transcription::Before).ending(Reply::Cancelled {
                words: 2,
                output_words: Some(3),
            })),
            Step::Turn(turn(7, Transcription::Before).ending(Reply::Cancelled {
                words: 1,
                output_words: None,
            })),
            Step::Turn(turn(8, Transcription::Before).ending(Reply::Failed { words: 2 })),
            Step::Turn(
                turn(9, Transcription::Before).ending(Reply::Truncated { audio_end_ms: 900 }),
            ),
            Step::Error {
                code: "rate_limit_exceeded".into(),
                message: "Slow down.".into(),
            },
            Step::ExpireMidReply {
                turn: turn(10, Transcription::Withheld),
                words_before_expiry: 2,
            },
        ],
    }
}

/// Plays one connection to the end and prints what the peer sent.
async fn record(config: SimRealtimeConfig) -> anyhow::Result<()> {
    let peer = SimRealtime::start(([127, 0, 0, 1], 0).into(), config).await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(peer.url()).await?;
    let update = scribe_actors::voice::realtime::session_update(
        "Be brief.",
        "marin",
        scribe_actors::voice::realtime::DEFAULT_TRANSCRIPTION_MODEL,
    );
    socket.send(Message::text(update)).await?;
    while let Ok(Some(frame)) = tokio::time::timeout(QUIET, socket.next()).await {
        match frame? {
            Message::Text(text) => println!("{text}"),
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// Plays one owned GPT-Live session to the end and prints what it sent.
async fn record_live(script: Script, refuse: Option<&str>) -> anyhow::Result<()> {
    let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO).await?;
    let mut steps = script.steps;
    steps.push(Step::SessionClosed("remote_hangup".into()));
    llm.calls().configure(CallsConfig {
        realtime: SimRealtimeConfig {
            reject_session_update: refuse.map(str::to_owned),
            ..SimRealtimeConfig::scripted(move |_| Script {
                steps: steps.clone(),
            })
        },
        ..CallsConfig::default()
    });
    let url = format!("{}/live/sessions", ws_base(&llm.base_url()));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let start = scribe_actors::voice::gpt_live::session_start(
        "gpt-live-1.1",
        "Be brief.",
        "marin",
        &[(Speaker::User, "Earlier words.".into())],
    );
    socket.send(Message::text(start)).await?;
    while let Ok(Some(frame)) = tokio::time::timeout(QUIET, socket.next()).await {
        match frame? {
            Message::Text(text) => println!("{text}"),
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// Plays a GPT-Live SIP call to the end and prints what its sideband heard
/// (the transcript and both sides' audio).
async fn record_live_sideband(script: Script) -> anyhow::Result<()> {
    let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO).await?;
    let mut steps = script.steps;
    steps.push(Step::SessionClosed("remote_hangup".into()));
    llm.calls().configure(CallsConfig {
        realtime: SimRealtimeConfig {
            audio_frames_per_word: 1,
            audio_frame_bytes: 8,
            ..SimRealtimeConfig::scripted(move |_| Script {
                steps: steps.clone(),
            })
        },
        ..CallsConfig::default()
    });
    let id = llm.calls().ring_live();
    reqwest::Client::new()
        .post(format!("{}/live/sessions/{id}/accept", llm.base_url()))
        .json(&serde_json::json!({"session":{"type":"live","model":"gpt-live-1.1","instructions":"Be brief."}}))
        .send()
        .await?
        .error_for_status()?;
    let url = format!("{}/live/sessions/{id}/attach", ws_base(&llm.base_url()));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    while let Ok(Some(frame)) = tokio::time::timeout(QUIET, socket.next()).await {
        match frame? {
            Message::Text(text) => println!("{text}"),
            Message::Close(_) => break,
            _ => {}
        }
    }
    socket.close(None).await.ok();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    record(SimRealtimeConfig {
        audio_frames_per_word: 1,
        audio_frame_bytes: 8,
        ..SimRealtimeConfig::scripted(|_| every_case())
    })
    .await?;
    record(SimRealtimeConfig {
        reject_session_update: Some("session.audio.input.transcription.model".into()),
        ..SimRealtimeConfig::scripted(|_| Script::hold())
    })
    .await?;
    println!("--- live");
    let mut live = every_case();
    live.steps.pop(); // the expiry ends the session; play it last
    live.steps.push(Step::ExpireMidReply {
        turn: Turn::numbered("sim", 10, Transcription::Before),
        words_before_expiry: 2,
    });
    record_live(live, None).await?;
    record_live(Script::hold(), Some("session.voice")).await?;
    record_live_sideband(every_case()).await?;
    println!("--- chat");
    record_chat(true).await?;
    println!("--- completion");
    record_chat(false).await?;
    Ok(())
}

/// Asks the simulated model for each kind of answer, streamed or not, and
/// prints each chunk (or answer).
async fn record_chat(stream: bool) -> anyhow::Result<()> {
    use scribe_sim::llm::LlmFault;
    let llm = SimLlm::start(([127, 0, 0, 1], 0).into(), Duration::ZERO).await?;
    let summary = serde_json::json!({
        "model": "gpt-6-luna",
        "messages": [
            { "role": "developer", "content": "Summarize." },
            { "role": "user", "content": "Meeting: Intro\nTRANSCRIPT:\nUser: Hello there, I want help.\nCoach: Of course, let us begin." }
        ],
        "stream": stream,
        "stream_options": if stream { serde_json::json!({ "include_usage": true }) } else { serde_json::Value::Null },
    });
    let mut blueprint = summary.clone();
    blueprint["messages"][1]["content"] = serde_json::json!(
        "BLUEPRINT: {\"sessions\":[{\"session_name\":\"Intro\"},{\"session_name\":\"Plan\"}],\"current\":\"Intro\"}\nTRANSCRIPT:\nUser: Hi.\nCoach: Hello."
    );
    blueprint["response_format"] = serde_json::json!({
        "type": "json_schema",
        "json_schema": { "name": "blueprint_progress", "strict": true, "schema": scribe::analysis::analyzer::blueprint_schema(&["Intro".into(), "Plan".into()]) }
    });
    if !stream {
        blueprint
            .as_object_mut()
            .map(|b| b.remove("stream_options"));
    }
    let mut unstreamed = summary.clone();
    unstreamed
        .as_object_mut()
        .map(|b| b.remove("stream_options"));
    let summary = if stream { summary } else { unstreamed };
    let asks = [
        (None, &summary),
        (None, &blueprint),
        (Some(LlmFault::CutOff), &summary),
        (Some(LlmFault::Refusal), &summary),
        (Some(LlmFault::Severed), &summary),
    ];
    let client = reqwest::Client::new();
    for (fault, body) in asks {
        if !stream && fault == Some(LlmFault::Severed) {
            continue; // no answer at all: a 502
        }
        llm.push_faults(fault);
        let mut answer = client
            .post(format!("{}/chat/completions", llm.base_url()))
            .json(body)
            .send()
            .await?
            .error_for_status()?;
        let mut text = Vec::new();
        // A stream that breaks off ends in an error: keep what came.
        while let Ok(Some(bytes)) = answer.chunk().await {
            text.extend_from_slice(&bytes);
        }
        let text = String::from_utf8(text)?;
        if stream {
            for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if data != "[DONE]" {
                    println!("{data}");
                }
            }
        } else {
            println!("{}", serde_json::from_str::<serde_json::Value>(&text)?);
        }
    }
    Ok(())
}
