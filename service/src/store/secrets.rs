//! Secrets every instance on one database must agree on, generated once.

use super::pool::{Store, StoreError, on_pool};
use crate::domain::{now, random_secret};

/// The name of the page-capability key in `instance_secrets`.
const PAGE: &str = "page";

impl Store {
    /// The key the meeting pages' capabilities are derived from: read from
    /// the database, or generated (32 random bytes, hex) and stored when
    /// there is none yet. Instances racing to create it agree on the one
    /// that landed first.
    pub async fn page_secret(&self) -> Result<String, StoreError> {
        self.store_page_secret(false).await?;
        let (value,): (String,) = on_pool!(self, |p| {
            sqlx::query_as("SELECT value FROM instance_secrets WHERE name = $1")
                .bind(PAGE)
                .fetch_one(p)
                .await
        })?;
        Ok(value)
    }

    /// Replaces the stored page key with a new random one: every meeting
    /// page's capability issued so far stops working (after the instances
    /// restart: each reads the key at startup).
    pub async fn rotate_page_secret(&self) -> Result<(), StoreError> {
        self.store_page_secret(true).await
    }

    /// Stores a fresh random page key: in place of the one there is
    /// (`replace`), or only when there is none.
    async fn store_page_secret(&self, replace: bool) -> Result<(), StoreError> {
        let statement = if replace {
            "INSERT INTO instance_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at"
        } else {
            "INSERT INTO instance_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING"
        };
        let fresh = random_secret();
        on_pool!(self, |p| {
            sqlx::query(statement)
                .bind(PAGE)
                .bind(&fresh)
                .bind(now())
                .execute(p)
                .await
                // The backends' result types differ; nothing is read of them.
                .map(|_| ())
        })?;
        Ok(())
    }
}
