//! `/api/agents`: create, list and read agents. Every route needs the API token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use scribe_actors::ids::AgentId;
use serde::{Deserialize, Serialize};

use super::auth::ApiCaller;
use super::error::ErrorBody;
use super::extract::{JsonBody, QueryParams};
use super::{ApiError, AppState};
use crate::domain::agent::{
    Agent, Blueprint, MAX_INSTRUCTIONS_CHARS, MAX_NAME_CHARS, MAX_PHONE_NUMBERS, NewAgent,
};
use crate::domain::phone::PhoneNumber;
use crate::domain::text_schema;
use crate::store::{AgentDeletion, StoreError};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// Not blank.
    #[schema(schema_with = name_schema)]
    name: String,
    /// The agent's instructions to the model; not blank.
    #[schema(schema_with = instructions_schema)]
    instructions: String,
    /// A plan over several sessions; session names must be unique.
    #[serde(default, deserialize_with = "crate::domain::object::optional")]
    blueprint: Option<Blueprint>,
    /// E.164 numbers whose SIP calls reach this agent; each reaches one agent.
    #[serde(default)]
    #[schema(schema_with = phone_numbers_schema)]
    phone_numbers: Vec<String>,
}

pub(super) fn name_schema() -> utoipa::openapi::Object {
    text_schema(MAX_NAME_CHARS)
}

fn instructions_schema() -> utoipa::openapi::Object {
    text_schema(MAX_INSTRUCTIONS_CHARS)
}

fn phone_numbers_schema() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(<PhoneNumber as utoipa::PartialSchema>::schema())
        .max_items(Some(MAX_PHONE_NUMBERS))
        .unique_items(true)
        .build()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAgents {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500, nullable = false)]
    limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentList {
    agents: Vec<Agent>,
}

/// `POST /api/agents`: creates an agent.
#[utoipa::path(
    post,
    path = "/api/agents",
    tag = "agents",
    operation_id = "create_agent",
    security(("api_token" = [])),
    request_body = CreateAgent,
    responses(
        (status = 201, description = "The agent as stored.", body = Agent,
            links(("show" = (operation_id = "show_agent", parameters(("id" = "$response.body#/id")))))),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = ErrorBody),
        (status = 409, description = "A phone number already reaches another agent.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown, of the wrong type or out of bounds, or a session name repeats.", body = ErrorBody),
        (status = 429, description = "Too many agents created on this instance: `SCRIBE_AGENTS_PER_MINUTE` (600) a minute.", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait."))),
    ),
)]
pub async fn create(
    _: ApiCaller,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateAgent>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    let new = NewAgent::parse(&body.name, &body.instructions, body.blueprint)?
        .with_phone_numbers(&body.phone_numbers)?;
    state.limits.agent_created()?;
    let agent = state.store.insert_agent(new).await.map_err(|e| match e {
        StoreError::PhoneNumberTaken(number) => {
            ApiError::Conflict(format!("{number} already reaches another agent"))
        }
        other => other.into(),
    })?;
    tracing::info!(agent_id = %agent.id, "agent created");
    Ok((StatusCode::CREATED, Json(agent)))
}

/// `GET /api/agents`: the newest agents first.
#[utoipa::path(
    get,
    path = "/api/agents",
    tag = "agents",
    operation_id = "list_agents",
    security(("api_token" = [])),
    params(ListAgents),
    responses(
        (status = 200, description = "The newest agents first.", body = AgentList),
        (status = 400, description = "A query parameter is unknown or out of bounds.", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = ErrorBody),
    ),
)]
pub async fn list(
    _: ApiCaller,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListAgents>,
) -> Result<Json<AgentList>, ApiError> {
    let limit = super::meetings::page_limit(query.limit)?;
    let agents = state.store.agents(limit).await?;
    Ok(Json(AgentList { agents }))
}

/// `GET /api/agents/{id}`.
#[utoipa::path(
    get,
    path = "/api/agents/{id}",
    tag = "agents",
    operation_id = "show_agent",
    security(("api_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The agent's id.")),
    responses(
        (status = 200, description = "The agent.", body = Agent),
        (status = 400, description = "The id is not a UUID.", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = ErrorBody),
        (status = 404, description = "No such agent.", body = ErrorBody),
        (status = 410, description = "The agent was deleted.", body = ErrorBody),
    ),
)]
pub async fn show(
    _: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    let id: AgentId = id.parse()?;
    let agent = state
        .store
        .agent(id)
        .await?
        .ok_or_else(ApiError::agent_not_found)?;
    if agent.deleted_at.is_some() {
        return Err(ApiError::agent_deleted());
    }
    Ok(Json(agent))
}

/// What an agent's deletion did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedAgent {
    agent_id: AgentId,
    /// Its meetings deleted now (each as `DELETE /api/meetings/{id}`).
    meetings_deleted: usize,
    /// Of them, those whose call was live and was ended.
    calls_ended: usize,
}

/// `DELETE /api/agents/{id}`: deletes the agent (its instructions, plan
/// and phone numbers; its id and times stay) and every meeting of it, as
/// `DELETE /api/meetings/{id}` does, live calls ended first.
#[utoipa::path(
    delete,
    path = "/api/agents/{id}",
    tag = "agents",
    operation_id = "delete_agent",
    security(("api_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The agent's id.")),
    responses(
        (status = 200, description = "Deleted, with its meetings.", body = DeletedAgent),
        (status = 400, description = "The id is not a UUID.", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token.", body = ErrorBody),
        (status = 404, description = "No such agent.", body = ErrorBody),
        (status = 410, description = "The agent was deleted already (any meeting of it a cut-short deletion left is deleted now).", body = ErrorBody),
    ),
)]
pub async fn delete(
    _: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeletedAgent>, ApiError> {
    let id: AgentId = id.parse()?;
    let (first, erased) = match state.service.delete_agent(id).await? {
        AgentDeletion::NotFound => return Err(ApiError::agent_not_found()),
        AgentDeletion::Deleted(erased) => (true, erased),
        AgentDeletion::AlreadyDeleted(erased) => (false, erased),
    };
    metrics::counter!(crate::metrics::MEETINGS_DELETED, "by" => "agent")
        .increment(erased.len() as u64);
    let calls_ended = erased.iter().filter(|e| e.was_live()).count();
    tracing::info!(agent_id = %id, meetings = erased.len(), calls_ended, "agent deleted");
    if !first {
        return Err(ApiError::agent_deleted());
    }
    Ok(Json(DeletedAgent {
        agent_id: id,
        meetings_deleted: erased.len(),
        calls_ended,
    }))
}
