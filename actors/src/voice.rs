//! OpenAI's voice protocols as scribe speaks them: the server events both
//! protocols map into ([`event`]), OpenAI Realtime's client events and its
//! socket ([`realtime`]), GPT-Live's events and `session.start`
//! ([`gpt_live`]).
//!
//! [`VoiceProtocol`] is what a call's actor asks of its protocol: how to
//! read a frame, what opens a session on the call's path, what makes the
//! session's last words final, and which event configures it. The two
//! implementations are [`Realtime`] and [`GptLive`]; [`protocol`] picks one
//! for a voice API.

pub mod event;
pub mod gpt_live;
pub mod realtime;

use crate::domain::{Speaker, VoiceApi};
use crate::path::CallPath;
use event::{FrameError, ServerEvent};

/// What scribe asks of every session it configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings<'a> {
    pub instructions: &'a str,
    pub voice: &'a str,
    /// The model that transcribes the user (Realtime).
    pub transcription_model: &'a str,
    /// The model a session starts with (GPT-Live's `session.start`).
    pub live_model: &'a str,
}

/// What opens a session, sent as soon as the socket is open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opening {
    /// What configures the session (`session.update`, `session.start`).
    pub setup: Vec<String>,
    /// Stored lines carried inside the setup (GPT-Live's seed).
    pub seeded: usize,
    /// The service confirms the setup (`session.updated`,
    /// `session.started`), within a deadline; `false`: the session is
    /// configured as it opens.
    pub awaits_confirmation: bool,
}

/// What a new session is told of the conversation so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Nothing: the session has its conversation (attached).
    None,
    /// The stored lines ride inside the setup (GPT-Live's seed): read
    /// before the setup is sent.
    Seed,
    /// The stored lines follow the setup as conversation items
    /// (Realtime's replay): read once the setup is on its way.
    Replay,
}

/// What the service holds that a call's end waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Realtime: user turns whose transcription has not completed.
    UserTranscriptions,
    /// GPT-Live: fragments not sealed into lines yet.
    Fragments,
}

/// The event that configures a session, and what its refusal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// The `event_id` scribe gives it, which an `error` echoes.
    pub event_id: &'static str,
    /// Its `type`, for messages.
    pub event: &'static str,
    /// A refusal leaves no session (GPT-Live's `session.start`): not
    /// retried. Otherwise the session goes on with the service's settings.
    pub refusal_ends_session: bool,
}

/// One voice protocol, as a call's actor uses it.
pub trait VoiceProtocol: Send + Sync + 'static {
    /// One text frame from the service.
    fn parse(&self, frame: &str) -> Result<ServerEvent, FrameError>;

    /// What a new session on `path` is told of the conversation so far.
    fn history(&self, path: &CallPath) -> History;

    /// What opens a session on `path`; `seed` holds the stored lines
    /// (oldest first) when [`Self::history`] is [`History::Seed`].
    fn opening(
        &self,
        path: &CallPath,
        settings: &SessionSettings<'_>,
        seed: &[(Speaker, String)],
    ) -> Opening;

    /// The stored lines as the client events that replay them
    /// ([`History::Replay`]).
    fn replay(&self, lines: &[(Speaker, String)]) -> Vec<String>;

    /// The client event that ends the session and makes what it holds
    /// final, when the protocol has one.
    fn close(&self) -> Option<String>;

    /// What the end of a call waits for.
    fn pending(&self) -> Pending;

    /// The event that configures a session.
    fn setup(&self) -> Setup;
}

/// OpenAI Realtime: a transcript of items chained by `previous_item_id`.
#[derive(Debug, Clone, Copy)]
pub struct Realtime;

/// GPT-Live: timed fragments on one session clock.
#[derive(Debug, Clone, Copy)]
pub struct GptLive;

/// The protocol a call on `api` speaks.
pub fn protocol(api: VoiceApi) -> &'static dyn VoiceProtocol {
    match api {
        VoiceApi::Realtime => &Realtime,
        VoiceApi::Live => &GptLive,
    }
}

impl VoiceProtocol for Realtime {
    fn parse(&self, frame: &str) -> Result<ServerEvent, FrameError> {
        event::parse(frame)
    }

    /// An owned session is replayed what was said; an attached one has its
    /// conversation.
    fn history(&self, path: &CallPath) -> History {
        match path {
            CallPath::Owned { .. } => History::Replay,
            CallPath::Attached { .. } => History::None,
        }
    }

    /// Owned: `session.update`, then the stored lines as items. Attached:
    /// a `session.update` of input transcription only, on every attach:
    /// the rest was set when the call was created or accepted, and the
    /// voice cannot change once the assistant has spoken.
    fn opening(
        &self,
        path: &CallPath,
        settings: &SessionSettings<'_>,
        _seed: &[(Speaker, String)],
    ) -> Opening {
        let update = match path {
            CallPath::Owned { .. } => realtime::session_update(
                settings.instructions,
                settings.voice,
                settings.transcription_model,
            ),
            CallPath::Attached { .. } => realtime::sideband_update(settings.transcription_model),
        };
        Opening {
            setup: vec![update],
            seeded: 0,
            awaits_confirmation: true,
        }
    }

    fn replay(&self, lines: &[(Speaker, String)]) -> Vec<String> {
        lines
            .iter()
            .enumerate()
            .map(|(n, (speaker, text))| realtime::replay_item(n, *speaker, text))
            .collect()
    }

    fn close(&self) -> Option<String> {
        None
    }

    fn pending(&self) -> Pending {
        Pending::UserTranscriptions
    }

    fn setup(&self) -> Setup {
        Setup {
            event_id: realtime::SESSION_UPDATE_EVENT_ID,
            event: "session.update",
            refusal_ends_session: false,
        }
    }
}

impl VoiceProtocol for GptLive {
    fn parse(&self, frame: &str) -> Result<ServerEvent, FrameError> {
        gpt_live::parse_live(frame)
    }

    fn history(&self, path: &CallPath) -> History {
        match path {
            CallPath::Owned { .. } => History::Seed,
            CallPath::Attached { .. } => History::None,
        }
    }

    /// Owned: `session.start`, seeded (`session.input`) with the most
    /// recent stored lines that fit its limits, confirmed by
    /// `session.started`. Attached: nothing (the session started with the
    /// call; a sideband never sends `session.start`).
    fn opening(
        &self,
        path: &CallPath,
        settings: &SessionSettings<'_>,
        seed: &[(Speaker, String)],
    ) -> Opening {
        match path {
            CallPath::Attached { .. } => Opening::default(),
            CallPath::Owned { .. } => Opening {
                setup: vec![gpt_live::session_start(
                    settings.live_model,
                    settings.instructions,
                    settings.voice,
                    seed,
                )],
                seeded: gpt_live::seed(seed).len().min(gpt_live::SEED_MAX_MESSAGES),
                awaits_confirmation: true,
            },
        }
    }

    fn replay(&self, _lines: &[(Speaker, String)]) -> Vec<String> {
        Vec::new()
    }

    fn close(&self) -> Option<String> {
        Some(gpt_live::session_close())
    }

    fn pending(&self) -> Pending {
        Pending::Fragments
    }

    fn setup(&self) -> Setup {
        Setup {
            event_id: gpt_live::LIVE_START_EVENT_ID,
            event: "session.start",
            refusal_ends_session: true,
        }
    }
}
