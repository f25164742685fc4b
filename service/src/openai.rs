//! OpenAI's calls as scribe uses them: the Realtime calls REST API (create a
//! WebRTC call, accept, reject or hang up a call), the session configuration
//! scribe asks for, and the verification of OpenAI's webhooks (Standard
//! Webhooks).
//!
//! - [`calls`]: the REST client.
//! - [`models`]: announced model shutdowns, warned of at startup.
//! - [`webhook`]: signature verification and the events scribe acts on.

pub mod models;
pub mod rest;
pub mod webhook;
