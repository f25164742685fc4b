//! `/api/agents`: create, list and read agents. Every route needs the API token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use scribe_actors::ids::AgentId;
use serde::{Deserialize, Serialize};

use super::auth::ApiCaller;
use super::extract::{JsonBody, QueryParams};
use super::{ApiError, AppState};
use crate::domain::agent::{Agent, Blueprint, NewAgent};
use crate::store::StoreError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    name: String,
    instructions: String,
    #[serde(default)]
    blueprint: Option<Blueprint>,
    /// E.164 numbers whose SIP calls reach this agent; each reaches one agent.
    #[serde(default)]
    phone_numbers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAgents {
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct AgentList {
    agents: Vec<Agent>,
}

pub async fn create(
    _: ApiCaller,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateAgent>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    let new = NewAgent::parse(&body.name, &body.instructions, body.blueprint)?
        .with_phone_numbers(&body.phone_numbers)?;
    let agent = state.store.insert_agent(new).await.map_err(|e| match e {
        StoreError::PhoneNumberTaken(number) => {
            ApiError::Conflict(format!("{number} already reaches another agent"))
        }
        other => other.into(),
    })?;
    tracing::info!(agent_id = %agent.id, "agent created");
    Ok((StatusCode::CREATED, Json(agent)))
}

pub async fn list(
    _: ApiCaller,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListAgents>,
) -> Result<Json<AgentList>, ApiError> {
    let limit = super::meetings::page_limit(query.limit)?;
    let agents = state.store.agents(limit).await?;
    Ok(Json(AgentList { agents }))
}

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
    Ok(Json(agent))
}
