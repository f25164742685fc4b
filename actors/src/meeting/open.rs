//! What opens a session, by voice API:
//!
//! - Realtime, owned: `session.update` (confirmed by `session.updated`),
//!   then the stored lines replayed as conversation items;
//! - Realtime, attached: a `session.update` of input transcription only,
//!   on every attach: the rest was set when the call was created or
//!   accepted, and the voice cannot change once the assistant has spoken;
//! - GPT-Live, owned: `session.start`, seeded (`session.input`) with the
//!   most recent stored lines that fit its limits, confirmed by
//!   `session.started`;
//! - GPT-Live, attached: nothing (the session started with the call; a
//!   sideband never sends `session.start`).

use std::time::Duration;

use chrono::Utc;
use futures::SinkExt;
use ractor::ActorRef;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::msg::MeetingMsg;
use super::actor_state::{LiveSocket, MeetingState};
use crate::domain::{EventKind, Speaker, VoiceApi};
use crate::ports::error_chain;
use crate::voice::realtime::{replay_item, session_update, sideband_update};
use crate::voice::gpt_live::{self, SEED_MAX_MESSAGES};

type Sent = Result<(), tokio_tungstenite::tungstenite::Error>;

impl MeetingState {
    /// The voice API this call runs on.
    pub fn voice_api(&self) -> VoiceApi {
        self.context.voice_api.unwrap_or(self.deps.config.voice_api)
    }

    pub fn is_live(&self) -> bool {
        self.voice_api() == VoiceApi::Live
    }

    pub(super) async fn send(socket: &mut LiveSocket, frame: String) -> Sent {
        socket
            .outbox
            .send(Message::Text(Utf8Bytes::from(frame)))
            .await
    }

    /// Sends what opens the session and arms the confirmation deadline.
    /// Returns the lines replayed (or seeded) and whether the sends went
    /// through.
    pub(super) async fn open_session(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        socket: &mut LiveSocket,
        replay_before: i64,
    ) -> (usize, Sent) {
        let epoch = socket.epoch;
        let deadline = self.deps.config.session_update_timeout;
        if self.is_live() {
            if self.is_attached() {
                // Nothing to confirm: the call's session is running.
                self.configured = true;
                return (0, Ok(()));
            }
            let seed = if replay_before > 1 {
                self.replay_or_log(replay_before).await
            } else {
                Vec::new()
            };
            let seeded = gpt_live::seed(&seed).len().min(SEED_MAX_MESSAGES);
            let start = gpt_live::session_start(
                &self.deps.config.live_model,
                &self.context.instructions,
                &self.deps.config.voice,
                &seed,
            );
            let sent = Self::send(socket, start).await;
            myself.send_after(deadline, move || MeetingMsg::SessionUpdateDeadline {
                epoch,
            });
            return (seeded, sent);
        }
        let transcription = &self.deps.config.transcription_model;
        let update = if self.is_attached() {
            sideband_update(transcription)
        } else {
            session_update(
                &self.context.instructions,
                &self.deps.config.voice,
                transcription,
            )
        };
        let mut sent = Self::send(socket, update).await;
        myself.send_after(deadline, move || MeetingMsg::SessionUpdateDeadline {
            epoch,
        });
        let mut replayed = 0;
        if sent.is_ok() && replay_before > 1 {
            for (n, (speaker, text)) in self.replay_or_log(replay_before).await.iter().enumerate() {
                sent = Self::send(socket, replay_item(n, *speaker, text)).await;
                if sent.is_err() {
                    break;
                }
                replayed += 1;
            }
        }
        (replayed, sent)
    }

    /// Stored lines numbered below `before`, once everything read so far is committed.
    pub(super) async fn replay_lines(&self, before: i64) -> Result<Vec<(Speaker, String)>, String> {
        tokio::time::timeout(Duration::from_secs(10), self.deps.writer.flush())
            .await
            .map_err(|_| "the database did not take the pending lines within 10 s".to_owned())?
            .map_err(|e| e.to_string())?;
        self.deps
            .store
            .replay_lines(self.meeting(), before)
            .await
            .map_err(|e| error_chain(&e))
    }

    async fn replay_or_log(&mut self, before: i64) -> Vec<(Speaker, String)> {
        match self.replay_lines(before).await {
            Ok(lines) => lines,
            Err(error) => {
                self.log(
                    EventKind::RealtimeError,
                    json!({ "error": format!("replay skipped: {error}") }),
                );
                Vec::new()
            }
        }
    }

    /// Before a call is finalized, gives its session the grace period to
    /// make what it holds final: Realtime's outstanding user
    /// transcriptions; GPT-Live's `session.close`, whose `session.closed`
    /// makes every pending fragment a `completed` line.
    pub(super) async fn finish_session(&mut self, deadline: Instant) {
        if !self.is_live() {
            self.call
                .wait_until(deadline, |c| c.pending_user_lines() == 0)
                .await;
            return;
        }
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        if self.call.pending_fragments() == 0 {
            return;
        }
        if Self::send(socket, gpt_live::session_close()).await.is_ok() {
            self.call
                .wait_until(deadline, |c| c.pending_fragments() == 0)
                .await;
        }
    }

    /// Arms the rotation of the current session before it expires
    /// (`expires_at`, Unix seconds). An attached session is never rotated:
    /// its `expires_at` is the call's own limit, and the call ends when the
    /// provider ends it.
    pub(super) fn schedule_rotation(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        expires_at: Option<i64>,
    ) {
        if self.is_attached() {
            return;
        }
        if let (Some(expires_at), Some(socket)) = (expires_at, &self.socket) {
            let left = Duration::from_secs(
                u64::try_from(expires_at - Utc::now().timestamp()).unwrap_or(0),
            );
            self.expires = Some(Instant::now() + left);
            let delay = left.saturating_sub(self.deps.config.rotate_before_expiry);
            let epoch = socket.epoch;
            myself.send_after(delay, move || MeetingMsg::Rotate { epoch });
        }
    }

    /// GPT-Live `session.started`: the session is confirmed; rotate before
    /// it expires.
    pub(super) fn on_live_started(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        expires_at: Option<i64>,
    ) {
        self.backoff = self.deps.reconnect_backoff();
        self.configured = true;
        self.clear_problem();
        self.schedule_rotation(myself, expires_at);
    }

    /// GPT-Live `session.closed`, by its reason. On an attached call it is
    /// final whatever the reason: the call is over, finalized at once, with
    /// nothing on the meeting for a normal end (`close_requested`,
    /// `remote_hangup`, `expired`) and the reason shown for the others
    /// (`content`, `connection_lost`, one not documented). On an owned
    /// session:
    /// - `remote_hangup`, `close_requested`: the call is over, finalize now;
    /// - `expired`: a new session at once;
    /// - anything else: in the log and on the meeting; the socket's end
    ///   then opens a new session.
    pub(super) fn on_live_closed(&mut self, myself: &ActorRef<MeetingMsg>, reason: Option<String>) {
        let reason = reason.unwrap_or_else(|| "unknown".to_owned());
        if self.is_attached() {
            if !matches!(
                reason.as_str(),
                "close_requested" | "remote_hangup" | "expired"
            ) {
                let shown = match reason.as_str() {
                    "content" => {
                        "GPT-Live ended the call: its safety filter stopped it (content)".to_owned()
                    }
                    "connection_lost" => {
                        "GPT-Live ended the call: its connection was lost (connection_lost)"
                            .to_owned()
                    }
                    other => format!("GPT-Live ended the call: {other}"),
                };
                let log = json!({ "reason": reason, "final": true });
                self.show_problem(EventKind::SessionClosed, shown, reason.clone(), log);
            }
            self.declare_call_over(myself, format!("GPT-Live closed the session: {reason}"));
            return;
        }
        match reason.as_str() {
            "remote_hangup" | "close_requested" => {
                self.declare_call_over(myself, format!("GPT-Live closed the session: {reason}"));
            }
            "expired" => {
                // The socket's end opens the next session, seeded.
                self.log(
                    EventKind::SessionClosed,
                    json!({ "reason": reason, "next": "a new session, seeded with the recent lines" }),
                );
            }
            _ => {
                let shown = format!("GPT-Live closed the call's session: {reason}");
                let log = json!({ "reason": reason });
                self.show_problem(EventKind::SessionClosed, shown, reason.clone(), log);
            }
        }
    }
}
