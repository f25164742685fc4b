//! Who is in each Stream call session, from Stream's participant events:
//! a session ends when its last participant leaves, and scribe's own agent
//! is one, so scribe ends the call itself when nobody but its agent
//! remains. Kept in the database (`stream_participants`), so a restart or
//! another instance counts the same.

use chrono::{DateTime, Utc};
use scribe_actors::ids::MeetingId;

use super::pool::{Store, StoreError, on_pool};

/// A participant of a Stream call session, by its own session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence<'a> {
    pub call_cid: &'a str,
    pub session_id: &'a str,
    pub user_session_id: &'a str,
    pub user_id: &'a str,
}

/// Who a session has, once an event was counted: the participants other
/// than scribe's agent still in it, and those ever seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub people: i64,
    pub seen: i64,
}

/// Whether a participant joined or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    Joined,
    Left,
}

/// A call no deleted meeting has, unless a meeting not deleted has it too.
const LIVE_CALL: &str = "NOT (EXISTS (SELECT 1 FROM meetings WHERE call_cid = $1 AND deleted_at IS NOT NULL) \
     AND NOT EXISTS (SELECT 1 FROM meetings WHERE call_cid = $1 AND deleted_at IS NULL))";

impl Store {
    /// Records a participant joining or leaving at `at` (idempotent: a
    /// repeated event changes nothing, a `joined` after its `left` does
    /// not bring the participant back), then counts who remains in the
    /// session, leaving out `agent_user_id`.
    pub async fn record_presence(
        &self,
        presence: &Presence<'_>,
        movement: Movement,
        at: DateTime<Utc>,
        agent_user_id: &str,
    ) -> Result<Remaining, StoreError> {
        // Nothing is kept of a call whose meetings were all deleted.
        let statement = match movement {
            Movement::Joined => {
                "INSERT INTO stream_participants (call_cid, session_id, user_session_id, user_id, joined_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE {LIVE_CALL} \
                 ON CONFLICT (call_cid, session_id, user_session_id) \
                 DO UPDATE SET joined_at = COALESCE(stream_participants.joined_at, excluded.joined_at)"
            }
            Movement::Left => {
                "INSERT INTO stream_participants (call_cid, session_id, user_session_id, user_id, left_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE {LIVE_CALL} \
                 ON CONFLICT (call_cid, session_id, user_session_id) \
                 DO UPDATE SET left_at = COALESCE(stream_participants.left_at, excluded.left_at)"
            }
        };
        let counted: (Option<i64>, i64) = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            sqlx::query(sqlx::AssertSqlSafe(
                statement.replace("{LIVE_CALL}", LIVE_CALL),
            ))
            .bind(presence.call_cid)
            .bind(presence.session_id)
            .bind(presence.user_session_id)
            .bind(presence.user_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let counted: (Option<i64>, i64) = sqlx::query_as(
                "SELECT SUM(CASE WHEN left_at IS NULL THEN 1 ELSE 0 END), COUNT(*) \
                 FROM stream_participants WHERE call_cid = $1 AND session_id = $2 AND user_id <> $3",
            )
            .bind(presence.call_cid)
            .bind(presence.session_id)
            .bind(agent_user_id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(counted)
        })?;
        Ok(Remaining {
            people: counted.0.unwrap_or(0),
            seen: counted.1,
        })
    }

    /// The meeting whose call is Stream's `call_cid` (the latest started,
    /// an `active` one first), if any.
    pub async fn meeting_for_stream_call(
        &self,
        call_cid: &str,
    ) -> Result<Option<MeetingId>, StoreError> {
        let row: Option<(uuid::Uuid,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id FROM meetings WHERE call_cid = $1 AND deleted_at IS NULL \
                 ORDER BY CASE WHEN status = 'active' THEN 0 ELSE 1 END, started_at DESC LIMIT 1",
            )
            .bind(call_cid)
            .fetch_optional(p)
            .await
        })?;
        Ok(row.map(|(id,)| MeetingId::from_uuid(id)))
    }
}
