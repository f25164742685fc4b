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
//! - [`tree::TestTree`]: the real actor tree on these ports.
//!
//! Tests run in paused tokio time: waits have a deadline in virtual time,
//! which passes only when nothing else can run.

pub mod analyzer;
pub mod connector;
pub mod store;
pub mod tree;

use std::time::Duration;

/// How long a test waits, in virtual time, for what it expects.
pub const DEADLINE: Duration = Duration::from_secs(600);
