//! Server events of the OpenAI Realtime protocol that scribe acts on, GA and
//! beta names alike. Parsing never fails on unknown types or fields, and
//! audio payloads are skipped without being decoded (or even tokenized,
//! when `type` leads the frame, as it does on the wire).

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// What scribe needs to know about one conversation item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInfo {
    pub id: String,
    /// `message`, `function_call`, ...
    pub kind: String,
    /// `user`, `assistant`, `system` for messages.
    pub role: Option<String>,
    /// True when a content part is audio input (`input_audio`): a live user
    /// turn, never a replayed one.
    pub has_input_audio: bool,
    /// True when the item arrives already holding text parts (`input_text`,
    /// `output_text`, beta `text`): an injected item (a replayed line), since
    /// live turns carry audio and get their text later.
    pub has_text: bool,
}

/// An `error` event's details, or a flat provider error frame's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// `error.type` (`invalid_request_error`, `server_error`, ...), or the
    /// frame's own `type` for a flat frame.
    pub kind: Option<String>,
    pub code: Option<String>,
    pub message: String,
    /// The field the error is about, when the service names one.
    pub param: Option<String>,
    /// The client event that caused it, when it names one.
    pub event_id: Option<String>,
    /// A frame whose `type` is itself the error (`server_error`) with the
    /// details at the top level, as Stream's agent endpoint sends: the
    /// provider refused the session.
    pub flat: bool,
}

/// One output item of a finished response, with its transcript when the
/// response carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputItem {
    pub id: String,
    pub transcript: Option<String>,
}

/// A server event, reduced to what the transcript model uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    SessionCreated {
        expires_at: Option<i64>,
    },
    SessionUpdated {
        transcription_on: bool,
    },
    /// `input_audio_buffer.speech_started`: the user is speaking.
    SpeechStarted,
    /// `input_audio_buffer.speech_stopped`.
    SpeechStopped,
    /// `input_audio_buffer.timeout_triggered`: the user said nothing for
    /// the idle timeout; the service commits the silence as item
    /// `item_id` and answers it.
    InputTimeout {
        item_id: String,
    },
    InputCommitted {
        item_id: String,
        previous_item_id: Option<String>,
    },
    /// `conversation.item.added` (GA) or `conversation.item.created` (beta).
    ItemAdded {
        previous_item_id: Option<String>,
        item: ItemInfo,
    },
    /// `conversation.item.done`: the item is complete (for a user item in GA
    /// this says nothing about its transcript).
    ItemDone {
        previous_item_id: Option<String>,
        item: ItemInfo,
    },
    /// `conversation.item.retrieved`: the whole item, as asked for with
    /// `conversation.item.retrieve` (no `previous_item_id`).
    ItemRetrieved {
        item: ItemInfo,
        /// The first content part's transcript (audio) or text.
        text: Option<String>,
    },
    /// `conversation.item.truncated`: the user cut the agent off; the
    /// service drops the text not heard.
    ItemTruncated {
        item_id: String,
        audio_end_ms: Option<u64>,
    },
    UserTranscriptDelta {
        item_id: String,
        delta: String,
    },
    UserTranscriptCompleted {
        item_id: String,
        transcript: String,
    },
    UserTranscriptFailed {
        item_id: String,
        error: ErrorInfo,
    },
    ResponseCreated {
        response_id: String,
    },
    ResponseDone {
        response_id: String,
        /// `completed`, `cancelled`, `failed`, `incomplete`.
        status: Option<String>,
        /// `status_details.reason` (`turn_detected`, `client_cancelled`,
        /// `max_output_tokens`, `content_filter`).
        reason: Option<String>,
        /// `status_details.error.message` of a failed response.
        error: Option<String>,
        output: Vec<OutputItem>,
    },
    AgentTranscriptDelta {
        item_id: String,
        delta: String,
    },
    AgentTranscriptDone {
        item_id: String,
        transcript: String,
    },
    Error(ErrorInfo),
    /// GPT-Live `session.started`: the session may be spoken to.
    LiveStarted {
        expires_at: Option<i64>,
    },
    /// A GPT-Live transcript fragment (`session.input_transcript.delta`
    /// for the user, `session.output_transcript.delta` for the agent).
    LiveFragment {
        speaker: crate::domain::Speaker,
        delta: String,
        start_ms: u64,
        end_ms: u64,
    },
    /// GPT-Live `session.closed` (`close_requested`, `expired`, `content`,
    /// `remote_hangup`, `connection_lost`).
    LiveClosed {
        reason: Option<String>,
    },
    /// Audio output: counted, never decoded.
    Audio,
    /// Any other type: ignored.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not a JSON object with a `type`: {0}")]
    Json(#[from] serde_json::Error),
    #[error("frame has not the documented shape: {0}")]
    Shape(&'static str),
}

/// Audio frames carry kilobytes of base64: recognise them by their leading
/// bytes and skip the rest.
const AUDIO_PREFIXES: [&str; 2] = [
    r#"{"type":"response.output_audio.delta""#,
    r#"{"type":"response.audio.delta""#,
];

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
}

#[derive(Deserialize)]
struct Session {
    #[serde(default)]
    session: SessionBody,
}

#[derive(Deserialize, Default)]
struct SessionBody {
    expires_at: Option<i64>,
    audio: Option<SessionAudio>,
    /// Beta flat field.
    input_audio_transcription: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct SessionAudio {
    input: Option<SessionAudioInput>,
}

#[derive(Deserialize)]
struct SessionAudioInput {
    transcription: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Committed {
    item_id: String,
    previous_item_id: Option<String>,
}

#[derive(Deserialize)]
struct ItemEvent {
    previous_item_id: Option<String>,
    item: RawItem,
}

#[derive(Deserialize)]
struct RawItem {
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    role: Option<String>,
    #[serde(default)]
    content: Vec<RawContent>,
}

#[derive(Deserialize)]
struct RawContent {
    #[serde(rename = "type", default)]
    kind: String,
    transcript: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Retrieved {
    item: RawItem,
}

#[derive(Deserialize)]
struct TranscriptCompleted {
    item_id: String,
    #[serde(default)]
    transcript: String,
}

#[derive(Deserialize)]
struct TranscriptFailed {
    item_id: String,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ItemRef {
    item_id: String,
}

#[derive(Deserialize)]
struct Truncated {
    item_id: String,
    audio_end_ms: Option<u64>,
}

#[derive(Deserialize)]
struct ResponseEvent {
    response: ResponseBody,
}

#[derive(Deserialize)]
struct ResponseBody {
    id: String,
    status: Option<String>,
    status_details: Option<StatusDetails>,
    #[serde(default)]
    output: Option<Vec<OutputRaw>>,
}

#[derive(Deserialize)]
struct StatusDetails {
    reason: Option<String>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct OutputRaw {
    id: Option<String>,
    #[serde(default)]
    content: Option<Vec<OutputContent>>,
}

#[derive(Deserialize)]
struct OutputContent {
    transcript: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    item_id: String,
    #[serde(default)]
    delta: String,
}

#[derive(Deserialize)]
struct Done {
    item_id: String,
    /// Audio transcripts carry `transcript`, text outputs `text`.
    transcript: Option<String>,
    text: Option<String>,
}

/// An `error` event (`{"error": {...}}`), or a flat error frame with the
/// details at the top level (`{"type":"server_error","code":"42",...}`).
#[derive(Deserialize)]
struct ErrorEvent {
    error: Option<ErrorBody>,
    code: Option<Value>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<Value>,
    message: Option<String>,
    param: Option<String>,
    /// GPT-Live names it `client_event_id`.
    #[serde(alias = "client_event_id")]
    event_id: Option<String>,
}

/// An error code as text: a string, or a number some providers send.
fn code_text(code: Option<Value>) -> Option<String> {
    match code? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl From<ErrorBody> for ErrorInfo {
    fn from(e: ErrorBody) -> Self {
        Self {
            kind: e.kind,
            code: code_text(e.code),
            message: e.message.unwrap_or_default(),
            param: e.param,
            event_id: e.event_id,
            flat: false,
        }
    }
}

impl RawItem {
    /// The first content part's transcript or text.
    fn text(&self) -> Option<String> {
        self.content
            .iter()
            .find_map(|c| c.transcript.clone().or_else(|| c.text.clone()))
    }
}

impl From<RawItem> for ItemInfo {
    fn from(raw: RawItem) -> Self {
        Self {
            has_input_audio: raw.content.iter().any(|c| c.kind == "input_audio"),
            has_text: raw
                .content
                .iter()
                .any(|c| matches!(c.kind.as_str(), "input_text" | "output_text" | "text")),
            id: raw.id,
            kind: raw.kind,
            role: raw.role,
        }
    }
}

/// Parses one text frame. Errors only when the frame is not JSON, has no
/// `type`, or an event scribe acts on lacks a field it needs.
pub fn parse(frame: &str) -> Result<ServerEvent, FrameError> {
    if AUDIO_PREFIXES.iter().any(|p| frame.starts_with(p)) {
        return Ok(ServerEvent::Audio);
    }
    let envelope: Envelope<'_> = serde_json::from_str(frame)?;
    let event = match envelope.kind {
        "session.created" | "session.updated" => {
            let s: Session = serde_json::from_str(frame)?;
            let transcription_on = s
                .session
                .audio
                .and_then(|a| a.input)
                .and_then(|i| i.transcription)
                .or(s.session.input_audio_transcription)
                .is_some();
            if envelope.kind == "session.created" {
                ServerEvent::SessionCreated {
                    expires_at: s.session.expires_at,
                }
            } else {
                ServerEvent::SessionUpdated { transcription_on }
            }
        }
        "input_audio_buffer.speech_started" => ServerEvent::SpeechStarted,
        "input_audio_buffer.speech_stopped" => ServerEvent::SpeechStopped,
        "input_audio_buffer.timeout_triggered" => {
            let t: ItemRef = serde_json::from_str(frame)?;
            ServerEvent::InputTimeout { item_id: t.item_id }
        }
        "input_audio_buffer.committed" => {
            let c: Committed = serde_json::from_str(frame)?;
            ServerEvent::InputCommitted {
                item_id: c.item_id,
                previous_item_id: c.previous_item_id,
            }
        }
        "conversation.item.added" | "conversation.item.created" => {
            let e: ItemEvent = serde_json::from_str(frame)?;
            ServerEvent::ItemAdded {
                previous_item_id: e.previous_item_id,
                item: e.item.into(),
            }
        }
        "conversation.item.done" => {
            let e: ItemEvent = serde_json::from_str(frame)?;
            ServerEvent::ItemDone {
                previous_item_id: e.previous_item_id,
                item: e.item.into(),
            }
        }
        "conversation.item.retrieved" => {
            let r: Retrieved = serde_json::from_str(frame)?;
            let text = r.item.text();
            ServerEvent::ItemRetrieved {
                item: r.item.into(),
                text,
            }
        }
        "conversation.item.truncated" => {
            let t: Truncated = serde_json::from_str(frame)?;
            ServerEvent::ItemTruncated {
                item_id: t.item_id,
                audio_end_ms: t.audio_end_ms,
            }
        }
        "conversation.item.input_audio_transcription.delta" => {
            let d: Delta = serde_json::from_str(frame)?;
            ServerEvent::UserTranscriptDelta {
                item_id: d.item_id,
                delta: d.delta,
            }
        }
        "conversation.item.input_audio_transcription.completed" => {
            let t: TranscriptCompleted = serde_json::from_str(frame)?;
            ServerEvent::UserTranscriptCompleted {
                item_id: t.item_id,
                transcript: t.transcript,
            }
        }
        "conversation.item.input_audio_transcription.failed" => {
            let t: TranscriptFailed = serde_json::from_str(frame)?;
            ServerEvent::UserTranscriptFailed {
                item_id: t.item_id,
                error: t.error.map(ErrorInfo::from).unwrap_or_default(),
            }
        }
        "response.created" | "response.done" => {
            let r: ResponseEvent = serde_json::from_str(frame)?;
            if envelope.kind == "response.created" {
                ServerEvent::ResponseCreated {
                    response_id: r.response.id,
                }
            } else {
                let (reason, error) = match r.response.status_details {
                    Some(d) => (d.reason, d.error.and_then(|e| e.message)),
                    None => (None, None),
                };
                let output = r
                    .response
                    .output
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|item| {
                        let transcript = item
                            .content
                            .unwrap_or_default()
                            .into_iter()
                            .find_map(|c| c.transcript.or(c.text));
                        item.id.map(|id| OutputItem { id, transcript })
                    })
                    .collect();
                ServerEvent::ResponseDone {
                    response_id: r.response.id,
                    status: r.response.status,
                    reason,
                    error,
                    output,
                }
            }
        }
        "response.output_audio_transcript.delta"
        | "response.audio_transcript.delta"
        | "response.output_text.delta"
        | "response.text.delta" => {
            let d: Delta = serde_json::from_str(frame)?;
            ServerEvent::AgentTranscriptDelta {
                item_id: d.item_id,
                delta: d.delta,
            }
        }
        "response.output_audio_transcript.done"
        | "response.audio_transcript.done"
        | "response.output_text.done"
        | "response.text.done" => {
            let d: Done = serde_json::from_str(frame)?;
            ServerEvent::AgentTranscriptDone {
                item_id: d.item_id,
                transcript: d.transcript.or(d.text).unwrap_or_default(),
            }
        }
        "response.output_audio.delta" | "response.audio.delta" => ServerEvent::Audio,
        "error" | "server_error" => {
            let e: ErrorEvent = serde_json::from_str(frame)?;
            match e.error {
                Some(body) => ServerEvent::Error(body.into()),
                None if envelope.kind == "server_error" => ServerEvent::Error(ErrorInfo {
                    kind: Some(envelope.kind.to_owned()),
                    code: code_text(e.code),
                    message: e.message.unwrap_or_default(),
                    param: None,
                    event_id: None,
                    flat: true,
                }),
                None => return Err(FrameError::Shape("an `error` event without `error`")),
            }
        }
        _ => ServerEvent::Other,
    };
    Ok(event)
}

#[cfg(test)]
mod tests;
