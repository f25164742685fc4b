//! The OpenAI Realtime protocol as scribe speaks it: server events in,
//! client events out, and the socket.

pub mod client;
pub mod event;
