//! A meeting's event log, typed: every entry is a [`CallEvent`], one
//! variant per [`EventKind`] with its own payload. It is stored as the
//! kind and the payload's JSON (`detail`), and read back typed
//! ([`CallEvent::read`]); nobody builds or reads an entry by key.
//!
//! What is for operators only (a provider's own words, the provider's ids)
//! is a [`Private`]. It has no `Serialize`: the log's storage writes it
//! (through [`stored`] / [`stored_opt`]), `/admin` shows the stored entry,
//! and a public answer cannot carry one, since a public type that held one
//! would not compile.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::domain::{AnalysisStage, EventKind, Speaker};

/// Text for operators only: stored, shown on `/admin`, never on a public
/// page or stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Private<T>(pub T);

/// Writes a [`Private`] into the event log's storage.
pub fn stored<T: Serialize, S: Serializer>(value: &Private<T>, to: S) -> Result<S::Ok, S::Error> {
    value.0.serialize(to)
}

fn no_text(value: &Private<String>) -> bool {
    value.0.is_empty()
}

/// Writes an optional [`Private`] into the event log's storage.
pub fn stored_opt<T: Serialize, S: Serializer>(
    value: &Option<Private<T>>,
    to: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => to.serialize_some(&value.0),
        None => to.serialize_none(),
    }
}

/// A problem shown on the meeting: `error` is scribe's words (public),
/// `detail` the provider's (operators only); the rest says what was
/// refused and what comes next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub error: String,
    #[serde(serialize_with = "stored", skip_serializing_if = "no_text", default)]
    pub detail: Private<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_in_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub param: Option<String>,
    /// The client event refused (`session.update`, `session.start`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hint: Option<String>,
    /// A provider's refusal: its frame's `type`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// GPT-Live's close reason.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// What comes next (an expired GPT-Live session: a new one).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
    /// The call is over (an attached GPT-Live call closed).
    #[serde(rename = "final", skip_serializing_if = "Option::is_none", default)]
    pub last: Option<bool>,
}

/// How a problem shown on the meeting is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    ConfigurationError,
    SessionRefused,
    SessionClosed,
}

impl Shown {
    pub fn event(self, problem: Problem) -> CallEvent {
        match self {
            Self::ConfigurationError => CallEvent::ConfigurationError(problem),
            Self::SessionRefused => CallEvent::SessionRefused(problem),
            Self::SessionClosed => CallEvent::SessionClosed(problem),
        }
    }
}

/// An error from the realtime service, or scribe's own trouble with its
/// session, for the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RealtimeError {
    /// scribe's words.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    /// The provider's words.
    #[serde(
        serialize_with = "stored_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub message: Option<Private<String>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub param: Option<String>,
    /// The client event it answers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event: Option<String>,
    #[serde(
        serialize_with = "stored_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub item_id: Option<Private<String>>,
    /// On a sideband re-attached to a call configured before.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reattach: Option<bool>,
}

/// Where lines may be missing, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hole {
    #[serde(default)]
    pub after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub before: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to_ms: Option<u64>,
    #[serde(default)]
    pub reason: String,
}

/// Lines that could not be kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub from: i64,
    pub to: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<usize>,
    #[serde(default)]
    pub reason: String,
}

/// A stage of an ended call's analysis, with what it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub stage: AnalysisStage,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempt: Option<u32>,
    /// scribe's words for a failed attempt or analysis.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_in_ms: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lines: Option<usize>,
    /// The analysis read the call's notes for lines 1 to this one, and
    /// the transcript only after it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notes_through: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub incarnation: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// What was saved (`summary`, `blueprint`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_meeting_id: Option<crate::ids::MeetingId>,
}

impl Stage {
    pub fn new(stage: AnalysisStage) -> Self {
        Self {
            stage,
            attempt: None,
            error: None,
            retry_in_ms: None,
            lines: None,
            notes_through: None,
            run: None,
            warning: None,
            incarnation: None,
            reason: None,
            kind: None,
            next_meeting_id: None,
        }
    }
}

/// An error a transcription ended with, as the service gave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceError {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(serialize_with = "stored", default)]
    pub message: Private<String>,
}

/// One entry of a meeting's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum CallEvent {
    ActorStarted {
        incarnation: u32,
    },
    ActorRestarted {
        incarnation: u32,
        reason: String,
        next_sequence: i64,
    },
    SocketConnected {
        session: u32,
        incarnation: u32,
        replayed_lines: usize,
    },
    SocketClosed {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        code: Option<u16>,
        /// The provider's close reason, or scribe's account of the end.
        #[serde(serialize_with = "stored", default)]
        reason: Private<String>,
    },
    SocketReconnecting {
        delay_ms: u64,
        reason: String,
    },
    SocketRotated {
        reason: String,
    },
    RealtimeError(RealtimeError),
    ConfigurationError(Problem),
    SessionRefused(Problem),
    ReplyInterrupted {
        #[serde(serialize_with = "stored", default)]
        response_id: Private<String>,
        status: String,
        #[serde(default)]
        reason: Option<String>,
        #[serde(serialize_with = "stored_opt", default)]
        error: Option<Private<String>>,
        #[serde(default)]
        lines: Vec<i64>,
    },
    ReplyTruncated {
        #[serde(serialize_with = "stored", default)]
        item_id: Private<String>,
        #[serde(default)]
        audio_end_ms: Option<u64>,
        #[serde(default)]
        sequence_number: Option<i64>,
    },
    TranscriptionFailed {
        #[serde(serialize_with = "stored", default)]
        item_id: Private<String>,
        sequence_number: i64,
        error: ServiceError,
    },
    Silence {
        #[serde(serialize_with = "stored", default)]
        item_id: Private<String>,
        #[serde(default)]
        sequence_number: Option<i64>,
        given_back: bool,
        reason: String,
    },
    RotationForced {
        reason: String,
    },
    ItemRecovered {
        #[serde(serialize_with = "stored", default)]
        item_id: Private<String>,
        #[serde(default)]
        sequence_number: Option<i64>,
    },
    CallOver {
        reason: String,
    },
    HungUp {
        how: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        confirmed: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
    },
    /// GPT-Live closed the session, and it was not a problem to show.
    SessionClosed(Problem),
    LateFragment {
        speaker: Speaker,
        start_ms: u64,
        placed_at_ms: u64,
    },
    TranscriptionOff {
        error: String,
    },
    LeaseLost {
        owner: String,
        reason: String,
    },
    OutOfOrderItem {
        #[serde(serialize_with = "stored", default)]
        item_id: Private<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        sequence_number: Option<i64>,
        #[serde(serialize_with = "stored_opt", default)]
        previous_item_id: Option<Private<String>>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<String>,
    },
    Gap(Dropped),
    PossibleGap(Hole),
    CallEnded {
        #[serde(default)]
        lines: i64,
        #[serde(default)]
        lost: usize,
    },
    RestartBudgetExhausted {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        kind: Option<String>,
    },
    AnalysisStage(Stage),
    StatusChanged {
        from: String,
        to: String,
    },
    /// Summary text as the model writes it: `text` follows the first
    /// `offset` characters of this attempt's summary.
    AnalysisDelta {
        attempt: u32,
        offset: usize,
        text: String,
    },
    NotesUpdated(Notes),
    ModelUsage(Usage),
}

/// A call's running notes: the conversation summarized through line
/// `through_line`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notes {
    pub text: String,
    pub through_line: i64,
    /// 1 for the first notes of the call, then one more each update.
    pub version: i64,
}

/// What a model request is for.
pub mod purpose {
    /// The running notes during a call.
    pub const NOTES: &str = "notes";
    /// The analysis at the call's end.
    pub const ANALYSIS: &str = "analysis";
}

/// The tokens one model request used, as the provider reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// [`purpose::NOTES`] or [`purpose::ANALYSIS`].
    pub purpose: String,
    pub model: String,
    pub prompt_tokens: u64,
    /// Of the prompt tokens, those read from the provider's cache.
    #[serde(default)]
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempt: Option<u32>,
}

impl CallEvent {
    /// Its kind, as the log stores it.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::ActorStarted { .. } => EventKind::ActorStarted,
            Self::ActorRestarted { .. } => EventKind::ActorRestarted,
            Self::SocketConnected { .. } => EventKind::SocketConnected,
            Self::SocketClosed { .. } => EventKind::SocketClosed,
            Self::SocketReconnecting { .. } => EventKind::SocketReconnecting,
            Self::SocketRotated { .. } => EventKind::SocketRotated,
            Self::RealtimeError(_) => EventKind::RealtimeError,
            Self::ConfigurationError(_) => EventKind::ConfigurationError,
            Self::SessionRefused(_) => EventKind::SessionRefused,
            Self::ReplyInterrupted { .. } => EventKind::ReplyInterrupted,
            Self::ReplyTruncated { .. } => EventKind::ReplyTruncated,
            Self::TranscriptionFailed { .. } => EventKind::TranscriptionFailed,
            Self::Silence { .. } => EventKind::Silence,
            Self::RotationForced { .. } => EventKind::RotationForced,
            Self::ItemRecovered { .. } => EventKind::ItemRecovered,
            Self::CallOver { .. } => EventKind::CallOver,
            Self::HungUp { .. } => EventKind::HungUp,
            Self::SessionClosed(_) => EventKind::SessionClosed,
            Self::LateFragment { .. } => EventKind::LateFragment,
            Self::TranscriptionOff { .. } => EventKind::TranscriptionOff,
            Self::LeaseLost { .. } => EventKind::LeaseLost,
            Self::OutOfOrderItem { .. } => EventKind::OutOfOrderItem,
            Self::Gap(_) => EventKind::Gap,
            Self::PossibleGap(_) => EventKind::PossibleGap,
            Self::CallEnded { .. } => EventKind::CallEnded,
            Self::AnalysisDelta { .. } => EventKind::AnalysisDelta,
            Self::NotesUpdated(_) => EventKind::NotesUpdated,
            Self::ModelUsage(_) => EventKind::ModelUsage,
            Self::RestartBudgetExhausted { .. } => EventKind::RestartBudgetExhausted,
            Self::AnalysisStage(_) => EventKind::AnalysisStage,
            Self::StatusChanged { .. } => EventKind::StatusChanged,
        }
    }

    /// Its payload, as the log stores it (private fields included).
    pub fn detail(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut entry)) => entry.remove("detail").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// An entry read back from the log.
    pub fn read(kind: EventKind, detail: &Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "kind": kind.as_str(), "detail": detail }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself_with_its_private_fields() {
        let closed = CallEvent::SocketClosed {
            code: Some(1011),
            reason: Private("provider words".into()),
        };
        assert_eq!(closed.kind(), EventKind::SocketClosed);
        assert_eq!(
            closed.detail(),
            serde_json::json!({ "code": 1011, "reason": "provider words" })
        );
        assert_eq!(
            CallEvent::read(closed.kind(), &closed.detail()).expect("reads"),
            closed
        );
        let stage = CallEvent::AnalysisStage(Stage {
            attempt: Some(2),
            ..Stage::new(AnalysisStage::LlmAttemptStarted)
        });
        assert_eq!(
            stage.detail(),
            serde_json::json!({ "stage": "llm_attempt_started", "attempt": 2 })
        );
        assert_eq!(
            CallEvent::read(stage.kind(), &stage.detail()).expect("reads"),
            stage
        );
    }
}
