//! `/api/meetings`: create and list (API token), and the per-meeting reads
//! that need no token because the meeting id is unguessable.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::{AgentId, MeetingId};
use serde::{Deserialize, Serialize};

use super::auth::ApiCaller;
use super::extract::{JsonBody, QueryParams};
use super::{ApiError, AppState};
use crate::domain::meeting::{Meeting, MeetingFilter, NewMeeting};
use crate::store::{RetryOutcome, StoreError, StoredChunk, TranscriptHole};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMeeting {
    name: String,
    agent_id: AgentId,
    user_id: String,
    #[serde(default)]
    prompt: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMeetings {
    status: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct MeetingList {
    meetings: Vec<Meeting>,
}

/// The polling shape of the original design, kept exactly.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeetingStatusView {
    status: MeetingStatus,
    error: Option<String>,
    ended_at: Option<DateTime<Utc>>,
    processing_started_at: Option<DateTime<Utc>>,
    transcript_collected: bool,
}

#[derive(Debug, Serialize)]
pub struct TranscriptView {
    meeting_id: MeetingId,
    chunks: Vec<StoredChunk>,
    /// Where lines may be missing (scribe was away from an attached call,
    /// or a process stopped without a shutdown): between line `after` and
    /// line `before`.
    holes: Vec<TranscriptHole>,
}

/// The page size a listing asked for, checked against the bounds.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=MAX_PAGE) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_PAGE}, got {n}"
        ))),
    }
}

pub async fn create(
    _: ApiCaller,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateMeeting>,
) -> Result<(StatusCode, Json<Meeting>), ApiError> {
    let new = NewMeeting::parse(
        &body.name,
        &body.user_id,
        body.agent_id,
        body.prompt.as_deref(),
    )?;
    let meeting = state.store.insert_meeting(new).await.map_err(|e| match e {
        StoreError::UnknownAgent(id) => {
            ApiError::Unprocessable(format!("`agent_id` {id} does not name an existing agent"))
        }
        other => other.into(),
    })?;
    tracing::info!(meeting_id = %meeting.id, agent_id = %meeting.agent_id, "meeting created");
    Ok((StatusCode::CREATED, Json(meeting)))
}

pub async fn list(
    _: ApiCaller,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListMeetings>,
) -> Result<Json<MeetingList>, ApiError> {
    let filter = MeetingFilter {
        status: query
            .status
            .map(|s| s.parse::<MeetingStatus>())
            .transpose()
            .map_err(|e| ApiError::BadRequest(format!("`status`: {e}")))?,
        user_id: query.user_id,
        agent_id: query.agent_id.map(|a| a.parse()).transpose()?,
        limit: page_limit(query.limit)?,
    };
    let meetings = state.store.meetings(&filter).await?;
    Ok(Json(MeetingList { meetings }))
}

async fn load(state: &AppState, id: &str) -> Result<Meeting, ApiError> {
    let id: MeetingId = id.parse()?;
    state
        .store
        .meeting(id)
        .await?
        .ok_or_else(ApiError::meeting_not_found)
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Meeting>, ApiError> {
    Ok(Json(load(&state, &id).await?))
}

pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MeetingStatusView>, ApiError> {
    let meeting = load(&state, &id).await?;
    Ok(Json(MeetingStatusView {
        status: meeting.status,
        error: meeting.error,
        ended_at: meeting.ended_at,
        processing_started_at: meeting.processing_started_at,
        transcript_collected: meeting.transcript_collected,
    }))
}

pub async fn transcript(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TranscriptView>, ApiError> {
    let meeting = load(&state, &id).await?;
    let chunks = state.store.transcript(meeting.id).await?;
    let holes = state.store.transcript_holes(meeting.id).await?;
    Ok(Json(TranscriptView {
        meeting_id: meeting.id,
        chunks,
        holes,
    }))
}

/// `POST /api/meetings/{id}/retry`: re-runs a failed analysis.
///
/// Allowed with the API token, or with the meeting's page capability
/// (`X-Meeting-Token`, see [`super::auth::meeting_token`]).
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id: MeetingId = id.parse()?;
    if !super::auth::may_act_on_meeting(&headers, &state.api_token, &state.page_key, id) {
        return Err(ApiError::Unauthorized);
    }
    state.limits.retry(id)?;
    match state.store.retry_analysis(id).await? {
        RetryOutcome::NotFound => Err(ApiError::meeting_not_found()),
        RetryOutcome::NotFailed(status) => Err(ApiError::Conflict(format!(
            "Meeting is {status}: only a meeting whose analysis failed can be retried"
        ))),
        RetryOutcome::Queued => {
            state.calls.analyze(id).await.map_err(ApiError::Calls)?;
            tracing::info!(meeting_id = %id, "analysis retried");
            Ok((
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "status": "processing" })),
            ))
        }
    }
}
