//! Webhook deliveries: durable de-duplication on `X-Webhook-Id` and on
//! (`call_cid`, `session_id`, `type`), and the start of a call session.

use chrono::{DateTime, Utc};
use scribe_actors::domain::{MeetingStatus, Transport};
use scribe_actors::ids::MeetingId;

use super::pool::{Store, StoreError, on_pool};
use super::status::{Changed, StatusChange, change_status};
use crate::domain::now;

/// One webhook delivery, as far as de-duplication cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub webhook_id: Option<String>,
    pub event_type: String,
    pub call_cid: Option<String>,
    pub session_id: Option<String>,
}

/// What `call.session_started` did to its meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStart {
    /// The meeting is `active` now (or already was): run its actor.
    Started,
    /// This delivery (or its session) was seen before.
    Duplicate,
    /// No such meeting, or its agent is gone.
    NotFound,
    /// The meeting is in a state that cannot start a call.
    NotStartable(MeetingStatus),
    /// The meeting was deleted: nothing done, nothing recorded.
    Deleted,
}

const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (webhook_id, event_type, call_cid, session_id, received_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

impl Store {
    /// Records a delivery; false when it (or its call session event) was
    /// recorded before.
    pub async fn record_delivery(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, |p| {
            sqlx::query(INSERT_DELIVERY)
                .bind(delivery.webhook_id.as_deref())
                .bind(&delivery.event_type)
                .bind(delivery.call_cid.as_deref())
                .bind(delivery.session_id.as_deref())
                .bind(now())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    /// True when this delivery's `webhook_id` was recorded before.
    pub async fn delivery_seen(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        let Some(id) = delivery.webhook_id.as_deref() else {
            return Ok(false);
        };
        let row: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT webhook_id FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row.is_some())
    }

    /// In one transaction: checks the meeting and its agent exist and the
    /// meeting is not deleted, de-duplicates the delivery, checks the
    /// meeting may start (`upcoming`, or `active` for a new session of a
    /// live call), and makes it `active` with `started_at` and its call. A
    /// refused start records nothing, so a corrected retry is not a
    /// duplicate.
    pub async fn start_session(
        &self,
        delivery: &WebhookDelivery,
        meeting: MeetingId,
        transport: Transport,
    ) -> Result<SessionStart, StoreError> {
        let at = now();
        let outcome = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            // The meeting first: a deleted one answers so, whether this
            // delivery is new or a redelivery, and records nothing.
            let status: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT m.status, m.deleted_at FROM meetings m JOIN agents a ON a.id = m.agent_id \
                 WHERE m.id = $1",
            )
            .bind(meeting.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((status, deleted)) = status else {
                return Ok(SessionStart::NotFound);
            };
            if deleted.is_some() {
                return Ok(SessionStart::Deleted);
            }
            let fresh = sqlx::query(INSERT_DELIVERY)
                .bind(delivery.webhook_id.as_deref())
                .bind(&delivery.event_type)
                .bind(delivery.call_cid.as_deref())
                .bind(delivery.session_id.as_deref())
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !fresh {
                return Ok(SessionStart::Duplicate);
            }
            if status == MeetingStatus::Active.as_str() {
                // A new session of a live call: no status change, only its call.
                sqlx::query(
                    "UPDATE meetings SET started_at = COALESCE(started_at, $2), \
                     call_cid = COALESCE($3, call_cid), updated_at = $2 \
                     WHERE id = $1 AND status = 'active' AND deleted_at IS NULL",
                )
                .bind(meeting.as_uuid())
                .bind(at)
                .bind(delivery.call_cid.as_deref())
                .execute(&mut *tx)
                .await?;
            } else {
                let change = StatusChange::Start {
                    call_cid: delivery.call_cid.as_deref(),
                    transport: Some(transport),
                    provider_call_id: None,
                    voice_api: Some(self.voice_api),
                };
                match change_status(&mut *tx, meeting, change, at).await? {
                    Changed::Made { .. } => {}
                    Changed::Refused(refused) => {
                        return Ok(SessionStart::NotStartable(refused.from));
                    }
                    Changed::NotFound => return Ok(SessionStart::NotFound),
                }
            }
            tx.commit().await?;
            Ok::<_, StoreError>(SessionStart::Started)
        })?;
        self.changes.touch(meeting);
        Ok(outcome)
    }
}
