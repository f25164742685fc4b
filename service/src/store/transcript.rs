//! Transcript chunk queries. Writes are idempotent on
//! (meeting_id, sequence_number): writing a batch twice stores it once.

use chrono::{DateTime, Utc};
use scribe_actors::domain::{ChunkStatus, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::WriteBatch;
use scribe_actors::transcript::Line;
use serde::Serialize;
use sqlx::QueryBuilder;

use super::copy::{PgLines, copy_lines};
use super::pool::{Pool, Store, StoreError, on_pool};
use crate::domain::now;

/// The batch's rare updates, one statement each and the same on both
/// backends, after its lines: lines already stored that became
/// `interrupted` (a truncation), and active meetings' errors.
macro_rules! apply_updates {
    ($tx:expr, $batch:expr, $at:expr) => {{
        for (meeting, number) in &$batch.interrupted {
            sqlx::query(
                "UPDATE transcript_chunks SET status = $3 WHERE meeting_id = $1 \
                 AND sequence_number = $2 AND status IN ('completed', 'partial')",
            )
            .bind(meeting.as_uuid())
            .bind(*number)
            .bind(ChunkStatus::Interrupted.as_str())
            .execute(&mut *$tx)
            .await?;
        }
        for (meeting, error) in &$batch.errors {
            sqlx::query(
                "UPDATE meetings SET error = $2, updated_at = $3 WHERE id = $1 AND status = 'active'",
            )
            .bind(meeting.as_uuid())
            .bind(error.as_deref())
            .bind($at)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// A transcript line as stored, in the API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoredChunk {
    pub sequence_number: i64,
    /// `None` only for a `lost` line.
    pub speaker: Option<Speaker>,
    pub text: String,
    pub status: ChunkStatus,
    pub item_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// Where a GPT-Live line sits on its session's clock, in ms (absent on
    /// Realtime lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ChunkRow {
    sequence_number: i64,
    speaker_type: Option<String>,
    text: String,
    status: String,
    item_id: Option<String>,
    timestamp: DateTime<Utc>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
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
            start_ms: row.start_ms,
            end_ms: row.end_ms,
        })
    }
}

impl Store {
    /// Writes a batch of lines and event-log entries and raises each
    /// meeting's counter high-water mark, in one transaction. Lines whose
    /// (meeting, sequence number) is already stored are skipped; the
    /// high-water mark only ever grows. Returns how many lines were new.
    pub async fn write_batch(&self, batch: &WriteBatch) -> Result<u64, StoreError> {
        Ok(self.write_fenced(batch).await?.inserted)
    }

    /// [`Self::write_batch`], fenced: a meeting's lines, marks,
    /// interruptions and error are written only while the call's lease
    /// epoch is the one `batch.leases` names for it (checked under a row
    /// lock that a takeover waits for); the others are dropped and named
    /// in the answer. A meeting `batch.leases` does not name is written
    /// unfenced (the store's own tools: imports, tests).
    pub async fn write_fenced(&self, batch: &WriteBatch) -> Result<Written, StoreError> {
        if batch.is_empty() {
            return Ok(Written::default());
        }
        let created_at = now();
        let written = match &self.pool {
            Pool::Postgres(p) => write_batch_pg(p, batch, created_at, self.pg_lines).await,
            Pool::Sqlite(p) => write_batch_rows(p, batch, created_at).await,
        }?;
        self.changes.touch_all(
            batch
                .lines
                .iter()
                .map(|(m, _)| *m)
                .chain(batch.events.iter().map(|e| e.meeting))
                .chain(batch.interrupted.iter().map(|(m, _)| *m))
                .chain(batch.errors.iter().map(|(m, _)| *m)),
        );
        Ok(written)
    }

    /// The meeting's transcript in conversation (sequence) order.
    pub async fn transcript(&self, meeting_id: MeetingId) -> Result<Vec<StoredChunk>, StoreError> {
        self.transcript_after(meeting_id, 0).await
    }

    /// The meeting's lines numbered above `after`, in order.
    pub async fn transcript_after(
        &self,
        meeting_id: MeetingId,
        after: i64,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let rows: Vec<ChunkRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT sequence_number, speaker_type, text, status, item_id, timestamp, start_ms, end_ms \
                 FROM transcript_chunks WHERE meeting_id = $1 AND sequence_number > $2 \
                 ORDER BY sequence_number",
            )
            .bind(meeting_id.as_uuid())
            .bind(after)
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(StoredChunk::try_from).collect()
    }
}

/// What a fenced write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// Lines that were new.
    pub inserted: u64,
    /// Meetings whose lease epoch was no longer the batch's: nothing of
    /// theirs but event-log entries was written.
    pub refused: Vec<MeetingId>,
}

/// The batch without what belongs to `refused` meetings (their event-log
/// entries stay).
fn without(batch: &WriteBatch, refused: &[MeetingId]) -> WriteBatch {
    let kept = |m: &MeetingId| !refused.contains(m);
    WriteBatch {
        lines: batch
            .lines
            .iter()
            .filter(|(m, _)| kept(m))
            .cloned()
            .collect(),
        high_water: batch
            .high_water
            .iter()
            .filter(|(m, _)| kept(m))
            .copied()
            .collect(),
        interrupted: batch
            .interrupted
            .iter()
            .filter(|(m, _)| kept(m))
            .copied()
            .collect(),
        errors: batch
            .errors
            .iter()
            .filter(|(m, _)| kept(m))
            .cloned()
            .collect(),
        events: batch.events.clone(),
        leases: batch
            .leases
            .iter()
            .filter(|(m, _)| kept(m))
            .copied()
            .collect(),
    }
}

/// The meetings of `leases` whose lease epoch is no longer the one named,
/// checked inside the write's transaction. On PostgreSQL the rows still
/// held are locked `FOR SHARE` until the commit: a takeover (an UPDATE of
/// the row) waits for this write, and a takeover that committed first is
/// seen (the lock re-reads the row), so a write lands before the new
/// holder reads the call, or not at all. (`FOR KEY SHARE`, which the
/// foreign keys take, would not do: a locker of that strength does not
/// re-read a row whose update left its key alone.)
async fn refused_pg(
    tx: &mut sqlx::PgConnection,
    leases: &[(MeetingId, i64)],
) -> Result<Vec<MeetingId>, sqlx::Error> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, epochs): (Vec<_>, Vec<_>) = leases.iter().map(|(m, e)| (m.as_uuid(), *e)).unzip();
    let held: Vec<(uuid::Uuid,)> = sqlx::query_as(
        "SELECT m.id FROM meetings m JOIN unnest($1::uuid[], $2::int8[]) AS u(id, lease)          ON m.id = u.id AND m.lease_epoch = u.lease ORDER BY m.id FOR SHARE OF m",
    )
    .bind(ids)
    .bind(epochs)
    .fetch_all(&mut *tx)
    .await?;
    Ok(refused_of(leases, &held))
}

/// SQLite: the same check (one writer at a time: no lock to take).
async fn refused_sqlite(
    tx: &mut sqlx::SqliteConnection,
    leases: &[(MeetingId, i64)],
) -> Result<Vec<MeetingId>, sqlx::Error> {
    let mut held: Vec<(uuid::Uuid,)> = Vec::new();
    for rows in sqlite_statements(leases) {
        let mut check =
            QueryBuilder::new("SELECT id FROM meetings WHERE (id, lease_epoch) IN (VALUES ");
        let mut values = check.separated(", ");
        for (meeting, epoch) in rows {
            values.push("(");
            values.push_bind_unseparated(meeting.as_uuid());
            values.push_unseparated(", ");
            values.push_bind_unseparated(*epoch);
            values.push_unseparated(")");
        }
        check.push(")");
        held.extend(
            check
                .build_query_as::<(uuid::Uuid,)>()
                .fetch_all(&mut *tx)
                .await?,
        );
    }
    Ok(refused_of(leases, &held))
}

fn refused_of(leases: &[(MeetingId, i64)], held: &[(uuid::Uuid,)]) -> Vec<MeetingId> {
    let held: std::collections::HashSet<uuid::Uuid> = held.iter().map(|(id,)| *id).collect();
    leases
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| !held.contains(&m.as_uuid()))
        .collect()
}

/// Row counts of the multi-row statements on SQLite. Each row count is a
/// statement of its own, kept prepared on every connection that ran it:
/// any count up to 1,000 (the earlier cut) left a pool of 16 connections
/// holding 17 MB of statement programs, the largest fixed cost in the heap
/// profile. Three shapes keep that small, for a lower ingest ceiling
/// (`ingest`: 71,000 lines a second against 91,000 with statements of up
/// to 1,000 rows, and 65,000 with none kept prepared), still twice
/// SQLite's own best.
const SQLITE_SHAPES: [usize; 3] = [100, 10, 1];

/// Cuts `items` into statements of [`SQLITE_SHAPES`] rows, largest first.
fn sqlite_statements<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let n = SQLITE_SHAPES
            .into_iter()
            .find(|&n| n <= items.len())
            .unwrap_or(items.len());
        (n > 0).then(|| {
            let (rows, rest) = items.split_at(n);
            items = rest;
            rows
        })
    })
}

/// SQLite: multi-row statements (SQLite parses them fast and has no
/// array parameters).
async fn write_batch_rows(
    p: &sqlx::SqlitePool,
    batch: &WriteBatch,
    created_at: DateTime<Utc>,
) -> Result<Written, sqlx::Error> {
    let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
    let refused = refused_sqlite(&mut tx, &batch.leases).await?;
    let kept;
    let batch = if refused.is_empty() {
        batch
    } else {
        kept = without(batch, &refused);
        &kept
    };
    let mut inserted = 0;
    for rows in sqlite_statements(&batch.lines) {
        let mut insert = QueryBuilder::new(
            "INSERT INTO transcript_chunks (meeting_id, sequence_number, speaker_type, \
             text, status, item_id, timestamp, start_ms, end_ms, created_at) ",
        );
        insert.push_values(rows, |mut row, (meeting, line)| {
            row.push_bind(meeting.as_uuid())
                .push_bind(line.sequence_number)
                .push_bind(line.speaker.as_str())
                .push_bind(line.text.clone())
                .push_bind(line.status.as_str())
                .push_bind(line.item_id.clone())
                .push_bind(line.timestamp)
                .push_bind(line.start_ms)
                .push_bind(line.end_ms)
                .push_bind(created_at);
        });
        insert.push(" ON CONFLICT (meeting_id, sequence_number) DO NOTHING");
        inserted += insert.build().execute(&mut *tx).await?.rows_affected();
    }
    for events in sqlite_statements(&batch.events) {
        let mut insert =
            QueryBuilder::new("INSERT INTO meeting_events (meeting_id, kind, detail, created_at) ");
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
    apply_updates!(tx, batch, created_at);
    tx.commit().await?;
    Ok(Written { inserted, refused })
}

/// The encoded size a statement's parameters stay under on PostgreSQL.
///
/// sqlx 0.9.0 leaves Nagle's algorithm on for its TCP sockets
/// (transact-rs/sqlx#4335, fixed upstream, not yet released) and sends its
/// write buffer in pieces of 16 KiB. A message longer than one piece sends
/// its last, short piece only once the first is acknowledged, and the
/// server delays that acknowledgement by 40 ms: a 500-line batch took 48 ms
/// whatever its content (seen with strace). A statement that fits in one
/// piece never waits; several short statements in one transaction cost a
/// fraction of a millisecond each.
const STATEMENT_BYTES: usize = 14 * 1024;

/// Splits lines into groups whose array parameters stay under
/// [`STATEMENT_BYTES`] (each element: its bytes plus a 4-byte length).
fn statement_groups(lines: &[(MeetingId, Line)]) -> Vec<&[(MeetingId, Line)]> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, line)) in lines.iter().enumerate() {
        let size = 7 * 4
            + 16
            + 8
            + line.speaker.as_str().len()
            + line.text.len()
            + line.status.as_str().len()
            + line.item_id.as_ref().map_or(0, String::len)
            + 8;
        if i > start && bytes + size > STATEMENT_BYTES {
            groups.push(&lines[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < lines.len() {
        groups.push(&lines[start..]);
    }
    groups
}

/// PostgreSQL: the lines as [`PgLines`] says (by default one statement
/// per 14 KiB of rows, each row's columns sent as binary array parameters
/// and unpacked by `unnest`), the events likewise, and one UPDATE for all
/// the high-water marks. The ingest example measured the arrays at 0.76 of
/// `COPY`'s rate one batch at a time and 0.93 with two in flight; the
/// multi-row VALUES they replaced (eight parameters a row, one UPDATE per
/// meeting, whole batches hitting the stall described at
/// [`STATEMENT_BYTES`]) ran at 0.07.
async fn write_batch_pg(
    p: &sqlx::PgPool,
    batch: &WriteBatch,
    created_at: DateTime<Utc>,
    how: PgLines,
) -> Result<Written, sqlx::Error> {
    let mut refused = Vec::new();
    let mut kept;
    let mut batch = batch;
    loop {
        let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
        let inserted = write_pg(&mut tx, batch, created_at, how).await?;
        // Checked last, so that the row locks it takes are held only for
        // the commit; a refusal (rare: a call lost) writes the batch again
        // without the calls refused.
        let now_refused = refused_pg(&mut tx, &batch.leases).await?;
        if now_refused.is_empty() {
            tx.commit().await?;
            return Ok(Written { inserted, refused });
        }
        tx.rollback().await?;
        refused.extend(now_refused);
        kept = without(batch, &refused);
        batch = &kept;
    }
}

async fn write_pg(
    tx: &mut sqlx::PgConnection,
    batch: &WriteBatch,
    created_at: DateTime<Utc>,
    how: PgLines,
) -> Result<u64, sqlx::Error> {
    let inserted = match how {
        _ if batch.lines.is_empty() => 0,
        PgLines::Arrays => insert_arrays(tx, &batch.lines, created_at).await?,
        PgLines::CopyText => copy_lines(tx, &batch.lines, created_at, false).await?,
        PgLines::CopyBinary => copy_lines(tx, &batch.lines, created_at, true).await?,
    };
    if !batch.events.is_empty() {
        let meetings: Vec<_> = batch.events.iter().map(|e| e.meeting.as_uuid()).collect();
        let kinds: Vec<_> = batch.events.iter().map(|e| e.kind.as_str()).collect();
        let details: Vec<_> = batch
            .events
            .iter()
            .map(|e| sqlx::types::Json(&e.detail))
            .collect();
        let stamps: Vec<_> = batch.events.iter().map(|e| e.at).collect();
        sqlx::query(
            "INSERT INTO meeting_events (meeting_id, kind, detail, created_at) \
             SELECT m, k, d, c FROM unnest($1::uuid[], $2::text[], $3::jsonb[], \
             $4::timestamptz[]) WITH ORDINALITY AS u(m, k, d, c, o) ORDER BY o",
        )
        .bind(meetings)
        .bind(kinds)
        .bind(details)
        .bind(stamps)
        .execute(&mut *tx)
        .await?;
    }
    if !batch.high_water.is_empty() {
        let (meetings, marks): (Vec<_>, Vec<_>) = batch
            .high_water
            .iter()
            .map(|(meeting, mark)| (meeting.as_uuid(), *mark))
            .unzip();
        sqlx::query(
            "UPDATE meetings SET sequence_high_water = u.mark \
             FROM unnest($1::uuid[], $2::int8[]) AS u(id, mark) \
             WHERE meetings.id = u.id AND meetings.sequence_high_water < u.mark",
        )
        .bind(meetings)
        .bind(marks)
        .execute(&mut *tx)
        .await?;
    }
    apply_updates!(tx, batch, created_at);
    Ok(inserted)
}

/// The lines as array parameters, one statement per [`STATEMENT_BYTES`].
async fn insert_arrays(
    tx: &mut sqlx::PgConnection,
    lines: &[(MeetingId, Line)],
    created_at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for rows in statement_groups(lines) {
        let n = rows.len();
        let (mut meetings, mut numbers, mut speakers, mut texts) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut statuses, mut items, mut stamps) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut starts, mut ends) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (meeting, line) in rows {
            meetings.push(meeting.as_uuid());
            numbers.push(line.sequence_number);
            speakers.push(line.speaker.as_str());
            texts.push(line.text.as_str());
            statuses.push(line.status.as_str());
            items.push(line.item_id.as_deref());
            stamps.push(line.timestamp);
            starts.push(line.start_ms);
            ends.push(line.end_ms);
        }
        inserted += sqlx::query(
            "INSERT INTO transcript_chunks (meeting_id, sequence_number, speaker_type, text, \
             status, item_id, timestamp, start_ms, end_ms, created_at) \
             SELECT m, n, s, t, st, i, ts, sm, em, $10 FROM unnest($1::uuid[], $2::int8[], \
             $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::int8[], \
             $9::int8[]) AS u(m, n, s, t, st, i, ts, sm, em) \
             ON CONFLICT (meeting_id, sequence_number) DO NOTHING",
        )
        .bind(meetings)
        .bind(numbers)
        .bind(speakers)
        .bind(texts)
        .bind(statuses)
        .bind(items)
        .bind(stamps)
        .bind(starts)
        .bind(ends)
        .bind(created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::sqlite_statements;

    #[test]
    fn sqlite_batches_are_cut_into_three_statement_shapes() {
        let sizes = |n: usize| {
            let items: Vec<usize> = (0..n).collect();
            let parts: Vec<&[usize]> = sqlite_statements(&items).collect();
            assert_eq!(parts.concat(), items, "every item once, in order");
            parts.iter().map(|p| p.len()).collect::<Vec<_>>()
        };
        assert_eq!(sizes(234), [100, 100, 10, 10, 10, 1, 1, 1, 1]);
        assert_eq!(sizes(2_000), [100; 20]);
        assert_eq!(sizes(16), [10, 1, 1, 1, 1, 1, 1]);
        assert_eq!(sizes(1), [1]);
        assert!(sizes(0).is_empty());
    }
}
