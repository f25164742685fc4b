//! What opens and ends a call's sessions: connect (what the protocol sends
//! on the call's path: configure, replay or seed), react to a socket's end
//! through the path's rule, rotate a session before it expires, and
//! finalize the call.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::ActorRef;
use tokio::time::Instant;
use tracing::Instrument;

use super::actor_state::MeetingState;
use super::drain::{Verdict, end_call};
use super::msg::{MeetingMsg, SocketEnd};
use super::reader::{ReaderContext, read_socket};
use super::rules::{self, Ended, Rotation};
use super::session::{Sent, Session};
use crate::call_log::{CallEvent, RealtimeError};
use crate::domain::Speaker;
use crate::ports::{ConnectError, Finalized, RealtimeSession, error_chain};
use crate::snapshot::SocketState;
use crate::voice::{History, SessionSettings};

impl MeetingState {
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
            Err(error) => {
                if matches!(error, ConnectError::Refused { .. }) {
                    self.count_refusal();
                }
                let effects = rules::connect_failed(
                    &mut self.path,
                    error,
                    Instant::now(),
                    &self.deps.config,
                    &self.provider,
                );
                self.apply(myself, effects);
                return;
            }
        };
        self.provider = provider;
        // Everything of the previous session is final now. An owned session
        // starts a new chain (lines numbered from here on belong to it); an
        // attached one continues the call's own conversation.
        let epoch = self.begin_session();
        // What a new owned session is told: every line numbered so far,
        // fixed before its reader can number another.
        let before = self.call.next_sequence();
        // Read from the first moment: the service may speak while the
        // session is still being configured.
        let reader = tokio::spawn(
            read_socket(
                frames,
                ReaderContext {
                    epoch,
                    call: self.call.clone(),
                    writer: self.deps.writer.clone(),
                    actor: myself.clone(),
                    silence_timeout: self.deps.config.silence_timeout,
                    backlog_retry: self.deps.config.backlog_retry,
                    protocol: self.protocol,
                },
            )
            .instrument(self.span.clone()),
        );
        let mut session = Session::new(epoch, outbox, reader);
        self.sessions += 1;
        let (replayed, sent) = self.open_session(myself, &mut session, before).await;
        // A failed send means the socket is going away: its reader reports the end.
        if let Err(error) = sent {
            tracing::info!(meeting = %self.meeting(), %error, "socket failed while configuring the session");
        }
        self.session = Some(session);
        self.socket_state = SocketState::Open;
        self.log(CallEvent::SocketConnected {
            session: self.sessions,
            incarnation: self.incarnation,
            replayed_lines: replayed,
        });
        self.call.session_opened();
    }

    /// Makes everything of the previous session final and returns the new
    /// session's epoch: an owned call's next session starts a new chain, an
    /// attached call's continues its conversation.
    fn begin_session(&mut self) -> u64 {
        self.path.next_session(&self.call, &self.deps.writer)
    }

    /// Sends what opens the session on the call's path and arms the
    /// confirmation deadline. Returns the lines replayed (or seeded) and
    /// whether the sends went through.
    async fn open_session(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        session: &mut Session,
        before: i64,
    ) -> (usize, Sent) {
        let history = match self.protocol.history(&self.context.path) {
            _ if before <= 1 => History::None,
            history => history,
        };
        let seed = match history {
            History::Seed => self.replay_or_log(before).await,
            History::None | History::Replay => Vec::new(),
        };
        let config = &self.deps.config;
        let settings = SessionSettings {
            instructions: &self.context.instructions,
            voice: &config.voice,
            transcription_model: &config.transcription_model,
            live_model: &config.live_model,
        };
        let opening = self.protocol.opening(&self.context.path, &settings, &seed);
        if !opening.awaits_confirmation {
            // Nothing to confirm: the call's session is running.
            session.configured = true;
        }
        let mut sent = Ok(());
        for frame in opening.setup {
            sent = session.send(frame).await;
            if sent.is_err() {
                break;
            }
        }
        if opening.awaits_confirmation {
            let epoch = session.epoch;
            let deadline = self.deps.config.session_update_timeout;
            myself.send_after(deadline, move || MeetingMsg::SessionUpdateDeadline {
                epoch,
            });
        }
        let mut replayed = opening.seeded;
        if sent.is_ok() && history == History::Replay {
            let lines = self.replay_or_log(before).await;
            for frame in self.protocol.replay(&lines) {
                sent = session.send(frame).await;
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
                self.log(CallEvent::RealtimeError(RealtimeError {
                    error: Some(format!("replay skipped: {error}")),
                    ..RealtimeError::default()
                }));
                Vec::new()
            }
        }
    }

    /// Sends the client events queued by handlers that could not wait.
    pub async fn flush_outgoing(&mut self) {
        if let Some(session) = self.session.as_mut() {
            session.flush().await;
        }
    }

    /// No confirmation of session `epoch`'s settings came in time.
    pub fn on_session_update_deadline(&mut self, myself: &ActorRef<MeetingMsg>, epoch: u64) {
        let configured = self.current(epoch).is_none_or(|s| s.configured);
        if configured || self.problem.is_some() {
            return;
        }
        let effect = rules::confirmation_missed(
            self.is_reattach(),
            &self.provider,
            self.deps.config.session_update_timeout,
        );
        self.apply(myself, vec![effect]);
    }

    /// The session's socket ended: its open lines end, and the path's rule
    /// decides what comes next.
    pub fn on_socket_end(&mut self, myself: &ActorRef<MeetingMsg>, end: SocketEnd) {
        let Some(session) = self.session.take() else {
            return;
        };
        // Whether the socket was ever heard is read before its lines end.
        let heard = self.call.heard() > 0;
        self.begin_session();
        self.log(rules::socket_closed(&end));
        if self.ending || self.over {
            self.socket_state = SocketState::Closed;
            return;
        }
        let ended = Ended {
            end: &end,
            heard,
            opened: session.opened,
            refusal: session.refusal.clone(),
            already_shown: self.socket_state == SocketState::ConfigurationError
                && self.problem.is_some(),
            provider: &self.provider,
        };
        let effects = rules::socket_ended(&mut self.path, ended, Instant::now(), &self.deps.config);
        self.apply(myself, effects);
    }

    /// The service said when session `epoch` expires (`expires_at`, Unix
    /// seconds): arm its rotation, when the call's path rotates.
    pub(super) fn schedule_rotation(
        &mut self,
        myself: &ActorRef<MeetingMsg>,
        expires_at: Option<i64>,
    ) {
        let schedule = rules::rotation_schedule(
            &self.path,
            expires_at,
            Utc::now().timestamp(),
            &self.deps.config,
        );
        let (Some((left, delay)), Some(session)) = (schedule, self.session.as_mut()) else {
            return;
        };
        session.expires = Some(Instant::now() + left);
        let epoch = session.epoch;
        myself.send_after(delay, move || MeetingMsg::Rotate { epoch });
    }

    /// The rotation timer of session `epoch` fired.
    pub async fn on_rotate(&mut self, myself: &ActorRef<MeetingMsg>, epoch: u64) {
        let Some(session) = self.current(epoch) else {
            return;
        };
        let expires = session.expires;
        match rules::rotation(
            self.call.is_idle(),
            expires,
            Instant::now(),
            &self.deps.config,
        ) {
            Rotation::Now { forced } => Box::pin(self.rotate(myself, forced)).await,
            Rotation::Later(delay) => {
                myself.send_after(delay, move || MeetingMsg::Rotate { epoch });
            }
        }
    }

    /// Replaces the session before it expires: closes it, then opens a new
    /// one with the conversation replayed.
    /// `forced`: mid-turn, because the session is about to expire.
    async fn rotate(&mut self, myself: &ActorRef<MeetingMsg>, forced: bool) {
        if let Some(session) = self.session.take() {
            session.close().await;
        }
        if forced {
            self.log(CallEvent::RotationForced {
                reason: "the session was about to expire and the turn had not ended".into(),
            });
        }
        self.log(CallEvent::SocketRotated {
            reason: "session close to its expiry; replaced between turns".into(),
        });
        self.connect(myself).await;
    }

    /// Waits (up to the grace period) for what the session holds to become
    /// final, closes the socket, then ends the call with [`end_call`]. With
    /// `hang_up`, scribe first ends the provider's call it is attached to
    /// (the call ends because scribe was told to end it).
    pub async fn finalize(&mut self, ended_at: DateTime<Utc>, hang_up: bool) -> Option<Finalized> {
        self.ending = true;
        let grace_deadline = Instant::now() + self.deps.config.finalize_grace;
        if let Some(how) = self.context.path.hang_up().filter(|_| hang_up) {
            self.hang_up(how, grace_deadline).await;
        }
        self.finish_session(grace_deadline).await;
        if let Some(session) = self.session.take() {
            session.close().await;
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

    /// Before a call is finalized, gives its session the grace period to
    /// make what it holds final: Realtime's outstanding user
    /// transcriptions; GPT-Live's `session.close`, whose `session.closed`
    /// makes every pending fragment a `completed` line.
    async fn finish_session(&mut self, deadline: Instant) {
        let pending = self.protocol.pending();
        if self.call.pending(pending) == 0 {
            return;
        }
        if let Some(close) = self.protocol.close() {
            let Some(session) = self.session.as_mut() else {
                return;
            };
            if session.send(close).await.is_err() {
                return;
            }
        }
        self.call
            .wait_until(deadline, |c| c.pending(pending) == 0)
            .await;
    }
}
