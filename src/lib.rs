//! # scribe
//!
//! The service around the per-call actors of `scribe-actors`: configuration,
//! the database, the HTTP surface, startup and shutdown.
//!
//! ## Supervision tree
//!
//! ```text
//! main ── Application ── axum server (HTTP API, health)
//!                     └─ Store (SQLite or PostgreSQL pool)
//! CallSupervisor, MeetingActor, AnalysisActor: not built yet (live-calls and
//! analysis issues); they will hang off Application.
//! ```
//!
//! ## Modules
//!
//! - [`config`]: the `scribe` command line, env fallbacks, resolved [`config::Settings`].
//! - [`telemetry`]: the tracing subscriber.
//! - [`domain`]: validated agents, blueprints and meetings.
//! - [`store`]: one store over SQLite and PostgreSQL, embedded migrations.
//! - [`http`]: router, state, `ApiError`, auth, the REST handlers, probes.
//! - [`startup`]: `Application::build` / `run_until_stopped`, shutdown signals.

pub mod config;
pub mod domain;
pub mod http;
pub mod realtime;
pub mod sim;
pub mod startup;
pub mod store;
pub mod stream;
pub mod telemetry;
