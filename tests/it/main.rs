//! Integration tests: the store suite and the HTTP API, each run on SQLite
//! and, when `SCRIBE_TEST_POSTGRES_URL` is set, on PostgreSQL; and the real
//! `scribe` binary in an empty folder.

mod analysis;
mod api_agents;
mod api_meetings;
mod api_service;
mod binary;
mod carried_calls;
mod config_reference;
mod conformance;
mod dashboards;
mod deletion;
mod event_stream;
mod fidelity;
mod gpt_live;
mod hangup;
mod hardening;
#[path = "../support/harness.rs"]
mod helpers;
mod http_limits;
mod ingest_paths;
mod instances;
mod json_logs;
mod lease_plans;
mod live_faults;
mod llm;
mod openapi;
mod port_contract;
mod private_text;
mod properties;
mod results;
#[path = "../support/running.rs"]
mod running;
mod running_calls;
mod security;
mod store_suite;
mod stream_end;
mod webhook;
