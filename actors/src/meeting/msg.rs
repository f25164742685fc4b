//! What a MeetingActor is told: by the supervisor, by its socket reader, by
//! its own timers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;

use crate::snapshot::ActorSnapshot;
use crate::transcript::Notice;
use crate::voice::event::{ErrorInfo, ServerEvent};

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
    /// `session.updated` should have confirmed session `epoch`'s settings
    /// by now.
    SessionUpdateDeadline {
        epoch: u64,
    },
    /// The call ended: drain, write, move to `processing`, then stop.
    Finalize {
        ended_at: DateTime<Utc>,
    },
    /// The provider ended this attached call: finalize it, then stop with
    /// `CALL_OVER`.
    CallOver {
        why: String,
    },
    /// A missed item asked for on session `epoch` should be back by now.
    RetrieveDeadline {
        epoch: u64,
        item_id: String,
    },
    Snapshot(RpcReplyPort<ActorSnapshot>),
    /// Chaos: panic inside a handler.
    Panic,
}

/// How a realtime session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEnd {
    /// A close frame, with its code when it had one.
    Closed { code: Option<u16>, reason: String },
    /// The TCP stream ended without a close frame.
    Eof,
    /// A protocol or I/O error (including an oversized frame).
    Error(String),
    /// Nothing at all arrived for this long: the peer is gone.
    Silent(Duration),
    /// A newer session of the same call replaced this one.
    Superseded,
}

impl SocketEnd {
    /// Close codes the realtime service uses for configuration errors.
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            Self::Closed {
                code: Some(3000 | 4000),
                ..
            }
        )
    }
}

/// What the reader tells the actor besides the end of the socket, in the
/// same words for either protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtimeNotice {
    /// The session exists (Realtime `session.created`): it expires at
    /// `expires_at` (Unix seconds).
    Opened {
        expires_at: Option<i64>,
    },
    /// The service confirmed scribe's settings (Realtime
    /// `session.updated`, GPT-Live `session.started`).
    Configured {
        transcription_on: bool,
        expires_at: Option<i64>,
    },
    /// The service closed the session (GPT-Live `session.closed`).
    Closed {
        reason: Option<String>,
    },
    Error(ErrorInfo),
    Transcript(Notice),
    GarbageFrame(String),
}

impl RealtimeNotice {
    /// What the actor hears of a server event (besides its transcript).
    pub fn of(event: ServerEvent) -> Option<Self> {
        match event {
            ServerEvent::SessionCreated { expires_at } => Some(Self::Opened { expires_at }),
            ServerEvent::SessionUpdated { transcription_on } => Some(Self::Configured {
                transcription_on,
                expires_at: None,
            }),
            ServerEvent::LiveStarted { expires_at } => Some(Self::Configured {
                transcription_on: true,
                expires_at,
            }),
            ServerEvent::LiveClosed { reason } => Some(Self::Closed { reason }),
            ServerEvent::Error(error) => Some(Self::Error(error)),
            _ => None,
        }
    }
}
