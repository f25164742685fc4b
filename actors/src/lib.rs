//! # scribe-actors
//!
//! Everything that runs per call: the supervision tree, the realtime client,
//! transcript ordering and the chunk writer. This crate knows nothing of HTTP
//! or SQL; it states the ports it needs as traits and the `scribe` crate
//! implements them.
//!
//! ## Supervision tree
//!
//! ```text
//! CallGuardian                   root; replaces a dead CallSupervisor
//!  └── CallSupervisor            restarts dead MeetingActors / AnalysisActors
//!       ├── MeetingActor(meeting)  one per live call; owns the realtime socket
//!       │    └── socket reader task applies frames to the call's SharedCall
//!       └── AnalysisActor(meeting) one per call being analysed
//! CallRegistry                   SharedCall per call: outlives every actor
//! ChunkWriter task               one per process: batched lines and events
//! ```
//!
//! ## Modules
//!
//! - [`ids`]: identifier newtypes shared by every layer (`MeetingId`, `AgentId`).
//! - [`domain`]: the closed sets of the data model (`MeetingStatus`, `Speaker`,
//!   `ChunkStatus`) with their stored spellings.
//! - [`ports`]: what the actors need from outside (`CallStore`), as traits.
//! - [`realtime`]: the OpenAI Realtime protocol: server events, client events,
//!   connecting (`RealtimeConnector`).
//! - [`transcript`]: the conversation model: slots in `previous_item_id`
//!   order, sequence numbers, lines ready to be written.
//! - [`writer`]: the process-wide batched writer.
//! - [`metrics`]: metric names and what they measure (the `metrics` facade).
//! - [`meeting`]: MeetingActor, its socket reader and `SharedCall`.
//! - [`supervisor`]: CallSupervisor, `CallRegistry`, the `Calls` handle.
//! - [`guardian`]: CallGuardian, the root that replaces a dead supervisor,
//!   and `recover` (adoption of live calls and unfinished analyses).

pub mod analysis;
pub mod domain;
pub mod guardian;
pub mod ids;
pub mod meeting;
pub mod metrics;
pub mod ports;
pub mod realtime;
pub mod supervisor;
pub mod transcript;
pub mod writer;
