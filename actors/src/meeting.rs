//! MeetingActor: one per live call. It owns the call's realtime socket
//! (connect, `session.update`, replay after a reconnect, reconnect with
//! backoff), logs what happens to the call, and on `Finalize` drains the
//! transcript and moves the meeting to `processing`.
//!
//! What must survive the actor (the conversation and its unwritten lines)
//! lives in [`SharedCall`], owned by the supervisor's registry; the socket
//! and its reader die with the actor, and the heir opens a new session.

pub mod reader;
pub mod shared;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use futures::SinkExt;
use futures::stream::{SplitSink, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::ids::MeetingId;
use crate::ports::{CallContext, CallStore, EventKind, Finalized};
use crate::realtime::client::{
    ConnectError, RealtimeConnector, RealtimeSocket, connect, replay_item, session_update,
};
use crate::transcript::Notice;
use crate::writer::ChunkWriter;
use reader::{ReaderContext, RealtimeNotice, SocketEnd, read_socket};
use shared::SharedCall;

/// Realtime error codes that mean the configuration is wrong: no retry loop.
const CONFIGURATION_ERROR_CODES: [&str; 3] = [
    "invalid_api_key",
    "beta_api_shape_disabled",
    "model_not_found",
];
/// Realtime `error` events logged per session; the rest are only counted.
const LOGGED_ERRORS_PER_SESSION: u32 = 20;

/// Timings of a call; the defaults suit production.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// How long `Finalize` waits for outstanding user transcriptions.
    pub finalize_grace: Duration,
    pub connect_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A socket that delivers nothing (not even a ping) this long is dead.
    pub silence_timeout: Duration,
    /// How soon refused lines are offered to the writer again.
    pub backlog_retry: Duration,
    /// Replace a realtime session this long before its `expires_at`, at
    /// the first moment between turns.
    pub rotate_before_expiry: Duration,
    /// While a turn is in progress, how soon to look again for a moment
    /// between turns to rotate the session.
    pub rotate_retry: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            finalize_grace: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            silence_timeout: Duration::from_secs(90),
            backlog_retry: Duration::from_millis(50),
            rotate_before_expiry: Duration::from_secs(5 * 60),
            rotate_retry: Duration::from_secs(2),
        }
    }
}

/// What every call needs, shared.
pub struct CallDeps {
    pub store: Arc<dyn CallStore>,
    pub writer: ChunkWriter,
    pub connector: Arc<dyn RealtimeConnector>,
    pub config: CallConfig,
}

impl CallDeps {
    /// Appends to the meeting's event log, in order with its lines, without
    /// holding up the caller.
    pub fn log(&self, meeting: MeetingId, kind: EventKind, detail: Value) {
        self.writer.log(meeting, kind, detail);
    }

    fn reconnect_backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.config.reconnect_min)
            .with_max_delay(self.config.reconnect_max)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

pub enum MeetingMsg {
    /// Open a realtime session now.
    Connect,
    SocketEnded {
        epoch: u64,
        end: SocketEnd,
    },
    Realtime {
        epoch: u64,
        notice: RealtimeNotice,
    },
    /// Time to replace session `epoch` before it expires (between turns).
    Rotate {
        epoch: u64,
    },
    /// The call ended: drain, write, move to `processing`, then stop.
    Finalize {
        ended_at: DateTime<Utc>,
    },
    Snapshot(RpcReplyPort<ActorSnapshot>),
    /// Chaos: panic inside a handler.
    Panic,
}

/// One live actor, as `/admin/actors` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorSnapshot {
    pub kind: &'static str,
    pub meeting_id: MeetingId,
    pub state: &'static str,
    pub uptime_ms: u64,
    pub restarts: u32,
    pub next_sequence: i64,
    pub unflushed: usize,
    pub socket: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocketState {
    Connecting,
    Open,
    Reconnecting,
    ConfigurationError,
    Closed,
}

impl SocketState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Open => "open",
            Self::Reconnecting => "reconnecting",
            Self::ConfigurationError => "configuration_error",
            Self::Closed => "closed",
        }
    }
}

pub struct MeetingActor;

pub struct MeetingArgs {
    pub context: CallContext,
    pub call: Arc<SharedCall>,
    pub deps: Arc<CallDeps>,
    /// 0 for the first actor of a call, n for its n-th restart.
    pub incarnation: u32,
    /// Why the previous incarnation ended, for the event log.
    pub restart_reason: Option<String>,
}

struct LiveSocket {
    epoch: u64,
    sink: SplitSink<RealtimeSocket, Message>,
    reader: JoinHandle<()>,
}

impl Drop for LiveSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub struct MeetingState {
    context: CallContext,
    call: Arc<SharedCall>,
    deps: Arc<CallDeps>,
    incarnation: u32,
    started: Instant,
    socket: Option<LiveSocket>,
    socket_state: SocketState,
    backoff: ExponentialBackoff,
    sessions: u32,
    errors_this_session: u32,
    configuration_error: Option<String>,
    ending: bool,
}

impl MeetingState {
    fn meeting(&self) -> MeetingId {
        self.context.meeting_id
    }

    fn log(&self, kind: EventKind, detail: Value) {
        self.deps.log(self.meeting(), kind, detail);
    }

    fn snapshot(&self) -> ActorSnapshot {
        ActorSnapshot {
            kind: "meeting",
            meeting_id: self.meeting(),
            state: if self.ending { "finalizing" } else { "live" },
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            restarts: self.incarnation,
            next_sequence: self.call.next_sequence(),
            unflushed: self.call.unflushed(),
            socket: self.socket_state.as_str(),
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

    async fn connect(&mut self, myself: &ActorRef<MeetingMsg>) {
        self.socket_state = SocketState::Connecting;
        let connected = connect(
            self.deps.connector.as_ref(),
            &self.context,
            self.deps.config.connect_timeout,
        )
        .await;
        let socket = match connected {
            Ok(socket) => socket,
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
        let (sink, stream) = socket.split();
        // Read from the first moment: the service may speak while the
        // session is still being configured.
        let reader = tokio::spawn(read_socket(
            stream,
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
            sink,
            reader,
        };
        self.sessions += 1;
        self.errors_this_session = 0;
        let mut replayed = 0;
        let mut sent = socket
            .sink
            .send(Message::Text(Utf8Bytes::from(session_update(
                &self.context.instructions,
            ))))
            .await;
        if sent.is_ok() && replay_before > 1 {
            match self.replay_lines(replay_before).await {
                Ok(lines) => {
                    for (n, (speaker, text)) in lines.iter().enumerate() {
                        sent = socket
                            .sink
                            .send(Message::Text(Utf8Bytes::from(replay_item(
                                n, *speaker, text,
                            ))))
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
    async fn replay_lines(
        &self,
        before: i64,
    ) -> Result<Vec<(crate::domain::Speaker, String)>, String> {
        tokio::time::timeout(Duration::from_secs(10), self.deps.writer.flush())
            .await
            .map_err(|_| "the database did not take the pending lines within 10 s".to_owned())?
            .map_err(|e| e.to_string())?;
        self.deps
            .store
            .replay_lines(self.meeting(), before)
            .await
            .map_err(|e| e.to_string())
    }

    fn on_notice(&mut self, myself: &ActorRef<MeetingMsg>, notice: RealtimeNotice) {
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

    fn on_socket_end(&mut self, myself: &ActorRef<MeetingMsg>, end: SocketEnd) {
        self.socket = None;
        self.call.end_session(&self.deps.writer);
        let detail = match &end {
            SocketEnd::Closed { code, reason } => json!({ "code": code, "reason": reason }),
            SocketEnd::Eof => json!({ "reason": "connection ended without a close frame" }),
            SocketEnd::Error(e) => json!({ "reason": e }),
            SocketEnd::Silent(d) => {
                json!({ "reason": format!("nothing received for {} s", d.as_secs()) })
            }
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
    async fn rotate(&mut self, myself: &ActorRef<MeetingMsg>) {
        if let Some(mut socket) = self.socket.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                socket.sink.send(Message::Close(None)),
            )
            .await;
        }
        self.log(
            EventKind::SocketRotated,
            json!({ "reason": "session close to its expiry; replaced between turns" }),
        );
        self.connect(myself).await;
    }

    async fn finalize(&mut self, ended_at: DateTime<Utc>) -> Finalized {
        self.ending = true;
        let config = &self.deps.config;
        let grace_deadline = tokio::time::Instant::now() + config.finalize_grace;
        self.call
            .wait_until(grace_deadline, |c| c.pending_user_lines() == 0)
            .await;
        if let Some(mut socket) = self.socket.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                socket.sink.send(Message::Close(None)),
            )
            .await;
        }
        self.socket_state = SocketState::Closed;
        self.call.end_session(&self.deps.writer);
        while self.call.flush_backlog(&self.deps.writer) {
            tokio::time::sleep(config.backlog_retry).await;
        }
        finalize_in_store(&self.deps, self.meeting(), ended_at).await
    }
}

/// Waits for the writer to commit what it holds, then finalizes the
/// meeting in the store, retrying until the store answers.
pub async fn finalize_in_store(
    deps: &CallDeps,
    meeting: MeetingId,
    ended_at: DateTime<Utc>,
) -> Finalized {
    let _ = deps.writer.flush().await;
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match deps.store.finalize(meeting, ended_at).await {
            Ok(done) => return done,
            Err(error) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(%meeting, %error, "finalize failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

impl Actor for MeetingActor {
    type Msg = MeetingMsg;
    type State = MeetingState;
    type Arguments = MeetingArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MeetingMsg>,
        args: MeetingArgs,
    ) -> Result<MeetingState, ActorProcessingErr> {
        let meeting = args.context.meeting_id;
        match &args.restart_reason {
            None => args.deps.log(meeting, EventKind::ActorStarted, json!({ "incarnation": args.incarnation })),
            Some(reason) => args.deps.log(
                meeting,
                EventKind::ActorRestarted,
                json!({ "incarnation": args.incarnation, "reason": reason, "next_sequence": args.call.next_sequence() }),
            ),
        }
        tracing::info!(%meeting, incarnation = args.incarnation, "meeting actor started");
        myself.cast(MeetingMsg::Connect)?;
        Ok(MeetingState {
            backoff: args.deps.reconnect_backoff(),
            context: args.context,
            call: args.call,
            deps: args.deps,
            incarnation: args.incarnation,
            started: Instant::now(),
            socket: None,
            socket_state: SocketState::Connecting,
            sessions: 0,
            errors_this_session: 0,
            configuration_error: None,
            ending: false,
        })
    }

    /// The long operations (connect, rotate, finalize) are boxed: ractor
    /// keeps this handler's future inside each actor's processing loop for
    /// the actor's whole life, so an inline connect (TCP, WebSocket
    /// handshake, session setup) made every live call about 25 KiB larger.
    async fn handle(
        &self,
        myself: ActorRef<MeetingMsg>,
        message: MeetingMsg,
        state: &mut MeetingState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MeetingMsg::Connect => {
                if !state.ending
                    && state.socket.is_none()
                    && state.socket_state != SocketState::ConfigurationError
                {
                    Box::pin(state.connect(&myself)).await;
                }
            }
            MeetingMsg::SocketEnded { epoch, end } => {
                if state.socket.as_ref().is_some_and(|s| s.epoch == epoch) {
                    state.on_socket_end(&myself, end);
                }
            }
            MeetingMsg::Realtime { epoch, notice } => {
                if state.socket.as_ref().is_some_and(|s| s.epoch == epoch) {
                    state.on_notice(&myself, notice);
                }
            }
            MeetingMsg::Rotate { epoch } => {
                if !state.ending && state.socket.as_ref().is_some_and(|s| s.epoch == epoch) {
                    if state.call.is_idle() {
                        Box::pin(state.rotate(&myself)).await;
                    } else {
                        myself.send_after(state.deps.config.rotate_retry, move || {
                            MeetingMsg::Rotate { epoch }
                        });
                    }
                }
            }
            MeetingMsg::Finalize { ended_at } => {
                if !state.ending {
                    let done = Box::pin(state.finalize(ended_at)).await;
                    tracing::info!(meeting = %state.meeting(), lines = done.lines, lost = done.lost.len(), "call finalized");
                    myself.drain()?;
                }
            }
            MeetingMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            MeetingMsg::Panic => panic!("injected panic in meeting actor {}", state.meeting()),
        }
        Ok(())
    }
}
