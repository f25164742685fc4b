//! # scribe-actors
//!
//! Everything that runs per call: the supervision tree, the realtime
//! session, transcript ordering and the chunk writer. This crate knows
//! nothing of HTTP or SQL; it states the ports it needs as traits
//! ([`ports`]) and the `scribe` crate implements them.
//!
//! ## Supervision tree
//!
//! ```text
//! CallGuardian                     root; replaces a dead CallSupervisor, then recovers
//!  └── CallSupervisor              restarts dead children within a budget; owns its tasks
//!       │    (tasks: lease renewal, finalizations without an actor, verdicts)
//!       ├── MeetingActor(meeting)  one per live call; owns the realtime session
//!       │    └── socket reader task applies frames to the call's SharedCall
//!       └── AnalysisActor(meeting) one per ended call; its job runs in a task
//! CallRegistry                     SharedCall per call: outlives every actor
//! ChunkWriter task                 one per process: batched lines and events
//! ```
//!
//! ## Modules
//!
//! - [`ids`]: identifier newtypes shared by every layer (`MeetingId`, `AgentId`).
//! - [`domain`]: the closed sets of the data model (`MeetingStatus`, `Speaker`,
//!   `ChunkStatus`, `EventKind`, `AnalysisStage`) with their stored spellings.
//! - [`lifecycle`]: the meeting state machine: which status may become which.
//! - [`ports`]: what the actors need from outside, as narrow traits (stores,
//!   analyzer, realtime connector), and the port error.
//! - [`transcript`]: the conversation model: slots in `previous_item_id`
//!   order, sequence numbers, lines ready to be written.
//! - [`writer`]: the process-wide batched writer.
//! - [`meeting`]: MeetingActor, its socket reader, `SharedCall`, the one
//!   `drain` that ends a call.
//! - [`analysis`]: AnalysisActor and its job.
//! - [`supervisor`]: CallSupervisor in rooms (actor, state, meetings,
//!   analyses, budget, leases, registry, the `Calls` handle).
//! - [`guardian`]: CallGuardian, the root that replaces a dead supervisor.
//! - [`recovery`]: adoption of live calls and unfinished analyses.
//! - [`snapshot`]: one live actor as `/admin/actors` shows it.
//! - [`exit`]: why a supervised actor ended.
//! - [`metrics`]: metric names and what they measure (the `metrics` facade).
//! - [`call_log`]: the meeting's event log, typed (`CallEvent`), with
//!   what is for operators only (`Private`) kept off public answers.
//! - [`path`]: how a call reaches its voice session (owned or attached, on
//!   which voice API), decided once.
//! - [`voice`]: the voice protocols (Realtime, GPT-Live) behind one trait.
//! - `contract` (tests, and the `contract` feature): what every store
//!   behind the ports keeps, run on SQLite, PostgreSQL and in memory.
//! - [`tree`]: the one builder of the actor tree, and its shutdown order.

pub mod analysis;
pub mod call_log;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod domain;
pub mod exit;
#[cfg(test)]
mod fakes;
pub mod guardian;
pub mod ids;
pub mod lifecycle;
pub mod meeting;
pub mod metrics;
pub mod notes;
pub mod path;
pub mod ports;
pub mod recovery;
pub mod snapshot;
pub mod supervisor;
pub mod trace;
pub mod transcript;
pub mod tree;
pub mod voice;
pub mod writer;
