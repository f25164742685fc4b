//! The analysis job's life in the store: begin (or resume), complete with
//! the next session's meeting, fail, retry.

use scribe_actors::call_log::{CallEvent, Notes, Stage};
use scribe_actors::domain::{AnalysisStage, EventKind, MeetingStatus};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::{AnalysisInput, AnalysisResult};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::pool::{Store, StoreError, on_pool};
use super::status::{Changed, StatusChange, change_status};
use crate::domain::now;

#[derive(sqlx::FromRow)]
struct InputRow {
    meeting_name: String,
    agent_name: String,
    blueprint: Option<Json<Value>>,
    progress: Option<Json<Value>>,
    attempt: i32,
}

/// Logs an analysis stage (`$2` kind, `$3` detail with its `stage`).
const STAGE_EVENT: &str =
    "INSERT INTO meeting_events (meeting_id, kind, detail, created_at) VALUES ($1, $2, $3, $4)";

/// An `analysis_stage` entry's detail: `stage` and what it carries.
fn stage_detail(stage: Stage) -> Json<Value> {
    Json(CallEvent::AnalysisStage(stage).detail())
}

/// What a retry request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    Queued,
    NotFailed(MeetingStatus),
    NotFound,
}

impl Store {
    pub async fn begin_analysis(
        &self,
        meeting: MeetingId,
    ) -> Result<Option<AnalysisInput>, StoreError> {
        let at = now();
        let row: Option<InputRow> = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let started = sqlx::query(
                "UPDATE analysis_jobs SET state = 'running', attempt = attempt + 1, \
                 started_at = COALESCE(started_at, $2), updated_at = $2 \
                 WHERE meeting_id = $1 AND state IN ('pending', 'running') \
                 AND EXISTS (SELECT 1 FROM meetings m WHERE m.id = $1 AND m.status = 'processing')",
            )
            .bind(meeting.as_uuid())
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let row = if started == 0 {
                None
            } else {
                sqlx::query_as(
                    "SELECT m.name AS meeting_name, a.name AS agent_name, a.blueprint, m.progress, \
                     j.attempt FROM meetings m JOIN agents a ON a.id = m.agent_id \
                     JOIN analysis_jobs j ON j.meeting_id = m.id WHERE m.id = $1",
                )
                .bind(meeting.as_uuid())
                .fetch_optional(&mut *tx)
                .await?
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        })?;
        let Some(row) = row else { return Ok(None) };
        // The notes, when the call has any, stand for the lines they cover.
        let notes = self.notes(meeting).await?.map(Notes::from);
        let after = notes.as_ref().map_or(0, |n| n.through_line);
        let lines = self
            .transcript_after(meeting, after)
            .await?
            .into_iter()
            .map(|c| (c.speaker, c.text))
            .collect();
        Ok(Some(AnalysisInput {
            meeting_id: meeting,
            meeting_name: row.meeting_name,
            agent_name: row.agent_name,
            blueprint: row.blueprint.map(|b| b.0),
            progress: row.progress.map(|p| p.0),
            notes,
            lines,
            run: row.attempt,
        }))
    }

    pub async fn complete_analysis(
        &self,
        meeting: MeetingId,
        result: &AnalysisResult,
    ) -> Result<Option<MeetingId>, StoreError> {
        let at = now();
        let (summary, progress, next) = match result {
            AnalysisResult::Summary { summary } => (summary.clone(), None, None),
            AnalysisResult::Blueprint {
                summary,
                progress,
                next,
            } => (summary.clone(), Some(progress.clone()), next.clone()),
        };
        let kind = if progress.is_some() {
            "blueprint"
        } else {
            "summary"
        };
        let next_id = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let change = StatusChange::Complete {
                summary: &summary,
                progress: progress.as_ref(),
            };
            if let Changed::Refused(refused) = change_status(&mut *tx, meeting, change, at).await? {
                // Results for a meeting that is not processing change nothing.
                tracing::warn!(%meeting, %refused, "analysis results refused");
                return Ok(None);
            }
            if let Some(next) = &next {
                // UNIQUE (previous_meeting_id): a retried or resumed analysis
                // never creates a second next meeting.
                sqlx::query(
                    "INSERT INTO meetings (id, name, user_id, agent_id, status, prompt, progress, \
                     previous_meeting_id, created_at, updated_at) \
                     SELECT $2, $3, m.user_id, m.agent_id, 'upcoming', $4, $5, m.id, $6, $6 \
                     FROM meetings m WHERE m.id = $1 \
                     ON CONFLICT (previous_meeting_id) DO NOTHING",
                )
                .bind(meeting.as_uuid())
                .bind(Uuid::new_v4())
                .bind(&next.name)
                .bind(&next.prompt)
                .bind(progress.as_ref().map(Json))
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE analysis_jobs SET state = 'completed', last_error = NULL, finished_at = $2, updated_at = $2 \
                 WHERE meeting_id = $1",
            )
            .bind(meeting.as_uuid())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let next_id: Option<(Uuid,)> =
                sqlx::query_as("SELECT id FROM meetings WHERE previous_meeting_id = $1")
                    .bind(meeting.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
            // The stages are committed with the results they report.
            let mut stages = vec![stage_detail(Stage {
                kind: Some(kind.to_owned()),
                ..Stage::new(AnalysisStage::ResultsSaved)
            })];
            if let Some((next,)) = &next_id {
                stages.push(stage_detail(Stage {
                    next_meeting_id: Some(MeetingId::from_uuid(*next)),
                    ..Stage::new(AnalysisStage::NextMeetingCreated)
                }));
            }
            for detail in stages {
                sqlx::query(STAGE_EVENT)
                    .bind(meeting.as_uuid())
                    .bind(EventKind::AnalysisStage.as_str())
                    .bind(detail)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(next_id)
        })?;
        self.changes.touch(meeting);
        Ok(next_id.map(|(id,)| MeetingId::from_uuid(id)))
    }

    /// Marks the analysis failed: `error` (scribe's words) on the meeting
    /// for everyone, `detail` (the provider's) for `/admin` and the job.
    pub async fn fail_analysis(
        &self,
        meeting: MeetingId,
        error: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let at = now();
        on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            let change = StatusChange::Fail { error, detail };
            if let Changed::Refused(refused) = change_status(&mut *tx, meeting, change, at).await? {
                tracing::warn!(%meeting, %refused, "analysis failure refused");
                return Ok(());
            }
            sqlx::query(
                "UPDATE analysis_jobs SET state = 'failed', last_error = $2, finished_at = $3, updated_at = $3 \
                 WHERE meeting_id = $1",
            )
            .bind(meeting.as_uuid())
            .bind(detail.unwrap_or(error))
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(STAGE_EVENT)
                .bind(meeting.as_uuid())
                .bind(EventKind::AnalysisStage.as_str())
                .bind(stage_detail(Stage {
                    error: Some(error.to_owned()),
                    ..Stage::new(AnalysisStage::Failed)
                }))
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        self.changes.touch(meeting);
        Ok(())
    }

    pub async fn analysis_pending(&self, meeting: MeetingId) -> Result<bool, StoreError> {
        let row: Option<(i32,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT j.attempt FROM analysis_jobs j JOIN meetings m ON m.id = j.meeting_id \
                 WHERE j.meeting_id = $1 AND j.state = 'pending' AND m.status = 'processing'",
            )
            .bind(meeting.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        Ok(row.is_some())
    }

    pub async fn unfinished_analyses(&self) -> Result<Vec<MeetingId>, StoreError> {
        let rows: Vec<(Uuid,)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT j.meeting_id FROM analysis_jobs j JOIN meetings m ON m.id = j.meeting_id \
                 WHERE j.state IN ('pending', 'running') AND m.status = 'processing' ORDER BY j.created_at",
            )
            .fetch_all(p)
            .await
        })?;
        Ok(super::pool::meeting_ids(rows))
    }

    /// A `failed` meeting whose call ended goes back to `processing` with
    /// its analysis job `pending`.
    pub async fn retry_analysis(&self, meeting: MeetingId) -> Result<RetryOutcome, StoreError> {
        let at = now();
        let outcome = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            // The meeting's row first, held against a deletion.
            let read = format!(
                "SELECT status FROM meetings WHERE id = $1{}",
                super::pool::key_share_lock(p)
            );
            let status: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(read))
                .bind(meeting.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
            let Some((status,)) = status else {
                return Ok::<_, StoreError>(RetryOutcome::NotFound);
            };
            let status: MeetingStatus = status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("meeting {meeting}: {e}")))?;
            if status != MeetingStatus::Failed {
                return Ok(RetryOutcome::NotFailed(status));
            }
            let requeued = sqlx::query(
                "UPDATE analysis_jobs SET state = 'pending', last_error = NULL, finished_at = NULL, updated_at = $2 \
                 WHERE meeting_id = $1",
            )
            .bind(meeting.as_uuid())
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if requeued == 0 {
                // Failed during the call itself: there is no transcript to analyse.
                return Ok(RetryOutcome::NotFailed(status));
            }
            // The state machine decides: a change since the read above is
            // refused here, and nothing is written.
            match change_status(&mut *tx, meeting, StatusChange::Retry, at).await? {
                Changed::Made { .. } => {}
                Changed::Refused(refused) => return Ok(RetryOutcome::NotFailed(refused.from)),
                Changed::NotFound => return Ok(RetryOutcome::NotFound),
            }
            tx.commit().await?;
            Ok::<_, StoreError>(RetryOutcome::Queued)
        })?;
        self.changes.touch(meeting);
        Ok(outcome)
    }
}
