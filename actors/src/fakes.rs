//! In-memory ports for actor tests, with no database and no socket:
//!
//! - [`store::MemoryStore`]: meetings, lines, event logs, leases and
//!   analysis jobs in a map. Status changes follow the real state machine.
//!   Writes can be held (a stalled database) or made to fail. Every change
//!   wakes [`store::MemoryStore::wait_for`], so tests await what they expect.
//! - [`analyzer::FakeAnalyzer`]: answers with a summary, or holds every
//!   analysis until released, counting calls.
//! - [`connector::FakeConnector`]: opens in-memory sessions (channels) that
//!   the test drives: frames in, client events out, drops.
//! - [`control::FakeControl`]: the provider's hang-up, recorded.
//! - [`tree::TestTree`]: the real actor tree on these ports.
//!
//! Tests run in paused tokio time: waits have a deadline in virtual time,
//! which passes only when nothing else can run.

pub mod analyzer;
pub mod connector;
pub mod control;
pub mod store;
pub mod tree;

use std::time::Duration;

/// How long a test waits, in virtual time, for what it expects.
pub const DEADLINE: Duration = Duration::from_secs(600);

/// A finished user line, ready for the writer.
pub fn user_line(sequence_number: i64, text: impl Into<String>) -> crate::transcript::Line {
    crate::transcript::Line {
        sequence_number,
        speaker: crate::domain::Speaker::User,
        text: text.into(),
        status: crate::domain::ChunkStatus::Completed,
        item_id: None,
        timestamp: chrono::Utc::now(),
        start_ms: None,
        end_ms: None,
        ready_at: std::time::Instant::now(),
    }
}
