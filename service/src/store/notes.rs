//! A call's running notes (one current version a meeting, with the last
//! line they cover) and the tokens its model requests used (read back from
//! its `model_usage` log entries).

use chrono::{DateTime, Utc};
use scribe_actors::call_log::{CallEvent, Notes, Usage};
use scribe_actors::domain::{EventKind, Speaker};
use scribe_actors::ids::MeetingId;
use scribe_actors::ports::NotesInput;
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use super::pool::{Store, StoreError, on_pool};
use crate::domain::now;

/// A meeting's notes as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MeetingNotes {
    /// The conversation through `through_line`, summarized.
    pub text: String,
    pub through_line: i64,
    /// 1 for the call's first notes, one more each update.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<MeetingNotes> for Notes {
    fn from(n: MeetingNotes) -> Self {
        Self {
            text: n.text,
            through_line: n.through_line,
            version: n.version,
        }
    }
}

/// Tokens of one purpose and model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageLine {
    /// `notes` (during the call) or `analysis` (at its end).
    pub purpose: String,
    pub model: String,
    /// Requests that reported their usage (attempts that broke off report
    /// none).
    pub requests: u64,
    pub prompt_tokens: u64,
    /// Of the prompt tokens, those read from the provider's cache.
    pub cached_tokens: u64,
    pub completion_tokens: u64,
}

/// What a meeting's model requests used, in all and by purpose and model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MeetingUsage {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub by_purpose: Vec<UsageLine>,
}

impl MeetingUsage {
    fn add(&mut self, usage: &Usage) {
        self.requests += 1;
        self.prompt_tokens += usage.prompt_tokens;
        self.cached_tokens += usage.cached_tokens;
        self.completion_tokens += usage.completion_tokens;
        let line = match self
            .by_purpose
            .iter_mut()
            .position(|l| l.purpose == usage.purpose && l.model == usage.model)
        {
            Some(at) => &mut self.by_purpose[at],
            None => {
                self.by_purpose.push(UsageLine {
                    purpose: usage.purpose.clone(),
                    model: usage.model.clone(),
                    ..UsageLine::default()
                });
                let last = self.by_purpose.len() - 1;
                &mut self.by_purpose[last]
            }
        };
        line.requests += 1;
        line.prompt_tokens += usage.prompt_tokens;
        line.cached_tokens += usage.cached_tokens;
        line.completion_tokens += usage.completion_tokens;
    }
}

pub(super) const NOTES: &str =
    "SELECT text, through_line, version, updated_at FROM meeting_notes WHERE meeting_id = $1";

#[derive(sqlx::FromRow)]
struct CallRow {
    status: String,
    meeting_name: String,
    agent_name: String,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    sequence_number: i64,
    speaker_type: Option<String>,
    text: String,
}

/// The lines after `after` up to the first number not stored yet. Lines
/// are not stored in number order (a user's words can be transcribed after
/// the agent's reply that follows them): notes stop before a line still
/// open, so that no line is ever passed over, and take it up once stored.
fn unbroken(after: i64, lines: Vec<LineRow>) -> Vec<(i64, Option<Speaker>, String)> {
    lines
        .into_iter()
        .zip(after + 1..)
        .take_while(|(line, expected)| line.sequence_number == *expected)
        .map(|(l, _)| {
            let speaker = l.speaker_type.and_then(|s| s.parse::<Speaker>().ok());
            (l.sequence_number, speaker, l.text)
        })
        .collect()
}

/// Saves notes only while the call is active and only forward.
const SAVE: &str = "INSERT INTO meeting_notes (meeting_id, text, through_line, version, updated_at) \
     SELECT $1, $2, $3, 1, $4 WHERE EXISTS (SELECT 1 FROM meetings WHERE id = $1 AND status = 'active') \
     ON CONFLICT (meeting_id) DO UPDATE SET text = excluded.text, through_line = excluded.through_line, \
     version = meeting_notes.version + 1, updated_at = excluded.updated_at \
     WHERE meeting_notes.through_line < excluded.through_line \
     RETURNING version";

impl Store {
    /// The meeting's notes, if it has any.
    pub async fn notes(&self, meeting: MeetingId) -> Result<Option<MeetingNotes>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(NOTES)
                .bind(meeting.as_uuid())
                .fetch_optional(p)
                .await
        })?)
    }

    /// See [`scribe_actors::ports::NotesStore::notes_input`].
    pub async fn notes_input(
        &self,
        meeting: MeetingId,
        max_lines: usize,
    ) -> Result<Option<NotesInput>, StoreError> {
        let limit = i64::try_from(max_lines).unwrap_or(i64::MAX);
        let read = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::read_snapshot(p)).await?;
            let call: Option<CallRow> = sqlx::query_as(
                "SELECT m.status, m.name AS meeting_name, a.name AS agent_name \
                 FROM meetings m JOIN agents a ON a.id = m.agent_id WHERE m.id = $1",
            )
            .bind(meeting.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            let read = match call {
                Some(call) if call.status == "active" => {
                    let notes: Option<MeetingNotes> = sqlx::query_as(NOTES)
                        .bind(meeting.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let after = notes.as_ref().map_or(0, |n| n.through_line);
                    let lines: Vec<LineRow> = sqlx::query_as(
                        "SELECT sequence_number, speaker_type, text FROM transcript_chunks \
                         WHERE meeting_id = $1 AND sequence_number > $2 \
                         ORDER BY sequence_number LIMIT $3",
                    )
                    .bind(meeting.as_uuid())
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                    Some((call, notes, lines))
                }
                _ => None,
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(read)
        })?;
        let Some((call, notes, lines)) = read else {
            return Ok(None);
        };
        let after = notes.as_ref().map_or(0, |n| n.through_line);
        Ok(Some(NotesInput {
            meeting_id: meeting,
            meeting_name: call.meeting_name,
            agent_name: call.agent_name,
            notes: notes.map(Notes::from),
            lines: unbroken(after, lines),
        }))
    }

    /// See [`scribe_actors::ports::NotesStore::save_notes`].
    pub async fn save_notes(
        &self,
        meeting: MeetingId,
        text: &str,
        through_line: i64,
    ) -> Result<Option<Notes>, StoreError> {
        let at = now();
        let saved = on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            // The call stays active until this commits: the end of the
            // call (which takes its row for update) waits for the save.
            let active: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT 1 FROM meetings WHERE id = $1 AND status = 'active'{}",
                super::pool::share_lock(p)
            )))
            .bind(meeting.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            if active.is_none() {
                tx.rollback().await?;
                return Ok(None);
            }
            let version: Option<i64> = sqlx::query_scalar(SAVE)
                .bind(meeting.as_uuid())
                .bind(text)
                .bind(through_line)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            let saved = version.map(|version| Notes {
                text: text.to_owned(),
                through_line,
                version,
            });
            if let Some(notes) = &saved {
                let event = CallEvent::NotesUpdated(notes.clone());
                sqlx::query(
                    "INSERT INTO meeting_events (meeting_id, kind, detail, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(meeting.as_uuid())
                .bind(event.kind().as_str())
                .bind(Json(event.detail()))
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(saved)
        })?;
        if saved.is_some() {
            self.changes.touch(meeting);
        }
        Ok(saved)
    }

    /// What the meeting's model requests used, from its log.
    pub async fn usage(&self, meeting: MeetingId) -> Result<MeetingUsage, StoreError> {
        let details: Vec<Json<Value>> = on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT detail FROM meeting_events WHERE meeting_id = $1 AND kind = $2 ORDER BY id",
            )
            .bind(meeting.as_uuid())
            .bind(EventKind::ModelUsage.as_str())
            .fetch_all(p)
            .await
        })?;
        let mut usage = MeetingUsage::default();
        for detail in details {
            match CallEvent::read(EventKind::ModelUsage, &detail.0) {
                Ok(CallEvent::ModelUsage(u)) => usage.add(&u),
                _ => {
                    tracing::warn!(%meeting, "a model_usage entry that does not read back is not counted")
                }
            }
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_read_up_to_the_first_line_not_stored_yet() {
        let row = |n: i64| LineRow {
            sequence_number: n,
            speaker_type: Some("user".into()),
            text: format!("line {n}"),
        };
        let read: Vec<i64> = unbroken(2, vec![row(3), row(4), row(6), row(7)])
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        assert_eq!(read, [3, 4]);
        assert!(unbroken(2, vec![row(4)]).is_empty(), "line 3 is still open");
        assert_eq!(unbroken(0, vec![row(1)])[0].1, Some(Speaker::User));
    }
}
