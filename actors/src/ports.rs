//! What the actors need from the outside world, as narrow traits: each actor
//! depends on the few operations it uses. The `scribe` crate implements them
//! (the store over SQLite/PostgreSQL, the LLM analyzer, the realtime
//! providers); `crate::fakes` implements them in memory for actor tests.
//!
//! | port | used by |
//! |---|---|
//! | [`TranscriptSink`] | the ChunkWriter |
//! | [`CallStore`] | MeetingActor (replay), the supervisor (start, end, give up), recovery |
//! | [`LeaseStore`] | the supervisor (ownership across instances) |
//! | [`AnalysisStore`] | AnalysisActor, the supervisor, recovery |
//! | [`Analyzer`] | AnalysisActor, the NotesKeeper |
//! | [`NotesStore`] | the NotesKeeper (running notes during a call) |
//! | [`RealtimeConnector`] | MeetingActor |
//! | [`CallControl`] | MeetingActor (scribe hangs up a call it attaches to) |

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::Sink;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::domain::Line;
use crate::domain::{EventKind, MeetingStatus, Speaker, VoiceApi};
use crate::ids::MeetingId;
use crate::path::CallPath;

/// A failure behind a port. The cause is kept as the error's source: log it
/// with [`error_chain`] to see the whole story.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The store failed (a database error, a corrupt row, ...).
    #[error("the store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The other side did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl PortError {
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Box::new(error))
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
    /// The call's lease epoch as read: bumped whenever another instance
    /// (or another life of this one) takes the call. Everything this
    /// instance writes for the call carries it, and the store refuses
    /// writes whose epoch is no longer the call's (fencing).
    pub lease: i64,
    /// How the call reaches its voice session: owned or attached, on
    /// which voice API.
    pub path: CallPath,
}

impl CallContext {
    /// The provider call to attach to, when the session is attached.
    pub fn attached_to(&self) -> Option<&str> {
        self.path.attached_to()
    }

    /// What a realtime connector needs to know of this call.
    pub fn target(&self) -> SessionTarget {
        SessionTarget {
            meeting_id: self.meeting_id,
            call_id: self.call_id.clone(),
            call_type: self.call_type.clone(),
            path: self.path.clone(),
        }
    }
}

/// One life of an instance in a deployment: its name
/// (`SCRIBE_INSTANCE_ID`) and the epoch this process took when it joined.
/// A call names the member that holds it; the member, not each call,
/// renews its liveness.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    pub instance: String,
    pub epoch: i64,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.instance, self.epoch)
    }
}

/// A call this member took: it runs the call's actor from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub meeting: MeetingId,
    /// The call's lease epoch as taken: everything this member writes for
    /// the call carries it (never an epoch read later, which may be the
    /// next holder's).
    pub lease: i64,
    /// The member that held the call before stopped without releasing it
    /// (killed, or declared dead when its heartbeat lapsed): lines it had
    /// read and not committed may be missing.
    pub after_crash: bool,
}

/// What renewing a member's heartbeat found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// False when the member is no longer live: its heartbeat lapsed and
    /// another instance declared it dead (its calls are being taken over),
    /// or it was released. It must stop every call and join again.
    pub alive: bool,
    /// Calls the member holds that another instance was told have ended.
    pub end_requested: Vec<(MeetingId, DateTime<Utc>)>,
}

/// What another instance tells this one at once (PostgreSQL's
/// `LISTEN/NOTIFY`), ahead of the lease renewal that would read the same
/// from the database, which stays the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseNews {
    /// A call this instance holds ended at another instance (its end is
    /// recorded): finalize it now.
    EndRequested {
        meeting: MeetingId,
        at: DateTime<Utc>,
    },
    /// An instance freed its leases (it is stopping): take its calls over now.
    Released,
    /// A call this instance holds was deleted (at another instance): its
    /// actor stops here, nothing finalized (every write of it is refused).
    Deleted { meeting: MeetingId },
    /// News may have been missed (the link that carries it was lost and is
    /// back): renew now, which reads whatever was missed.
    Missed,
}

/// Lines, counter reservations and event-log entries for one or more
/// meetings, written in one transaction. Lines are idempotent: writing the
/// same batch twice stores each line once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub lines: Vec<(MeetingId, Line)>,
    /// Per meeting, the highest sequence number handed out so far.
    pub high_water: Vec<(MeetingId, i64)>,
    /// The lease epoch every meeting's lines, marks, interruptions and
    /// error were made under (one per meeting). A store writes them only
    /// while the call's lease epoch is still that, and reports the
    /// meetings it refused: an instance that lost a call cannot write for
    /// it. Event-log entries are not fenced.
    pub leases: Vec<(MeetingId, i64)>,
    /// Lines already stored that are `interrupted` now (the user cut the
    /// reply off after its transcript was final). Applied after `lines`.
    pub interrupted: Vec<(MeetingId, i64)>,
    pub events: Vec<LoggedEvent>,
    /// The `error` an active meeting shows (`None` clears it), in order.
    pub errors: Vec<(MeetingId, Option<String>)>,
}

impl WriteBatch {
    /// Splits the batch into `n` by meeting: each meeting's lines, marks,
    /// interruptions, events and errors all land in the same part, in
    /// their order. Empty parts are left out.
    pub fn split(self, n: usize) -> Vec<WriteBatch> {
        let n = n.max(1);
        let lane = |meeting: &MeetingId| (meeting.as_uuid().as_u128() % n as u128) as usize;
        let mut parts = vec![WriteBatch::default(); n];
        for line in self.lines {
            parts[lane(&line.0)].lines.push(line);
        }
        for mark in self.high_water {
            parts[lane(&mark.0)].high_water.push(mark);
        }
        for lease in self.leases {
            parts[lane(&lease.0)].leases.push(lease);
        }
        for cut in self.interrupted {
            parts[lane(&cut.0)].interrupted.push(cut);
        }
        for event in self.events {
            parts[lane(&event.meeting)].events.push(event);
        }
        for error in self.errors {
            parts[lane(&error.0)].errors.push(error);
        }
        parts.retain(|part| !part.is_empty());
        parts
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
            && self.high_water.is_empty()
            && self.interrupted.is_empty()
            && self.events.is_empty()
            && self.errors.is_empty()
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
    /// The call's running notes, when it has any: the transcript through
    /// their `through_line`, summarized.
    pub notes: Option<crate::call_log::Notes>,
    /// The transcript in order (after the notes' last line, when there
    /// are notes): speaker (`None` for a lost line) and text.
    pub lines: Vec<(Option<Speaker>, String)>,
    /// This analysis attempt's number (1 for the first run of the job).
    pub run: i32,
}

/// What a notes update reads: the call's notes so far and the lines after
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct NotesInput {
    pub meeting_id: MeetingId,
    pub meeting_name: String,
    pub agent_name: String,
    pub notes: Option<crate::call_log::Notes>,
    /// The lines after the notes: number, speaker, text.
    pub lines: Vec<(i64, Option<Speaker>, String)>,
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

/// Why an analysis produced no result. Its text, in scribe's words, is
/// what the meeting's `error` shows publicly; [`AnalysisError::detail`] is
/// the provider's own text, for the logs and `/admin` only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// Every attempt at the model failed (or one that cannot be retried).
    #[error("the analysis model failed {attempts} attempt(s); last error: {last_error}")]
    Model {
        attempts: u32,
        last_error: String,
        detail: String,
    },
}

impl AnalysisError {
    /// The provider's own words about the failure.
    pub fn detail(&self) -> &str {
        match self {
            Self::Model { detail, .. } => detail,
        }
    }
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

/// Where the ChunkWriter commits lines, counter reservations and event-log
/// entries.
#[async_trait]
pub trait TranscriptSink: Send + Sync + 'static {
    /// Writes lines and reservations in one transaction, idempotently,
    /// for the meetings whose lease epoch is still the batch's; returns
    /// the meetings it refused (fenced: the call passed to another
    /// instance), whose lines, marks, interruptions and error it dropped.
    async fn write(&self, batch: &WriteBatch) -> Result<Vec<MeetingId>, PortError>;
}

/// A call's life in the store: its context, its replay, its end.
#[async_trait]
pub trait CallStore: Send + Sync + 'static {
    /// The call's context, or `None` when the meeting does not exist.
    async fn call_context(&self, meeting: MeetingId) -> Result<Option<CallContext>, PortError>;

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
    ///
    /// `handed_out`: the highest number the call's own conversation handed
    /// out, when this process holds it. A stored mark above it is a number
    /// the conversation gave back (a user turn that was silence), not a
    /// lost line; without it the stored mark counts.
    async fn finalize(
        &self,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        handed_out: Option<i64>,
    ) -> Result<Finalized, PortError>;

    /// Marks the meeting `failed` with a human-readable error, when the
    /// state machine allows it (an `active` or `processing` meeting).
    async fn fail(&self, meeting: MeetingId, error: &str) -> Result<(), PortError>;

    /// When another live member (not `me`) holds the call, records that
    /// the call ended and returns true: the owner finalizes.
    async fn request_end(
        &self,
        meeting: MeetingId,
        me: &Member,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError>;
}

/// Call ownership across instances. A member renews its own liveness
/// (one row, whatever its calls); a call names the member that holds it,
/// written only when the call is taken or ends.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Starts a new life of `instance`: a new epoch, live, its heartbeat
    /// now. Older lives of the same instance are over (declared dead): their
    /// calls are free for the taking.
    async fn join(&self, instance: &str) -> Result<Member, PortError>;

    /// Takes an `active` call for `member` when nobody holds it, `member`
    /// already does, or its holder is no longer live. `None` when a live
    /// member holds it, or the call is not active.
    async fn acquire_lease(
        &self,
        meeting: MeetingId,
        member: &Member,
    ) -> Result<Option<Claimed>, PortError>;

    /// Renews `member`'s heartbeat, and reads which of its calls ended
    /// elsewhere.
    async fn heartbeat(&self, member: &Member) -> Result<Heartbeat, PortError>;

    /// Declares dead every live member whose heartbeat is older than
    /// `ttl`, then takes for `member` up to `limit` active calls that no
    /// live member holds (their holder dead or released; or nobody, for
    /// longer than `ttl`: a start whose instance died before taking it),
    /// a batch of one member's calls per statement.
    async fn take_over(
        &self,
        member: &Member,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, PortError>;

    /// The active calls `member` holds.
    async fn owned_calls(&self, member: &Member) -> Result<Vec<MeetingId>, PortError>;

    /// Ends `member`'s life gracefully (shutdown): its calls are free for
    /// the taking at once, and were not cut by a crash.
    async fn release(&self, member: &Member) -> Result<(), PortError>;

    /// News for `instance` as other instances make it, where the store can
    /// push it; `None` where it cannot (the heartbeat and the look for
    /// calls nobody holds carry the same, later). The news stop when the
    /// receiver is dropped.
    fn lease_news(&self, _instance: &str) -> Option<tokio::sync::mpsc::Receiver<LeaseNews>> {
        None
    }
}

/// The durable analysis job of an ended call.
#[async_trait]
pub trait AnalysisStore: Send + Sync + 'static {
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
    /// `error` is public (scribe's words); `detail`, the provider's own
    /// text, is kept for `/admin` only.
    async fn fail_analysis(
        &self,
        meeting: MeetingId,
        error: &str,
        detail: Option<&str>,
    ) -> Result<(), PortError>;

    /// True when the meeting's analysis job waits to be run (a retry).
    async fn analysis_pending(&self, meeting: MeetingId) -> Result<bool, PortError>;

    /// Meetings whose analysis job has not finished (resumed at startup).
    async fn unfinished_analyses(&self) -> Result<Vec<MeetingId>, PortError>;
}

/// Records an analysis's progress in the meeting's event log: its stages,
/// the summary as it is written, the tokens each request used.
pub type LogFn<'a> = dyn Fn(crate::call_log::CallEvent) + Send + Sync + 'a;

/// Runs the LLM part of an analysis; `log` records its progress.
#[async_trait]
pub trait Analyzer: Send + Sync + 'static {
    async fn analyze(
        &self,
        input: &AnalysisInput,
        log: &LogFn<'_>,
    ) -> Result<AnalysisResult, AnalysisError>;

    /// The call's notes rewritten to cover `input`'s lines too; `log`
    /// records the tokens used.
    async fn take_notes(
        &self,
        input: &NotesInput,
        log: &LogFn<'_>,
    ) -> Result<String, AnalysisError>;
}

/// Where running notes are kept: one current version a meeting.
#[async_trait]
pub trait NotesStore: Send + Sync + 'static {
    /// The notes and the stored lines after them (at most `max_lines`),
    /// while the call is `active`; `None` once it is not (or is unknown).
    async fn notes_input(
        &self,
        meeting: MeetingId,
        max_lines: usize,
    ) -> Result<Option<NotesInput>, PortError>;

    /// Saves `text` as the notes through `through_line`, and logs
    /// `notes_updated`, in one transaction; only if the call is still
    /// `active` and the stored notes end before `through_line`. The saved
    /// notes, or `None` when nothing was saved.
    async fn save_notes(
        &self,
        meeting: MeetingId,
        text: &str,
        through_line: i64,
    ) -> Result<Option<crate::call_log::Notes>, PortError>;
}

/// Which call a realtime session is opened for: the meeting, and the
/// provider's call (type and id) when the call has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTarget {
    pub meeting_id: MeetingId,
    /// The Stream call (owned sessions through Stream's agent endpoint).
    pub call_id: Option<String>,
    pub call_type: Option<String>,
    /// Owned or attached, on which voice API.
    pub path: CallPath,
}

impl SessionTarget {
    /// The provider call to attach a sideband to; `None` for an owned
    /// session (scribe opens a new one).
    pub fn attach_to(&self) -> Option<&str> {
        self.path.attached_to()
    }

    pub const fn voice_api(&self) -> VoiceApi {
        self.path.api()
    }
}

/// Client events on their way to the realtime service.
pub type Outbox = Pin<Box<dyn Sink<Message, Error = WsError> + Send + Sync>>;

/// An open realtime session: the frames the service sends, and a sink for
/// the client events scribe sends. Dropping both ends the session.
pub struct RealtimeSession {
    /// Who serves it, as a user reads it in an error ("Stream's agent
    /// endpoint", "OpenAI Realtime").
    pub provider: String,
    pub frames: BoxStream<'static, Result<Message, WsError>>,
    pub outbox: Outbox,
}

/// Why a realtime session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is wrong (URL, key, a missing secret): retrying
    /// cannot help.
    #[error("realtime endpoint is misconfigured: {0}")]
    Config(String),
    /// The endpoint answered the upgrade with 401, 403 or 404: the key,
    /// the project or the URL is wrong. Retrying cannot help.
    #[error("{provider} refused the connection: HTTP {status}")]
    Refused { provider: String, status: u16 },
    /// The provider call a sideband was to attach to does not exist (any
    /// more): the call is over.
    #[error("{provider} has no call {call}")]
    Gone { provider: String, call: String },
    #[error("could not connect to the realtime endpoint: {0}")]
    Io(String),
    #[error("realtime connection timed out after {0:?}")]
    Timeout(Duration),
}

/// Opens realtime sessions for calls. Implemented by the service, which
/// holds the secrets and knows the providers.
#[async_trait]
pub trait RealtimeConnector: Send + Sync + 'static {
    async fn connect(&self, target: &SessionTarget) -> Result<RealtimeSession, ConnectError>;
}

/// The provider's control of a call scribe attaches to: its REST hang-up
/// (OpenAI's `/realtime/calls/{id}/hangup`, `/live/sessions/{id}/hangup`).
#[async_trait]
pub trait CallControl: Send + Sync + 'static {
    async fn hang_up(&self, api: VoiceApi, call_id: &str) -> Result<(), PortError>;
}

#[cfg(test)]
mod tests;
