//! Deleting meetings and agents, and the retention sweep's reads (issue 29).
//!
//! A meeting is deleted in one transaction: its row becomes a tombstone
//! (its id, agent, times, `deleted_at`, and the provider's ids of its call,
//! nothing it said), and its transcript, event log, analysis job and notes
//! are deleted; the Stream participants of its call too, when no other
//! meeting has that call. The row is locked first (`FOR UPDATE` on
//! PostgreSQL, the one lock that also waits for the inserts referencing
//! the row), so a write racing the deletion lands before it (and is
//! deleted with the rest) or not at all: transcript lines are fenced by
//! the lease epoch the deletion bumps, and the database skips any
//! event-log entry or notes for a tombstone (a trigger,
//! `0010_deletion.sql`, its lock `FOR KEY SHARE` since
//! `0011_deletion_locks.sql`). The tombstone is `cancelled`, a status
//! nothing leaves: no status change, start, takeover or analysis applies
//! to it.

use chrono::{DateTime, Utc};
use scribe_actors::domain::{MeetingStatus, Transport, VoiceApi};
use scribe_actors::ids::{AgentId, MeetingId};

use super::pool::{Store, StoreError, on_pool};

/// Meetings deleted in one transaction, at most (an agent's, the sweep's).
pub const DELETE_AT_ONCE: usize = 100;

/// A meeting that was just deleted, with what its call was (to end it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub meeting: MeetingId,
    /// Its status before: `active` means a live call was cut off.
    pub was: MeetingStatus,
    pub transport: Option<Transport>,
    pub provider_call_id: Option<String>,
    pub voice_api: Option<VoiceApi>,
}

impl Erased {
    /// True when the meeting's call was live.
    pub fn was_live(&self) -> bool {
        self.was == MeetingStatus::Active
    }
}

/// Rows that belong to a meeting (see [`Store::rows_of`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsOf {
    pub lines: i64,
    pub events: i64,
    pub notes: i64,
    pub jobs: i64,
    pub participants: i64,
}

/// What a deletion found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    Deleted(Erased),
    /// A tombstone already: nothing changed.
    AlreadyDeleted,
    NotFound,
}

/// What deleting an agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentDeletion {
    /// The agent is a tombstone now, with every meeting of it.
    Deleted(Vec<Erased>),
    /// It was already; any meeting of it a cut-short deletion left is
    /// deleted now.
    AlreadyDeleted(Vec<Erased>),
    NotFound,
}

type Before = (
    Option<DateTime<Utc>>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The tombstone: everything but the id, agent, times, the provider's ids
/// of the call and the page generation is cleared; the lease epoch goes up
/// (an actor's writes under the old one are refused) and nobody holds it.
const TOMBSTONE: &str = "UPDATE meetings SET deleted_at = $2, updated_at = $2, status = 'cancelled', \
     ended_at = CASE WHEN started_at IS NOT NULL THEN COALESCE(ended_at, $2) END, \
     name = '', user_id = '', prompt = NULL, progress = NULL, summary = NULL, error = NULL, \
     error_detail = NULL, transcript_collected = FALSE, sequence_high_water = 0, \
     lease_owner = NULL, owner_epoch = NULL, lease_epoch = lease_epoch + 1, \
     end_requested_at = NULL, taken_after_crash = FALSE, transport = NULL, voice_api = NULL \
     WHERE id = $1";

/// What belongs to the meeting, deleted with it.
const CHILDREN: [&str; 4] = [
    "DELETE FROM transcript_chunks WHERE meeting_id = $1",
    "DELETE FROM meeting_events WHERE meeting_id = $1",
    "DELETE FROM meeting_notes WHERE meeting_id = $1",
    "DELETE FROM analysis_jobs WHERE meeting_id = $1",
];

/// Who was in the meeting's Stream call, unless another meeting has it.
const PARTICIPANTS: &str = "DELETE FROM stream_participants WHERE call_cid = $1 \
     AND NOT EXISTS (SELECT 1 FROM meetings WHERE call_cid = $1 AND id <> $2 AND deleted_at IS NULL)";

/// Deletes one meeting inside the caller's write transaction `$tx`;
/// `$read` locks its row on PostgreSQL.
macro_rules! erase_one {
    ($tx:expr, $meeting:expr, $at:expr, $read:expr, $notify:expr) => {{
        let meeting: MeetingId = $meeting;
        let before: Option<Before> = sqlx::query_as($read)
            .bind(meeting.as_uuid())
            .fetch_optional(&mut *$tx)
            .await?;
        match before {
            None => Deletion::NotFound,
            Some((Some(_), ..)) => Deletion::AlreadyDeleted,
            Some((None, status, owner, call_cid, transport, provider_call_id, voice_api)) => {
                let corrupt = |e: scribe_actors::domain::UnknownVariant| {
                    StoreError::Corrupt(format!("meeting {meeting}: {e}"))
                };
                let was: MeetingStatus = status.parse().map_err(corrupt)?;
                sqlx::query(TOMBSTONE)
                    .bind(meeting.as_uuid())
                    .bind($at)
                    .execute(&mut *$tx)
                    .await?;
                for statement in CHILDREN {
                    sqlx::query(statement)
                        .bind(meeting.as_uuid())
                        .execute(&mut *$tx)
                        .await?;
                }
                if let Some(cid) = &call_cid {
                    sqlx::query(PARTICIPANTS)
                        .bind(cid)
                        .bind(meeting.as_uuid())
                        .execute(&mut *$tx)
                        .await?;
                }
                if matches!(was, MeetingStatus::Active | MeetingStatus::Processing) && $notify {
                    // The instance that holds the call stops its actor, and
                    // whichever runs its analysis stops it, at once (sent
                    // when this commits; to every instance when nobody
                    // holds the call).
                    let owner = owner.unwrap_or_else(|| super::news::EVERYONE.to_owned());
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(super::news::CHANNEL)
                        .bind(super::news::deleted(&owner, meeting))
                        .execute(&mut *$tx)
                        .await?;
                }
                Deletion::Deleted(Erased {
                    meeting,
                    was,
                    transport: transport.map(|t| t.parse()).transpose().map_err(corrupt)?,
                    provider_call_id,
                    voice_api: voice_api.map(|v| v.parse()).transpose().map_err(corrupt)?,
                })
            }
        }
    }};
}

const BEFORE_COLUMNS: &str = "SELECT deleted_at, status, lease_owner, call_cid, transport, \
     provider_call_id, voice_api FROM meetings WHERE id = $1";

impl Store {
    /// Deletes `meeting` in one transaction (see the module): its tombstone
    /// stays. Wakes its open event streams, which end.
    pub async fn delete_meeting(&self, meeting: MeetingId) -> Result<Deletion, StoreError> {
        let mut done = self.delete_meetings(&[meeting]).await?;
        Ok(done.pop().unwrap_or(Deletion::NotFound))
    }

    /// Deletes each of `meetings` (at most [`DELETE_AT_ONCE`] make sense)
    /// in one transaction, their rows locked in id order (as the writer
    /// locks them); what each found, in id order.
    pub async fn delete_meetings(
        &self,
        meetings: &[MeetingId],
    ) -> Result<Vec<Deletion>, StoreError> {
        let mut meetings = meetings.to_vec();
        meetings.sort();
        meetings.dedup();
        let meetings = meetings.as_slice();
        let at = crate::domain::now();
        let done = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let read = format!("{BEFORE_COLUMNS}{}", super::pool::delete_lock(p));
            let notify = super::pool::notifies(p);
            let mut done = Vec::with_capacity(meetings.len());
            for meeting in meetings {
                done.push(erase_one!(
                    tx,
                    *meeting,
                    at,
                    sqlx::AssertSqlSafe(read.as_str()),
                    notify
                ));
            }
            tx.commit().await?;
            Ok::<_, StoreError>(done)
        })?;
        for deletion in &done {
            if let Deletion::Deleted(erased) = deletion {
                self.changes.touch(erased.meeting);
            }
        }
        Ok(done)
    }

    /// Makes the agent a tombstone (its id and times) and deletes its
    /// phone numbers, in one transaction, so that no meeting is made for it
    /// from then on (a meeting's insert holds the agent's row). `None`: no
    /// such agent; `Some(false)`: it was a tombstone already. Its meetings
    /// are deleted next, batch by batch ([`Self::undeleted_meetings_of`]).
    pub async fn tombstone_agent(&self, agent: AgentId) -> Result<Option<bool>, StoreError> {
        let at = crate::domain::now();
        let found: Option<bool> = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let read = format!(
                "SELECT deleted_at FROM agents WHERE id = $1{}",
                super::pool::delete_lock(p)
            );
            let row: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(sqlx::AssertSqlSafe(read))
                .bind(agent.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            let found = match row {
                None => None,
                Some((Some(_),)) => Some(false),
                Some((None,)) => {
                    sqlx::query(
                        "UPDATE agents SET deleted_at = $2, name = '', instructions = '', \
                         blueprint = NULL WHERE id = $1",
                    )
                    .bind(agent.as_uuid())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM agent_phone_numbers WHERE agent_id = $1")
                        .bind(agent.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                    Some(true)
                }
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(found)
        })?;
        Ok(found)
    }

    /// Deletes `meetings` and returns those it deleted.
    pub async fn erase(&self, meetings: &[MeetingId]) -> Result<Vec<Erased>, StoreError> {
        Ok(self
            .delete_meetings(meetings)
            .await?
            .into_iter()
            .filter_map(|d| match d {
                Deletion::Deleted(erased) => Some(erased),
                _ => None,
            })
            .collect())
    }

    /// Up to [`DELETE_AT_ONCE`] meetings of `agent` not deleted yet.
    pub async fn undeleted_meetings_of(
        &self,
        agent: AgentId,
    ) -> Result<Vec<MeetingId>, StoreError> {
        let rows: Vec<(uuid::Uuid,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id FROM meetings WHERE agent_id = $1 AND deleted_at IS NULL ORDER BY id LIMIT $2",
            )
            .bind(agent.as_uuid())
            .bind(DELETE_AT_ONCE as i64)
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(id,)| MeetingId::from_uuid(id))
            .collect())
    }

    /// Up to `limit` meetings that are past retention: ended (completed,
    /// failed or cancelled) before `cutoff` (by their end, else their last
    /// change), oldest first; then meetings of deleted agents that a
    /// cut-short deletion left.
    pub async fn expired_meetings(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<MeetingId>, StoreError> {
        let rows: Vec<(uuid::Uuid,)> = on_pool!(self, |p| {
            let mut rows: Vec<(uuid::Uuid,)> = sqlx::query_as(
                "SELECT id FROM meetings WHERE deleted_at IS NULL \
                 AND status IN ('completed', 'failed', 'cancelled') \
                 AND COALESCE(ended_at, updated_at) < $1 \
                 ORDER BY COALESCE(ended_at, updated_at) LIMIT $2",
            )
            .bind(cutoff)
            .bind(limit as i64)
            .fetch_all(p)
            .await?;
            if rows.len() < limit {
                rows.extend(
                    sqlx::query_as::<_, (uuid::Uuid,)>(
                        "SELECT m.id FROM meetings m JOIN agents a ON a.id = m.agent_id \
                         WHERE a.deleted_at IS NOT NULL AND m.deleted_at IS NULL LIMIT $1",
                    )
                    .bind((limit - rows.len()) as i64)
                    .fetch_all(p)
                    .await?,
                );
            }
            Ok::<_, sqlx::Error>(rows)
        })?;
        let mut ids: Vec<MeetingId> = rows
            .into_iter()
            .map(|(id,)| MeetingId::from_uuid(id))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Claims the background job `name` for `holder` until `until`: true
    /// when nobody else holds it (its last claim lapsed, or it is
    /// `holder`'s already).
    pub async fn claim_upkeep(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = crate::domain::now();
        let claimed = on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO upkeep (name, holder, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE upkeep.until < $4 OR upkeep.holder = excluded.holder",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(p)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(claimed == 1)
    }

    /// What the database holds of `meeting` besides its row: transcript
    /// lines, event-log entries, notes, analysis jobs, and the participants
    /// of its Stream call (what a deletion removes).
    pub async fn rows_of(&self, meeting: MeetingId) -> Result<RowsOf, StoreError> {
        let row: (i64, i64, i64, i64, i64) = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM transcript_chunks WHERE meeting_id = $1), \
                 (SELECT COUNT(*) FROM meeting_events WHERE meeting_id = $1), \
                 (SELECT COUNT(*) FROM meeting_notes WHERE meeting_id = $1), \
                 (SELECT COUNT(*) FROM analysis_jobs WHERE meeting_id = $1), \
                 (SELECT COUNT(*) FROM stream_participants s JOIN meetings m ON m.call_cid = s.call_cid \
                  WHERE m.id = $1)",
            )
            .bind(meeting.as_uuid())
            .fetch_one(p)
            .await
        })?;
        Ok(RowsOf {
            lines: row.0,
            events: row.1,
            notes: row.2,
            jobs: row.3,
            participants: row.4,
        })
    }

    /// True when `meeting` is a tombstone (one column, no join: the
    /// webhooks ask it before acting).
    pub async fn is_deleted(&self, meeting: MeetingId) -> Result<bool, StoreError> {
        let row: Option<(Option<DateTime<Utc>>,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT deleted_at FROM meetings WHERE id = $1")
                .bind(meeting.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        Ok(row.is_some_and(|(at,)| at.is_some()))
    }
}
