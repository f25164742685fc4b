//! The meeting actor's rules as data: functions from what the actor knows
//! and what just happened to what it does ([`Effect`]s). The handlers
//! gather the facts, call a rule and carry its effects out
//! (`MeetingState::apply`); the rules are tested here, directly, with
//! time passed in.
//!
//! Where owned and attached calls differ, the rule matches on
//! [`PathState`]: a kind of call a rule forgot does not compile.
//!
//! Attached calls: OpenAI does not document what a re-attach to a call
//! that has ended answers. Every plausible answer is taken as the call
//! being over:
//!
//! - the upgrade answered 404 (`ConnectError::Gone`): at once;
//! - a socket that ends within `attach_grace` without one event from the
//!   service (an `error` does not count), `attach_gone_after` times in a
//!   row (an error then a close, a bare close, a close frame);
//! - no socket alive for `reattach_window` since the sideband was lost
//!   (refused connections, timeouts, a key that no longer works).

use std::time::Duration;

use tokio::time::Instant;

use super::deps::CallConfig;
use super::msg::SocketEnd;
use super::shared::SharedCall;
use crate::call_log::{CallEvent, Private, Problem, RealtimeError, Shown};
use crate::path::CallPath;
use crate::ports::ConnectError;
use crate::voice::Setup;
use crate::voice::event::ErrorInfo;
use crate::writer::ChunkWriter;

/// What the actor does.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// An entry in the meeting's event log.
    Log(CallEvent),
    /// A problem with the session: its `error` shown on the meeting (its
    /// status, page and stream), its `detail` in the event log and on
    /// `/admin/actors`.
    Show(Shown, Problem),
    /// A configuration the service refused: shown, and no retry until
    /// someone fixes it.
    Misconfigured(Problem),
    /// Open a session again.
    Connect { why: String, when: When },
    /// The call is over: finalize it; from now on a socket's end opens
    /// nothing.
    CallOver(String),
}

/// When the next session opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Now (a live sideband was just lost: when the provider ended the
    /// call, it says so right away).
    AtOnce,
    /// After the backoff's next delay, at least `floor`.
    Backoff { floor: Option<Duration> },
}

/// What a call's path keeps between sockets.
#[derive(Debug)]
pub enum PathState {
    /// scribe owns the session: a lost one is replaced.
    Owned,
    /// scribe attaches to a call someone else carries.
    Attached(AttachWatch),
}

impl PathState {
    pub fn of(path: &CallPath) -> Self {
        match path {
            CallPath::Owned { .. } => Self::Owned,
            CallPath::Attached { .. } => Self::Attached(AttachWatch::default()),
        }
    }

    /// A sideband to a call scribe was attached to before (an earlier
    /// socket of this actor, an earlier actor, process or instance): the
    /// call was configured then, so nothing about its settings is shown on
    /// the meeting now.
    pub fn is_reattach(&self, sessions: u32, incarnation: u32, next_sequence: i64) -> bool {
        match self {
            Self::Owned => false,
            Self::Attached(_) => sessions > 1 || incarnation > 0 || next_sequence > 1,
        }
    }

    /// Ends the call's current session (its open lines become lines) and
    /// returns the next one's epoch: an owned call's next session starts a
    /// new chain; an attached call's continues its conversation.
    pub fn next_session(&self, call: &SharedCall, writer: &ChunkWriter) -> u64 {
        match self {
            Self::Owned => call.end_session(writer),
            Self::Attached(_) => call.detach(writer),
        }
    }

    /// Whether a session's expiry is scribe's to act on: an owned session
    /// is replaced before it expires; an attached session's `expires_at` is
    /// the call's own limit, and the call ends when the provider ends it.
    pub const fn rotates(&self) -> bool {
        match self {
            Self::Owned => true,
            Self::Attached(_) => false,
        }
    }
}

/// How an attached call's sideband has fared since it was last heard.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttachWatch {
    /// Since when no socket has been alive, when none is.
    pub lost_since: Option<Instant>,
    /// Sockets in a row that ended soon without one event from the service.
    pub empty: u32,
    /// A live sideband was just lost: the first re-attach goes at once.
    pub at_once: bool,
}

impl AttachWatch {
    /// A sideband socket that opened at `opened` ended at `now` without
    /// scribe asking; `heard`: the service sent it an event (errors not
    /// counted). Returns why the call is over, when it is.
    pub fn lost(
        &mut self,
        heard: bool,
        opened: Instant,
        now: Instant,
        config: &CallConfig,
        provider: &str,
    ) -> Option<String> {
        let lasted = now.saturating_duration_since(opened) >= config.attach_grace;
        if heard || lasted {
            self.empty = 0;
            self.lost_since = Some(now);
            self.at_once = true;
        } else {
            self.empty += 1;
            self.lost_since.get_or_insert(now);
        }
        self.over(now, config, provider)
    }

    /// Why the call counts as over at `now`, when it does.
    pub fn over(&self, now: Instant, config: &CallConfig, provider: &str) -> Option<String> {
        if self.empty >= config.attach_gone_after {
            return Some(format!(
                "{} re-attaches in a row ended within {} s without a word from {provider}",
                self.empty,
                config.attach_grace.as_secs(),
            ));
        }
        let window = config.reattach_window;
        self.lost_since
            .filter(|since| now.saturating_duration_since(*since) >= window)
            .map(|_| {
                format!(
                    "no sideband to the call stayed attached for {} s",
                    window.as_secs()
                )
            })
    }

    /// Attaches again (`why`), unless the call counts as over: at once
    /// after a live sideband was lost, else after the backoff (at least
    /// `floor`).
    pub fn reattach(
        &mut self,
        why: &str,
        floor: Option<Duration>,
        now: Instant,
        config: &CallConfig,
        provider: &str,
    ) -> Effect {
        self.lost_since.get_or_insert(now);
        if let Some(over) = self.over(now, config, provider) {
            return Effect::CallOver(over);
        }
        let when = if std::mem::take(&mut self.at_once) && floor.is_none() {
            When::AtOnce
        } else {
            When::Backoff { floor }
        };
        Effect::Connect {
            why: why.to_owned(),
            when,
        }
    }
}

/// A session could not be opened.
pub fn connect_failed(
    path: &mut PathState,
    error: ConnectError,
    now: Instant,
    config: &CallConfig,
    provider: &str,
) -> Vec<Effect> {
    match error {
        ConnectError::Config(message) => vec![Effect::Misconfigured(Problem {
            error: format!("the realtime connection is misconfigured: {message}"),
            detail: Private(message),
            retry: Some(false),
            ..Problem::default()
        })],
        ConnectError::Gone { provider, call } => vec![Effect::CallOver(format!(
            "{provider} answered that call {call} does not exist"
        ))],
        ConnectError::Refused {
            provider: refusing,
            status,
        } => {
            let shown = format!(
                "{refusing} refused the connection (HTTP {status}): check OPENAI_API_KEY, the realtime URL and the model"
            );
            let detail = format!("the upgrade was answered HTTP {status}");
            match path {
                // The call goes on without scribe: keep trying, slowly,
                // until the call counts as over.
                PathState::Attached(watch) => {
                    let retry = config.refused_retry;
                    let problem = Problem {
                        error: shown,
                        detail: Private(detail),
                        status: Some(status),
                        retry_in_ms: Some(retry.as_millis() as u64),
                        ..Problem::default()
                    };
                    vec![
                        Effect::Show(Shown::ConfigurationError, problem),
                        watch.reattach(
                            "the sideband was refused",
                            Some(retry),
                            now,
                            config,
                            provider,
                        ),
                    ]
                }
                PathState::Owned => vec![Effect::Misconfigured(Problem {
                    error: shown,
                    detail: Private(detail),
                    status: Some(status),
                    retry: Some(false),
                    ..Problem::default()
                })],
            }
        }
        error @ (ConnectError::Io(_) | ConnectError::Timeout(_)) => {
            let why = error.to_string();
            match path {
                PathState::Attached(watch) => {
                    vec![watch.reattach(&why, None, now, config, provider)]
                }
                PathState::Owned => vec![Effect::Connect {
                    why,
                    when: When::Backoff { floor: None },
                }],
            }
        }
    }
}

/// What the actor knows when a socket ended without scribe asking.
#[derive(Debug, Clone)]
pub struct Ended<'a> {
    pub end: &'a SocketEnd,
    /// The service sent the socket an event (errors not counted).
    pub heard: bool,
    pub opened: Instant,
    /// A configuration error the service reported before the close.
    pub refusal: Option<String>,
    /// The session's refusal is already on the meeting in its own words
    /// (a refused `session.start`).
    pub already_shown: bool,
    pub provider: &'a str,
}

/// A socket of a call that goes on ended.
pub fn socket_ended(
    path: &mut PathState,
    ended: Ended<'_>,
    now: Instant,
    config: &CallConfig,
) -> Vec<Effect> {
    let provider = ended.provider;
    match path {
        PathState::Attached(watch) => {
            if let Some(over) = watch.lost(ended.heard, ended.opened, now, config, provider) {
                return vec![Effect::CallOver(over)];
            }
            // An error before the close on a sideband usually says the call
            // is gone; the re-attach rule decides, so no slow floor here.
            vec![watch.reattach(
                "the sideband socket ended while the call is live",
                None,
                now,
                config,
                provider,
            )]
        }
        PathState::Owned if ended.already_shown => Vec::new(),
        PathState::Owned if ended.end.is_configuration_error() || ended.refusal.is_some() => {
            let detail = ended.refusal.clone().unwrap_or_else(|| {
                format!("realtime service closed the socket with {:?}", ended.end)
            });
            let code = detail.split(':').next().unwrap_or_default().to_owned();
            let shown = match (ended.end, ended.refusal.is_some()) {
                (_, true) => format!("{provider} refused the session: {code}"),
                (SocketEnd::Closed { code: Some(c), .. }, false) => {
                    format!("{provider} closed the session as misconfigured (close {c})")
                }
                _ => format!("{provider} closed the session as misconfigured"),
            };
            vec![Effect::Misconfigured(Problem {
                error: shown,
                detail: Private(detail),
                retry: Some(false),
                hint: Some("check OPENAI_API_KEY, the realtime URL and the model".into()),
                ..Problem::default()
            })]
        }
        PathState::Owned => vec![Effect::Connect {
            why: "the realtime session ended while the call is live".into(),
            when: When::Backoff { floor: None },
        }],
    }
}

/// What the ending of a socket logs.
pub fn socket_closed(end: &SocketEnd) -> CallEvent {
    let (code, reason) = match end {
        SocketEnd::Closed { code, reason } => (*code, reason.clone()),
        SocketEnd::Eof => (None, "connection ended without a close frame".to_owned()),
        SocketEnd::Error(e) => (None, e.clone()),
        SocketEnd::Silent(d) => (None, format!("nothing received for {} s", d.as_secs())),
        SocketEnd::Superseded => (None, "session superseded".to_owned()),
    };
    CallEvent::SocketClosed {
        code,
        reason: Private(reason),
    }
}

/// GPT-Live `session.closed`, by its reason. On an attached call it is
/// final whatever the reason: the call is over, finalized at once, with
/// nothing on the meeting for a normal end (`close_requested`,
/// `remote_hangup`, `expired`) and the reason shown for the others
/// (`content`, `connection_lost`, one not documented). On an owned
/// session:
/// - `remote_hangup`, `close_requested`: the call is over, finalize now;
/// - `expired`: logged; the socket's end opens a new session, seeded;
/// - anything else: in the log and on the meeting; the socket's end then
///   opens a new session.
pub fn session_closed(path: &PathState, reason: Option<String>) -> Vec<Effect> {
    let reason = reason.unwrap_or_else(|| "unknown".to_owned());
    let over = Effect::CallOver(format!("GPT-Live closed the session: {reason}"));
    match (path, reason.as_str()) {
        (PathState::Attached(_), "close_requested" | "remote_hangup" | "expired") => vec![over],
        (PathState::Attached(_), other) => {
            let shown = match other {
                "content" => {
                    "GPT-Live ended the call: its safety filter stopped it (content)".to_owned()
                }
                "connection_lost" => {
                    "GPT-Live ended the call: its connection was lost (connection_lost)".to_owned()
                }
                other => format!("GPT-Live ended the call: {other}"),
            };
            let problem = Problem {
                error: shown,
                detail: Private(reason.clone()),
                reason: Some(reason.clone()),
                last: Some(true),
                ..Problem::default()
            };
            vec![Effect::Show(Shown::SessionClosed, problem), over]
        }
        (PathState::Owned, "remote_hangup" | "close_requested") => vec![over],
        (PathState::Owned, "expired") => vec![Effect::Log(CallEvent::SessionClosed(Problem {
            reason: Some(reason.clone()),
            next: Some("a new session, seeded with the recent lines".into()),
            ..Problem::default()
        }))],
        (PathState::Owned, _) => vec![Effect::Show(
            Shown::SessionClosed,
            Problem {
                error: format!("GPT-Live closed the call's session: {reason}"),
                detail: Private(reason.clone()),
                reason: Some(reason.clone()),
                ..Problem::default()
            },
        )],
    }
}

/// The service refused the event that configures the session. Returns the
/// effects, and the refusal to remember for the socket's end when it
/// leaves no session.
pub fn setup_refused(
    setup: Setup,
    reattach: bool,
    provider: &str,
    error: &ErrorInfo,
) -> (Vec<Effect>, Option<String>) {
    let code = error.code.clone().unwrap_or_default();
    let field = error
        .param
        .as_deref()
        .map(|p| format!(" for `{p}`"))
        .unwrap_or_default();
    let event = setup.event;
    if setup.refusal_ends_session {
        // No session: the configuration is wrong. Not retried.
        let refusal = format!("{code}: {}", error.message);
        let effect = Effect::Misconfigured(Problem {
            error: format!("{provider} refused scribe's session ({event}): {code}{field}"),
            detail: Private(error.message.clone()),
            code: Some(code),
            param: error.param.clone(),
            event: Some(event.to_owned()),
            retry: Some(false),
            ..Problem::default()
        });
        return (vec![effect], Some(refusal));
    }
    if reattach {
        // The call was configured when it started: a refusal now changes
        // nothing it records. Logged, never shown.
        let logged = CallEvent::RealtimeError(RealtimeError {
            code: Some(code),
            message: Some(Private(error.message.clone())),
            param: error.param.clone(),
            event: Some(event.to_owned()),
            reattach: Some(true),
            ..RealtimeError::default()
        });
        return (vec![Effect::Log(logged)], None);
    }
    // The session stays open; what it records is not what scribe asked for.
    let problem = Problem {
        error: format!("{provider} refused scribe's session settings ({event}): {code}{field}"),
        detail: Private(error.message.clone()),
        code: Some(code),
        param: error.param.clone(),
        event: Some(event.to_owned()),
        ..Problem::default()
    };
    (vec![Effect::Show(Shown::ConfigurationError, problem)], None)
}

/// No confirmation of the session's settings came within `waited`.
pub fn confirmation_missed(reattach: bool, provider: &str, waited: Duration) -> Effect {
    if reattach {
        return Effect::Log(CallEvent::RealtimeError(RealtimeError {
            error: Some(
                "no session.updated confirmed the re-attached sideband's transcription setting"
                    .into(),
            ),
            reattach: Some(true),
            ..RealtimeError::default()
        }));
    }
    Effect::Show(
        Shown::ConfigurationError,
        Problem {
            error: format!(
                "{provider} did not confirm scribe's session settings within {}",
                spoken(waited)
            ),
            detail: Private(format!(
                "no session.updated within {waited:?} of session.update"
            )),
            event: Some("session.update".into()),
            ..Problem::default()
        },
    )
}

/// A duration as a person says it: "10 s", "300 ms".
fn spoken(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// When to replace a session: how long it has (`expires_at` and `now` in
/// Unix seconds), and how soon to look for a moment between turns.
/// `None`: the path never rotates, or the service named no expiry.
pub fn rotation_schedule(
    path: &PathState,
    expires_at: Option<i64>,
    now_unix: i64,
    config: &CallConfig,
) -> Option<(Duration, Duration)> {
    let expires_at = expires_at.filter(|_| path.rotates())?;
    let left = Duration::from_secs(u64::try_from(expires_at - now_unix).unwrap_or(0));
    Some((left, left.saturating_sub(config.rotate_before_expiry)))
}

/// What a rotation timer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Replace the session now; `forced`: mid-turn, because it is about to
    /// expire.
    Now { forced: bool },
    /// A turn is in progress: look again after this long.
    Later(Duration),
}

/// Time to rotate: between turns, now; mid-turn, only when the session
/// expires within `rotate_force_before`.
pub fn rotation(
    idle: bool,
    expires: Option<Instant>,
    now: Instant,
    config: &CallConfig,
) -> Rotation {
    if idle {
        return Rotation::Now { forced: false };
    }
    if expires.is_some_and(|at| now + config.rotate_force_before >= at) {
        return Rotation::Now { forced: true };
    }
    Rotation::Later(config.rotate_retry)
}

#[cfg(test)]
mod tests;
