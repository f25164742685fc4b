//! A script played as GPT-Live speaks it: timed transcript fragments on one
//! session clock, one per word, the two sides interleaved as the service
//! interleaves them (the documented behaviours: the user's transcription
//! lags the audio; a reply is cut where the user barges in).
//!
//! - `Transcription::Before` (and the failure timings, which GPT-Live does
//!   not have): the user's words, then the agent's.
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

use crate::sim::realtime::config::SimRealtimeConfig;
use crate::sim::realtime::play::{Outgoing, pause};
use crate::sim::realtime::records::Shared;
use crate::sim::script::{Reply, Script, Step, Transcription, Turn};

/// Session milliseconds per spoken word.
const WORD_MS: u64 = 300;

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
}

impl Player<'_> {
    fn emit(&mut self, frame: Value) -> bool {
        self.sent += 1;
        self.out.send(Outgoing::Frame(frame.to_string())).is_ok()
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
        let agent_start = start + user.len() as u64 * WORD_MS + 400;
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
        // Which user words arrive after the agent's first two.
        let late_from = match turn.transcription {
            Transcription::During => user.len().saturating_sub(1),
            Transcription::After => 0,
            _ => user.len(),
        };
        let mut ok = true;
        for (n, (word, at)) in user[..late_from].iter().enumerate() {
            ok = ok && self.emit(fragment(true, self.sent + n, word, *at, at + WORD_MS));
            pause(config, Duration::from_millis(WORD_MS)).await;
        }
        for (i, (word, at)) in agent.iter().enumerate() {
            if i == 2.min(agent.len()) {
                ok = ok && self.late_user(&user[late_from..]);
            }
            ok = ok && self.emit(fragment(false, self.sent, word, *at, at + WORD_MS));
            pause(config, Duration::from_millis(WORD_MS)).await;
        }
        if agent.len() < 2 {
            ok = ok && self.late_user(&user[late_from..]);
        }
        let end = agent.last().map_or(agent_start, |(_, at)| at + WORD_MS);
        self.advance_to(end + 600);
        ok
    }

    fn late_user(&mut self, words: &[(String, u64)]) -> bool {
        words.iter().all(|(word, at)| {
            let frame = fragment(true, self.sent, word, *at, at + WORD_MS);
            self.emit(frame)
        })
    }
}

/// Plays `script` on a GPT-Live session (`session_id`), its clock in `clock`.
pub async fn play_live(
    script: &Script,
    config: &SimRealtimeConfig,
    session_id: &str,
    clock: &Mutex<u64>,
    out: &mpsc::UnboundedSender<Outgoing>,
    shared: &Shared,
) {
    let mut player = Player {
        out,
        clock,
        sent: 0,
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
