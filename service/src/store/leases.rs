//! Call ownership across instances. Each life of an instance is a member
//! (`members`: instance, epoch, state, heartbeat) that renews its own
//! heartbeat, one row whatever its calls. A call names the member that
//! holds it (`meetings.lease_owner`, `owner_epoch`), written only when the
//! call is taken or ends, and carries a lease epoch bumped whenever it
//! changes hands: the fencing token every write for the call is checked
//! against. A member whose heartbeat is older than the lease is declared
//! dead by whoever looks first; its calls are then taken, a batch per
//! statement. Every periodic statement reads an index that holds only the
//! rows that matter (see the migration `0008_members.sql`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::{Claimed, Heartbeat, Member};
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

/// What taking a call writes, `$1`/`$2` being the taking member and `$3`
/// the time: the member, a lease epoch bumped when the call changes hands,
/// and whether its last holder left without releasing it (read from the
/// row as it was: every SET expression sees the old values).
macro_rules! take_set {
    () => {
        "lease_epoch = lease_epoch + CASE WHEN lease_owner = $1 AND owner_epoch = $2 THEN 0 ELSE 1 END, \
         taken_after_crash = CASE WHEN lease_owner IS NULL OR (lease_owner = $1 AND owner_epoch = $2) THEN FALSE \
           ELSE NOT EXISTS (SELECT 1 FROM members r WHERE r.instance = meetings.lease_owner \
             AND r.epoch = meetings.owner_epoch AND r.state = 'released') END, \
         lease_owner = $1, owner_epoch = $2, updated_at = $3"
    };
}

/// Whether the row may be taken by `$1`/`$2`: an active call nobody holds,
/// or `$1`/`$2` does, or its holder is no longer live; and only by a live
/// member (a member declared dead takes nothing). `$status` checks the row
/// is still active again: on PostgreSQL a row a concurrent statement
/// changed is checked anew, and SQLite (one writer, one snapshot) leaves
/// the check to the pick, where it cannot draw the planner to the status
/// index.
macro_rules! takeable {
    ($status:literal) => {
        concat!(
            $status,
            "(meetings.lease_owner IS NULL OR (meetings.lease_owner = $1 AND meetings.owner_epoch = $2) \
             OR NOT EXISTS (SELECT 1 FROM members h WHERE h.instance = meetings.lease_owner \
               AND h.epoch = meetings.owner_epoch AND h.state = 'live')) \
             AND EXISTS (SELECT 1 FROM members t WHERE t.instance = $1 AND t.epoch = $2 AND t.state = 'live')"
        )
    };
}

/// Takes up to `$4` calls held by the member `$5`/`$6`, no longer live.
/// The pick is materialized once: a subquery with `LIMIT` and `SKIP
/// LOCKED` that the planner put on the inner side of a join would be run
/// again for each outer row, each time picking other rows, and take more
/// than the limit.
macro_rules! take_held {
    ($hint:literal, $lock:literal, $status:literal) => {
        concat!(
            "WITH pick AS MATERIALIZED (SELECT m.id FROM meetings m",
            $hint,
            " WHERE m.lease_owner = $5 AND m.owner_epoch = $6 AND m.status = 'active' LIMIT $4",
            $lock,
            ") UPDATE meetings SET ",
            take_set!(),
            " WHERE meetings.id IN (SELECT id FROM pick) AND ",
            takeable!($status),
            " RETURNING id, lease_epoch, taken_after_crash"
        )
    };
}

/// Takes up to `$4` calls nobody took since before `$5` (a start whose
/// instance died before it took the call); picked as above.
macro_rules! take_unheld {
    ($hint:literal, $lock:literal, $status:literal) => {
        concat!(
            "WITH pick AS MATERIALIZED (SELECT m.id FROM meetings m",
            $hint,
            " WHERE m.status = 'active' AND m.lease_owner IS NULL AND m.updated_at < $5 \
             ORDER BY m.updated_at LIMIT $4",
            $lock,
            ") UPDATE meetings SET ",
            take_set!(),
            " WHERE meetings.id IN (SELECT id FROM pick) AND ",
            takeable!($status),
            " RETURNING id, lease_epoch, taken_after_crash"
        )
    };
}

/// The periodic statements, for the plans test: what each reads.
pub const TAKE_HELD_SQLITE: &str = take_held!(" INDEXED BY meetings_held", "", "");
pub const TAKE_HELD_POSTGRES: &str = take_held!(
    "",
    " FOR UPDATE OF m SKIP LOCKED",
    "meetings.status = 'active' AND "
);
pub const TAKE_UNHELD_SQLITE: &str = take_unheld!(" INDEXED BY meetings_unheld", "", "");
pub const TAKE_UNHELD_POSTGRES: &str = take_unheld!(
    "",
    " FOR UPDATE OF m SKIP LOCKED",
    "meetings.status = 'active' AND "
);
/// Members whose heartbeat is older than `$1` are declared dead.
pub const DECLARE_DEAD: &str =
    "UPDATE members SET state = 'dead' WHERE state = 'live' AND heartbeat_at < $1";
/// Lives that are over: their calls are to be taken (a member none of
/// whose calls is live any more is forgotten at a heartbeat).
pub const OVER: &str = "SELECT instance, epoch FROM members WHERE state <> 'live'";
pub const BEAT: &str = "UPDATE members SET heartbeat_at = $3 \
     WHERE instance = $1 AND epoch = $2 AND state = 'live'";
/// A member's calls that ended at another instance.
pub const ENDED_ELSEWHERE: &str = "SELECT id, end_requested_at FROM meetings \
     WHERE lease_owner = $1 AND owner_epoch = $2 AND status = 'active' AND end_requested_at IS NOT NULL";
/// Lives that are over and hold no live call are forgotten: the table
/// holds the live members and the dead ones whose calls are being taken.
pub const FORGET_MEMBERS: &str = "DELETE FROM members WHERE state <> 'live' \
     AND NOT EXISTS (SELECT 1 FROM meetings m WHERE m.lease_owner = members.instance \
       AND m.owner_epoch = members.epoch AND m.status = 'active')";
pub const OWNED: &str =
    "SELECT id FROM meetings WHERE lease_owner = $1 AND owner_epoch = $2 AND status = 'active'";

type ClaimRow = (Uuid, i64, bool);

/// Counts rows an ownership statement wrote.
fn wrote(statement: &'static str, rows: u64) {
    if rows > 0 {
        metrics::counter!(crate::metrics::LEASE_ROWS, "statement" => statement).increment(rows);
    }
}

fn claim((id, lease, after_crash): ClaimRow) -> Claimed {
    Claimed {
        meeting: MeetingId::from_uuid(id),
        lease,
        after_crash,
    }
}

fn before(at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    at - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30))
}

impl Store {
    /// A new life of `instance`: older lives of it are over (dead), and
    /// this one takes a new epoch (the time in ms, never one issued before).
    pub async fn join(&self, instance: &str) -> Result<Member, StoreError> {
        let at = now();
        let epoch: i64 = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            sqlx::query("UPDATE members SET state = 'dead' WHERE instance = $1 AND state = 'live'")
                .bind(instance)
                .execute(&mut *tx)
                .await?;
            // The epoch is the time in ms (or one past the last, if the
            // clock went back): an epoch is never issued twice, even once
            // every row of an instance is forgotten, so a life long over
            // that wakes up can never pass for a new one.
            let (last,): (i64,) =
                sqlx::query_as("SELECT COALESCE(MAX(epoch), 0) FROM members WHERE instance = $1")
                    .bind(instance)
                    .fetch_one(&mut *tx)
                    .await?;
            let epoch = (last + 1).max(at.timestamp_millis());
            sqlx::query(
                "INSERT INTO members (instance, epoch, state, heartbeat_at, started_at) \
                 VALUES ($1, $2, 'live', $3, $3)",
            )
            .bind(instance)
            .bind(epoch)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(epoch)
        })?;
        wrote("join", 1);
        Ok(Member {
            instance: instance.to_owned(),
            epoch,
        })
    }

    /// Takes an active call for `member` when nobody live holds it.
    pub async fn acquire_lease(
        &self,
        meeting: MeetingId,
        member: &Member,
    ) -> Result<Option<Claimed>, StoreError> {
        let row: Option<ClaimRow> = on_pool!(self, |p| {
            sqlx::query_as(concat!(
                "UPDATE meetings SET ",
                take_set!(),
                " WHERE meetings.id = $4 AND ",
                takeable!("meetings.status = 'active' AND "),
                " RETURNING id, lease_epoch, taken_after_crash"
            ))
            .bind(&member.instance)
            .bind(member.epoch)
            .bind(now())
            .bind(meeting.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        wrote("acquire", u64::from(row.is_some()));
        Ok(row.map(claim))
    }

    /// Renews `member`'s heartbeat; reads its calls that ended elsewhere;
    /// forgets lives that are over and hold nothing.
    pub async fn heartbeat(&self, member: &Member) -> Result<Heartbeat, StoreError> {
        let (beat, ended, forgot): (u64, Vec<(Uuid, DateTime<Utc>)>, u64) = on_pool!(self, |p| {
            let beat = sqlx::query(BEAT)
                .bind(&member.instance)
                .bind(member.epoch)
                .bind(now())
                .execute(p)
                .await?
                .rows_affected();
            let ended = sqlx::query_as(ENDED_ELSEWHERE)
                .bind(&member.instance)
                .bind(member.epoch)
                .fetch_all(p)
                .await?;
            let forgot = sqlx::query(FORGET_MEMBERS)
                .execute(p)
                .await?
                .rows_affected();
            Ok::<_, sqlx::Error>((beat, ended, forgot))
        })?;
        wrote("heartbeat", beat);
        wrote("forget", forgot);
        Ok(Heartbeat {
            alive: beat == 1,
            end_requested: ended
                .into_iter()
                .map(|(id, at)| (MeetingId::from_uuid(id), at))
                .collect(),
        })
    }

    /// Declares dead the members whose heartbeat is older than `ttl`, then
    /// takes up to `limit` calls nobody live holds for `member`.
    pub async fn take_over(
        &self,
        member: &Member,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let at = now();
        let cutoff = before(at, ttl);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (held, unheld) = match &self.pool {
            Pool::Sqlite(_) => (TAKE_HELD_SQLITE, TAKE_UNHELD_SQLITE),
            Pool::Postgres(_) => (TAKE_HELD_POSTGRES, TAKE_UNHELD_POSTGRES),
        };
        let rows: Vec<ClaimRow> = on_pool!(self, |p| {
            let declared = sqlx::query(DECLARE_DEAD)
                .bind(cutoff)
                .execute(p)
                .await?
                .rows_affected();
            if declared > 0 {
                wrote("declare_dead", declared);
                tracing::warn!(declared, "instances declared dead: their heartbeat lapsed");
            }
            // One statement per batch and member that is over: each reads
            // the member's own calls through `meetings_held`, and none runs
            // while every member lives.
            let over: Vec<(String, i64)> = sqlx::query_as(OVER).fetch_all(p).await?;
            let mut rows: Vec<ClaimRow> = Vec::new();
            for (instance, epoch) in over {
                let room = limit - rows.len() as i64;
                if room <= 0 {
                    break;
                }
                rows.extend(
                    sqlx::query_as::<_, ClaimRow>(held)
                        .bind(&member.instance)
                        .bind(member.epoch)
                        .bind(at)
                        .bind(room)
                        .bind(instance)
                        .bind(epoch)
                        .fetch_all(p)
                        .await?,
                );
            }
            let room = limit - rows.len() as i64;
            if room > 0 {
                rows.extend(
                    sqlx::query_as::<_, ClaimRow>(unheld)
                        .bind(&member.instance)
                        .bind(member.epoch)
                        .bind(at)
                        .bind(room)
                        .bind(cutoff)
                        .fetch_all(p)
                        .await?,
                );
            }
            Ok::<_, sqlx::Error>(rows)
        })?;
        wrote("take_over", rows.len() as u64);
        Ok(rows.into_iter().map(claim).collect())
    }

    /// Who holds the call, and how that member stands (`live`,
    /// `released`, `dead`); `None` when nobody does.
    pub async fn holder(&self, meeting: MeetingId) -> Result<Option<(Member, String)>, StoreError> {
        let row: Option<(String, i64, String)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT h.instance, h.epoch, h.state FROM meetings m \
                 JOIN members h ON h.instance = m.lease_owner AND h.epoch = m.owner_epoch WHERE m.id = $1",
            )
            .bind(meeting.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        Ok(row.map(|(instance, epoch, state)| (Member { instance, epoch }, state)))
    }

    /// The active calls `member` holds.
    pub async fn owned_calls(&self, member: &Member) -> Result<Vec<MeetingId>, StoreError> {
        let rows: Vec<(Uuid,)> = on_pool!(self, |p| {
            sqlx::query_as(OWNED)
                .bind(&member.instance)
                .bind(member.epoch)
                .fetch_all(p)
                .await
        })?;
        Ok(super::pool::meeting_ids(rows))
    }

    /// Ends `member`'s life gracefully: its calls are free at once, and
    /// the others hear of it (PostgreSQL).
    pub async fn release(&self, member: &Member) -> Result<(), StoreError> {
        let released = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE members SET state = 'released' \
                 WHERE instance = $1 AND epoch = $2 AND state = 'live'",
            )
            .bind(&member.instance)
            .bind(member.epoch)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        wrote("release", released);
        if let (Pool::Postgres(pool), 1..) = (&self.pool, released) {
            // The others take the calls over now, not at their next look.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::news::CHANNEL)
                .bind(super::news::released(&member.instance))
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

    /// When another live member (not `me`) holds the call, records that
    /// the call ended and returns true. On PostgreSQL the owner hears of
    /// it at once (a `NOTIFY` in the same statement, sent when it commits);
    /// elsewhere at its next heartbeat.
    pub async fn request_end(
        &self,
        meeting: MeetingId,
        me: &Member,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        macro_rules! flag {
            () => {
                "UPDATE meetings SET end_requested_at = COALESCE(end_requested_at, $3) \
                 WHERE id = $1 AND status = 'active' AND lease_owner IS NOT NULL \
                 AND NOT (lease_owner = $2 AND owner_epoch = $4) \
                 AND EXISTS (SELECT 1 FROM members h WHERE h.instance = meetings.lease_owner \
                   AND h.epoch = meetings.owner_epoch AND h.state = 'live')"
            };
        }
        let flagged = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(flag!())
                .bind(meeting.as_uuid())
                .bind(&me.instance)
                .bind(at)
                .bind(me.epoch)
                .execute(p)
                .await
                .map(|r| r.rows_affected())?,
            Pool::Postgres(p) => sqlx::query(concat!(
                "WITH flagged AS (",
                flag!(),
                " RETURNING id, lease_owner, end_requested_at) \
                 SELECT flagged.id FROM flagged CROSS JOIN LATERAL pg_notify($5, \
                 json_build_object('kind', 'end', 'owner', lease_owner, 'meeting', id, 'at', end_requested_at)::text) AS sent"
            ))
            .bind(meeting.as_uuid())
            .bind(&me.instance)
            .bind(at)
            .bind(me.epoch)
            .bind(super::news::CHANNEL)
            .fetch_all(p)
            .await?
            .len() as u64,
        };
        Ok(flagged == 1)
    }
}
