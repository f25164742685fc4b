//! Call ownership across instances: a lease per active meeting (owner,
//! expiry, epoch). One instance runs a call's actor; the others leave it
//! alone until the lease expires, then one of them takes the call over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::LeaseReport;
use uuid::Uuid;

use super::pool::{Store, StoreError, on_pool};
use crate::domain::now;

/// An owned meeting and when another instance asked it to end.
type OwnedRow = (Uuid, Option<DateTime<Utc>>);

fn until(ttl: Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30))
}

impl Store {
    pub async fn acquire_lease(
        &self,
        meeting: MeetingId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let taken = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE meetings SET lease_owner = $2, lease_expires_at = $3, lease_epoch = lease_epoch + 1, \
                 updated_at = $4 WHERE id = $1 AND status = 'active' \
                 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < $4)",
            )
            .bind(meeting.as_uuid())
            .bind(owner)
            .bind(until(ttl))
            .bind(now())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(taken == 1)
    }

    pub async fn renew_leases(
        &self,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseReport, StoreError> {
        let at = now();
        let (owned, orphaned): (Vec<OwnedRow>, Vec<(Uuid,)>) = on_pool!(self, |p| {
            // Three statements, no transaction: the UPDATE is atomic on its
            // own, and a transaction around all three would hold every live
            // call's row lock while the reads run, stalling the writer's
            // high-water updates and finalizations behind it.
            sqlx::query(super::pool::renew_leases_sql(p))
                .bind(owner)
                .bind(until(ttl))
                .execute(p)
                .await?;
            let owned = sqlx::query_as(
                "SELECT id, end_requested_at FROM meetings WHERE lease_owner = $1 AND status = 'active'",
            )
            .bind(owner)
            .fetch_all(p)
            .await?;
            // A call that just became active has no owner for a moment, while
            // the instance that took its webhook starts it: leave those alone.
            let orphaned = sqlx::query_as(
                "SELECT id FROM meetings WHERE status = 'active' \
                 AND ((lease_owner IS NULL AND updated_at < $2) OR lease_expires_at < $1) ORDER BY started_at",
            )
            .bind(at)
            .bind(at - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30)))
            .fetch_all(p)
            .await?;
            Ok::<_, sqlx::Error>((owned, orphaned))
        })?;
        Ok(LeaseReport {
            end_requested: owned
                .iter()
                .filter_map(|(id, at)| at.map(|at| (MeetingId::from_uuid(*id), at)))
                .collect(),
            owned: owned
                .into_iter()
                .map(|(id, _)| MeetingId::from_uuid(id))
                .collect(),
            orphaned: super::pool::meeting_ids(orphaned),
        })
    }

    /// Frees `owner`'s leases so that another instance may take the calls
    /// over at once (the lease reads as expired).
    pub async fn release_leases(&self, owner: &str) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query("UPDATE meetings SET lease_expires_at = $2 WHERE lease_owner = $1")
                .bind(owner)
                .bind(DateTime::<Utc>::UNIX_EPOCH)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Records that an `active` call ended, durably, before anything acts
    /// on it: whatever dies next (actor, supervisor, process), the call is
    /// finalized by whoever runs it next instead of being adopted as live.
    pub async fn mark_end_requested(
        &self,
        meeting: MeetingId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query(
                "UPDATE meetings SET end_requested_at = COALESCE(end_requested_at, $2) \
                 WHERE id = $1 AND status = 'active'",
            )
            .bind(meeting.as_uuid())
            .bind(at)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn request_end(
        &self,
        meeting: MeetingId,
        me: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let flagged = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE meetings SET end_requested_at = COALESCE(end_requested_at, $3) \
                 WHERE id = $1 AND status = 'active' AND lease_owner IS NOT NULL \
                 AND lease_owner <> $2 AND lease_expires_at > $4",
            )
            .bind(meeting.as_uuid())
            .bind(me)
            .bind(at)
            .bind(now())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(flagged == 1)
    }
}
