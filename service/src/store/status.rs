//! Every change of a meeting's status goes through [`change_status`]: it
//! reads the current status (locking the row on PostgreSQL; SQLite write
//! transactions hold the database), asks the state machine
//! ([`scribe_actors::lifecycle`]), sets the status with the columns that
//! belong to the change, and logs `status_changed {from, to}` in the same
//! transaction. A change the state machine does not allow is refused and
//! writes nothing.

use chrono::{DateTime, Utc};
use scribe_actors::domain::{EventKind, MeetingStatus, Transport, VoiceApi};
use scribe_actors::ids::MeetingId;
use scribe_actors::lifecycle::{TransitionRefused, check};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, SqliteConnection};

use super::pool::StoreError;

/// A status change, with what it records besides the status.
#[derive(Debug, Clone, Copy)]
pub enum StatusChange<'a> {
    /// `upcoming` -> `active`: the call started (`started_at`; its Stream
    /// call, or how it reaches OpenAI and OpenAI's call id).
    Start {
        call_cid: Option<&'a str>,
        transport: Option<Transport>,
        provider_call_id: Option<&'a str>,
        voice_api: Option<VoiceApi>,
    },
    /// `active` -> `processing`: the call ended (`ended_at`,
    /// `processing_started_at`, `transcript_collected`, the final
    /// high-water mark).
    Finalize {
        ended_at: DateTime<Utc>,
        high_water: i64,
    },
    /// `processing` -> `completed`: the results.
    Complete {
        summary: &'a str,
        progress: Option<&'a Value>,
    },
    /// -> `failed`, with scribe's short public error and the provider's
    /// own text (`/admin` only).
    Fail {
        error: &'a str,
        detail: Option<&'a str>,
    },
    /// `failed` -> `processing`: the analysis runs again.
    Retry,
    /// `upcoming` -> `cancelled`, with why (as for `Fail`).
    Cancel {
        error: &'a str,
        detail: Option<&'a str>,
    },
}

impl StatusChange<'_> {
    pub fn target(&self) -> MeetingStatus {
        match self {
            Self::Start { .. } => MeetingStatus::Active,
            Self::Finalize { .. } | Self::Retry => MeetingStatus::Processing,
            Self::Complete { .. } => MeetingStatus::Completed,
            Self::Fail { .. } => MeetingStatus::Failed,
            Self::Cancel { .. } => MeetingStatus::Cancelled,
        }
    }

    /// The UPDATE: `$1` id, `$2` current status, `$3` new status, `$4` now,
    /// then the change's own values from `$5`.
    fn sql(&self) -> &'static str {
        match self {
            Self::Start { .. } => {
                "UPDATE meetings SET status = $3, updated_at = $4, started_at = COALESCE(started_at, $4), \
                 call_cid = COALESCE($5, call_cid), transport = COALESCE($6, transport), \
                 provider_call_id = COALESCE($7, provider_call_id), \
                 voice_api = COALESCE($8, voice_api) WHERE id = $1 AND status = $2"
            }
            Self::Finalize { .. } => {
                "UPDATE meetings SET status = $3, updated_at = $4, ended_at = $5, processing_started_at = $4, \
                 transcript_collected = TRUE, sequence_high_water = $6 WHERE id = $1 AND status = $2"
            }
            Self::Complete { .. } => {
                "UPDATE meetings SET status = $3, updated_at = $4, summary = $5, \
                 progress = COALESCE($6, progress), error = NULL, error_detail = NULL, completed_at = $4 \
                 WHERE id = $1 AND status = $2"
            }
            Self::Fail { .. } | Self::Cancel { .. } => {
                "UPDATE meetings SET status = $3, updated_at = $4, error = $5, error_detail = $6 \
                 WHERE id = $1 AND status = $2"
            }
            Self::Retry => {
                "UPDATE meetings SET status = $3, updated_at = $4, error = NULL, error_detail = NULL, \
                 processing_started_at = $4 \
                 WHERE id = $1 AND status = $2"
            }
        }
    }
}

/// What [`change_status`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// The meeting was `from` and is the change's target now.
    Made {
        from: MeetingStatus,
    },
    /// The state machine does not allow it; nothing was written.
    Refused(TransitionRefused),
    NotFound,
}

/// A connection inside a write transaction, on either backend.
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl<'c> From<&'c mut SqliteConnection> for Conn<'c> {
    fn from(conn: &'c mut SqliteConnection) -> Self {
        Self::Sqlite(conn)
    }
}

impl<'c> From<&'c mut PgConnection> for Conn<'c> {
    fn from(conn: &'c mut PgConnection) -> Self {
        Self::Postgres(conn)
    }
}

/// Makes `change` on `meeting` and logs it, inside the caller's write
/// transaction `conn`, when the state machine allows it.
pub async fn change_status(
    conn: impl Into<Conn<'_>>,
    meeting: MeetingId,
    change: StatusChange<'_>,
    at: DateTime<Utc>,
) -> Result<Changed, StoreError> {
    // The same statements on each backend; only the row lock differs.
    macro_rules! run {
        ($c:expr, $read:literal) => {{
            let current: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as($read)
                .bind(meeting.as_uuid())
                .fetch_optional(&mut *$c)
                .await?;
            let Some((current, started_at)) = current else {
                return Ok(Changed::NotFound);
            };
            let from: MeetingStatus = current
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("meeting {meeting}: {e}")))?;
            let to = change.target();
            if let Err(refused) = check(from, to) {
                return Ok(Changed::Refused(refused));
            }
            let update = sqlx::query(change.sql())
                .bind(meeting.as_uuid())
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(at);
            let update = match change {
                StatusChange::Start {
                    call_cid,
                    transport,
                    provider_call_id,
                    voice_api,
                } => update
                    .bind(call_cid)
                    .bind(transport.map(Transport::as_str))
                    .bind(provider_call_id)
                    .bind(voice_api.map(VoiceApi::as_str)),
                // A call never ends before it started (a provider's
                // clock, a webhook's `created_at`, may say so).
                StatusChange::Finalize {
                    ended_at,
                    high_water,
                } => update
                    .bind(started_at.map_or(ended_at, |started| ended_at.max(started)))
                    .bind(high_water),
                StatusChange::Complete { summary, progress } => {
                    update.bind(summary).bind(progress.map(Json))
                }
                StatusChange::Fail { error, detail } | StatusChange::Cancel { error, detail } => {
                    update.bind(error).bind(detail)
                }
                StatusChange::Retry => update,
            };
            update.execute(&mut *$c).await?;
            sqlx::query(
                "INSERT INTO meeting_events (meeting_id, kind, detail, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(meeting.as_uuid())
            .bind(EventKind::StatusChanged.as_str())
            .bind(Json(
                scribe_actors::call_log::CallEvent::StatusChanged {
                    from: from.as_str().to_owned(),
                    to: to.as_str().to_owned(),
                }
                .detail(),
            ))
            .bind(at)
            .execute(&mut *$c)
            .await?;
            Ok(Changed::Made { from })
        }};
    }
    match conn.into() {
        Conn::Sqlite(c) => run!(c, "SELECT status, started_at FROM meetings WHERE id = $1"),
        Conn::Postgres(c) => run!(
            c,
            "SELECT status, started_at FROM meetings WHERE id = $1 FOR NO KEY UPDATE"
        ),
    }
}
