//! Opening a realtime WebSocket, and the client events scribe sends.

use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::domain::Speaker;
use crate::ports::{ConnectError, RealtimeSession};

/// The largest frame or message scribe accepts from the realtime service;
/// anything larger ends the session (and a new one is opened).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// What a realtime socket reads at a time (see [`socket_config`]).
pub const READ_BUFFER_BYTES: usize = 2 * 1024;

/// Socket buffers sized for transcripts, not the 128 KiB defaults: a call
/// reads frames of a few KiB and writes a handful of small events. The read
/// buffer is held for the whole call (and filled, so its pages are touched).
/// tungstenite reads at most this much at a time, and makes room for a
/// whole frame beyond what it holds already, so the buffer settles at a
/// few times this size whatever it starts at; 2 KiB settles lower than 4
/// at the cost of more, smaller reads.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Opens a WebSocket for `request` and hands it over as a session of
/// `provider`: the frames it reads, and a sink for what scribe sends. An
/// upgrade answered 401, 403 or 404 is [`ConnectError::Refused`].
pub async fn open(
    request: Request,
    provider: &str,
    max_message: usize,
) -> Result<RealtimeSession, ConnectError> {
    let config = socket_config()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let connected = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await;
    let (socket, _response) = connected.map_err(|error| match error {
        WsError::Http(response) if matches!(response.status().as_u16(), 401 | 403 | 404) => {
            ConnectError::Refused {
                provider: provider.to_owned(),
                status: response.status().as_u16(),
            }
        }
        other => ConnectError::Io(other.to_string()),
    })?;
    let (outbox, frames) = socket.split();
    Ok(RealtimeSession {
        provider: provider.to_owned(),
        frames: frames.boxed(),
        outbox: Box::pin(outbox),
    })
}

/// A plain URL request with `Authorization: Bearer <key>` when a key is given.
pub fn bearer_request(url: &str, api_key: Option<&str>) -> Result<Request, ConnectError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Config(format!("invalid realtime URL: {e}")))?;
    if let Some(key) = api_key {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| ConnectError::Config("the API key is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", value);
    }
    Ok(request)
}

/// `conversation.item.retrieve`: asks the service for an item scribe
/// missed; `event_id` comes back on an `error` when it cannot.
pub fn retrieve_item(event_id: &str, item_id: &str) -> String {
    serde_json::json!({
        "type": "conversation.item.retrieve",
        "event_id": event_id,
        "item_id": item_id,
    })
    .to_string()
}

/// The `event_id` of scribe's `session.update`: an `error` that echoes it
/// refused scribe's session settings.
pub const SESSION_UPDATE_EVENT_ID: &str = "scribe_session_update";

/// The model that transcribes the user in a Realtime session, unless
/// configured (`SCRIBE_TRANSCRIPTION_MODEL`): one OpenAI's `openai` 3.57
/// types list without an announced shutdown (`whisper-1` and
/// `gpt-4o(-mini)-transcribe` shut down on 2027-02-26).
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "gpt-live-transcribe";

/// The GA session object scribe asks for: instructions, audio out in
/// `voice`, input transcription on with `transcription`, server VAD.
/// `session.update` sends it; a WebRTC call's create and a SIP call's
/// accept carry it (with `model`).
pub fn session_object(instructions: &str, voice: &str, transcription: &str) -> serde_json::Value {
    json!({
        "type": "realtime",
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "transcription": { "model": transcription },
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500
                }
            },
            "output": { "voice": voice }
        }
    })
}

/// The GA `session.update` with [`session_object`].
pub fn session_update(instructions: &str, voice: &str, transcription: &str) -> String {
    json!({
        "type": "session.update",
        "event_id": SESSION_UPDATE_EVENT_ID,
        "session": session_object(instructions, voice, transcription),
    })
    .to_string()
}

/// The `session.update` a sideband sends on every attach: only what may
/// change during a call, input transcription. The instructions, the voice
/// (refused with `cannot_update_voice` once the assistant has spoken) and
/// the rest were set when the call was created or accepted.
pub fn sideband_update(transcription: &str) -> String {
    json!({
        "type": "session.update",
        "event_id": SESSION_UPDATE_EVENT_ID,
        "session": {
            "type": "realtime",
            "audio": { "input": { "transcription": { "model": transcription } } },
        },
    })
    .to_string()
}

/// One earlier line replayed into a new session (no `response.create` follows).
pub fn replay_item(n: usize, speaker: Speaker, text: &str) -> String {
    let (role, kind) = match speaker {
        Speaker::User => ("user", "input_text"),
        Speaker::Agent => ("assistant", "output_text"),
    };
    json!({
        "type": "conversation.item.create",
        "event_id": format!("scribe_replay_{n}"),
        "item": {
            "type": "message",
            "role": role,
            "content": [{ "type": kind, "text": text }]
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn session_update_turns_transcription_on_with_the_original_vad() {
        let v: Value = serde_json::from_str(&session_update(
            "Be kind.",
            "marin",
            DEFAULT_TRANSCRIPTION_MODEL,
        ))
        .expect("json");
        assert_eq!(v["session"]["instructions"], "Be kind.");
        assert_eq!(
            v["session"]["audio"]["input"]["transcription"]["model"],
            "gpt-live-transcribe"
        );
        let vad = &v["session"]["audio"]["input"]["turn_detection"];
        assert_eq!(vad["threshold"], 0.5);
        assert_eq!(vad["prefix_padding_ms"], 300);
        assert_eq!(vad["silence_duration_ms"], 500);
    }

    #[test]
    fn a_sideband_asks_only_for_transcription() {
        let v: Value = serde_json::from_str(&sideband_update("gpt-transcribe")).expect("json");
        assert_eq!(
            v["session"],
            serde_json::json!({"type":"realtime","audio":{"input":{"transcription":{"model":"gpt-transcribe"}}}})
        );
    }

    #[test]
    fn replay_items_use_text_content_by_role() {
        let v: Value = serde_json::from_str(&replay_item(3, Speaker::Agent, "Hi")).expect("json");
        assert_eq!(v["item"]["role"], "assistant");
        assert_eq!(v["item"]["content"][0]["type"], "output_text");
        assert!(v["item"].get("id").is_none(), "no item ids are sent");
        let v: Value = serde_json::from_str(&replay_item(4, Speaker::User, "Yo")).expect("json");
        assert_eq!(v["item"]["content"][0]["type"], "input_text");
    }
}
