//! Meeting queries.

use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use sqlx::types::Json;

use super::pool::{Store, StoreError, on_pool};
use super::rows::{MEETING_COLUMNS, MeetingRow};
use crate::domain::meeting::{Meeting, MeetingFilter, NewMeeting};
use crate::domain::now;

impl Store {
    /// Stores a new `upcoming` meeting. Fails with [`StoreError::UnknownAgent`]
    /// when its agent does not exist, and with a unique violation when its
    /// previous meeting already has a next meeting.
    pub async fn insert_meeting(&self, new: NewMeeting) -> Result<Meeting, StoreError> {
        let id = MeetingId::new();
        let at = now();
        let result = on_pool!(self, |p| {
            // Only for an agent that exists and is not deleted; its row is
            // held against a deletion until this commits.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO meetings (id, name, user_id, agent_id, status, prompt, progress, \
                 previous_meeting_id, created_at, updated_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9 \
                 FROM agents WHERE id = $4 AND deleted_at IS NULL{}",
                super::pool::key_share_lock(p)
            )))
            .bind(id.as_uuid())
            .bind(&new.name)
            .bind(&new.user_id)
            .bind(new.agent_id.as_uuid())
            .bind(MeetingStatus::Upcoming.as_str())
            .bind(new.prompt.as_deref())
            .bind(new.progress.as_ref().map(Json))
            .bind(new.previous_meeting_id.map(|m| m.as_uuid()))
            .bind(at)
            .execute(p)
            .await
            .map(|done| done.rows_affected())
        });
        match result {
            // No such agent, or a deleted one: no meeting.
            Ok(0) => return Err(StoreError::UnknownAgent(new.agent_id)),
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                // Either reference can break the key; say which.
                if self.agent(new.agent_id).await?.is_none() {
                    return Err(StoreError::UnknownAgent(new.agent_id));
                }
                return Err(StoreError::Database(sqlx::Error::Database(e)));
            }
            Err(e) => return Err(e.into()),
        }
        self.meeting(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("meeting {id} vanished after insert")))
    }

    pub async fn meeting(&self, id: MeetingId) -> Result<Option<Meeting>, StoreError> {
        let row: Option<MeetingRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MEETING_COLUMNS} FROM meetings m WHERE m.id = $1"
            )))
            .bind(id.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        row.map(Meeting::try_from).transpose()
    }

    /// Revokes the meeting's page links: the generation they are issued at
    /// goes up by one. The new generation, or `None` for no such meeting.
    pub async fn next_page_generation(&self, id: MeetingId) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "UPDATE meetings SET page_generation = page_generation + 1, updated_at = $2 \
                 WHERE id = $1 AND deleted_at IS NULL RETURNING page_generation",
            )
            .bind(id.as_uuid())
            .bind(crate::domain::now())
            .fetch_optional(p)
            .await
        })?;
        // Open streams re-read the meeting: those opened with a revoked
        // link end.
        self.changes.touch(id);
        Ok(row.map(|(generation,)| generation))
    }

    /// How many meetings there are in each status.
    pub async fn meeting_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT CASE WHEN deleted_at IS NULL THEN status ELSE 'deleted' END, COUNT(*) \
                 FROM meetings GROUP BY 1",
            )
            .fetch_all(p)
            .await
        })?)
    }

    /// Meetings matching `filter`, newest first.
    pub async fn meetings(&self, filter: &MeetingFilter) -> Result<Vec<Meeting>, StoreError> {
        let rows: Vec<MeetingRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MEETING_COLUMNS} FROM meetings m \
                 WHERE m.deleted_at IS NULL AND ($1 IS NULL OR m.status = $1) \
                   AND ($2 IS NULL OR m.user_id = $2) \
                   AND ($3 IS NULL OR m.agent_id = $3) \
                 ORDER BY m.created_at DESC, m.id DESC LIMIT $4"
            )))
            .bind(filter.status.map(MeetingStatus::as_str))
            .bind(filter.user_id.as_deref())
            .bind(filter.agent_id.map(|a| a.as_uuid()))
            .bind(i64::from(filter.limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(Meeting::try_from).collect()
    }
}
