//! The store's side of calls a browser or a phone carries: starting a
//! meeting's attached call, one meeting per SIP call, calling a meeting off,
//! and the possible holes a re-attach left in a transcript.

use chrono::{DateTime, Utc};
use scribe_actors::call_log::CallEvent;
use scribe_actors::domain::{EventKind, MeetingStatus, Transport};
use scribe_actors::ids::MeetingId;
use serde::Serialize;
use serde_json::Value;

use super::pool::{Store, StoreError, on_pool};
use super::status::{Changed, StatusChange, change_status};
use crate::domain::meeting::NewMeeting;
use crate::domain::now;

/// What starting an attached call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedStart {
    /// The meeting is `active`, its call recorded.
    Started,
    /// The meeting was not `upcoming` (another call got there first).
    NotUpcoming(MeetingStatus),
    NotFound,
}

/// Lines may be missing here: between line `after` (none: the start of
/// the call) and line `before` (none: not known), while scribe was away.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TranscriptHole {
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub reason: String,
}

impl Store {
    /// `upcoming` -> `active` for a call a browser or a phone carries, with
    /// its transport and OpenAI's call id, logged in the same transaction.
    pub async fn start_attached(
        &self,
        meeting: MeetingId,
        transport: Transport,
        provider_call_id: &str,
    ) -> Result<AttachedStart, StoreError> {
        let at = now();
        let outcome = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let change = StatusChange::Start {
                call_cid: None,
                transport: Some(transport),
                provider_call_id: Some(provider_call_id),
                voice_api: Some(self.voice_api),
            };
            let outcome = match change_status(&mut *tx, meeting, change, at).await? {
                Changed::Made { .. } => AttachedStart::Started,
                Changed::Refused(refused) => return Ok(AttachedStart::NotUpcoming(refused.from)),
                Changed::NotFound => return Ok(AttachedStart::NotFound),
            };
            tx.commit().await?;
            Ok::<_, StoreError>(outcome)
        })?;
        self.changes.touch(meeting);
        Ok(outcome)
    }

    /// Stores the meeting of an incoming SIP call (`upcoming`, transport
    /// `sip`, OpenAI's call id). `None` when that call already has its
    /// meeting (a retried or concurrent delivery).
    pub async fn insert_sip_meeting(
        &self,
        new: NewMeeting,
        provider_call_id: &str,
    ) -> Result<Option<MeetingId>, StoreError> {
        let id = MeetingId::new();
        let at = now();
        let inserted = on_pool!(self, |p| {
            // Only for an agent not deleted (its row held against a deletion).
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO meetings (id, name, user_id, agent_id, status, transport, \
                 provider_call_id, created_at, updated_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8 \
                 FROM agents WHERE id = $4 AND deleted_at IS NULL{}",
                super::pool::key_share_lock(p)
            )))
            .bind(id.as_uuid())
            .bind(&new.name)
            .bind(&new.user_id)
            .bind(new.agent_id.as_uuid())
            .bind(MeetingStatus::Upcoming.as_str())
            .bind(Transport::Sip.as_str())
            .bind(provider_call_id)
            .bind(at)
            .execute(p)
            .await
            .map(|done| done.rows_affected())
        });
        match inserted {
            // Its agent was deleted meanwhile: no meeting.
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(id)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The meeting of a provider call, if one was made for it.
    pub async fn meeting_for_call(
        &self,
        provider_call_id: &str,
    ) -> Result<Option<MeetingId>, StoreError> {
        let row: Option<(uuid::Uuid,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT id FROM meetings WHERE provider_call_id = $1")
                .bind(provider_call_id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row.map(|(id,)| MeetingId::from_uuid(id)))
    }

    /// `upcoming` -> `cancelled` with why (a call that could not be made):
    /// `error` public, `detail` for `/admin`. False when the state machine
    /// refused it.
    pub async fn cancel_meeting(
        &self,
        meeting: MeetingId,
        error: &str,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let at = now();
        let cancelled = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let made = matches!(
                change_status(
                    &mut *tx,
                    meeting,
                    StatusChange::Cancel { error, detail },
                    at
                )
                .await?,
                Changed::Made { .. }
            );
            if made {
                tx.commit().await?;
            }
            Ok::<_, StoreError>(made)
        })?;
        self.changes.touch(meeting);
        Ok(cancelled)
    }

    /// The places in the meeting's transcript where lines may be missing
    /// (its `possible_gap` log entries), in order.
    pub async fn transcript_holes(
        &self,
        meeting: MeetingId,
    ) -> Result<Vec<TranscriptHole>, StoreError> {
        let rows: Vec<(sqlx::types::Json<Value>,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT detail FROM meeting_events WHERE meeting_id = $1 AND kind = $2 ORDER BY id",
            )
            .bind(meeting.as_uuid())
            .bind(EventKind::PossibleGap.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(detail,)| match CallEvent::read(EventKind::PossibleGap, &detail) {
                    Ok(CallEvent::PossibleGap(hole)) => Some(TranscriptHole {
                        after: hole.after,
                        before: hole.before,
                        from: hole.from,
                        to: hole.to,
                        reason: hole.reason,
                    }),
                    _ => None,
                },
            )
            .collect())
    }
}
