//! What a MeetingActor holds and does: open a realtime session
//! (`session.update`, replay after a reconnect), react to what the reader
//! reports, reconnect with backoff, rotate a session before it expires, and
//! finalize the call.

use std::sync::Arc;
use std::time::Duration;

use backon::ExponentialBackoff;
use chrono::{DateTime, Utc};
use futures::SinkExt;
use ractor::ActorRef;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::deps::CallDeps;
use super::drain::{Verdict, end_call};
use super::msg::{MeetingMsg, RealtimeNotice, SocketEnd};
use super::reader::{ReaderContext, read_socket};
use super::shared::SharedCall;
use crate::domain::{EventKind, Speaker};
use crate::ids::MeetingId;
use crate::ports::{CallContext, ConnectError, Finalized, Outbox, RealtimeSession, error_chain};
use crate::realtime::client::{replay_item, session_update};
use crate::snapshot::{ActorKind, ActorSnapshot, ActorState, MeetingPhase, SocketState};
use crate::transcript::Notice;

/// Realtime error codes that mean the configuration is wrong: no retry loop.
const CONFIGURATION_ERROR_CODES: [&str; 3] = [
    "invalid_api_key",
    "beta_api_shape_disabled",
    "model_not_found",
];
/// Realtime `error` events logged per session; the rest are only counted.
const LOGGED_ERRORS_PER_SESSION: u32 = 20;

/// The open session: what scribe sends on, and the task reading it.
pub struct LiveSocket {
    epoch: u64,
    outbox: Outbox,
    reader: JoinHandle<()>,
}

impl LiveSocket {
    /// Says goodbye (a close frame, one second at most) and drops the socket.
    async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.outbox.send(Message::Close(None)),
        )
        .await;
    }
}

impl Drop for LiveSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub struct MeetingState {
    pub(super) context: CallContext,
    pub(super) call: Arc<SharedCall>,
    pub(super) deps: Arc<CallDeps>,
    pub(super) incarnation: u32,
    pub(super) started: Instant,
    pub(super) socket: Option<LiveSocket>,
    pub(super) socket_state: SocketState,
    pub(super) backoff: ExponentialBackoff,
    pub(super) sessions: u32,
    pub(super) errors_this_session: u32,
    pub(super) configuration_error: Option<String>,
    pub(super) ending: bool,
}

impl MeetingState {
    /// A call's actor state before its first session.
    pub fn new(
        context: CallContext,
        call: Arc<SharedCall>,
        deps: Arc<CallDeps>,
        incarnation: u32,
    ) -> Self {
        Self {
            backoff: deps.reconnect_backoff(),
            context,
            call,
            deps,
            incarnation,
            started: Instant::now(),
            socket: None,
            socket_state: SocketState::Connecting,
            sessions: 0,
            errors_this_session: 0,
            configuration_error: None,
            ending: false,
        }
    }

    pub fn meeting(&self) -> MeetingId {
        self.context.meeting_id
    }

    fn log(&self, kind: EventKind, detail: Value) {
        self.deps.log(self.meeting(), kind, detail);
    }

    /// True when `epoch` is the session this actor has open now.
    pub fn is_current(&self, epoch: u64) -> bool {
        self.socket.as_ref().is_some_and(|s| s.epoch == epoch)
    }

    pub fn snapshot(&self) -> ActorSnapshot {
        let phase = if self.ending {
            MeetingPhase::Finalizing
        } else {
            MeetingPhase::Live
        };
        ActorSnapshot {
            kind: ActorKind::Meeting,
            meeting_id: self.meeting(),
            state: ActorState::Meeting(phase),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            restarts: self.incarnation,
            next_sequence: self.call.next_sequence(),
            unflushed: self.call.unflushed(),
            socket: self.socket_state,
        }
    }

    fn schedule_reconnect(&mut self, myself: &ActorRef<MeetingMsg>, why: &str) {
        let delay = self
            .backoff
            .next()
            .unwrap_or(self.deps.config.reconnect_max);
        self.socket_state = SocketState::Reconnecting;
        metrics::counter!(crate::metrics::RECONNECTS).increment(1);
        self.log(
            EventKind::SocketReconnecting,
            json!({ "delay_ms": delay.as_millis() as u64, "reason": why }),
        );
        myself.send_after(delay, || MeetingMsg::Connect);
    }

    pub async fn connect(&mut self, myself: &ActorRef<MeetingMsg>) {
        self.socket_state = SocketState::Connecting;
        let timeout = self.deps.config.connect_timeout;
        let target = self.context.target();
        let connecting = self.deps.connector.connect(&target);
        let connected = tokio::time::timeout(timeout, connecting)
            .await
            .unwrap_or(Err(ConnectError::Timeout(timeout)));
        let RealtimeSession { frames, outbox } = match connected {
            Ok(session) => session,
            Err(ConnectError::Config(message)) => {
                self.socket_state = SocketState::ConfigurationError;
                self.log(EventKind::ConfigurationError, json!({ "error": message }));
                return;
            }
            Err(error) => {
                self.schedule_reconnect(myself, &error.to_string());
                return;
            }
        };
        // Everything of the previous session is final now; this one starts a
        // new chain. Lines numbered from here on belong to the new session.
        let epoch = self.call.end_session(&self.deps.writer);
        let replay_before = self.call.next_sequence();
        // Read from the first moment: the service may speak while the
        // session is still being configured.
        let reader = tokio::spawn(read_socket(
            frames,
            ReaderContext {
                epoch,
                call: self.call.clone(),
                writer: self.deps.writer.clone(),
                actor: myself.clone(),
                silence_timeout: self.deps.config.silence_timeout,
                backlog_retry: self.deps.config.backlog_retry,
            },
        ));
        let mut socket = LiveSocket {
            epoch,
            outbox,
            reader,
        };
        self.sessions += 1;
        self.errors_this_session = 0;
        let mut replayed = 0;
        let update = session_update(&self.context.instructions);
        let mut sent = socket
            .outbox
            .send(Message::Text(Utf8Bytes::from(update)))
            .await;
        if sent.is_ok() && replay_before > 1 {
            match self.replay_lines(replay_before).await {
                Ok(lines) => {
                    for (n, (speaker, text)) in lines.iter().enumerate() {
                        let item = replay_item(n, *speaker, text);
                        sent = socket
                            .outbox
                            .send(Message::Text(Utf8Bytes::from(item)))
                            .await;
                        if sent.is_err() {
                            break;
                        }
                        replayed += 1;
                    }
                }
                Err(error) => self.log(
                    EventKind::RealtimeError,
                    json!({ "error": format!("replay skipped: {error}") }),
                ),
            }
        }
        // A failed send means the socket is going away: its reader reports the end.
        if let Err(error) = sent {
            tracing::info!(meeting = %self.meeting(), %error, "socket failed while configuring the session");
        }
        self.socket = Some(socket);
        self.socket_state = SocketState::Open;
        self.log(
            EventKind::SocketConnected,
            json!({ "session": self.sessions, "incarnation": self.incarnation, "replayed_lines": replayed }),
        );
    }

    /// Stored lines numbered below `before`, once everything read so far is committed.
    async fn replay_lines(&self, before: i64) -> Result<Vec<(Speaker, String)>, String> {
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

    pub fn on_notice(&mut self, myself: &ActorRef<MeetingMsg>, notice: RealtimeNotice) {
        match notice {
            RealtimeNotice::SessionCreated { expires_at } => {
                if let (Some(expires_at), Some(socket)) = (expires_at, &self.socket) {
                    let left = Duration::from_secs(
                        u64::try_from(expires_at - Utc::now().timestamp()).unwrap_or(0),
                    );
                    let delay = left.saturating_sub(self.deps.config.rotate_before_expiry);
                    let epoch = socket.epoch;
                    myself.send_after(delay, move || MeetingMsg::Rotate { epoch });
                }
            }
            RealtimeNotice::SessionUpdated { transcription_on } => {
                self.backoff = self.deps.reconnect_backoff();
                if !transcription_on {
                    self.log(
                        EventKind::TranscriptionOff,
                        json!({ "error": "session.updated shows input transcription off: user lines will have no text" }),
                    );
                }
            }
            RealtimeNotice::Error { code, message } => {
                if code
                    .as_deref()
                    .is_some_and(|c| CONFIGURATION_ERROR_CODES.contains(&c))
                {
                    self.configuration_error = Some(format!(
                        "{}: {message}",
                        code.as_deref().unwrap_or_default()
                    ));
                }
                self.errors_this_session += 1;
                if self.errors_this_session <= LOGGED_ERRORS_PER_SESSION {
                    self.log(
                        EventKind::RealtimeError,
                        json!({ "code": code, "message": message }),
                    );
                }
            }
            RealtimeNotice::Transcript(Notice::OutOfOrderItem {
                item_id,
                previous_item_id,
            }) => self.log(
                EventKind::OutOfOrderItem,
                json!({ "item_id": item_id, "previous_item_id": previous_item_id }),
            ),
            RealtimeNotice::GarbageFrame(error) => {
                self.errors_this_session += 1;
                if self.errors_this_session <= LOGGED_ERRORS_PER_SESSION {
                    self.log(
                        EventKind::RealtimeError,
                        json!({ "error": format!("unparsable frame ignored: {error}") }),
                    );
                }
            }
        }
    }

    pub fn on_socket_end(&mut self, myself: &ActorRef<MeetingMsg>, end: SocketEnd) {
        self.socket = None;
        self.call.end_session(&self.deps.writer);
        let detail = match &end {
            SocketEnd::Closed { code, reason } => json!({ "code": code, "reason": reason }),
            SocketEnd::Eof => json!({ "reason": "connection ended without a close frame" }),
            SocketEnd::Error(e) => json!({ "reason": e }),
            SocketEnd::Silent(d) => {
                json!({ "reason": format!("nothing received for {} s", d.as_secs()) })
            }
            SocketEnd::Superseded => json!({ "reason": "session superseded" }),
        };
        self.log(EventKind::SocketClosed, detail);
        if self.ending {
            self.socket_state = SocketState::Closed;
            return;
        }
        if end.is_configuration_error() || self.configuration_error.is_some() {
            self.socket_state = SocketState::ConfigurationError;
            let error = self
                .configuration_error
                .clone()
                .unwrap_or_else(|| format!("realtime service closed the socket with {end:?}"));
            self.log(
                EventKind::ConfigurationError,
                json!({ "error": error, "retry": false, "hint": "check OPENAI_API_KEY, the realtime URL and the model" }),
            );
            return;
        }
        self.schedule_reconnect(myself, "the realtime session ended while the call is live");
    }

    /// Replaces the session before it expires: closes it, then opens a new
    /// one with the conversation replayed.
    pub async fn rotate(&mut self, myself: &ActorRef<MeetingMsg>) {
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
        self.log(
            EventKind::SocketRotated,
            json!({ "reason": "session close to its expiry; replaced between turns" }),
        );
        self.connect(myself).await;
    }

    /// Waits (up to the grace period) for outstanding user transcriptions,
    /// closes the socket, then ends the call with [`end_call`].
    pub async fn finalize(&mut self, ended_at: DateTime<Utc>) -> Option<Finalized> {
        self.ending = true;
        let grace_deadline = Instant::now() + self.deps.config.finalize_grace;
        self.call
            .wait_until(grace_deadline, |c| c.pending_user_lines() == 0)
            .await;
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
        self.socket_state = SocketState::Closed;
        let call = Some(self.call.clone());
        end_call(
            &self.deps,
            self.meeting(),
            call,
            Verdict::Finalize { ended_at },
        )
        .await
    }
}
