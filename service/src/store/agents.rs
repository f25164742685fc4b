//! Agent queries.

use scribe_actors::ids::AgentId;
use sqlx::types::Json;

use super::pool::{Store, StoreError, on_pool};
use super::rows::AgentRow;
use crate::domain::agent::{Agent, NewAgent};
use crate::domain::now;
use crate::domain::phone::PhoneNumber;

const AGENT_COLUMNS: &str =
    "SELECT id, name, instructions, blueprint, created_at, deleted_at FROM agents";

/// The numbers of one agent, in the order they sort.
const NUMBERS_OF: &str =
    "SELECT number FROM agent_phone_numbers WHERE agent_id = $1 ORDER BY number";

impl Store {
    /// Stores an agent and its phone numbers in one transaction. A number
    /// another agent already has is refused
    /// ([`StoreError::PhoneNumberTaken`]) and nothing is stored.
    pub async fn insert_agent(&self, new: NewAgent) -> Result<Agent, StoreError> {
        let agent = Agent {
            id: AgentId::new(),
            name: new.name,
            instructions: new.instructions,
            blueprint: new.blueprint,
            phone_numbers: new.phone_numbers,
            created_at: now(),
            deleted_at: None,
        };
        on_pool!(self, |p| {
            let mut tx = p.begin_with(super::pool::write_begin(p)).await?;
            sqlx::query(
                "INSERT INTO agents (id, name, instructions, blueprint, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(agent.id.as_uuid())
            .bind(&agent.name)
            .bind(&agent.instructions)
            .bind(agent.blueprint.as_ref().map(Json))
            .bind(agent.created_at)
            .execute(&mut *tx)
            .await?;
            for number in &agent.phone_numbers {
                let inserted = sqlx::query(
                    "INSERT INTO agent_phone_numbers (number, agent_id) VALUES ($1, $2)",
                )
                .bind(number.as_str())
                .bind(agent.id.as_uuid())
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(StoreError::PhoneNumberTaken(number.clone()));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
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
        match row {
            Some(row) => Ok(Some(self.with_numbers(row).await?)),
            None => Ok(None),
        }
    }

    /// The newest agents first, at most `limit`.
    pub async fn agents(&self, limit: u32) -> Result<Vec<Agent>, StoreError> {
        let rows: Vec<AgentRow> = on_pool!(self, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{AGENT_COLUMNS} WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $1"
            )))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        let mut agents = Vec::with_capacity(rows.len());
        for row in rows {
            agents.push(self.with_numbers(row).await?);
        }
        Ok(agents)
    }

    /// The agent a call to `number` reaches, if any.
    pub async fn agent_for_number(
        &self,
        number: &PhoneNumber,
    ) -> Result<Option<AgentId>, StoreError> {
        let row: Option<(uuid::Uuid,)> = on_pool!(self, |p| {
            sqlx::query_as("SELECT agent_id FROM agent_phone_numbers WHERE number = $1")
                .bind(number.as_str())
                .fetch_optional(p)
                .await
        })?;
        Ok(row.map(|(id,)| AgentId::from_uuid(id)))
    }

    async fn with_numbers(&self, row: AgentRow) -> Result<Agent, StoreError> {
        let mut agent = Agent::from(row);
        let numbers: Vec<(String,)> = on_pool!(self, |p| {
            sqlx::query_as(NUMBERS_OF)
                .bind(agent.id.as_uuid())
                .fetch_all(p)
                .await
        })?;
        agent.phone_numbers = numbers
            .into_iter()
            .map(|(n,)| PhoneNumber::parse("phone_numbers", &n))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(format!("agent {}: {e}", agent.id)))?;
        Ok(agent)
    }
}
