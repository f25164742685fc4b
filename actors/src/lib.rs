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
//! CallSupervisor                 (not built yet: live-calls issue)
//!  ├── MeetingActor(meeting)     owns the realtime socket and the transcript
//!  └── AnalysisActor(meeting)    post-call analysis
//! ```
//!
//! ## Modules
//!
//! - [`ids`]: identifier newtypes shared by every layer (`MeetingId`, `AgentId`).
//! - [`domain`]: the closed sets of the data model (`MeetingStatus`, `Speaker`,
//!   `ChunkStatus`) with their stored spellings.
//! - [`realtime`]: the OpenAI Realtime protocol: server event parsing.
//! - [`ports`]: what the actors need from outside (`CallStore`), as traits.
//! - [`writer`]: the process-wide batched chunk writer.
//! - [`transcript`]: the conversation model: slots in `previous_item_id`
//!   order, sequence numbers, lines ready to be written.

pub mod domain;
pub mod ids;
pub mod meeting;
pub mod ports;
pub mod realtime;
pub mod supervisor;
pub mod transcript;
pub mod writer;
