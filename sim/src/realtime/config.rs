//! How the simulated realtime peer behaves, and who is connecting.

use super::super::script::Script;

/// Who is connecting: passed to the script chooser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connections accepted so far, this one included, from 1.
    pub index: usize,
    pub meeting: Option<String>,
    /// This meeting's connections so far, this one included, from 1.
    pub session: usize,
}

type ScriptFn = dyn Fn(&ConnectionInfo) -> Script + Send + Sync;

pub struct SimRealtimeConfig {
    /// Multiplies every delay; 0 plays as fast as the socket allows.
    pub pace: f64,
    /// Speak the beta event names, and accept the beta header.
    pub beta: bool,
    /// When set, the bearer key clients must present.
    pub api_key: Option<String>,
    /// Base64 audio frames sent per transcript word (never decoded by scribe).
    pub audio_frames_per_word: usize,
    /// Base64 characters per audio frame.
    pub audio_frame_bytes: usize,
    /// Session lifetime announced in `session.created.session.expires_at`.
    pub session_seconds: i64,
    /// Answer `session.update` with input transcription off, as the real
    /// service does when the requested transcription settings are refused.
    /// User transcription events are then not sent.
    pub refuse_transcription: bool,
    /// Refuse `session.update` with an `error` naming this field (`param`)
    /// and echoing the client's `event_id`, and no `session.updated`; the
    /// session goes on with its defaults (no user transcription).
    pub reject_session_update: Option<String>,
    /// Never answer `session.update` (no user transcription either).
    pub ignore_session_update: bool,
    /// Answer the WebSocket upgrade with this HTTP status (401, 403, 404)
    /// instead of 101.
    pub reject_upgrade: Option<u16>,
    /// Models the peer serves: a `model` query parameter naming another is
    /// `invalid_model` + close 4000, a URL with neither `model` nor
    /// `call_id` is `missing_model` + close 4000. Empty: any model.
    pub models: Vec<String>,
    pub script: Box<ScriptFn>,
}

impl SimRealtimeConfig {
    /// Fast, GA, no key, two audio frames a word, the given script for every connection.
    pub fn scripted(script: impl Fn(&ConnectionInfo) -> Script + Send + Sync + 'static) -> Self {
        Self {
            pace: 0.0,
            beta: false,
            api_key: None,
            audio_frames_per_word: 2,
            audio_frame_bytes: 400,
            session_seconds: 3600,
            refuse_transcription: false,
            reject_session_update: None,
            ignore_session_update: false,
            reject_upgrade: None,
            // OpenAI's Realtime models still served (`openai` 3.57).
            models: [
                "gpt-realtime-2.1",
                "gpt-realtime-2.1-mini",
                "gpt-realtime-2",
                "gpt-realtime-1.5",
                "gpt-realtime",
                "gpt-realtime-mini",
            ]
            .map(str::to_owned)
            .to_vec(),
            script: Box::new(script),
        }
    }
}
