//! The COPY paths for transcript lines on PostgreSQL: the batch's lines are
//! copied into a temporary staging table, then moved into
//! `transcript_chunks` by one `INSERT … SELECT … ON CONFLICT DO NOTHING`,
//! which keeps writes idempotent on (meeting, sequence number), as COPY
//! into the table itself could not (one line already stored would fail the
//! whole batch). `examples/ingest` measures them against the array
//! parameters [`PgLines::Arrays`] sends, in one run.

use chrono::{DateTime, Utc};
use scribe_actors::ids::MeetingId;
use scribe_actors::transcript::Line;
use sqlx::encode::IsNull;
use sqlx::postgres::{PgArgumentBuffer, PgConnection, Postgres};
use sqlx::{Encode, Executor};

/// How the batched writer's lines reach PostgreSQL (SQLite always uses
/// multi-row INSERTs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgLines {
    /// Each column as one array parameter, unpacked by `unnest`, one
    /// statement per 14 KiB of lines.
    #[default]
    Arrays,
    /// `COPY … FROM STDIN` in text format into a staging table.
    CopyText,
    /// `COPY … FROM STDIN (FORMAT binary)` into a staging table, each value
    /// in sqlx's own binary encoding.
    CopyBinary,
}

/// Created once per connection; emptied by every commit.
const STAGING: &str = "SET LOCAL client_min_messages = warning; \
    CREATE TEMP TABLE IF NOT EXISTS scribe_lines_in (meeting_id uuid, \
    sequence_number int8, speaker_type text, text text, status text, item_id text, \
    timestamp timestamptz, start_ms int8, end_ms int8) ON COMMIT DELETE ROWS";

const COLUMNS: &str =
    "meeting_id, sequence_number, speaker_type, text, status, item_id, timestamp, start_ms, end_ms";

/// Copies the lines in and moves them over, in the caller's transaction.
/// Returns how many were new.
pub(super) async fn copy_lines(
    tx: &mut PgConnection,
    lines: &[(MeetingId, Line)],
    created_at: DateTime<Utc>,
    binary: bool,
) -> Result<u64, sqlx::Error> {
    tx.execute(STAGING).await?;
    let (statement, data) = if binary {
        (
            format!("COPY scribe_lines_in ({COLUMNS}) FROM STDIN (FORMAT binary)"),
            binary_rows(lines)?,
        )
    } else {
        (
            format!("COPY scribe_lines_in ({COLUMNS}) FROM STDIN"),
            text_rows(lines),
        )
    };
    let mut copy = tx.copy_in_raw(&statement).await?;
    copy.send(data).await?;
    copy.finish().await?;
    let inserted = sqlx::query(
        "INSERT INTO transcript_chunks (meeting_id, sequence_number, speaker_type, text, \
         status, item_id, timestamp, start_ms, end_ms, created_at) \
         SELECT meeting_id, sequence_number, speaker_type, text, status, item_id, timestamp, \
         start_ms, end_ms, $1 FROM scribe_lines_in \
         ON CONFLICT (meeting_id, sequence_number) DO NOTHING",
    )
    .bind(created_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn text_rows(lines: &[(MeetingId, Line)]) -> Vec<u8> {
    use std::fmt::Write;
    fn escaped(out: &mut String, text: &str) {
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    fn optional<T: std::fmt::Display>(out: &mut String, value: Option<T>) {
        match value {
            Some(v) => write!(out, "{v}").expect("writing to a String"),
            None => out.push_str("\\N"),
        }
    }
    let mut out = String::with_capacity(lines.len() * 160);
    for (meeting, line) in lines {
        write!(
            out,
            "{meeting}\t{}\t{}\t",
            line.sequence_number,
            line.speaker.as_str()
        )
        .expect("writing to a String");
        escaped(&mut out, &line.text);
        write!(out, "\t{}\t", line.status.as_str()).expect("writing to a String");
        match &line.item_id {
            Some(item) => escaped(&mut out, item),
            None => out.push_str("\\N"),
        }
        write!(
            out,
            "\t{}\t",
            line.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
        .expect("writing to a String");
        optional(&mut out, line.start_ms);
        out.push('\t');
        optional(&mut out, line.end_ms);
        out.push('\n');
    }
    out.into_bytes()
}

/// COPY's binary format: a signature, then per row the field count and each
/// field as its length (-1 for NULL) and its bytes, then -1.
fn binary_rows(lines: &[(MeetingId, Line)]) -> Result<Vec<u8>, sqlx::Error> {
    fn field<'q, T: Encode<'q, Postgres>>(
        out: &mut PgArgumentBuffer,
        value: &T,
    ) -> Result<(), sqlx::Error> {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        let length = match value.encode_by_ref(out).map_err(sqlx::Error::Encode)? {
            IsNull::Yes => -1,
            IsNull::No => {
                i32::try_from(out.len() - at - 4).map_err(|e| sqlx::Error::Encode(Box::new(e)))?
            }
        };
        out[at..at + 4].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }
    let mut out = PgArgumentBuffer::default();
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&[0; 8]); // flags, header extension length
    for (meeting, line) in lines {
        out.extend_from_slice(&9i16.to_be_bytes());
        field(&mut out, &meeting.as_uuid())?;
        field(&mut out, &line.sequence_number)?;
        field(&mut out, &line.speaker.as_str())?;
        field(&mut out, &line.text.as_str())?;
        field(&mut out, &line.status.as_str())?;
        field(&mut out, &line.item_id.as_deref())?;
        field(&mut out, &line.timestamp)?;
        field(&mut out, &line.start_ms)?;
        field(&mut out, &line.end_ms)?;
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(std::mem::take(&mut *out))
}
