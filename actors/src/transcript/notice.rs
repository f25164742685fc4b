//! What the transcript model reports for the meeting's event log.

use chrono::{DateTime, Utc};

use crate::domain::Speaker;
use crate::voice::event::ErrorInfo;

/// Something worth a line in the meeting's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An item arrived whose predecessor is not the end of the conversation.
    OutOfOrderItem {
        item_id: String,
        previous_item_id: String,
    },
    /// A response ended without completing: its agent lines were closed as
    /// `interrupted`.
    ReplyInterrupted {
        response_id: String,
        status: String,
        reason: Option<String>,
        error: Option<String>,
        lines: Vec<i64>,
    },
    /// The user cut an agent line off (`conversation.item.truncated`).
    ReplyTruncated {
        item_id: String,
        audio_end_ms: Option<u64>,
        sequence_number: Option<i64>,
    },
    /// A user turn's transcription completed empty: no line. Its number
    /// (`None`: it had none) was given back, or, when a later line had
    /// already gone out, kept as an empty `transcription_failed` line.
    Silence {
        item_id: String,
        sequence_number: Option<i64>,
        given_back: bool,
    },
    /// A transcript for an item whose place in the conversation never came
    /// (a user transcription; a reply whose start scribe missed): stored
    /// at the end, as line `sequence_number`.
    Unplaced {
        item_id: String,
        sequence_number: i64,
    },
    /// A user transcription failed; the line keeps any text received.
    TranscriptionFailed {
        item_id: String,
        sequence_number: i64,
        error: ErrorInfo,
    },
    /// An attached conversation met an item it never saw: ask the service
    /// for it (`conversation.item.retrieve`).
    RetrieveItem { item_id: String },
    /// A missed item was fetched back; its line (when it is a message) has
    /// this number.
    ItemRecovered {
        item_id: String,
        sequence_number: Option<i64>,
    },
    /// Lines may be missing between line `after` (none: the start) and
    /// line `before`: scribe was away from `from` (when known) to `to`.
    PossibleHole {
        after: Option<i64>,
        before: i64,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    },
    /// GPT-Live: the sideband was away from session time `from_ms` (the
    /// last fragment heard, when any) to `to_ms` (the first after): what
    /// was said meanwhile is not recorded. Lines after `after` and before
    /// `before` may be missing.
    TimedGap {
        after: Option<i64>,
        before: i64,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        from_ms: Option<u64>,
        to_ms: u64,
    },
    /// GPT-Live: a fragment too late for its place on the timeline, placed
    /// after the lines already numbered.
    LateFragment {
        speaker: Speaker,
        start_ms: u64,
        placed_at_ms: u64,
    },
}
