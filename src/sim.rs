//! Simulated outside parts that speak the real wire protocols: a realtime
//! peer (OpenAI Realtime over WebSocket), an OpenAI-compatible
//! chat-completions server, and a signed Stream webhook driver.
//! They are product features (`--simulate`, demos, load tests), not mocks:
//! scribe talks to them exactly as it talks to the real services.

pub mod llm;
pub mod realtime;
pub mod script;
pub mod webhook;
