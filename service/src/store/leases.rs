//! Call ownership across instances: a lease per active meeting (owner,
//! expiry, epoch). One instance runs a call's actor; the others leave it
//! alone until the lease expires, then one of them takes the call over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::LeaseReport;
use uuid::Uuid;

use super::pool::{Pool, Store, StoreError, on_pool};
use crate::domain::now;

/// What recording the end of a call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRequest {
    /// The call's first end: recorded now.
    First,
    /// The call is still live, its end already recorded (a retry, or
    /// another of the events that end it).
    Again,
    /// The meeting is not `active` (ended already, or never started).
    NotActive,
}

/// An owned meeting and when another instance asked it to end.
type OwnedRow = (Uuid, Option<DateTime<Utc>>);

fn until(ttl: Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30))
}

/// Active meetings nobody holds: the lease expired (`$1` is now), or no
/// instance ever took it. A call that just became active has no owner for
/// a moment, while the instance that took its webhook starts it: those
/// (updated after `$2`) are left alone.
const ORPHANED: &str = "SELECT id FROM meetings WHERE status = 'active' \
     AND ((lease_owner IS NULL AND updated_at < $2) OR lease_expires_at < $1) ORDER BY started_at";

fn settle_before(at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    at - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30))
}

impl Store {
    /// Active meetings whose lease is free or expired: to be taken over.
    pub async fn orphaned_calls(&self, ttl: Duration) -> Result<Vec<MeetingId>, StoreError> {
        let at = now();
        let rows: Vec<(Uuid,)> = on_pool!(self, |p| {
            sqlx::query_as(ORPHANED)
                .bind(at)
                .bind(settle_before(at, ttl))
                .fetch_all(p)
                .await
        })?;
        Ok(super::pool::meeting_ids(rows))
    }

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
            // A released lease (expiry at the epoch) stays released until
            // the call is adopted: renewing it would make the adoption read
            // it as a crash's and log a `possible_gap` that is not there.
            sqlx::query(super::pool::renew_leases_sql(p))
                .bind(owner)
                .bind(until(ttl))
                .bind(DateTime::<Utc>::UNIX_EPOCH)
                .execute(p)
                .await?;
            let owned = sqlx::query_as(
                "SELECT id, end_requested_at FROM meetings WHERE lease_owner = $1 AND status = 'active'",
            )
            .bind(owner)
            .fetch_all(p)
            .await?;
            let orphaned = sqlx::query_as(ORPHANED)
                .bind(at)
                .bind(settle_before(at, ttl))
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
        let released = on_pool!(self, |p| {
            sqlx::query("UPDATE meetings SET lease_expires_at = $2 WHERE lease_owner = $1 AND status = 'active'")
                .bind(owner)
                .bind(DateTime::<Utc>::UNIX_EPOCH)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if let (Pool::Postgres(pool), 1..) = (&self.pool, released) {
            // The others take the calls over now, not at their next look.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::news::CHANNEL)
                .bind(super::news::released(owner))
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Records that an `active` call ended, durably, before anything acts
    /// on it: whatever dies next (actor, supervisor, process), the call is
    /// finalized by whoever runs it next instead of being adopted as live.
    /// Says whether this was the first end of the call.
    pub async fn mark_end_requested(
        &self,
        meeting: MeetingId,
        at: DateTime<Utc>,
    ) -> Result<EndRequest, StoreError> {
        let first = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE meetings SET end_requested_at = $2 \
                 WHERE id = $1 AND status = 'active' AND end_requested_at IS NULL",
            )
            .bind(meeting.as_uuid())
            .bind(at)
            .execute(p)
            .await
            .map(|r| r.rows_affected() == 1)
        })?;
        if first {
            return Ok(EndRequest::First);
        }
        // Both only ever move forward: an end once asked for stays asked
        // for, a meeting no longer active never is again.
        let active: Option<(String,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT status FROM meetings WHERE id = $1")
                .bind(meeting.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        Ok(match active {
            Some((status,)) if status == "active" => EndRequest::Again,
            _ => EndRequest::NotActive,
        })
    }

    /// When another live instance (not `me`) holds the meeting's lease,
    /// records that the call ended and returns true. On PostgreSQL the
    /// owner hears of it at once (a `NOTIFY` in the same statement, sent
    /// when it commits); elsewhere at its next renewal.
    pub async fn request_end(
        &self,
        meeting: MeetingId,
        me: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const FLAG: &str = "UPDATE meetings SET end_requested_at = COALESCE(end_requested_at, $3) \
             WHERE id = $1 AND status = 'active' AND lease_owner IS NOT NULL \
             AND lease_owner <> $2 AND lease_expires_at > $4";
        let flagged = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(FLAG)
                .bind(meeting.as_uuid())
                .bind(me)
                .bind(at)
                .bind(now())
                .execute(p)
                .await
                .map(|r| r.rows_affected())?,
            Pool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH flagged AS ({FLAG} RETURNING id, lease_owner, end_requested_at) \
                 SELECT flagged.id FROM flagged CROSS JOIN LATERAL pg_notify($5, \
                 json_build_object('kind', 'end', 'owner', lease_owner, 'meeting', id, 'at', end_requested_at)::text) AS sent"
            )))
            .bind(meeting.as_uuid())
            .bind(me)
            .bind(at)
            .bind(now())
            .bind(super::news::CHANNEL)
            .fetch_all(p)
            .await?
            .len() as u64,
        };
        Ok(flagged == 1)
    }
}
