//! `/admin`: the live actors, a meeting's full error story, and (with
//! `SCRIBE_CHAOS`) killing an actor.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use scribe_actors::ids::MeetingId;
use scribe_actors::snapshot::ActorSnapshot;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::bearer_matches;
use super::extract::QueryParams;
use super::{ApiError, AppState};

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

#[derive(Debug, Serialize)]
pub struct ActorList {
    actors: Vec<ActorSnapshot>,
}

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
pub async fn meeting(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(meeting_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: MeetingId = meeting_id.parse()?;
    let meeting = state
        .store
        .meeting(id)
        .await?
        .ok_or_else(ApiError::meeting_not_found)?;
    let detail = state.store.error_detail(id).await?;
    let job = state.store.analysis_job(id).await?;
    let events = state.store.events(id).await?;
    Ok(Json(json!({
        "meeting_id": id,
        "status": meeting.status,
        "error": meeting.error,
        "error_detail": detail,
        "analysis_job": job,
        "events": events,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillQuery {
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
pub async fn kill_supervisor(
    _: AdminCaller,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    chaos_allowed(&state)?;
    if !state.calls.kill_supervisor() {
        return Err(ApiError::NotFound("no call supervisor is running".into()));
    }
    tracing::warn!("call supervisor killed through the admin endpoint");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "killed": true, "kind": "supervisor" })),
    ))
}

pub async fn kill(
    _: AdminCaller,
    State(state): State<AppState>,
    Path(meeting): Path<String>,
    QueryParams(query): QueryParams<KillQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(json!({ "killed": true, "kind": query.kind, "meeting_id": meeting })),
    ))
}
