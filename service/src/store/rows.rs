//! Rows as both backends return them, and their conversion into domain types.
//! Stored spellings are parsed back strictly: a value outside its set is
//! reported as [`StoreError::Corrupt`], never guessed.

use chrono::{DateTime, Utc};
use scribe_actors::ids::{AgentId, MeetingId};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::pool::StoreError;
use crate::domain::agent::{Agent, Blueprint};
use crate::domain::meeting::Meeting;

#[derive(sqlx::FromRow)]
pub(super) struct AgentRow {
    id: Uuid,
    name: String,
    instructions: String,
    blueprint: Option<Json<Blueprint>>,
    created_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl From<AgentRow> for Agent {
    fn from(row: AgentRow) -> Self {
        Self {
            id: AgentId::from_uuid(row.id),
            name: row.name,
            instructions: row.instructions,
            blueprint: row.blueprint.map(|b| b.0),
            phone_numbers: Vec::new(),
            created_at: row.created_at,
            deleted_at: row.deleted_at,
        }
    }
}

/// The columns every meeting query selects, `m` being `meetings`.
pub(super) const MEETING_COLUMNS: &str = "m.id, m.name, m.user_id, m.agent_id, m.status, m.prompt, \
    m.progress, m.summary, m.error, m.started_at, m.ended_at, m.processing_started_at, \
    m.completed_at, m.transcript_collected, m.previous_meeting_id, m.transport, m.provider_call_id, m.voice_api, \
    (SELECT n.id FROM meetings n WHERE n.previous_meeting_id = m.id) AS next_meeting_id, \
    m.created_at, m.updated_at, m.page_generation, m.deleted_at";

#[derive(sqlx::FromRow)]
pub(super) struct MeetingRow {
    id: Uuid,
    name: String,
    user_id: String,
    agent_id: Uuid,
    status: String,
    prompt: Option<String>,
    progress: Option<Json<Value>>,
    summary: Option<String>,
    error: Option<String>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    processing_started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    transcript_collected: bool,
    previous_meeting_id: Option<Uuid>,
    transport: Option<String>,
    provider_call_id: Option<String>,
    voice_api: Option<String>,
    next_meeting_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    page_generation: i64,
    deleted_at: Option<DateTime<Utc>>,
}

impl TryFrom<MeetingRow> for Meeting {
    type Error = StoreError;

    fn try_from(row: MeetingRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: MeetingId::from_uuid(row.id),
            name: row.name,
            user_id: row.user_id,
            agent_id: AgentId::from_uuid(row.agent_id),
            status: row
                .status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("meeting {}: {e}", row.id)))?,
            prompt: row.prompt,
            progress: row.progress.map(|p| p.0),
            summary: row.summary,
            error: row.error,
            started_at: row.started_at,
            ended_at: row.ended_at,
            processing_started_at: row.processing_started_at,
            completed_at: row.completed_at,
            transcript_collected: row.transcript_collected,
            previous_meeting_id: row.previous_meeting_id.map(MeetingId::from_uuid),
            transport: row
                .transport
                .map(|t| t.parse())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("meeting {}: {e}", row.id)))?,
            provider_call_id: row.provider_call_id,
            voice_api: row
                .voice_api
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("meeting {}: {e}", row.id)))?,
            next_meeting_id: row.next_meeting_id.map(MeetingId::from_uuid),
            created_at: row.created_at,
            updated_at: row.updated_at,
            page_url: None,
            page_generation: row.page_generation,
            deleted_at: row.deleted_at,
        })
    }
}
