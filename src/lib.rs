//! # scribe
//!
//! The service around the per-call actors of `scribe-actors`: configuration,
//! the database, the HTTP surface, startup and shutdown.
//!
//! ## Supervision tree
//!
//! ```text
//! main ── Application ── axum server (REST, webhook, admin, probes)
//!                     ├─ Store (SQLite or PostgreSQL pool)
//!                     ├─ ChunkWriter task
//!                     ├─ CallSupervisor ── MeetingActor per live call
//!                     └─ SimRealtime (with --simulate)
//! ```
//! AnalysisActor comes with the analysis issue.
//!
//! ## Modules
//!
//! - [`analysis`]: the analysis LLM client and its single retry policy.
//! - [`config`]: the `scribe` command line, env fallbacks, resolved [`config::Settings`].
//! - [`telemetry`]: the tracing subscriber.
//! - [`demo`]: `scribe demo`, the whole flow offline with a report.
//! - [`domain`]: validated agents, blueprints and meetings.
//! - [`store`]: one store over SQLite and PostgreSQL, embedded migrations; it
//!   implements the actors' `CallStore` port.
//! - [`http`]: router, state, `ApiError`, auth, the REST handlers, the Stream
//!   webhook, admin, probes.
//! - [`realtime`]: the realtime providers (`RealtimeConnector`).
//! - [`stream`]: Stream webhook signatures and events, the agent JWT.
//! - [`sim`]: simulated realtime peer, scripts, webhook driver.
//! - [`startup`]: `Application::build` / `run_until_stopped`, shutdown signals.

pub mod analysis;
pub mod config;
pub mod demo;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod realtime;
pub mod sim;
pub mod startup;
pub mod store;
pub mod stream;
pub mod telemetry;
