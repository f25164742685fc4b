//! What a MeetingActor holds (ractor's actor state; the meeting's status
//! machine is [`crate::lifecycle`]), and how it carries out the effects
//! its [`rules`](super::rules) decide.

use std::sync::Arc;

use backon::ExponentialBackoff;
use ractor::ActorRef;
use tokio::time::Instant;

use super::deps::CallDeps;
use super::msg::MeetingMsg;
use super::rules::{Effect, PathState, When};
use super::session::Session;
use super::shared::SharedCall;
use crate::call_log::{CallEvent, Problem, Shown};
use crate::ids::MeetingId;
use crate::ports::CallContext;
use crate::snapshot::{ActorKind, ActorSnapshot, ActorState, MeetingPhase, SocketState};
use crate::voice::{self, VoiceProtocol};

pub struct MeetingState {
    pub(super) context: CallContext,
    pub(super) call: Arc<SharedCall>,
    pub(super) deps: Arc<CallDeps>,
    /// The protocol the call's sessions speak (its path's voice API).
    pub(super) protocol: &'static dyn VoiceProtocol,
    /// What the call's path keeps between sockets.
    pub(super) path: PathState,
    pub(super) incarnation: u32,
    pub(super) started: Instant,
    /// The open socket's session.
    pub(super) session: Option<Session>,
    pub(super) socket_state: SocketState,
    pub(super) backoff: ExponentialBackoff,
    /// Sessions opened by this actor.
    pub(super) sessions: u32,
    /// Who serves the current (or last) session, for messages.
    pub(super) provider: String,
    /// What the meeting shows as its `error` now (scribe's words), and the
    /// whole story for `/admin/actors`.
    pub(super) problem: Option<(String, String)>,
    /// The call is being finalized.
    pub(super) ending: bool,
    /// The call was declared over: its finalization is on its way, and a
    /// socket that ends meanwhile is not replaced.
    pub(super) over: bool,
    /// The span every log line of this actor sits in (its meeting, call
    /// path and voice API); not exported as a trace span.
    pub(super) span: tracing::Span,
}

impl MeetingState {
    /// A call's actor state before its first session.
    pub fn new(
        context: CallContext,
        call: Arc<SharedCall>,
        deps: Arc<CallDeps>,
        incarnation: u32,
    ) -> Self {
        let span = tracing::info_span!(
            target: "scribe::log",
            "call",
            meeting = %context.meeting_id,
            call.path = crate::trace::path_name(&context.path),
            voice.api = context.path.api().as_str(),
        );
        Self {
            span,
            backoff: deps.reconnect_backoff(),
            protocol: voice::protocol(context.path.api()),
            path: PathState::of(&context.path),
            context,
            call,
            deps,
            incarnation,
            started: Instant::now(),
            session: None,
            socket_state: SocketState::Connecting,
            sessions: 0,
            provider: "the realtime service".into(),
            problem: None,
            ending: false,
            over: false,
        }
    }

    pub fn meeting(&self) -> MeetingId {
        self.context.meeting_id
    }

    pub(super) fn log(&self, event: CallEvent) {
        self.deps.log(self.meeting(), event);
    }

    /// True when `epoch` is the session this actor has open now.
    pub fn is_current(&self, epoch: u64) -> bool {
        self.session.as_ref().is_some_and(|s| s.epoch == epoch)
    }

    /// The current session, when `epoch` is it.
    pub(super) fn current(&mut self, epoch: u64) -> Option<&mut Session> {
        self.session.as_mut().filter(|s| s.epoch == epoch)
    }

    /// The span of the session about to open, in the meeting's trace.
    pub(super) fn opening_span(&self) -> tracing::Span {
        let reattach = self.path.is_reattach(
            self.sessions + 1,
            self.incarnation,
            self.context.next_sequence,
        );
        crate::meeting_span!(
            self.meeting(),
            "session.open",
            call.path = crate::trace::path_name(&self.context.path),
            voice.api = self.context.path.api().as_str(),
            session = self.sessions + 1,
            incarnation = self.incarnation,
            reattach,
        )
    }

    /// Counts a session the provider refused (its connection or its setup).
    pub(super) fn count_refusal(&self) {
        metrics::counter!(
            crate::metrics::SESSIONS_REFUSED,
            "voice_api" => self.context.path.api().as_str()
        )
        .increment(1);
    }

    /// A sideband to a call scribe was attached to before.
    pub(super) fn is_reattach(&self) -> bool {
        self.path
            .is_reattach(self.sessions, self.incarnation, self.context.next_sequence)
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

    /// Carries out what a rule decided, in order.
    pub(super) fn apply(&mut self, myself: &ActorRef<MeetingMsg>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Log(event) => self.log(event),
                Effect::Show(shown, problem) => self.show_problem(shown, problem),
                Effect::Misconfigured(problem) => {
                    self.socket_state = SocketState::ConfigurationError;
                    self.show_problem(Shown::ConfigurationError, problem);
                }
                Effect::Connect { why, when } => self.reconnect(myself, &why, when),
                Effect::CallOver(why) => {
                    // From inside a handler: finalized by the next message.
                    self.over = true;
                    let _ = myself.cast(MeetingMsg::CallOver { why });
                }
            }
        }
    }

    /// Shows a problem with the call's realtime session: `shown` on the
    /// meeting (its status, page and stream), `detail` in the event log and
    /// on `/admin/actors`.
    fn show_problem(&mut self, how: Shown, problem: Problem) {
        let (shown, detail) = (problem.error.clone(), problem.detail.0.clone());
        tracing::warn!(meeting = %self.meeting(), error = %detail, "realtime session problem");
        self.log(how.event(problem));
        self.deps
            .writer
            .set_error(self.meeting(), self.context.lease, Some(shown.clone()));
        self.problem = Some((shown, detail));
    }

    /// The problem is gone (a later session was configured).
    pub(super) fn clear_problem(&mut self) {
        if self.problem.take().is_some() {
            self.deps
                .writer
                .set_error(self.meeting(), self.context.lease, None);
        }
    }

    /// Opens a new session, at once or after the backoff's next delay.
    fn reconnect(&mut self, myself: &ActorRef<MeetingMsg>, why: &str, when: When) {
        let delay = match when {
            When::AtOnce => None,
            When::Backoff { floor } => Some(
                self.backoff
                    .next()
                    .unwrap_or(self.deps.config.reconnect_max)
                    .max(floor.unwrap_or_default()),
            ),
        };
        self.socket_state = SocketState::Reconnecting;
        metrics::counter!(crate::metrics::RECONNECTS).increment(1);
        let delay_ms = delay.map_or(0, |d| d.as_millis() as u64);
        self.log(CallEvent::SocketReconnecting {
            delay_ms,
            reason: why.to_owned(),
        });
        match delay {
            None => {
                let _ = myself.cast(MeetingMsg::Connect);
            }
            Some(delay) => {
                myself.send_after(delay, || MeetingMsg::Connect);
            }
        }
    }
}
