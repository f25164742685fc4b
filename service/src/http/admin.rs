//! `/admin`: the live actors, a meeting's full error story, and (with
//! `SCRIBE_CHAOS`) killing an actor.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use scribe_actors::snapshot::ActorSnapshot;
use serde::{Deserialize, Serialize};

use super::auth::bearer_matches;
use super::error::ErrorBody;
use super::extract::QueryParams;
use super::{ApiError, AppState};
use crate::store::{AnalysisJob, StoredEvent};

/// Proof of `Authorization: Bearer $SCRIBE_ADMIN_TOKEN`; with no admin token
/// configured, every admin request is refused.
pub struct AdminCaller;

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match &state.admin_token {
            Some(token) if bearer_matches(&parts.headers, token) => Ok(Self),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActorList {
    actors: Vec<ActorSnapshot>,
}

/// A meeting's whole error story.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeetingStory {
    meeting_id: MeetingId,
    status: MeetingStatus,
    /// What the meeting shows publicly, in scribe's words.
    error: Option<String>,
    /// The provider's own words behind it.
    error_detail: Option<String>,
    /// The analysis job, once the call ended.
    analysis_job: Option<AnalysisJob>,
    /// The whole event log, oldest first, every detail included.
    events: Vec<StoredEvent>,
}

/// What a chaos kill did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Killed {
    killed: bool,
    /// `supervisor`, `meeting` or `analysis`.
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meeting_id: Option<MeetingId>,
}

/// `GET /admin/actors`: every live actor of this instance.
#[utoipa::path(
    get,
    path = "/admin/actors",
    tag = "admin",
    operation_id = "admin_actors",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The live actors, by meeting.", body = ActorList),
        (status = 401, description = "Missing or wrong admin token, or none configured.", body = ErrorBody),
        (status = 503, description = "The call supervisor is unavailable.", body = ErrorBody),
    ),
)]
pub async fn actors(
    _: AdminCaller,
    State(state): State<AppState>,
) -> Result<Json<ActorList>, ApiError> {
    let mut actors = state.calls.snapshots().await.map_err(ApiError::Calls)?;
    actors.sort_by_key(|a| a.meeting_id);
    Ok(Json(ActorList { actors }))
}

/// `GET /admin/meetings/{meeting_id}`: what went wrong, in full: the
/// public error, the provider's own words behind it, the analysis job and
/// the whole event log with every detail (the stream shows scribe's words
/// only).
#[utoipa::path(
    get,
    path = "/admin/meetings/{meeting_id}",
    tag = "admin",
    operation_id = "admin_meeting",
    security(("admin_token" = [])),
    params(("meeting_id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        (status = 200, description = "The meeting's error story.", body = MeetingStory),
        (status = 400, description = "The id is not a UUID.", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token, or none configured.", body = ErrorBody),
        (status = 404, description = "No such meeting.", body = ErrorBody),
        (status = 410, description = "The meeting was deleted.", body = ErrorBody),
    ),
)]
pub async fn meeting(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(meeting_id): Path<String>,
) -> Result<Json<MeetingStory>, ApiError> {
    let id: MeetingId = meeting_id.parse()?;
    let meeting = state
        .store
        .meeting(id)
        .await?
        .ok_or_else(ApiError::meeting_not_found)?;
    if meeting.deleted_at.is_some() {
        return Err(ApiError::meeting_deleted());
    }
    let detail = state.store.error_detail(id).await?;
    let job = state.store.analysis_job(id).await?;
    let events = state.store.events(id).await?;
    Ok(Json(MeetingStory {
        meeting_id: id,
        status: meeting.status,
        error: meeting.error,
        error_detail: detail,
        analysis_job: job,
        events,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KillQuery {
    /// Which of the meeting's actors: `meeting` or `analysis`.
    #[param(pattern = "^(meeting|analysis)$")]
    kind: String,
}

fn chaos_allowed(state: &AppState) -> Result<(), ApiError> {
    if state.chaos {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "killing actors needs SCRIBE_CHAOS to be set",
        ))
    }
}

/// Chaos: kills the CallSupervisor, and with it every call and analysis
/// actor. The guardian starts a new supervisor, which re-adopts them.
#[utoipa::path(
    post,
    path = "/admin/supervisor/kill",
    tag = "admin",
    operation_id = "admin_kill_supervisor",
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Killed; a new supervisor re-adopts the calls.", body = Killed),
        (status = 401, description = "Missing or wrong admin token, or none configured.", body = ErrorBody),
        (status = 403, description = "`SCRIBE_CHAOS` is not set.", body = ErrorBody),
        (status = 404, description = "No call supervisor is running.", body = ErrorBody),
    ),
)]
pub async fn kill_supervisor(
    _: AdminCaller,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Killed>), ApiError> {
    chaos_allowed(&state)?;
    if !state.calls.kill_supervisor() {
        return Err(ApiError::NotFound("no call supervisor is running".into()));
    }
    tracing::warn!("call supervisor killed through the admin endpoint");
    Ok((
        StatusCode::ACCEPTED,
        Json(Killed {
            killed: true,
            kind: "supervisor".into(),
            meeting_id: None,
        }),
    ))
}

/// Chaos: kills one of a meeting's actors; its supervisor restarts it.
#[utoipa::path(
    post,
    path = "/admin/actors/{meeting_id}/kill",
    tag = "admin",
    operation_id = "admin_kill_actor",
    security(("admin_token" = [])),
    params(("meeting_id" = uuid::Uuid, Path, description = "The meeting's id."), KillQuery),
    responses(
        (status = 202, description = "Killed; its supervisor restarts it.", body = Killed),
        (status = 400, description = "The id is not a UUID, or `kind` is neither `meeting` nor `analysis`.", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token, or none configured.", body = ErrorBody),
        (status = 403, description = "`SCRIBE_CHAOS` is not set.", body = ErrorBody),
        (status = 404, description = "No such live actor.", body = ErrorBody),
        (status = 503, description = "The call supervisor is unavailable.", body = ErrorBody),
    ),
)]
pub async fn kill(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(meeting): Path<String>,
    QueryParams(query): QueryParams<KillQuery>,
) -> Result<(StatusCode, Json<Killed>), ApiError> {
    chaos_allowed(&state)?;
    let meeting: MeetingId = meeting.parse()?;
    let killed = match query.kind.as_str() {
        "meeting" => state.calls.kill(meeting).await.map_err(ApiError::Calls)?,
        "analysis" => state
            .calls
            .kill_analysis(meeting)
            .await
            .map_err(ApiError::Calls)?,
        other => {
            return Err(ApiError::BadRequest(format!(
                "`kind` must be `meeting` or `analysis`, got `{other}`"
            )));
        }
    };
    if !killed {
        return Err(ApiError::NotFound(format!(
            "no live {} actor for meeting {meeting}",
            query.kind
        )));
    }
    tracing::warn!(%meeting, kind = %query.kind, "actor killed through the admin endpoint");
    Ok((
        StatusCode::ACCEPTED,
        Json(Killed {
            killed: true,
            kind: query.kind,
            meeting_id: Some(meeting),
        }),
    ))
}
