//! Server events of the OpenAI Realtime protocol that scribe acts on, GA and
//! beta names alike. Parsing never fails on unknown types or fields, and
//! audio payloads are skipped without being decoded (or even tokenized,
//! when `type` leads the frame, as it does on the wire).

use serde::Deserialize;
use serde::de::IgnoredAny;

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

/// A server event, reduced to what the transcript model uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    SessionCreated {
        expires_at: Option<i64>,
    },
    SessionUpdated {
        transcription_on: bool,
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
    UserTranscriptCompleted {
        item_id: String,
        transcript: String,
    },
    UserTranscriptFailed {
        item_id: String,
        message: String,
    },
    ResponseCreated {
        response_id: String,
    },
    ResponseDone {
        response_id: String,
        status: Option<String>,
    },
    AgentTranscriptDelta {
        item_id: String,
        delta: String,
    },
    AgentTranscriptDone {
        item_id: String,
        transcript: String,
    },
    Error {
        code: Option<String>,
        message: String,
        event_id: Option<String>,
    },
    /// Audio output: counted, never decoded.
    Audio,
    /// Any other type: ignored.
    Other,
}

#[derive(Debug, thiserror::Error)]
#[error("frame is not a JSON object with a `type`: {0}")]
pub struct FrameError(#[from] serde_json::Error);

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
struct ResponseEvent {
    response: ResponseBody,
}

#[derive(Deserialize)]
struct ResponseBody {
    id: String,
    status: Option<String>,
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

#[derive(Deserialize)]
struct ErrorEvent {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    #[serde(default)]
    message: String,
    event_id: Option<String>,
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
                message: t.error.map(|e| e.message).unwrap_or_default(),
            }
        }
        "response.created" | "response.done" => {
            let r: ResponseEvent = serde_json::from_str(frame)?;
            if envelope.kind == "response.created" {
                ServerEvent::ResponseCreated {
                    response_id: r.response.id,
                }
            } else {
                ServerEvent::ResponseDone {
                    response_id: r.response.id,
                    status: r.response.status,
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
            ServerEvent::Error {
                code: e.error.code,
                message: e.error.message,
                event_id: e.error.event_id,
            }
        }
        _ => ServerEvent::Other,
    };
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_frames_are_skipped_whatever_they_carry() {
        let frame = r#"{"type":"response.output_audio.delta","event_id":"e1","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AAAA////"}"#;
        assert_eq!(parse(frame).expect("parses"), ServerEvent::Audio);
        // Not leading with `type`: still recognised after a full parse.
        let frame = r#"{"event_id":"e1","type":"response.audio.delta","delta":"AAAA"}"#;
        assert_eq!(parse(frame).expect("parses"), ServerEvent::Audio);
    }

    #[test]
    fn ga_and_beta_item_events_parse_alike() {
        for kind in ["conversation.item.added", "conversation.item.created"] {
            let frame = format!(
                r#"{{"type":"{kind}","event_id":"e","previous_item_id":"item_a","item":{{"id":"item_b","type":"message","role":"user","status":"completed","content":[{{"type":"input_audio","transcript":null}}],"extra":1}}}}"#
            );
            assert_eq!(
                parse(&frame).expect("parses"),
                ServerEvent::ItemAdded {
                    previous_item_id: Some("item_a".into()),
                    item: ItemInfo {
                        id: "item_b".into(),
                        kind: "message".into(),
                        role: Some("user".into()),
                        has_input_audio: true,
                        has_text: false,
                    },
                }
            );
        }
    }

    #[test]
    fn agent_transcripts_by_ga_and_beta_names() {
        for kind in [
            "response.output_audio_transcript.done",
            "response.audio_transcript.done",
        ] {
            let frame = format!(
                r#"{{"type":"{kind}","event_id":"e","response_id":"r1","item_id":"item_c","output_index":0,"content_index":0,"transcript":"Hello there."}}"#
            );
            assert_eq!(
                parse(&frame).expect("parses"),
                ServerEvent::AgentTranscriptDone {
                    item_id: "item_c".into(),
                    transcript: "Hello there.".into()
                }
            );
        }
        let text_done = r#"{"type":"response.output_text.done","item_id":"item_c","text":"Hi."}"#;
        assert_eq!(
            parse(text_done).expect("parses"),
            ServerEvent::AgentTranscriptDone {
                item_id: "item_c".into(),
                transcript: "Hi.".into()
            }
        );
    }

    #[test]
    fn session_updated_reports_whether_transcription_is_on() {
        let on = r#"{"type":"session.updated","session":{"type":"realtime","audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}}}"#;
        assert_eq!(
            parse(on).expect("parses"),
            ServerEvent::SessionUpdated {
                transcription_on: true
            }
        );
        let off =
            r#"{"type":"session.updated","session":{"audio":{"input":{"transcription":null}}}}"#;
        assert_eq!(
            parse(off).expect("parses"),
            ServerEvent::SessionUpdated {
                transcription_on: false
            }
        );
        let beta = r#"{"type":"session.updated","session":{"input_audio_transcription":{"model":"whisper-1"}}}"#;
        assert_eq!(
            parse(beta).expect("parses"),
            ServerEvent::SessionUpdated {
                transcription_on: true
            }
        );
        let created = r#"{"type":"session.created","session":{"expires_at":1760000000}}"#;
        assert_eq!(
            parse(created).expect("parses"),
            ServerEvent::SessionCreated {
                expires_at: Some(1_760_000_000)
            }
        );
    }

    #[test]
    fn errors_and_unknown_types() {
        let err = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"session_expired","message":"Your session hit the maximum duration of 60 minutes.","param":null,"event_id":null}}"#;
        assert_eq!(
            parse(err).expect("parses"),
            ServerEvent::Error {
                code: Some("session_expired".into()),
                message: "Your session hit the maximum duration of 60 minutes.".into(),
                event_id: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"rate_limits.updated","rate_limits":[]}"#).expect("parses"),
            ServerEvent::Other
        );
        assert_eq!(
            parse(r#"{"type":"something.new","x":{"y":[1,2]}}"#).expect("parses"),
            ServerEvent::Other
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for frame in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"type":5}"#,
            "{\"type\":\"error\"}",
        ] {
            assert!(parse(frame).is_err(), "{frame:?} should not parse");
        }
    }
}
