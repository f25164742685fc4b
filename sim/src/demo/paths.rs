//! One demo call over each path, from its start to its analysis:
//! - Stream: Stream's signed webhooks; scribe owns the realtime session
//!   (the simulated realtime peer);
//! - SIP: the simulated OpenAI rings a call and sends its signed
//!   `realtime.call.incoming`; scribe accepts and attaches; the caller
//!   hangs up at OpenAI;
//! - WebRTC: the demo's own WebRTC client (str0m) is the caller; scribe
//!   creates the call at OpenAI and attaches; the caller presses Hang up
//!   (`POST /api/meetings/{id}/hangup`).

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use serde_json::Value;
use tokio::sync::watch;

use super::world::{Demo, PHONE, TOKEN};
use crate::carried::media;
use crate::openai_webhook::OpenAiWebhooks;
use crate::script::{Comparison, SentLine, compare, done_mark};
use crate::webhook::SimCall;

/// How long one demo call may take, at most.
const DEADLINE: Duration = Duration::from_secs(600);

/// What one call came to.
pub struct Outcome {
    pub meeting: MeetingId,
    pub lost: usize,
    pub duplicated: usize,
    pub misordered: usize,
    pub stored: usize,
    pub completed: bool,
    /// From the instant the call ended (the demo's clock) to `processing`.
    pub end_to_processing_ms: Option<f64>,
    pub end_to_completed_ms: Option<f64>,
}

/// The demo's progress bars.
pub struct Bars {
    pub talking: ProgressBar,
    pub ended: ProgressBar,
    pub analysed: ProgressBar,
}

async fn spoken(
    demo: &Demo,
    meeting: MeetingId,
    expected: usize,
    sideband: bool,
) -> anyhow::Result<()> {
    let mark = done_mark(&meeting.to_string());
    let heard = if sideband {
        demo.llm.calls().wait_for_mark(&mark, DEADLINE).await
    } else {
        demo.peer.wait_for_mark(&mark, DEADLINE).await
    };
    if !heard {
        bail!("call {meeting} was not spoken within {DEADLINE:?}");
    }
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let started = tokio::time::Instant::now();
    while demo.store.transcript(meeting).await?.len() < expected && started.elapsed() < DEADLINE {
        poll.tick().await;
    }
    Ok(())
}

/// Waits for the analysis and compares what was stored with what was said.
async fn finish(
    demo: &Demo,
    meeting: MeetingId,
    ended_at: DateTime<Utc>,
    expected: &[SentLine],
    bars: &Bars,
) -> anyhow::Result<Outcome> {
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    let started = tokio::time::Instant::now();
    let mut was_ended = false;
    let record = loop {
        poll.tick().await;
        let m = demo
            .store
            .meeting(meeting)
            .await?
            .context("meeting vanished")?;
        if !was_ended && m.processing_started_at.is_some() {
            was_ended = true;
            bars.ended.inc(1);
        }
        if matches!(m.status, MeetingStatus::Completed | MeetingStatus::Failed)
            || started.elapsed() > DEADLINE
        {
            break m;
        }
    };
    if !was_ended {
        bars.ended.inc(1);
    }
    bars.analysed.inc(1);
    let stored = demo.store.transcript(meeting).await?;
    let Comparison {
        lost,
        duplicated,
        misordered,
    } = compare(&stored, expected);
    let ms = |at: Option<DateTime<Utc>>| {
        at.map(|at| (at - ended_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
    };
    Ok(Outcome {
        meeting,
        lost,
        duplicated,
        misordered,
        stored: stored.len(),
        completed: record.status == MeetingStatus::Completed,
        end_to_processing_ms: ms(record.processing_started_at),
        end_to_completed_ms: ms(record.completed_at),
    })
}

/// Stream: `call.session_started`, the owned session, `call.session_ended`.
pub async fn stream_call(demo: &Demo, n: usize, bars: &Bars) -> anyhow::Result<Outcome> {
    let meeting = demo.new_meeting(n).await?;
    let id = meeting.to_string();
    let expected = demo.script(&id).expected_lines();
    let call = SimCall::new(&id);
    demo.stream
        .session_started(&call)
        .await?
        .error_for_status()?;
    spoken(demo, meeting, expected.len(), false).await?;
    bars.talking.inc(1);
    let ended_at = Utc::now();
    demo.stream.session_ended(&call).await?.error_for_status()?;
    finish(demo, meeting, ended_at, &expected, bars).await
}

/// SIP: a call rings at OpenAI; its webhook reaches scribe, which accepts
/// it and attaches; the caller hangs up at OpenAI.
pub async fn sip_call(demo: &Demo, n: usize, bars: &Bars) -> anyhow::Result<Outcome> {
    let calls = demo.llm.calls();
    let call_id = calls.ring();
    let from = format!("+1415555{:04}", n % 10_000);
    let event = OpenAiWebhooks::incoming_call(&call_id, &from, PHONE);
    let answer: Value = demo
        .openai_webhooks
        .send(&event)
        .await?
        .error_for_status()?
        .json()
        .await?;
    if answer["status"] != "accepted" {
        bail!("the incoming call was not accepted: {answer}");
    }
    let meeting: MeetingId = answer["meeting_id"]
        .as_str()
        .context("the accepted call's meeting")?
        .parse()?;
    let expected = demo.script(&meeting.to_string()).expected_lines();
    spoken(demo, meeting, expected.len(), true).await?;
    bars.talking.inc(1);
    let ended_at = Utc::now();
    calls.end(&call_id);
    finish(demo, meeting, ended_at, &expected, bars).await
}

/// WebRTC: the demo's caller offers, scribe creates the call at OpenAI and
/// attaches, audio flows (the conversation starts on it), Hang up.
pub async fn webrtc_call(demo: &Demo, n: usize, bars: &Bars) -> anyhow::Result<Outcome> {
    let meeting = demo.new_meeting(n).await?;
    let (offer, offering) = media::offer().await.map_err(anyhow::Error::msg)?;
    let answer = demo
        .http
        .post(format!("{}/api/meetings/{meeting}/call", demo.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let caller = offering.accept(&answer).map_err(anyhow::Error::msg)?;
    let (hang_up, stop) = watch::channel(false);
    let media = tokio::spawn(caller.run(stop, None, None));
    let expected = demo.script(&meeting.to_string()).expected_lines();
    spoken(demo, meeting, expected.len(), true).await?;
    bars.talking.inc(1);
    let ended_at = Utc::now();
    demo.http
        .post(format!("{}/api/meetings/{meeting}/hangup", demo.base))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?;
    hang_up.send_replace(true);
    let _ = media.await;
    finish(demo, meeting, ended_at, &expected, bars).await
}
