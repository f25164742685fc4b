//! What the meeting's event stream reads: its committed lines, its
//! analysis stages and its row, all from one snapshot, after a cursor.
//!
//! The cursor has two parts, because a meeting's lines and its log are two
//! orders: the highest line number delivered and the highest log entry id
//! delivered. Lines of a meeting commit in number order (one writer commits
//! them as the call releases them), and the log entries streamed (analysis
//! stages, the call's end) are written one after another by the call and
//! then its analysis, so neither part can be passed by a later commit.
//! The one exception is a `lost` line, which finalization writes below lines
//! already stored: lost lines are not streamed as lines but inside the
//! `call_ended` entry committed in the same transaction, so they arrive
//! exactly once, with it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use scribe_actors::domain::EventKind;
use scribe_actors::ids::MeetingId;
use serde_json::Value;

use super::notes::MeetingNotes;
use super::pool::{Store, StoreError, on_pool};
use super::rows::{MEETING_COLUMNS, MeetingRow};
use super::transcript::ChunkRow;
use super::transcript::StoredChunk;
use crate::domain::meeting::Meeting;

/// Where a reader of the stream is: `"{line}-{event}"` on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCursor {
    pub line: i64,
    pub event: i64,
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.line, self.event)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("an event id is two numbers of 1 to 18 digits joined by '-', e.g. 12-40")]
pub struct BadCursor;

/// Digits a cursor's number has at most (any such number fits an i64).
const CURSOR_DIGITS: usize = 18;

impl FromStr for FeedCursor {
    type Err = BadCursor;

    /// Exactly `<digits>-<digits>`, 1 to 18 digits each (the pattern the
    /// OpenAPI document states): no sign, no space.
    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let (line, event) = s.split_once('-').ok_or(BadCursor)?;
        let parse = |v: &str| {
            let digits =
                (1..=CURSOR_DIGITS).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| v.parse::<i64>().ok())
                .flatten()
                .ok_or(BadCursor)
        };
        Ok(Self {
            line: parse(line)?,
            event: parse(event)?,
        })
    }
}

/// A log entry the stream shows: an analysis stage, a status change, the
/// call's end (with the lines kept as lost, if any), a problem with the
/// call's realtime session, or a line cut off after it was streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub id: i64,
    pub kind: EventKind,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
    pub lost_lines: Vec<StoredChunk>,
}

/// One consistent read past a cursor.
#[derive(Debug, Clone)]
pub struct FeedRead {
    pub meeting: Meeting,
    pub lines: Vec<StoredChunk>,
    pub events: Vec<FeedEvent>,
    /// The call's running notes as they stand.
    pub notes: Option<MeetingNotes>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    #[sqlx(try_from = "String")]
    kind: EventKind,
    detail: sqlx::types::Json<Value>,
    created_at: DateTime<Utc>,
}

const LINES_AFTER: &str = "SELECT sequence_number, speaker_type, text, status, item_id, timestamp, start_ms, end_ms \
     FROM transcript_chunks WHERE meeting_id = $1 AND sequence_number > $2 AND status <> 'lost' \
     ORDER BY sequence_number";
const LOST_LINES: &str = "SELECT sequence_number, speaker_type, text, status, item_id, timestamp, start_ms, end_ms \
     FROM transcript_chunks WHERE meeting_id = $1 AND status = 'lost' ORDER BY sequence_number";
/// The log entries the stream shows: `$3`.. are [`STREAMED`].
const EVENTS_AFTER: &str = "SELECT id, kind, detail, created_at FROM meeting_events \
     WHERE meeting_id = $1 AND id > $2 AND kind IN ($3, $4, $5, $6, $7, $8, $9, $10) ORDER BY id";
/// The log entries the stream shows. The running notes are not among
/// them: they are saved beside the writer's entries, not after them, so
/// their order is not the log's; the stream shows the notes as a state
/// ([`FeedRead::notes`]).
const STREAMED: [EventKind; 8] = [
    EventKind::AnalysisStage,
    EventKind::CallEnded,
    EventKind::StatusChanged,
    EventKind::ConfigurationError,
    EventKind::SessionRefused,
    EventKind::ReplyTruncated,
    EventKind::PossibleGap,
    EventKind::AnalysisDelta,
];

impl Store {
    /// The meeting, its lines and its streamed log entries past `after`,
    /// read in one snapshot (`None`: no such meeting).
    pub async fn feed(
        &self,
        meeting: MeetingId,
        after: FeedCursor,
    ) -> Result<Option<FeedRead>, StoreError> {
        let read = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::read_snapshot(p)).await?;
            let row: Option<MeetingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MEETING_COLUMNS} FROM meetings m WHERE m.id = $1"
            )))
            .bind(meeting.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let read = match row {
                None => None,
                Some(row) => {
                    let lines: Vec<ChunkRow> = sqlx::query_as(LINES_AFTER)
                        .bind(meeting.as_uuid())
                        .bind(after.line)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut query = sqlx::query_as(EVENTS_AFTER)
                        .bind(meeting.as_uuid())
                        .bind(after.event);
                    for kind in STREAMED {
                        query = query.bind(kind.as_str());
                    }
                    let events: Vec<EventRow> = query.fetch_all(&mut *tx).await?;
                    let notes: Option<MeetingNotes> = sqlx::query_as(super::notes::NOTES)
                        .bind(meeting.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let lost: Vec<ChunkRow> =
                        if events.iter().any(|e| e.kind == EventKind::CallEnded) {
                            sqlx::query_as(LOST_LINES)
                                .bind(meeting.as_uuid())
                                .fetch_all(&mut *tx)
                                .await?
                        } else {
                            Vec::new()
                        };
                    Some((row, lines, events, lost, notes))
                }
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(read)
        })?;
        let Some((row, lines, events, lost, notes)) = read else {
            return Ok(None);
        };
        let lost = lost
            .into_iter()
            .map(StoredChunk::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(FeedRead {
            meeting: Meeting::try_from(row)?,
            lines: lines
                .into_iter()
                .map(StoredChunk::try_from)
                .collect::<Result<_, _>>()?,
            events: events
                .into_iter()
                .map(|e| FeedEvent {
                    lost_lines: if e.kind == EventKind::CallEnded {
                        lost.clone()
                    } else {
                        Vec::new()
                    },
                    id: e.id,
                    kind: e.kind,
                    detail: e.detail.0,
                    created_at: e.created_at,
                })
                .collect(),
            notes,
        }))
    }

    /// How long analyses take here: the median of the last 50 completed
    /// meetings' processing (start of processing to completion), and how
    /// many it is taken from. `None` before the first completed analysis.
    pub async fn analysis_estimate(&self) -> Result<Option<(f64, usize)>, StoreError> {
        let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT processing_started_at, completed_at FROM meetings \
                 WHERE status = 'completed' AND processing_started_at IS NOT NULL \
                 AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT 50",
            )
            .fetch_all(p)
            .await
        })?;
        let mut ms: Vec<f64> = rows
            .iter()
            .map(|(from, to)| (*to - *from).num_milliseconds().max(0) as f64)
            .collect();
        if ms.is_empty() {
            return Ok(None);
        }
        ms.sort_by(f64::total_cmp);
        Ok(Some((ms[ms.len() / 2], ms.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c: FeedCursor = "12-340".parse().expect("valid");
        assert_eq!(
            c,
            FeedCursor {
                line: 12,
                event: 340
            }
        );
        assert_eq!(c.to_string(), "12-340");
        for bad in [
            "",
            "12",
            "a-1",
            "1-b",
            "-1-2",
            "1-2-3",
            "99999999999999999999-1",
        ] {
            assert!(bad.parse::<FeedCursor>().is_err(), "{bad}");
        }
    }
}
