//! GPT-Live (`/v1/live`), OpenAI's newer voice API: its server events
//! reduced to [`ServerEvent`], and the client events scribe sends.
//!
//! GPT-Live is not a Realtime version: its transcript is timed fragments
//! (`session.input_transcript.delta`, `session.output_transcript.delta`)
//! with no items, no predecessors and no done event; a session starts with
//! `session.start` (owned sessions only: never on a sideband) and ends with
//! `session.closed` and a reason. A new session is seeded with the recent
//! conversation in `session.input`; nothing can be inserted later.

use serde::Deserialize;
use serde_json::{Value, json};

use super::event::{FrameError, ServerEvent, parse};
use crate::domain::Speaker;

/// The `event_id` of scribe's `session.start`: an `error` that echoes it
/// means the session was refused.
pub const LIVE_START_EVENT_ID: &str = "scribe_start";

/// At most this many messages seed a new session (`session.input`).
pub const SEED_MAX_MESSAGES: usize = 128;
/// At most this many tokens seed a new session, as [`seed_tokens`] counts.
pub const SEED_MAX_TOKENS: usize = 8_192;

/// Audio frames carry kilobytes of base64 (a sideband also hears the
/// caller's audio, `session.input_audio.append`, about 64 KB/s): they are
/// recognised by their leading bytes, or by their trailing ones when the
/// payload comes before `type`, and never parsed.
const AUDIO_PREFIXES: [&str; 2] = [
    r#"{"type":"session.output_audio.delta""#,
    r#"{"type":"session.input_audio.append""#,
];
const AUDIO_SUFFIXES: [&str; 2] = [
    r#""type":"session.output_audio.delta"}"#,
    r#""type":"session.input_audio.append"}"#,
];

/// True for an audio frame, known without parsing it.
fn is_audio(frame: &str) -> bool {
    AUDIO_PREFIXES.iter().any(|p| frame.starts_with(p))
        || (frame.starts_with(r#"{"audio":"#) || frame.starts_with(r#"{"delta":"#))
            && AUDIO_SUFFIXES.iter().any(|s| frame.ends_with(s))
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
}

#[derive(Deserialize)]
struct Fragment {
    #[serde(default)]
    delta: String,
    start_ms: u64,
    end_ms: u64,
}

#[derive(Deserialize)]
struct Started {
    session: StartedSession,
}

#[derive(Deserialize)]
struct StartedSession {
    expires_at: Option<i64>,
}

#[derive(Deserialize)]
struct Closed {
    reason: Option<String>,
}

/// Parses one GPT-Live text frame. Unknown types are [`ServerEvent::Other`];
/// `error` frames are read as Realtime's (the same shape, `client_event_id`
/// for the event the error is about).
pub fn parse_live(frame: &str) -> Result<ServerEvent, FrameError> {
    if is_audio(frame) {
        return Ok(ServerEvent::Audio);
    }
    let envelope: Envelope<'_> = serde_json::from_str(frame)?;
    let event = match envelope.kind {
        "session.started" => {
            let started: Started = serde_json::from_str(frame)?;
            ServerEvent::LiveStarted {
                expires_at: started.session.expires_at,
            }
        }
        "session.input_transcript.delta" | "session.output_transcript.delta" => {
            let f: Fragment = serde_json::from_str(frame)?;
            let speaker = if envelope.kind.starts_with("session.input") {
                Speaker::User
            } else {
                Speaker::Agent
            };
            ServerEvent::LiveFragment {
                speaker,
                delta: f.delta,
                start_ms: f.start_ms,
                end_ms: f.end_ms,
            }
        }
        "session.closed" => {
            let closed: Closed = serde_json::from_str(frame)?;
            ServerEvent::LiveClosed {
                reason: closed.reason,
            }
        }
        "session.output_audio.delta" | "session.input_audio.append" => ServerEvent::Audio,
        "error" => parse(frame)?,
        _ => ServerEvent::Other,
    };
    Ok(event)
}

/// A conservative token count for seeding: one token per two bytes of text
/// (English runs about four characters a token; no script needs more than
/// one token per two UTF-8 bytes), plus 8 per message for its framing.
pub fn seed_tokens(text: &str) -> usize {
    text.len().div_ceil(2) + 8
}

/// The most recent lines that fit GPT-Live's seed limits, oldest first.
pub fn seed(lines: &[(Speaker, String)]) -> Vec<Value> {
    let mut budget = SEED_MAX_TOKENS;
    let mut kept = Vec::new();
    for (speaker, text) in lines.iter().rev().filter(|(_, t)| !t.trim().is_empty()) {
        let cost = seed_tokens(text);
        if kept.len() == SEED_MAX_MESSAGES || cost > budget {
            break;
        }
        budget -= cost;
        kept.push(match speaker {
            Speaker::User => json!({
                "type": "message", "role": "user",
                "content": [{ "type": "input_text", "text": text }],
            }),
            Speaker::Agent => json!({
                "type": "message", "role": "assistant",
                "content": [{ "type": "output_text", "text": text }],
            }),
        });
    }
    kept.reverse();
    kept
}

/// `session.start` for an owned session: only documented fields (the
/// session object is strict), the seed when resuming.
pub fn session_start(
    model: &str,
    instructions: &str,
    voice: &str,
    seed_lines: &[(Speaker, String)],
) -> String {
    let mut session = json!({
        "model": model,
        "instructions": instructions,
        "audio": { "output": { "voice": voice } },
    });
    let input = seed(seed_lines);
    if !input.is_empty() {
        session["input"] = Value::Array(input);
    }
    json!({ "type": "session.start", "event_id": LIVE_START_EVENT_ID, "session": session })
        .to_string()
}

/// `session.close`: asks the service to finalize and close the session.
pub fn session_close() -> String {
    json!({ "type": "session.close" }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The caller's audio a sideband hears is skipped unparsed, like output
    /// audio: a payload that is not even valid JSON past its first bytes is
    /// still recognised, whichever key comes first.
    #[test]
    fn the_callers_audio_on_a_sideband_is_skipped_without_parsing() {
        let payload = "UklGR".repeat(2_000);
        for frame in [
            format!(r#"{{"type":"session.input_audio.append","audio":"{payload}"}}"#),
            format!(r#"{{"type":"session.input_audio.append","audio":"{payload}"#),
            format!(r#"{{"audio":"{payload}","type":"session.input_audio.append"}}"#),
            format!(r#"{{"type":"session.output_audio.delta","delta":"{payload}""#),
        ] {
            assert_eq!(parse_live(&frame).expect("skipped"), ServerEvent::Audio);
        }
        // Any other key order still parses (and is audio all the same).
        let spaced = format!(r#"{{ "type": "session.input_audio.append", "audio": "{payload}" }}"#);
        assert_eq!(parse_live(&spaced).expect("parses"), ServerEvent::Audio);
    }

    #[test]
    fn fragments_start_close_and_errors_parse_from_the_documented_shapes() {
        let user = r#"{"type":"session.input_transcript.delta","event_id":"e1","delta":" hello","start_ms":120,"end_ms":480}"#;
        assert_eq!(
            parse_live(user).expect("parses"),
            ServerEvent::LiveFragment {
                speaker: Speaker::User,
                delta: " hello".into(),
                start_ms: 120,
                end_ms: 480
            }
        );
        let agent = r#"{"type":"session.output_transcript.delta","event_id":"e2","delta":"Hi","start_ms":600,"end_ms":900,"client_event_id":null}"#;
        assert!(matches!(
            parse_live(agent).expect("parses"),
            ServerEvent::LiveFragment {
                speaker: Speaker::Agent,
                ..
            }
        ));
        let started = r#"{"type":"session.started","event_id":"e0","session":{"id":"live_1","expires_at":1790000000,"model":"gpt-live-1.1","status":"active","instructions":"x"}}"#;
        assert_eq!(
            parse_live(started).expect("parses"),
            ServerEvent::LiveStarted {
                expires_at: Some(1_790_000_000)
            }
        );
        let closed = r#"{"type":"session.closed","event_id":"e9","reason":"remote_hangup","session":{"id":"live_1","expires_at":1,"model":"gpt-live-1.1","status":"active"},"usage":{"seconds":12.0}}"#;
        assert_eq!(
            parse_live(closed).expect("parses"),
            ServerEvent::LiveClosed {
                reason: Some("remote_hangup".into())
            }
        );
        let error = r#"{"type":"error","event_id":"e3","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"Unknown parameter: 'session.turn_detection'.","param":"session.turn_detection","client_event_id":"scribe_start"}}"#;
        let ServerEvent::Error(info) = parse_live(error).expect("parses") else {
            panic!("an error");
        };
        assert_eq!(info.code.as_deref(), Some("unknown_parameter"));
        assert_eq!(info.event_id.as_deref(), Some("scribe_start"));
        let audio = r#"{"type":"session.output_audio.delta","event_id":"e4","delta":"AAAA"}"#;
        assert_eq!(parse_live(audio).expect("parses"), ServerEvent::Audio);
        let unknown = r#"{"type":"session.usage.updated","event_id":"e5","usage":{"seconds":60}}"#;
        assert_eq!(parse_live(unknown).expect("parses"), ServerEvent::Other);
        assert!(parse_live(r#"{"type":"session.input_transcript.delta","delta":"x"}"#).is_err());
        assert!(parse_live("not json").is_err());
    }

    #[test]
    fn the_seed_keeps_the_most_recent_lines_within_both_limits() {
        let lines: Vec<(Speaker, String)> = (0..300)
            .map(|n| {
                let speaker = if n % 2 == 0 {
                    Speaker::User
                } else {
                    Speaker::Agent
                };
                (speaker, format!("line {n}"))
            })
            .collect();
        let seeded = seed(&lines);
        assert_eq!(seeded.len(), SEED_MAX_MESSAGES);
        assert_eq!(
            seeded[127]["content"][0]["text"], "line 299",
            "the newest last"
        );
        assert_eq!(seeded[127]["role"], "assistant");
        assert_eq!(seeded[127]["content"][0]["type"], "output_text");
        assert_eq!(seeded[126]["content"][0]["type"], "input_text");

        let long: Vec<(Speaker, String)> = (0..10)
            .map(|n| (Speaker::User, format!("{n}{}", "x".repeat(4_000))))
            .collect();
        let seeded = seed(&long);
        let tokens: usize = seeded
            .iter()
            .map(|m| seed_tokens(m["content"][0]["text"].as_str().expect("text")))
            .sum();
        assert!(tokens <= SEED_MAX_TOKENS, "{tokens}");
        assert_eq!(seeded.len(), 4, "4 of 2,008 tokens fit in 8,192");
        assert!(
            seeded[3]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with('9'))
        );
    }

    #[test]
    fn session_start_sends_only_documented_fields() {
        let start: Value = serde_json::from_str(&session_start(
            "gpt-live-1.1",
            "Be brief.",
            "marin",
            &[(Speaker::User, "Hi".into())],
        ))
        .expect("json");
        assert_eq!(start["type"], "session.start");
        let mut fields: Vec<&str> = start["session"]
            .as_object()
            .expect("session")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort();
        assert_eq!(fields, ["audio", "input", "instructions", "model"]);
        assert_eq!(start["session"]["audio"]["output"]["voice"], "marin");
        let fresh: Value =
            serde_json::from_str(&session_start("gpt-live-1.1", "Be brief.", "marin", &[]))
                .expect("json");
        assert!(fresh["session"].get("input").is_none(), "no empty seed");
    }
}
