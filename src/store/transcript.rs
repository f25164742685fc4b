//! Transcript chunk queries. Writes are idempotent on
//! (meeting_id, sequence_number): writing a batch twice stores it once.

use chrono::{DateTime, Utc};
use scribe_actors::domain::{ChunkStatus, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::WriteBatch;
use serde::Serialize;
use sqlx::QueryBuilder;

use super::{Store, StoreError, on_pool};
use crate::domain::now;

/// Rows per INSERT statement; keeps every statement well under both
/// backends' bind-parameter limits (SQLite 32,766; PostgreSQL 65,535).
const ROWS_PER_STATEMENT: usize = 1_000;

/// A transcript line as stored, in the API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredChunk {
    pub sequence_number: i64,
    /// `None` only for a `lost` line.
    pub speaker: Option<Speaker>,
    pub text: String,
    pub status: ChunkStatus,
    pub item_id: Option<String>,
    pub timestamp: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ChunkRow {
    sequence_number: i64,
    speaker_type: Option<String>,
    text: String,
    status: String,
    item_id: Option<String>,
    timestamp: DateTime<Utc>,
}

impl TryFrom<ChunkRow> for StoredChunk {
    type Error = StoreError;

    fn try_from(row: ChunkRow) -> Result<Self, StoreError> {
        let corrupt = |e: scribe_actors::domain::UnknownVariant| {
            StoreError::Corrupt(format!("chunk {}: {e}", row.sequence_number))
        };
        Ok(Self {
            sequence_number: row.sequence_number,
            speaker: row
                .speaker_type
                .map(|s| s.parse())
                .transpose()
                .map_err(corrupt)?,
            text: row.text,
            status: row.status.parse().map_err(corrupt)?,
            item_id: row.item_id,
            timestamp: row.timestamp,
        })
    }
}

impl Store {
    /// Writes a batch of lines and event-log entries (multi-row statements)
    /// and raises each meeting's counter high-water mark, in one transaction. Lines whose
    /// (meeting, sequence number) is already stored are skipped; the
    /// high-water mark only ever grows. Returns how many lines were new.
    pub async fn write_batch(&self, batch: &WriteBatch) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let created_at = now();
        let inserted = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::write_begin(p)).await?;
            let mut inserted = 0;
            for rows in batch.lines.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO transcript_chunks (meeting_id, sequence_number, speaker_type, \
                     text, status, item_id, timestamp, created_at) ",
                );
                insert.push_values(rows, |mut row, (meeting, line)| {
                    row.push_bind(meeting.as_uuid())
                        .push_bind(line.sequence_number)
                        .push_bind(line.speaker.as_str())
                        .push_bind(line.text.clone())
                        .push_bind(line.status.as_str())
                        .push_bind(line.item_id.clone())
                        .push_bind(line.timestamp)
                        .push_bind(created_at);
                });
                insert.push(" ON CONFLICT (meeting_id, sequence_number) DO NOTHING");
                inserted += insert.build().execute(&mut *tx).await?.rows_affected();
            }
            for events in batch.events.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO meeting_events (meeting_id, kind, detail, created_at) ",
                );
                insert.push_values(events, |mut row, event| {
                    row.push_bind(event.meeting.as_uuid())
                        .push_bind(event.kind.as_str())
                        .push_bind(sqlx::types::Json(event.detail.clone()))
                        .push_bind(event.at);
                });
                insert.build().execute(&mut *tx).await?;
            }
            for (meeting, high_water) in &batch.high_water {
                sqlx::query(
                    "UPDATE meetings SET sequence_high_water = $2 \
                     WHERE id = $1 AND sequence_high_water < $2",
                )
                .bind(meeting.as_uuid())
                .bind(*high_water)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(inserted)
        })?;
        Ok(inserted)
    }

    /// The meeting's transcript in conversation (sequence) order.
    pub async fn transcript(&self, meeting_id: MeetingId) -> Result<Vec<StoredChunk>, StoreError> {
        let rows: Vec<ChunkRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT sequence_number, speaker_type, text, status, item_id, timestamp \
                 FROM transcript_chunks WHERE meeting_id = $1 ORDER BY sequence_number",
            )
            .bind(meeting_id.as_uuid())
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(StoredChunk::try_from).collect()
    }
}
