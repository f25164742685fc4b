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
use super::msg::{MeetingMsg, SocketEnd};
use super::reader::{ReaderContext, read_socket};
use super::shared::SharedCall;
use crate::domain::EventKind;
use crate::ids::MeetingId;
use crate::ports::{CallContext, ConnectError, Finalized, Outbox, RealtimeSession};
use crate::snapshot::{ActorKind, ActorSnapshot, ActorState, MeetingPhase, SocketState};

/// The open session: what scribe sends on, and the task reading it.
pub struct LiveSocket {
    pub(super) epoch: u64,
    pub(super) outbox: Outbox,
    reader: JoinHandle<()>,
}

impl LiveSocket {
    /// Says goodbye (a close frame, one second at most) and drops the socket.
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.outbox.send(Message::Close(None)),
        )
        .await;
    }
}

/// A duration as a person says it: "10 s", "300 ms".
fn spoken(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
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
    /// Who serves the current (or last) session, for messages.
    pub(super) provider: String,
    /// `session.updated` confirmed the current session's settings.
    pub(super) configured: bool,
    /// When the current session expires.
    pub(super) expires: Option<Instant>,
    /// What the meeting shows as its `error` now (scribe's words), and the
    /// whole story for `/admin/actors`.
    pub(super) problem: Option<(String, String)>,
    /// How an attached call's sideband has fared (see `attach`).
    pub(super) attach: AttachWatch,
    /// Client events to send on the session once the handler may await.
    pub(super) outgoing: Vec<String>,
    /// The call was declared over: its finalization is on its way, and a
    /// socket that ends meanwhile is not replaced.
    pub(super) over: bool,
}

/// How an attached call's sideband has fared since it was last heard.
#[derive(Debug, Default)]
pub struct AttachWatch {
    /// When the current socket opened.
    pub opened: Option<Instant>,
    /// Since when no socket has been alive, when none is.
    pub lost_since: Option<Instant>,
    /// Sockets in a row that ended soon without one event from the service.
    pub empty: u32,
    /// A live sideband was just lost: the first re-attach goes at once
    /// (when the provider ended the call, it says so right away).
    pub at_once: bool,
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
            provider: "the realtime service".into(),
            configured: false,
            expires: None,
            problem: None,
            attach: AttachWatch::default(),
            outgoing: Vec::new(),
            over: false,
        }
    }

    pub fn meeting(&self) -> MeetingId {
        self.context.meeting_id
    }

    pub(super) fn log(&self, kind: EventKind, detail: Value) {
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
            error: self.problem.as_ref().map(|(_, detail)| detail.clone()),
        }
    }

    /// Shows a problem with the call's realtime session: `shown` on the
    /// meeting (its status, page and stream), `detail` in the event log and
    /// on `/admin/actors`.
    pub(super) fn show_problem(
        &mut self,
        kind: EventKind,
        shown: String,
        detail: String,
        log: Value,
    ) {
        tracing::warn!(meeting = %self.meeting(), error = %detail, "realtime session problem");
        let mut log = log;
        log["error"] = json!(shown);
        log["detail"] = json!(detail);
        self.log(kind, log);
        self.deps
            .writer
            .set_error(self.meeting(), Some(shown.clone()));
        self.problem = Some((shown, detail));
    }

    /// The problem is gone (a later session was configured).
    pub(super) fn clear_problem(&mut self) {
        if self.problem.take().is_some() {
            self.deps.writer.set_error(self.meeting(), None);
        }
    }

    /// A configuration the service refused: no retry until someone fixes it.
    pub(super) fn configuration_problem(&mut self, shown: String, detail: String, log: Value) {
        self.socket_state = SocketState::ConfigurationError;
        self.show_problem(EventKind::ConfigurationError, shown, detail, log);
    }

    /// Attaches again (an attached call), unless the call already counts
    /// as over.
    pub(super) fn reattach(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        why: &str,
        floor: Option<Duration>,
    ) {
        match self.attach_failed() {
            Some(over) => self.declare_call_over(myself, over),
            None if std::mem::take(&mut self.attach.at_once) && floor.is_none() => {
                self.socket_state = SocketState::Reconnecting;
                metrics::counter!(crate::metrics::RECONNECTS).increment(1);
                self.log(
                    EventKind::SocketReconnecting,
                    json!({ "delay_ms": 0, "reason": why }),
                );
                let _ = myself.cast(MeetingMsg::Connect);
            }
            None => self.schedule_reconnect(myself, why, floor),
        }
    }

    /// Opens a new session after the backoff's next delay (at least
    /// `floor`, when given).
    pub(super) fn schedule_reconnect(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        why: &str,
        floor: Option<Duration>,
    ) {
        let delay = self
            .backoff
            .next()
            .unwrap_or(self.deps.config.reconnect_max)
            .max(floor.unwrap_or_default());
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
        let RealtimeSession {
            provider,
            frames,
            outbox,
        } = match connected {
            Ok(session) => session,
            Err(ConnectError::Config(message)) => {
                let shown = format!("the realtime connection is misconfigured: {message}");
                self.configuration_problem(shown, message, json!({ "retry": false }));
                return;
            }
            Err(ConnectError::Gone { provider, call }) => {
                let why = format!("{provider} answered that call {call} does not exist");
                self.declare_call_over(myself, why);
                return;
            }
            Err(ConnectError::Refused { provider, status }) => {
                let shown = format!(
                    "{provider} refused the connection (HTTP {status}): check OPENAI_API_KEY, the realtime URL and the model"
                );
                let detail = format!("the upgrade was answered HTTP {status}");
                if self.is_attached() {
                    // The call goes on without scribe: keep trying, slowly,
                    // until the call counts as over.
                    let log = json!({ "status": status, "retry_in_ms": self.deps.config.refused_retry.as_millis() as u64 });
                    self.show_problem(EventKind::ConfigurationError, shown, detail, log);
                    self.reattach(
                        myself,
                        "the sideband was refused",
                        Some(self.deps.config.refused_retry),
                    );
                } else {
                    let log = json!({ "status": status, "retry": false });
                    self.configuration_problem(shown, detail, log);
                }
                return;
            }
            Err(error) => {
                if self.is_attached() {
                    self.reattach(myself, &error.to_string(), None);
                } else {
                    self.schedule_reconnect(myself, &error.to_string(), None);
                }
                return;
            }
        };
        self.provider = provider;
        self.configured = false;
        self.expires = None;
        // Everything of the previous session is final now. An owned session
        // starts a new chain (lines numbered from here on belong to it); an
        // attached one continues the call's own conversation.
        let attached = self.is_attached();
        let epoch = if attached {
            self.attach_opened();
            self.call.detach(&self.deps.writer)
        } else {
            self.call.end_session(&self.deps.writer)
        };
        // Nothing is replayed into an attached session: it has its conversation.
        let replay_before = if attached {
            1
        } else {
            self.call.next_sequence()
        };
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
                live: self.is_live(),
            },
        ));
        let mut socket = LiveSocket {
            epoch,
            outbox,
            reader,
        };
        self.sessions += 1;
        self.errors_this_session = 0;
        let (replayed, sent) = self.open_session(myself, &mut socket, replay_before).await;
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

    /// Sends the client events queued by handlers that could not wait.
    pub async fn flush_outgoing(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.outgoing);
        if let Some(socket) = self.socket.as_mut() {
            for frame in frames {
                if socket
                    .outbox
                    .send(Message::Text(Utf8Bytes::from(frame)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }

    /// No `session.updated` confirmed session `epoch` in time.
    pub fn on_session_update_deadline(&mut self, epoch: u64) {
        if !self.is_current(epoch) || self.configured || self.problem.is_some() {
            return;
        }
        if self.is_reattach() {
            self.log(
                EventKind::RealtimeError,
                json!({ "error": "no session.updated confirmed the re-attached sideband's transcription setting", "reattach": true }),
            );
            return;
        }
        let waited = self.deps.config.session_update_timeout;
        let shown = format!(
            "{} did not confirm scribe's session settings within {}",
            self.provider,
            spoken(waited)
        );
        let detail = format!("no session.updated within {waited:?} of session.update");
        self.show_problem(
            EventKind::ConfigurationError,
            shown,
            detail,
            json!({ "event": "session.update" }),
        );
    }

    /// A session this close to its expiry is replaced even mid-turn.
    pub fn must_rotate_now(&self) -> bool {
        let margin = self.deps.config.rotate_force_before;
        self.expires.is_some_and(|at| Instant::now() + margin >= at)
    }

    pub fn on_socket_end(&mut self, myself: &ActorRef<MeetingMsg>, end: SocketEnd) {
        self.socket = None;
        // Whether the socket was ever heard is read before it is detached.
        let over = (self.is_attached() && !self.ending)
            .then(|| self.attach_lost())
            .flatten();
        if self.is_attached() {
            self.call.detach(&self.deps.writer);
        } else {
            self.call.end_session(&self.deps.writer);
        }
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
        if self.ending || self.over {
            self.socket_state = SocketState::Closed;
            return;
        }
        if let Some(why) = over {
            self.declare_call_over(myself, why);
            return;
        }
        if self.is_attached() {
            // An error before the close on a sideband usually says the call
            // is gone; the re-attach rule decides, so no slow floor here.
            self.configuration_error = None;
            self.reattach(
                myself,
                "the sideband socket ended while the call is live",
                None,
            );
            return;
        }
        if self.socket_state == SocketState::ConfigurationError && self.problem.is_some() {
            // Already shown in its own words (a refused `session.start`).
            return;
        }
        if end.is_configuration_error() || self.configuration_error.is_some() {
            let detail = self
                .configuration_error
                .clone()
                .unwrap_or_else(|| format!("realtime service closed the socket with {end:?}"));
            let code = detail.split(':').next().unwrap_or_default().to_owned();
            let shown = match (&end, self.configuration_error.is_some()) {
                (_, true) => format!("{} refused the session: {code}", self.provider),
                (SocketEnd::Closed { code: Some(c), .. }, false) => {
                    format!(
                        "{} closed the session as misconfigured (close {c})",
                        self.provider
                    )
                }
                _ => format!("{} closed the session as misconfigured", self.provider),
            };
            let log = json!({ "retry": false, "hint": "check OPENAI_API_KEY, the realtime URL and the model" });
            self.configuration_problem(shown, detail, log);
            return;
        }
        self.schedule_reconnect(
            myself,
            "the realtime session ended while the call is live",
            None,
        );
    }

    /// Replaces the session before it expires: closes it, then opens a new
    /// one with the conversation replayed.
    /// `forced`: mid-turn, because the session is about to expire.
    pub async fn rotate(&mut self, myself: &ActorRef<MeetingMsg>, forced: bool) {
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
        if forced {
            self.log(
                EventKind::RotationForced,
                json!({ "reason": "the session was about to expire and the turn had not ended" }),
            );
        }
        self.log(
            EventKind::SocketRotated,
            json!({ "reason": "session close to its expiry; replaced between turns" }),
        );
        self.connect(myself).await;
    }

    /// Waits (up to the grace period) for outstanding user transcriptions,
    /// closes the socket, then ends the call with [`end_call`]. With
    /// `hang_up`, scribe first ends the provider's call it is attached to
    /// (the call ends because scribe was told to end it).
    pub async fn finalize(&mut self, ended_at: DateTime<Utc>, hang_up: bool) -> Option<Finalized> {
        self.ending = true;
        let grace_deadline = Instant::now() + self.deps.config.finalize_grace;
        if hang_up {
            self.hang_up(grace_deadline).await;
        }
        self.finish_session(grace_deadline).await;
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
