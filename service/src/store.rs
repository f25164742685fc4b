//! The database behind scribe: one [`Store`] over either SQLite or
//! PostgreSQL. Every query is written once and runs on both backends (sqlx
//! runtime queries with `$N` placeholders, which SQLite accepts too); the few
//! statements that differ are matched per backend where they are written.
//!
//! - [`pool`]: the `Store` handle, its errors, migrators, per-backend dialect.
//! - [`status`]: every meeting status change, through the state machine.
//! - `calls`: the actors' ports (`CallStore`, `LeaseStore`, `AnalysisStore`,
//!   `TranscriptSink`); `leases`, `analysis`, `transcript`, `webhooks`,
//!   `meetings`, `agents`, `events`, `participants`: the queries by concern.
//! - `feed`, [`changes`]: what the event stream reads and its wake-ups.

mod agents;
mod analysis;
mod attached;
pub mod changes;
mod copy;
mod deletion;
mod events;
mod feed;
pub mod leases;
mod meetings;
mod news;
mod notes;
mod participants;
pub mod pool;
mod ports;
mod rows;
mod secrets;
pub mod status;
mod transcript;
mod webhooks;

pub use analysis::RetryOutcome;
pub use attached::{AttachedStart, TranscriptHole};
pub use changes::Changes;
pub use copy::PgLines;
pub use deletion::{AgentDeletion, DELETE_AT_ONCE, Deletion, Erased, RowsOf};
pub use events::{AnalysisJob, StoredEvent};
pub use feed::{FeedCursor, FeedEvent, FeedRead};
pub use leases::EndRequest;
pub use notes::{MeetingNotes, MeetingUsage, UsageLine};
pub use participants::{Movement, Presence, Remaining};
pub use pool::{
    Backend, POSTGRES_MIGRATOR, PoolSize, SQLITE_MIGRATOR, SQLITE_WAL_LIMIT_BYTES, Store,
    StoreError, redact_url,
};
pub use transcript::StoredChunk;
pub use webhooks::{SessionStart, WebhookDelivery};
