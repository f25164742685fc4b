//! The OpenAI Realtime protocol as scribe speaks it.

pub mod event;
