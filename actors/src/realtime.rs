//! OpenAI's voice protocols as scribe speaks them (Realtime, and GPT-Live
//! in [`live`]): server events in, client events out, and the socket.

pub mod client;
pub mod event;
pub mod live;
