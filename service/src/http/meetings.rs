//! `/api/meetings`: create and list (API token), and the per-meeting reads
//! (the API token, or the meeting's page key for its status and transcript;
//! an id alone opens nothing).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::{AgentId, MeetingId};
use serde::{Deserialize, Serialize};

use super::auth::{ApiCaller, MeetingAccess};
use super::error::ErrorBody;
use super::extract::{JsonBody, QueryParams};
use super::{ApiError, AppState};
use crate::domain::agent::MAX_INSTRUCTIONS_CHARS;
use crate::domain::meeting::{MAX_USER_ID_CHARS, Meeting, MeetingFilter, NewMeeting};
use crate::domain::text_schema;
use crate::store::{
    Deletion, MeetingNotes, MeetingUsage, RetryOutcome, StoreError, StoredChunk, TranscriptHole,
};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMeeting {
    /// Not blank.
    #[schema(schema_with = super::agents::name_schema)]
    name: String,
    /// An existing agent's id.
    agent_id: AgentId,
    /// Your own id of the person who talks with the agent; not blank.
    #[schema(schema_with = user_id_schema)]
    user_id: String,
    /// Instructions for this meeting's call instead of the agent's; blank
    /// means none.
    #[serde(default)]
    #[schema(schema_with = prompt_schema)]
    prompt: Option<String>,
}

fn user_id_schema() -> utoipa::openapi::Object {
    text_schema(MAX_USER_ID_CHARS)
}

fn prompt_schema() -> utoipa::openapi::schema::Schema {
    let text = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::String,
            utoipa::openapi::schema::Type::Null,
        ]))
        .max_length(Some(MAX_INSTRUCTIONS_CHARS))
        .pattern(Some(crate::domain::NO_NUL_PATTERN))
        .build();
    text.into()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMeetings {
    /// Only meetings in this status.
    #[param(value_type = Option<MeetingStatus>, nullable = false)]
    status: Option<String>,
    /// Only this user's meetings.
    #[param(nullable = false, pattern = r"^[^\u0000]*$")]
    user_id: Option<String>,
    /// Only this agent's meetings.
    #[param(value_type = Option<uuid::Uuid>, nullable = false)]
    agent_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500, nullable = false)]
    limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeetingList {
    meetings: Vec<Meeting>,
}

/// The polling shape of the original design, kept exactly.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingStatusView {
    status: MeetingStatus,
    error: Option<String>,
    ended_at: Option<DateTime<Utc>>,
    processing_started_at: Option<DateTime<Utc>>,
    transcript_collected: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TranscriptView {
    meeting_id: MeetingId,
    chunks: Vec<StoredChunk>,
    /// Where lines may be missing (scribe was away from an attached call,
    /// or a process stopped without a shutdown): between line `after` and
    /// line `before`.
    holes: Vec<TranscriptHole>,
}

/// The answer of a request that started the meeting's analysis (a retry,
/// a hang-up): the meeting is now `processing`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Processing {
    pub status: MeetingStatus,
}

impl Processing {
    pub fn now() -> Json<Self> {
        Json(Self {
            status: MeetingStatus::Processing,
        })
    }
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

/// `POST /api/meetings`: plans a meeting with an agent (status `upcoming`).
#[utoipa::path(
    post,
    path = "/api/meetings",
    tag = "meetings",
    operation_id = "create_meeting",
    security(("api_token" = [])),
    request_body = CreateMeeting,
    responses(
        (status = 201, description = "The meeting as stored.", body = Meeting,
            links(
                ("show" = (operation_id = "show_meeting", parameters(("id" = "$response.body#/id")))),
                ("status" = (operation_id = "meeting_status", parameters(("id" = "$response.body#/id")))),
                ("transcript" = (operation_id = "meeting_transcript", parameters(("id" = "$response.body#/id")))),
                ("events" = (operation_id = "meeting_events", parameters(("id" = "$response.body#/id")))),
                ("page" = (operation_id = "meeting_page", parameters(("id" = "$response.body#/id")))),
                ("call" = (operation_id = "start_call", parameters(("id" = "$response.body#/id")))),
                ("hang_up" = (operation_id = "hang_up", parameters(("id" = "$response.body#/id")))),
                ("retry" = (operation_id = "retry_analysis", parameters(("id" = "$response.body#/id")))),
                ("admin" = (operation_id = "admin_meeting", parameters(("meeting_id" = "$response.body#/id")))),
                ("kill" = (operation_id = "admin_kill_actor", parameters(("meeting_id" = "$response.body#/id")))),
            )),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown, of the wrong type or out of bounds, or `agent_id` names no agent.", body = ErrorBody),
        (status = 429, description = "Too many meetings created on this instance: `SCRIBE_MEETINGS_PER_MINUTE` (600) a minute.", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait."))),
    ),
)]
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
    state.limits.meeting_created()?;
    let meeting = state.store.insert_meeting(new).await.map_err(|e| match e {
        StoreError::UnknownAgent(id) => {
            ApiError::Unprocessable(format!("`agent_id` {id} does not name an existing agent"))
        }
        other => other.into(),
    })?;
    tracing::info!(meeting_id = %meeting.id, agent_id = %meeting.agent_id, "meeting created");
    Ok((StatusCode::CREATED, Json(state.with_page_url(meeting))))
}

/// `GET /api/meetings`: the newest meetings first.
#[utoipa::path(
    get,
    path = "/api/meetings",
    tag = "meetings",
    operation_id = "list_meetings",
    security(("api_token" = [])),
    params(ListMeetings),
    responses(
        (status = 200, description = "The newest meetings first.", body = MeetingList),
        (status = 400, description = "A query parameter is unknown, malformed or out of bounds.", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = ErrorBody),
    ),
)]
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
        user_id: match query.user_id {
            Some(user) if !crate::domain::storable(&user) => {
                return Err(ApiError::BadRequest(
                    "`user_id` must not contain the character U+0000".into(),
                ));
            }
            user => user,
        },
        agent_id: query.agent_id.map(|a| a.parse()).transpose()?,
        limit: page_limit(query.limit)?,
    };
    let meetings = state.store.meetings(&filter).await?;
    let meetings = meetings
        .into_iter()
        .map(|m| state.with_page_url(m))
        .collect();
    Ok(Json(MeetingList { meetings }))
}

/// `GET /api/meetings/{id}`: the meeting's record, with its page link
/// (API token only).
#[utoipa::path(
    get,
    path = "/api/meetings/{id}",
    tag = "meetings",
    operation_id = "show_meeting",
    security(("api_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 200, description = "The meeting, its results once analysed, its page link.", body = Meeting),
    ),
)]
pub async fn show(
    access: MeetingAccess,
    State(state): State<AppState>,
) -> Result<Json<Meeting>, ApiError> {
    Ok(Json(state.with_page_url(access.api_only()?)))
}

/// A new page link for the meeting.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageLink {
    /// The page, with the key that opens it.
    page_url: String,
}

/// `POST /api/meetings/{id}/page-link`: issues a new page link; every link
/// issued before stops working (API token only).
#[utoipa::path(
    post,
    path = "/api/meetings/{id}/page-link",
    tag = "meetings",
    operation_id = "new_page_link",
    security(("api_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 201, description = "The new link; the earlier ones are revoked.", body = PageLink),
    ),
)]
pub async fn page_link(
    access: MeetingAccess,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<PageLink>), ApiError> {
    let mut meeting = access.api_only()?;
    meeting.page_generation = state
        .store
        .next_page_generation(meeting.id)
        .await?
        .ok_or_else(ApiError::meeting_not_found)?;
    tracing::info!(meeting_id = %meeting.id, generation = meeting.page_generation, "page links revoked; a new one issued");
    Ok((
        StatusCode::CREATED,
        Json(PageLink {
            page_url: state.page_url(&meeting),
        }),
    ))
}

/// What a deletion did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedMeeting {
    meeting_id: MeetingId,
    /// True when its call was live: it was ended (its actor stopped, its
    /// socket closed; a browser or phone call hung up at OpenAI).
    call_ended: bool,
}

/// `DELETE /api/meetings/{id}`: deletes the meeting's transcript, event
/// log, notes, results and page link in one transaction, ending its call
/// first when it is live; a tombstone (its id, agent and times) stays, so
/// that nothing late brings any of it back (API token only).
#[utoipa::path(
    delete,
    path = "/api/meetings/{id}",
    tag = "meetings",
    operation_id = "delete_meeting",
    security(("api_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 200, description = "Deleted; its call ended if it was live.", body = DeletedMeeting),
    ),
)]
pub async fn delete(
    access: MeetingAccess,
    State(state): State<AppState>,
) -> Result<Json<DeletedMeeting>, ApiError> {
    let meeting = access.api_only()?;
    match state.service.delete(meeting.id).await? {
        Deletion::NotFound => Err(ApiError::meeting_not_found()),
        Deletion::AlreadyDeleted => Err(ApiError::meeting_deleted()),
        Deletion::Deleted(erased) => {
            metrics::counter!(crate::metrics::MEETINGS_DELETED, "by" => "meeting").increment(1);
            tracing::info!(meeting_id = %meeting.id, call_ended = erased.was_live(), "meeting deleted");
            Ok(Json(DeletedMeeting {
                meeting_id: meeting.id,
                call_ended: erased.was_live(),
            }))
        }
    }
}

/// `GET /api/meetings/{id}/status`: the polling shape.
#[utoipa::path(
    get,
    path = "/api/meetings/{id}/status",
    tag = "meetings",
    operation_id = "meeting_status",
    security(("api_token" = []), ("meeting_token" = []), ("meeting_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 200, description = "Where the meeting is.", body = MeetingStatusView),
    ),
)]
pub async fn status(access: MeetingAccess) -> Result<Json<MeetingStatusView>, ApiError> {
    let meeting = access.meeting;
    Ok(Json(MeetingStatusView {
        status: meeting.status,
        error: meeting.error,
        ended_at: meeting.ended_at,
        processing_started_at: meeting.processing_started_at,
        transcript_collected: meeting.transcript_collected,
    }))
}

/// The transcript's query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TranscriptQuery {
    /// `json` (the default), `txt`, `md` or `vtt` (WebVTT).
    #[param(value_type = Option<super::export::Format>, nullable = false)]
    format: Option<String>,
    /// The meeting's page key (as in its page link), when the request
    /// carries neither it in `X-Meeting-Token` nor the API token.
    #[param(nullable = false)]
    #[expect(dead_code, reason = "read by the MeetingAccess extractor")]
    key: Option<String>,
}

/// `GET /api/meetings/{id}/transcript`: every line stored so far, in
/// conversation order, and where lines may be missing; as JSON, or as a
/// download in plain text, Markdown or WebVTT (`?format=`).
#[utoipa::path(
    get,
    path = "/api/meetings/{id}/transcript",
    tag = "meetings",
    operation_id = "meeting_transcript",
    security(("api_token" = []), ("meeting_token" = []), ("meeting_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id."), TranscriptQuery),
    responses(
        super::openapi::MeetingLookup,
        (status = 200, description = "The lines in order, and the holes: JSON (`format=json`, the default); \
                                      plain text, Markdown or WebVTT (`txt`, `md`, `vtt`) with speakers and times, \
                                      lines cut short, interrupted, lost or not transcribed and stretches where lines \
                                      may be missing marked as the page marks them.",
            content((TranscriptView = "application/json"), (String = "text/plain"),
                    (String = "text/markdown"), (String = "text/vtt"))),
    ),
)]
pub async fn transcript(
    access: MeetingAccess,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<TranscriptQuery>,
) -> Result<axum::response::Response, ApiError> {
    use super::export::{self, Format};
    use axum::response::IntoResponse;
    let format = match query.format.as_deref() {
        None => Format::Json,
        Some(name) => {
            serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
                ApiError::BadRequest(format!(
                    "`format` must be json, txt, md or vtt, got {name:?}"
                ))
            })?
        }
    };
    let meeting = access.meeting;
    let chunks = state.store.transcript(meeting.id).await?;
    let holes = state.store.transcript_holes(meeting.id).await?;
    let body = match format {
        Format::Json => {
            return Ok(Json(TranscriptView {
                meeting_id: meeting.id,
                chunks,
                holes,
            })
            .into_response());
        }
        Format::Txt => export::text(&meeting, &chunks, &holes),
        Format::Md => export::markdown(&meeting, &chunks, &holes),
        Format::Vtt => export::webvtt(&meeting, &chunks, &holes),
    };
    let disposition = format!(
        "attachment; filename=\"transcript-{}.{}\"",
        meeting.id,
        format.extension()
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                format.content_type().to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// A meeting's running notes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotesView {
    meeting_id: MeetingId,
    /// `null` until the first notes are saved (or when notes are off).
    notes: Option<MeetingNotes>,
}

/// `GET /api/meetings/{id}/notes`: the call's running notes (a summary of
/// the conversation so far, and the last line it covers).
#[utoipa::path(
    get,
    path = "/api/meetings/{id}/notes",
    tag = "meetings",
    operation_id = "meeting_notes",
    security(("api_token" = []), ("meeting_token" = []), ("meeting_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 200, description = "The current notes, if any.", body = NotesView),
    ),
)]
pub async fn notes(
    access: MeetingAccess,
    State(state): State<AppState>,
) -> Result<Json<NotesView>, ApiError> {
    let meeting = access.meeting;
    Ok(Json(NotesView {
        meeting_id: meeting.id,
        notes: state.store.notes(meeting.id).await?,
    }))
}

/// `GET /api/meetings/{id}/usage`: the tokens the meeting's model requests
/// used (notes and analysis; prompt, cached and completion), in all and by
/// purpose and model (API token only).
#[utoipa::path(
    get,
    path = "/api/meetings/{id}/usage",
    tag = "meetings",
    operation_id = "meeting_usage",
    security(("api_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 200, description = "The tokens used so far.", body = MeetingUsage),
    ),
)]
pub async fn usage(
    access: MeetingAccess,
    State(state): State<AppState>,
) -> Result<Json<MeetingUsage>, ApiError> {
    let meeting = access.api_only()?;
    Ok(Json(state.store.usage(meeting.id).await?))
}

/// `POST /api/meetings/{id}/retry`: re-runs a failed analysis.
///
/// Allowed with the API token, or with the meeting's page key
/// (`X-Meeting-Token`, see [`super::auth::meeting_token`]). A retry refused
/// for the meeting's status spends nothing of its retry allowance.
#[utoipa::path(
    post,
    path = "/api/meetings/{id}/retry",
    tag = "meetings",
    operation_id = "retry_analysis",
    security(("api_token" = []), ("meeting_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 202, description = "The analysis runs again.", body = Processing),
        (status = 409, description = "The meeting's analysis has not failed.", body = ErrorBody),
        (status = 429, description = "Too many retries of this meeting: 3, then one a minute.", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait."))),
    ),
)]
pub async fn retry(
    access: MeetingAccess,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Processing>), ApiError> {
    let id = access.meeting.id;
    // A retry that would be refused for the status spends nothing.
    if access.meeting.status != MeetingStatus::Failed {
        return Err(not_failed(access.meeting.status));
    }
    state.limits.retry(id)?;
    match state.store.retry_analysis(id).await? {
        RetryOutcome::NotFound => Err(ApiError::meeting_not_found()),
        RetryOutcome::NotFailed(status) => Err(not_failed(status)),
        RetryOutcome::Queued => {
            state.calls.analyze(id).await.map_err(ApiError::Calls)?;
            tracing::info!(meeting_id = %id, "analysis retried");
            Ok((StatusCode::ACCEPTED, Processing::now()))
        }
    }
}

fn not_failed(status: MeetingStatus) -> ApiError {
    ApiError::Conflict(format!(
        "Meeting is {status}: only a meeting whose analysis failed can be retried"
    ))
}
