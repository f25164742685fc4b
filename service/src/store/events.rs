//! The per-meeting event log (actor starts and restarts, socket changes,
//! realtime errors, gaps, the end of the call) and the analysis job record.

use chrono::{DateTime, Utc};
use scribe_actors::domain::EventKind;
use scribe_actors::ids::MeetingId;
use serde::Serialize;
use serde_json::Value;

use super::pool::{Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: EventKind,
    #[sqlx(json)]
    pub detail: Value,
    pub created_at: DateTime<Utc>,
}

/// A meeting's durable analysis job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AnalysisJob {
    pub state: String,
    pub attempt: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The meeting's analysis job, once its call ended.
    pub async fn analysis_job(
        &self,
        meeting: MeetingId,
    ) -> Result<Option<AnalysisJob>, StoreError> {
        let job = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT state, attempt, last_error, created_at, started_at, finished_at \
                 FROM analysis_jobs WHERE meeting_id = $1",
            )
            .bind(meeting.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        Ok(job)
    }

    /// The meeting's event log, oldest first.
    pub async fn events(&self, meeting: MeetingId) -> Result<Vec<StoredEvent>, StoreError> {
        let events = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, kind, detail, created_at FROM meeting_events WHERE meeting_id = $1 ORDER BY id",
            )
            .bind(meeting.as_uuid())
            .fetch_all(p)
            .await
        })?;
        Ok(events)
    }

    /// Why the meeting failed or was cancelled, as the provider put it
    /// (`/admin` only; the public `error` is scribe's words).
    pub async fn error_detail(&self, meeting: MeetingId) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT error_detail FROM meetings WHERE id = $1")
                .bind(meeting.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        Ok(row.and_then(|(detail,)| detail))
    }
}
