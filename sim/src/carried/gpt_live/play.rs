//! A script played as GPT-Live speaks it: timed transcript fragments on one
//! session clock, one per word in steps of 200 ms, the two sides
//! interleaved as recorded GPT-Live sessions show them: the agent's first
//! word starts with the user's last one (the same `start_ms`) and the two
//! arrive interleaved; a reply cut by a barge-in goes on under the next
//! user's first word. A sideband also hears the audio: the caller's
//! (`session.input_audio.append`) and the agent's
//! (`session.output_audio.delta`, with its place on the clock), as many
//! frames a word as the Realtime peer sends.
//!
//! - `Transcription::Before` (and the failure timings, which GPT-Live does
//!   not have): the user's words, then the agent's (the overlapping pair
//!   interleaved).
//! - `Transcription::During`: the user's last word arrives after the
//!   agent's first two (a late user fragment of the same line).
//! - `Transcription::After`: all the user's words arrive after the agent's
//!   first two (the user's transcription lags).
//! - `Reply::Cancelled`/`Failed` with `words`: the agent stops after that
//!   many words (barge-in: the next turn's user speaks).
//! - `ExpireMidReply`: the reply stops, then `session.closed` `expired`.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::realtime::config::SimRealtimeConfig;
use crate::realtime::play::{Outgoing, pause};
use crate::realtime::records::Shared;
use crate::script::{Reply, Script, Step, Transcription, Turn};

/// Session milliseconds per spoken word (GPT-Live's ~200 ms steps).
const WORD_MS: u64 = 200;

/// A fragment frame.
pub fn fragment(user: bool, n: usize, delta: &str, start_ms: u64, end_ms: u64) -> Value {
    let kind = if user {
        "session.input_transcript.delta"
    } else {
        "session.output_transcript.delta"
    };
    json!({"type": kind, "event_id": format!("evt_live_{n}"), "delta": delta, "start_ms": start_ms, "end_ms": end_ms})
}

/// `session.closed` with `reason`.
pub fn closed(session_id: &str, reason: &str) -> Value {
    json!({"type":"session.closed","event_id":"evt_closed","reason":reason,
        "session":{"id":session_id,"expires_at":0,"model":"gpt-live-1.1","status":"active"},
        "usage":{"seconds":1.0}})
}

struct Player<'a> {
    out: &'a mpsc::UnboundedSender<Outgoing>,
    clock: &'a Mutex<u64>,
    sent: usize,
    /// The session has a sideband: the audio is reflected to it.
    sideband: bool,
    /// Base64 audio of one frame, and frames a word.
    audio: String,
    audio_frames: usize,
}

impl Player<'_> {
    fn emit(&mut self, frame: Value) -> bool {
        self.sent += 1;
        self.out.send(Outgoing::Frame(frame.to_string())).is_ok()
    }

    /// A word's audio as a sideband hears it (`type` first, as on the wire).
    fn audio(&mut self, user: bool, at: u64) -> bool {
        if !self.sideband {
            return true;
        }
        let step = WORD_MS / self.audio_frames.max(1) as u64;
        (0..self.audio_frames as u64).all(|i| {
            let start = at + i * step;
            let frame = if user {
                format!(
                    r#"{{"type":"session.input_audio.append","audio":"{}"}}"#,
                    self.audio
                )
            } else {
                format!(
                    r#"{{"type":"session.output_audio.delta","delta":"{}","start_ms":{start},"end_ms":{}}}"#,
                    self.audio,
                    start + step
                )
            };
            self.sent += 1;
            self.out.send(Outgoing::Frame(frame)).is_ok()
        })
    }

    /// A word: its audio, then its transcript fragment.
    fn word(&mut self, user: bool, word: &str, at: u64) -> bool {
        let fragment = fragment(user, self.sent, word, at, at + WORD_MS);
        self.audio(user, at) && self.emit(fragment)
    }

    fn now(&self) -> u64 {
        self.clock.lock().map(|c| *c).unwrap_or_default()
    }

    fn advance_to(&self, ms: u64) {
        if let Ok(mut clock) = self.clock.lock() {
            *clock = (*clock).max(ms);
        }
    }

    /// One exchange; false when the client left.
    async fn turn(&mut self, turn: &Turn, cut: Option<usize>, config: &SimRealtimeConfig) -> bool {
        let start = self.now();
        let user: Vec<(String, u64)> = turn
            .user_words()
            .iter()
            .enumerate()
            .map(|(i, w)| ((*w).to_owned(), start + i as u64 * WORD_MS))
            .collect();
        // The agent's first word starts with the user's last one.
        let agent_start = user.last().map_or(start + 400, |(_, at)| *at);
        let said = cut
            .unwrap_or(match turn.reply {
                Reply::Cancelled { words, .. } | Reply::Failed { words } => words,
                Reply::Completed | Reply::Truncated { .. } => turn.agent.len(),
            })
            .min(turn.agent.len());
        let agent: Vec<(String, u64)> = turn.agent[..said]
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), agent_start + i as u64 * WORD_MS))
            .collect();
        // Which user words arrive after the agent's first ones: the last
        // (it overlaps the agent's first word, and arrives after it), or
        // more when the transcription lags.
        let late_from = match turn.transcription {
            Transcription::After => 0,
            _ if agent.is_empty() => user.len(),
            _ => user.len().saturating_sub(1),
        };
        let late_after = match turn.transcription {
            Transcription::During | Transcription::After => 2,
            _ => 1,
        };
        let mut ok = true;
        for (word, at) in &user[..late_from] {
            ok = ok && self.word(true, word, *at);
            pause(config, Duration::from_millis(WORD_MS)).await;
        }
        for (i, (word, at)) in agent.iter().enumerate() {
            if i == late_after.min(agent.len()) {
                ok = ok && self.late_user(&user[late_from..]);
            }
            ok = ok && self.word(false, word, *at);
            pause(config, Duration::from_millis(WORD_MS)).await;
        }
        if agent.len() < late_after {
            ok = ok && self.late_user(&user[late_from..]);
        }
        let end = agent.last().map_or(agent_start, |(_, at)| at + WORD_MS);
        let end = end.max(user.last().map_or(0, |(_, at)| at + WORD_MS));
        if said < turn.agent.len() && !agent.is_empty() {
            // Cut off: the next user's first word starts under its last.
            self.advance_to(end - WORD_MS / 2);
        } else {
            self.advance_to(end + 600);
        }
        ok
    }

    fn late_user(&mut self, words: &[(String, u64)]) -> bool {
        words.iter().all(|(word, at)| self.word(true, word, *at))
    }
}

/// Plays `script` on a GPT-Live session (`session_id`), its clock in
/// `clock`; with `sideband`, the audio is reflected as a sideband hears it.
pub async fn play_live(
    script: &Script,
    config: &SimRealtimeConfig,
    session_id: &str,
    clock: &Mutex<u64>,
    out: &mpsc::UnboundedSender<Outgoing>,
    shared: &Shared,
    sideband: bool,
) {
    let mut player = Player {
        out,
        clock,
        sent: 0,
        sideband,
        audio: "U".repeat(config.audio_frame_bytes),
        audio_frames: config.audio_frames_per_word,
    };
    for (n, step) in script.steps.iter().enumerate() {
        match step {
            Step::Turn(turn) => {
                if !player.turn(turn, None, config).await {
                    return;
                }
            }
            Step::ExpireMidReply {
                turn,
                words_before_expiry,
            } => {
                player.turn(turn, Some(*words_before_expiry), config).await;
                player.emit(closed(session_id, "expired"));
                let _ = out.send(Outgoing::Close(1000));
                return;
            }
            Step::SessionClosed(reason) => {
                player.emit(closed(session_id, reason));
                let _ = out.send(Outgoing::Close(1000));
                return;
            }
            Step::Error { code, message } => {
                player.emit(json!({"type":"error","event_id":format!("evt_{n}_err"),"error":{"type":"invalid_request_error","code":code,"message":message,"param":null}}));
            }
            Step::Raw(text) => {
                let _ = out.send(Outgoing::Frame(text.clone()));
            }
            Step::Ping => {
                let _ = out.send(Outgoing::Ping);
            }
            Step::Close(code) => {
                let _ = out.send(Outgoing::Close(*code));
                return;
            }
            Step::Abort => {
                let _ = out.send(Outgoing::Abort);
                return;
            }
            // Stream's endpoint does not speak GPT-Live.
            Step::StreamRefusal => {}
            Step::Mark(name) => shared.mark(name),
            Step::Gate(name) => shared.pass_gate(name).await,
            Step::Hold => return,
        }
    }
}
