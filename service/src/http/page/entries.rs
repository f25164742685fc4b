//! What the public stream shows of a meeting's event log. Each entry is
//! read back typed (`CallEvent`) and shown as a public type of its own,
//! built from the entry's public fields only: what is for operators (a
//! provider's words, its ids) is a `Private`, which no type here could
//! hold and still serialize.

use chrono::{DateTime, Utc};
use scribe_actors::call_log::{CallEvent, Hole, Stage};
use serde::Serialize;
use serde_json::Value;

use crate::store::{FeedEvent, StoredChunk};

/// One log entry as the public stream shows it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Public {
    /// A problem with the call's session, in scribe's words.
    Problem { error: String, at: DateTime<Utc> },
    /// A line the user cut off.
    LineStatus {
        sequence_number: Option<i64>,
        status: &'static str,
        audio_end_ms: Option<u64>,
        at: DateTime<Utc>,
    },
    /// The call ended: how many lines, which were lost.
    Ended {
        lost_lines: Vec<StoredChunk>,
        lines: i64,
        lost: usize,
        at: DateTime<Utc>,
    },
    /// Where lines may be missing (a re-attach could not know): the lines
    /// on either side and the time range, never a made-up count.
    Hole {
        after: Option<i64>,
        before: Option<i64>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    },
    Status {
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        processing_started_at: Option<DateTime<Utc>>,
        from: String,
        to: String,
        at: DateTime<Utc>,
    },
    /// Summary text as the model writes it.
    Delta {
        attempt: u32,
        /// Characters of this attempt's summary before `text`: 0 starts
        /// the summary again (a new attempt).
        offset: usize,
        text: String,
        at: DateTime<Utc>,
    },
    /// A stage of the analysis (no private field: all of it is shown).
    Stage {
        #[serde(flatten)]
        stage: Stage,
        at: DateTime<Utc>,
    },
}

/// A log entry as the stream shows it: its event name and data; `None`
/// for an entry the stream does not show (or cannot read).
pub(super) fn entry_event(entry: FeedEvent) -> Option<(&'static str, Value)> {
    let event = match CallEvent::read(entry.kind, &entry.detail) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(kind = %entry.kind, %error, "a log entry that does not read back is not streamed");
            return None;
        }
    };
    let at = entry.created_at;
    let (name, shown) = match event {
        // Only scribe's own words: the provider's go to the log and /admin.
        CallEvent::ConfigurationError(problem) | CallEvent::SessionRefused(problem) => (
            "problem",
            Public::Problem {
                error: problem.error,
                at,
            },
        ),
        CallEvent::ReplyTruncated {
            audio_end_ms,
            sequence_number,
            ..
        } => (
            "line_status",
            Public::LineStatus {
                sequence_number,
                status: "interrupted",
                audio_end_ms,
                at,
            },
        ),
        CallEvent::CallEnded { lines, lost } => (
            "ended",
            Public::Ended {
                lost_lines: entry.lost_lines,
                lines,
                lost,
                at,
            },
        ),
        CallEvent::PossibleGap(Hole {
            after,
            before,
            from,
            to,
            ..
        }) => (
            "hole",
            Public::Hole {
                after,
                before,
                from,
                to,
                at,
            },
        ),
        CallEvent::StatusChanged { from, to } => (
            "status",
            Public::Status {
                status: to.clone(),
                processing_started_at: (to == "processing").then_some(at),
                from,
                to,
                at,
            },
        ),
        CallEvent::AnalysisStage(stage) => ("stage", Public::Stage { stage, at }),
        CallEvent::AnalysisDelta {
            attempt,
            offset,
            text,
        } => (
            "analysis_delta",
            Public::Delta {
                attempt,
                offset,
                text,
                at,
            },
        ),
        _ => return None,
    };
    Some((name, serde_json::to_value(shown).unwrap_or(Value::Null)))
}
