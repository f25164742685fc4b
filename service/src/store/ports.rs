//! The store as the actors see it: the `TranscriptSink`, `CallStore`,
//! `AnalysisStore` and `LeaseStore` ports.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scribe_actors::call_log::{CallEvent, Dropped, Notes};
use scribe_actors::domain::{MeetingStatus, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::path::{CallPath, Resume};
use scribe_actors::ports::{
    AnalysisInput, AnalysisResult, AnalysisStore, CallContext, CallStore, Claimed, Finalized,
    Heartbeat, LeaseNews, LeaseStore, Member, NotesInput, NotesStore, PortError, TranscriptSink,
    WriteBatch,
};
use sqlx::types::Json;

use super::pool::{Store, StoreError, on_pool};
use super::status::{Changed, StatusChange, change_status};
use crate::domain::now;

impl From<StoreError> for PortError {
    fn from(error: StoreError) -> Self {
        PortError::store(error)
    }
}

#[derive(sqlx::FromRow)]
struct ContextRow {
    status: String,
    instructions: String,
    call_cid: Option<String>,
    transport: Option<String>,
    provider_call_id: Option<String>,
    last_item_id: Option<String>,
    sequence_high_water: i64,
    max_sequence: Option<i64>,
    end_requested_at: Option<DateTime<Utc>>,
    lease_epoch: i64,
    voice_api: Option<String>,
    last_end_ms: Option<i64>,
}

/// Consecutive numbers folded into inclusive ranges: [1,2,3,7] -> [(1,3),(7,7)].
fn ranges(numbers: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &n in numbers {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
}

impl Store {
    async fn call_context_inner(
        &self,
        meeting: MeetingId,
    ) -> Result<Option<CallContext>, StoreError> {
        let row: Option<ContextRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT m.status, COALESCE(m.prompt, a.instructions) AS instructions, m.call_cid, \
                 m.transport, m.provider_call_id, m.voice_api, \
                 (SELECT c.end_ms FROM transcript_chunks c WHERE c.meeting_id = m.id \
                  ORDER BY c.sequence_number DESC LIMIT 1) AS last_end_ms, \
                 (SELECT c.item_id FROM transcript_chunks c WHERE c.meeting_id = m.id AND c.status <> 'lost' \
                  ORDER BY c.sequence_number DESC LIMIT 1) AS last_item_id, \
                 m.sequence_high_water, m.end_requested_at, m.lease_epoch, \
                 (SELECT MAX(c.sequence_number) FROM transcript_chunks c WHERE c.meeting_id = m.id) AS max_sequence \
                 FROM meetings m JOIN agents a ON a.id = m.agent_id WHERE m.id = $1",
            )
            .bind(meeting.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        let Some(row) = row else { return Ok(None) };
        let status: MeetingStatus = row
            .status
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("meeting {meeting}: {e}")))?;
        let (call_type, call_id) = match row.call_cid.as_deref().and_then(|c| c.split_once(':')) {
            Some((t, i)) => (Some(t.to_owned()), Some(i.to_owned())),
            None => (None, row.call_cid.clone()),
        };
        Ok(Some(CallContext {
            meeting_id: meeting,
            status,
            instructions: row.instructions,
            call_id,
            call_type,
            next_sequence: row.sequence_high_water.max(row.max_sequence.unwrap_or(0)) + 1,
            end_requested_at: row.end_requested_at,
            lease: row.lease_epoch,
            path: CallPath::recorded(
                row.transport
                    .map(|t| t.parse())
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("meeting {meeting}: {e}")))?,
                row.provider_call_id,
                row.voice_api
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("meeting {meeting}: {e}")))?,
                Resume {
                    last_item_id: row.last_item_id,
                    last_end_ms: row.last_end_ms,
                },
            ),
        }))
    }

    async fn finalize_inner(
        &self,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        handed_out: Option<i64>,
    ) -> Result<Finalized, StoreError> {
        let at = now();
        let finalized = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            // The row is held against a deletion first (it waits for this,
            // or this for it and sees the tombstone): a deleted meeting
            // gets no lost lines, no log, no status. Nothing else waits:
            // the writer's lines and the status change below take their
            // own locks, as they did before deletions existed.
            let read = format!(
                "SELECT sequence_high_water, deleted_at, created_at, transport, \
                 provider_call_id, voice_api FROM meetings WHERE id = $1{}",
                super::pool::key_share_lock(p)
            );
            let row: Option<FinalizeRow> = sqlx::query_as(sqlx::AssertSqlSafe(read))
                .bind(meeting.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::Corrupt(format!(
                    "meeting {meeting} does not exist"
                )));
            };
            let (high, deleted) = (row.sequence_high_water, row.deleted_at);
            if deleted.is_some() {
                let none = Finalized {
                    lines: 0,
                    lost: Vec::new(),
                    transitioned: false,
                };
                return Ok(none);
            }
            let stored: Vec<(i64,)> = sqlx::query_as(
                "SELECT sequence_number FROM transcript_chunks WHERE meeting_id = $1",
            )
            .bind(meeting.as_uuid())
            .fetch_all(&mut *tx)
            .await?;
            let stored: BTreeSet<i64> = stored.into_iter().map(|(n,)| n).collect();
            // A mark above what the call's conversation handed out is a
            // number it gave back, not a lost line.
            let high = handed_out.map_or(high, |h| h.min(high));
            let top = high.max(stored.last().copied().unwrap_or(0));
            let lost: Vec<i64> = (1..=top).filter(|n| !stored.contains(n)).collect();
            for n in &lost {
                sqlx::query(
                    "INSERT INTO transcript_chunks (meeting_id, sequence_number, speaker_type, text, status, \
                     item_id, timestamp, created_at) VALUES ($1, $2, NULL, '', 'lost', NULL, $3, $4) \
                     ON CONFLICT (meeting_id, sequence_number) DO NOTHING",
                )
                .bind(meeting.as_uuid())
                .bind(*n)
                .bind(ended_at)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            let log = |event: CallEvent| {
                sqlx::query("INSERT INTO meeting_events (meeting_id, kind, detail, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(meeting.as_uuid())
                    .bind(event.kind().as_str())
                    .bind(Json(event.detail()))
                    .bind(at)
            };
            for (from, to) in ranges(&lost) {
                log(CallEvent::Gap(Dropped {
                    from,
                    to,
                    count: None,
                    reason: "no line was stored for these numbers; kept as lost lines".into(),
                }))
                .execute(&mut *tx)
                .await?;
            }
            let change = StatusChange::Finalize {
                ended_at,
                high_water: top,
            };
            let transitioned = matches!(
                change_status(&mut *tx, meeting, change, at).await?,
                Changed::Made { .. }
            );
            if transitioned {
                // The hand-off: the analysis job exists as soon as the meeting
                // is `processing`, in the same transaction.
                sqlx::query(
                    "INSERT INTO analysis_jobs (meeting_id, state, attempt, created_at, updated_at) \
                     VALUES ($1, 'pending', 0, $2, $2) ON CONFLICT (meeting_id) DO NOTHING",
                )
                .bind(meeting.as_uuid())
                .bind(at)
                .execute(&mut *tx)
                .await?;
                log(CallEvent::CallEnded {
                    lines: top,
                    lost: lost.len(),
                })
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            let done = Finalized {
                lines: top,
                lost,
                transitioned,
            };
            Ok::<_, StoreError>((done, row))
        })?;
        let (finalized, row) = finalized;
        if finalized.transitioned {
            // The call's path as its actor decided it (a corrupt value
            // reads as not recorded: this is only the trace's root).
            let path = CallPath::recorded(
                row.transport.and_then(|t| t.parse().ok()),
                row.provider_call_id,
                row.voice_api.and_then(|v| v.parse().ok()),
                Resume::default(),
            );
            crate::telemetry::meeting_ended(
                meeting,
                row.created_at,
                ended_at,
                vec![
                    opentelemetry::KeyValue::new(
                        "call.path",
                        scribe_actors::trace::path_name(&path),
                    ),
                    opentelemetry::KeyValue::new("voice.api", path.api().as_str()),
                    opentelemetry::KeyValue::new("lines", finalized.lines),
                    opentelemetry::KeyValue::new("lost", finalized.lost.len() as i64),
                ],
            );
        }
        self.changes.touch(meeting);
        Ok(finalized)
    }
}

/// What finalizing reads of its meeting, the row held against a deletion:
/// the counter's mark, the tombstone, and what the trace's root names.
#[derive(sqlx::FromRow)]
struct FinalizeRow {
    sequence_high_water: i64,
    deleted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    transport: Option<String>,
    provider_call_id: Option<String>,
    voice_api: Option<String>,
}

impl Store {
    /// Marks the call `failed` with `error`, when the state machine allows
    /// it (an `active` or `processing` meeting); otherwise changes nothing.
    pub async fn fail_call(&self, meeting: MeetingId, error: &str) -> Result<(), StoreError> {
        let at = now();
        on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let change = StatusChange::Fail {
                error,
                detail: None,
            };
            if let Changed::Made { .. } = change_status(&mut *tx, meeting, change, at).await? {
                tx.commit().await?;
            }
            Ok::<_, StoreError>(())
        })?;
        self.changes.touch(meeting);
        Ok(())
    }
}

#[async_trait]
impl TranscriptSink for Store {
    async fn write(&self, batch: &WriteBatch) -> Result<Vec<MeetingId>, PortError> {
        Ok(self.write_fenced(batch).await?.refused)
    }
}

#[async_trait]
impl CallStore for Store {
    async fn call_context(&self, meeting: MeetingId) -> Result<Option<CallContext>, PortError> {
        Ok(self.call_context_inner(meeting).await?)
    }

    async fn replay_lines(
        &self,
        meeting: MeetingId,
        before: i64,
    ) -> Result<Vec<(Speaker, String)>, PortError> {
        let lines = self.transcript(meeting).await?;
        Ok(lines
            .into_iter()
            .filter(|c| c.sequence_number < before && !c.text.is_empty())
            .filter_map(|c| c.speaker.map(|s| (s, c.text)))
            .collect())
    }

    async fn finalize(
        &self,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        handed_out: Option<i64>,
    ) -> Result<Finalized, PortError> {
        Ok(self.finalize_inner(meeting, ended_at, handed_out).await?)
    }

    async fn fail(&self, meeting: MeetingId, error: &str) -> Result<(), PortError> {
        Ok(Store::fail_call(self, meeting, error).await?)
    }

    async fn request_end(
        &self,
        meeting: MeetingId,
        me: &Member,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        Ok(Store::request_end(self, meeting, me, at).await?)
    }
}

#[async_trait]
impl AnalysisStore for Store {
    async fn begin_analysis(&self, meeting: MeetingId) -> Result<Option<AnalysisInput>, PortError> {
        Ok(Store::begin_analysis(self, meeting).await?)
    }

    async fn complete_analysis(
        &self,
        meeting: MeetingId,
        result: &AnalysisResult,
    ) -> Result<Option<MeetingId>, PortError> {
        Ok(Store::complete_analysis(self, meeting, result).await?)
    }

    async fn fail_analysis(
        &self,
        meeting: MeetingId,
        error: &str,
        detail: Option<&str>,
    ) -> Result<(), PortError> {
        Ok(Store::fail_analysis(self, meeting, error, detail).await?)
    }

    async fn analysis_pending(&self, meeting: MeetingId) -> Result<bool, PortError> {
        Ok(Store::analysis_pending(self, meeting).await?)
    }

    async fn unfinished_analyses(&self) -> Result<Vec<MeetingId>, PortError> {
        Ok(Store::unfinished_analyses(self).await?)
    }
}

#[async_trait]
impl NotesStore for Store {
    async fn notes_input(
        &self,
        meeting: MeetingId,
        max_lines: usize,
    ) -> Result<Option<NotesInput>, PortError> {
        Ok(Store::notes_input(self, meeting, max_lines).await?)
    }

    async fn save_notes(
        &self,
        meeting: MeetingId,
        text: &str,
        through_line: i64,
    ) -> Result<Option<Notes>, PortError> {
        Ok(Store::save_notes(self, meeting, text, through_line).await?)
    }
}

#[async_trait]
impl LeaseStore for Store {
    async fn join(&self, instance: &str) -> Result<Member, PortError> {
        Ok(Store::join(self, instance).await?)
    }

    async fn acquire_lease(
        &self,
        meeting: MeetingId,
        member: &Member,
    ) -> Result<Option<Claimed>, PortError> {
        Ok(Store::acquire_lease(self, meeting, member).await?)
    }

    async fn heartbeat(&self, member: &Member) -> Result<Heartbeat, PortError> {
        Ok(Store::heartbeat(self, member).await?)
    }

    async fn take_over(
        &self,
        member: &Member,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, PortError> {
        Ok(Store::take_over(self, member, ttl, limit).await?)
    }

    async fn owned_calls(&self, member: &Member) -> Result<Vec<MeetingId>, PortError> {
        Ok(Store::owned_calls(self, member).await?)
    }

    async fn release(&self, member: &Member) -> Result<(), PortError> {
        Ok(Store::release(self, member).await?)
    }

    fn lease_news(&self, instance: &str) -> Option<tokio::sync::mpsc::Receiver<LeaseNews>> {
        Store::lease_news(self, instance)
    }
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn folds_numbers_into_ranges() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), [(1, 3), (7, 7), (9, 10)]);
        assert!(ranges(&[]).is_empty());
    }
}
