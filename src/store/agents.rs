//! Agent queries.

use scribe_actors::ids::AgentId;
use sqlx::types::Json;

use super::pool::{Store, StoreError, on_pool};
use super::rows::AgentRow;
use crate::domain::agent::{Agent, NewAgent};
use crate::domain::now;

const AGENT_COLUMNS: &str = "SELECT id, name, instructions, blueprint, created_at FROM agents";

impl Store {
    pub async fn insert_agent(&self, new: NewAgent) -> Result<Agent, StoreError> {
        let agent = Agent {
            id: AgentId::new(),
            name: new.name,
            instructions: new.instructions,
            blueprint: new.blueprint,
            created_at: now(),
        };
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO agents (id, name, instructions, blueprint, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(agent.id.as_uuid())
            .bind(&agent.name)
            .bind(&agent.instructions)
            .bind(agent.blueprint.as_ref().map(Json))
            .bind(agent.created_at)
            .execute(p)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(agent)
    }

    pub async fn agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError> {
        let row: Option<AgentRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{AGENT_COLUMNS} WHERE id = $1"
            )))
            .bind(id.as_uuid())
            .fetch_optional(p)
            .await
        })?;
        Ok(row.map(Agent::from))
    }

    /// The newest agents first, at most `limit`.
    pub async fn agents(&self, limit: u32) -> Result<Vec<Agent>, StoreError> {
        let rows: Vec<AgentRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{AGENT_COLUMNS} ORDER BY created_at DESC, id DESC LIMIT $1"
            )))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        Ok(rows.into_iter().map(Agent::from).collect())
    }
}
