//! OpenAI's voice protocols as scribe speaks them: the server events both
//! protocols map into ([`event`]), OpenAI Realtime's client events and its
//! socket ([`realtime`]), GPT-Live's events and `session.start`
//! ([`gpt_live`]).

pub mod event;
pub mod gpt_live;
pub mod realtime;
