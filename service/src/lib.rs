//! # scribe
//!
//! The service around the per-call actors of `scribe-actors`: configuration,
//! the database, the HTTP surface, startup and shutdown.
//!
//! ## Supervision tree
//!
//! ```text
//! main ── Application ── axum server (REST, webhook, event stream, pages, admin, probes)
//!   │                 ├─ Store (SQLite or PostgreSQL pool; implements the actors' ports)
//!   │                 ├─ ChunkWriter task
//!   │                 └─ CallGuardian ── CallSupervisor ─┬─ MeetingActor per live call
//!   │                                                    └─ AnalysisActor per ended call
//!   └─ Simulators (`scribe-sim`, only with --simulate; `Application` is told their addresses)
//! ```
//!
//! ## Modules
//!
//! - [`analysis`]: the LLM client and its single retry policy; the
//!   `Analyzer` port's implementation.
//! - [`config`]: the `scribe` command line, env fallbacks, resolved [`config::Settings`].
//! - [`telemetry`]: the tracing subscriber.
//! - [`domain`]: validated agents, blueprints and meetings.
//! - [`store`]: one store over SQLite and PostgreSQL, embedded migrations,
//!   every status change through the state machine; it implements the
//!   actors' store ports (`TranscriptSink`, `CallStore`, `LeaseStore`,
//!   `AnalysisStore`).
//! - [`http`]: router, state, `ApiError`, auth, the REST handlers, the Stream
//!   webhook, the event stream and meeting page, admin, probes.
//! - [`realtime`]: the realtime providers (the `RealtimeConnector` port).
//! - [`metrics`]: the Prometheus recorder and the service's own metrics.
//! - [`openai`]: OpenAI's Realtime calls REST API and its webhooks.
//! - [`stream`]: Stream webhook signatures and events, the agent JWT.
//! - [`service`]: `CallService`, the one way from HTTP to the actors.
//!
//! The simulators and `scribe demo` are the `scribe-sim` crate; the
//! binary (`scribe`) is the workspace's root package.
//! - [`startup`]: `Application::build` / `run_until_stopped`, shutdown signals.

pub mod analysis;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod openai;
pub mod realtime;
pub mod retention;
pub mod service;
pub mod startup;
pub mod store;
pub mod stream;
pub mod telemetry;
