//! What the actors need from the outside world, as traits the `scribe`
//! crate implements (the store over SQLite/PostgreSQL).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{MeetingStatus, Speaker};
use crate::ids::MeetingId;
use crate::transcript::Line;

/// A failure behind a port, with its cause chain flattened into the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

impl PortError {
    pub fn from_error(error: &dyn std::error::Error) -> Self {
        Self(error_chain(error))
    }
}

/// `error: cause: cause...`: an error and its sources on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// Everything a MeetingActor needs to run its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    pub meeting_id: MeetingId,
    pub status: MeetingStatus,
    /// The meeting's prompt, else its agent's instructions.
    pub instructions: String,
    /// The Stream call id (`call.id`), when a session started through Stream.
    pub call_id: Option<String>,
    pub call_type: Option<String>,
    /// One past the highest sequence number ever handed out or stored.
    pub next_sequence: i64,
    /// When `call.session_ended` was received for this call (here or by
    /// another instance) and the call is not finalized yet.
    pub end_requested_at: Option<DateTime<Utc>>,
    /// A process held the call's lease and did not release it: it stopped
    /// without a shutdown, and lines it had read but not committed may be
    /// missing.
    pub lease_unreleased: bool,
}

/// What renewing an instance's leases found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseReport {
    /// Active meetings this instance holds the lease of (renewed now).
    pub owned: Vec<MeetingId>,
    /// Among those, calls another instance was told have ended.
    pub end_requested: Vec<(MeetingId, DateTime<Utc>)>,
    /// Active meetings whose lease is free or expired: to be taken over.
    pub orphaned: Vec<MeetingId>,
}

/// Lines, counter reservations and event-log entries for one or more
/// meetings, written in one transaction. Lines are idempotent: writing the
/// same batch twice stores each line once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub lines: Vec<(MeetingId, Line)>,
    /// Per meeting, the highest sequence number handed out so far.
    pub high_water: Vec<(MeetingId, i64)>,
    pub events: Vec<LoggedEvent>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.high_water.is_empty() && self.events.is_empty()
    }
}

/// An entry for a meeting's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub meeting: MeetingId,
    pub kind: EventKind,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// The kinds of entries in a meeting's event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    ActorStarted,
    ActorRestarted,
    SocketConnected,
    SocketClosed,
    SocketReconnecting,
    SocketRotated,
    RealtimeError,
    ConfigurationError,
    TranscriptionOff,
    LeaseLost,
    OutOfOrderItem,
    Gap,
    PossibleGap,
    CallEnded,
    RestartBudgetExhausted,
    AnalysisStage,
    /// The meeting's status changed (`from`, `to`), logged in the
    /// transaction that changed it.
    StatusChanged,
}

impl EventKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ActorStarted => "actor_started",
            Self::ActorRestarted => "actor_restarted",
            Self::SocketConnected => "socket_connected",
            Self::SocketClosed => "socket_closed",
            Self::SocketReconnecting => "socket_reconnecting",
            Self::SocketRotated => "socket_rotated",
            Self::RealtimeError => "realtime_error",
            Self::ConfigurationError => "configuration_error",
            Self::TranscriptionOff => "transcription_off",
            Self::LeaseLost => "lease_lost",
            Self::OutOfOrderItem => "out_of_order_item",
            Self::Gap => "gap",
            Self::PossibleGap => "possible_gap",
            Self::CallEnded => "call_ended",
            Self::RestartBudgetExhausted => "restart_budget_exhausted",
            Self::AnalysisStage => "analysis_stage",
            Self::StatusChanged => "status_changed",
        }
    }
}

/// Everything an analysis needs about one ended call.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisInput {
    pub meeting_id: MeetingId,
    pub meeting_name: String,
    pub agent_name: String,
    /// The agent's blueprint (`{"sessions":[...]}`), when it has one.
    pub blueprint: Option<Value>,
    /// Progress carried from the previous session.
    pub progress: Option<Value>,
    /// The transcript in order: speaker (`None` for a lost line) and text.
    pub lines: Vec<(Option<Speaker>, String)>,
    /// This analysis attempt's number (1 for the first run of the job).
    pub run: i32,
}

/// The next session a blueprint analysis asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextSession {
    pub name: String,
    pub prompt: String,
}

/// What an analysis produced.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalysisResult {
    Summary {
        summary: String,
    },
    Blueprint {
        summary: String,
        progress: Value,
        next: Option<NextSession>,
    },
}

/// Runs the LLM part of an analysis; `stage` records progress in the
/// meeting's event log.
#[async_trait]
pub trait Analyzer: Send + Sync + 'static {
    async fn analyze(
        &self,
        input: &AnalysisInput,
        stage: &(dyn Fn(&str, Value) + Send + Sync),
    ) -> Result<AnalysisResult, String>;
}

/// What finalizing a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// Lines in the final transcript (1..=lines, gapless).
    pub lines: i64,
    /// Numbers that had no stored line and were filled as `lost`.
    pub lost: Vec<i64>,
    /// False when the meeting was not `active` (already finalized, say).
    pub transitioned: bool,
}

#[async_trait]
pub trait CallStore: Send + Sync + 'static {
    /// The call's context, or `None` when the meeting does not exist.
    async fn call_context(&self, meeting: MeetingId) -> Result<Option<CallContext>, PortError>;

    /// Writes lines and reservations in one transaction, idempotently.
    async fn write(&self, batch: &WriteBatch) -> Result<(), PortError>;

    /// The stored lines numbered below `before`, in order, with text, for
    /// replay into a new realtime session.
    async fn replay_lines(
        &self,
        meeting: MeetingId,
        before: i64,
    ) -> Result<Vec<(Speaker, String)>, PortError>;

    /// In one transaction: fills every number up to the high-water mark that
    /// has no line with a `lost` line (and logs the gap), and moves an
    /// `active` meeting to `processing` with `ended_at`,
    /// `processing_started_at` and `transcript_collected`, creating its
    /// pending analysis job.
    async fn finalize(
        &self,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
    ) -> Result<Finalized, PortError>;

    /// Marks the meeting `failed` with a human-readable error, unless it
    /// already reached a terminal state.
    async fn fail(&self, meeting: MeetingId, error: &str) -> Result<(), PortError>;

    /// Takes the lease of an `active` meeting for `owner` until `now + ttl`,
    /// when it is free, expired or already `owner`'s. False when another
    /// instance holds it.
    async fn acquire_lease(
        &self,
        meeting: MeetingId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, PortError>;

    /// Extends every lease `owner` holds on an active meeting, and reports
    /// what it holds, which of those ended elsewhere, and which active
    /// meetings nobody holds.
    async fn renew_leases(&self, owner: &str, ttl: Duration) -> Result<LeaseReport, PortError>;

    /// Frees every lease `owner` holds (graceful shutdown).
    async fn release_leases(&self, owner: &str) -> Result<(), PortError>;

    /// Starts (or resumes) the meeting's analysis job: a `processing`
    /// meeting's `pending` or `running` job becomes `running` with its run
    /// counted. `None` when there is nothing to analyse.
    async fn begin_analysis(&self, meeting: MeetingId) -> Result<Option<AnalysisInput>, PortError>;

    /// In one transaction: the results, status `completed`, the job done,
    /// and for a blueprint the next session's meeting (at most one per
    /// meeting, whatever retries happen). Returns the next meeting's id.
    async fn complete_analysis(
        &self,
        meeting: MeetingId,
        result: &AnalysisResult,
    ) -> Result<Option<MeetingId>, PortError>;

    /// The meeting `failed` with `error`, the job `failed`.
    async fn fail_analysis(&self, meeting: MeetingId, error: &str) -> Result<(), PortError>;

    /// True when the meeting's analysis job waits to be run (a retry).
    async fn analysis_pending(&self, meeting: MeetingId) -> Result<bool, PortError>;

    /// Meetings that are `active`: calls to adopt when no actor runs them.
    async fn active_meetings(&self) -> Result<Vec<MeetingId>, PortError>;

    /// Meetings whose analysis job has not finished (resumed at startup).
    async fn unfinished_analyses(&self) -> Result<Vec<MeetingId>, PortError>;

    /// When another live instance (not `me`) holds the meeting's lease,
    /// records that the call ended and returns true: the owner finalizes.
    async fn request_end(
        &self,
        meeting: MeetingId,
        me: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError>;
}
