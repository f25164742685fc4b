//! Stream webhook events, reduced to what scribe routes on. Unknown types
//! and fields are accepted and ignored.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

pub const SESSION_STARTED: &str = "call.session_started";
pub const SESSION_ENDED: &str = "call.session_ended";
pub const PARTICIPANT_JOINED: &str = "call.session_participant_joined";
pub const PARTICIPANT_LEFT: &str = "call.session_participant_left";
pub const CALL_ENDED: &str = "call.ended";

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub kind: String,
    pub call_cid: Option<String>,
    pub session_id: Option<String>,
    /// `call.custom.meetingId` (not `call.id`).
    pub meeting_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The participant of a participant event.
    pub participant: Option<Participant>,
}

/// A participant, as Stream's participant events name one: its user, and
/// its own session (one user can join from several devices, and a rejoin
/// is a new session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// `participant.user.id`.
    pub user_id: String,
    /// `participant.user_session_id`.
    pub user_session_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("webhook body is not a Stream event: {0}")]
pub struct EventError(#[from] serde_json::Error);

/// A Stream event as scribe reads it (the OpenAPI document's request body
/// of `POST /api/webhook`): any other field is accepted and ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = StreamWebhookEvent)]
pub(crate) struct Raw {
    /// `call.session_started` and `call.session_ended` are acted on.
    #[serde(rename = "type")]
    #[schema(pattern = r"^[^\u0000]*$")]
    kind: String,
    #[schema(pattern = r"^[^\u0000]*$")]
    call_cid: Option<String>,
    #[schema(pattern = r"^[^\u0000]*$")]
    session_id: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::object::optional")]
    call: Option<RawCall>,
    created_at: Option<Timestamp>,
    /// Participant events: `user.id` and `user_session_id` are read.
    #[serde(default, deserialize_with = "crate::domain::object::optional")]
    participant: Option<RawParticipant>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = StreamWebhookParticipant)]
struct RawParticipant {
    #[schema(pattern = r"^[^\u0000]*$")]
    user_session_id: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::object::optional")]
    user: Option<RawUser>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = StreamWebhookUser)]
struct RawUser {
    #[schema(pattern = r"^[^\u0000]*$")]
    id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = StreamWebhookCall)]
struct RawCall {
    #[schema(pattern = r"^[^\u0000]*$")]
    cid: Option<String>,
    /// `meetingId` names the meeting.
    #[serde(default)]
    custom: Value,
}

/// RFC 3339 (nanoseconds allowed) or nanoseconds since the epoch. A time
/// scribe cannot read is no time: the event is handled without it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = StreamWebhookTime)]
enum Timestamp {
    Text(String),
    #[schema(value_type = f64)]
    Nanos(serde_json::Number),
}

impl Timestamp {
    fn to_utc(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Text(s) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Self::Nanos(n) => n
                .as_i64()
                .or_else(|| {
                    // An integral number written with a fraction (`1.0`).
                    let f = n.as_f64()?;
                    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
                })
                .map(|n| Utc.timestamp_nanos(n)),
        }
    }
}

impl WebhookEvent {
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let raw: Raw = crate::domain::object::from_slice(body)?;
        let texts = [
            Some(&raw.kind),
            raw.call_cid.as_ref(),
            raw.session_id.as_ref(),
        ];
        let nested = raw.call.as_ref().and_then(|c| c.cid.as_ref());
        let participant = raw.participant.as_ref().and_then(|p| {
            Some(Participant {
                user_id: p.user.as_ref()?.id.clone()?,
                user_session_id: p.user_session_id.clone()?,
            })
        });
        let who = participant
            .as_ref()
            .map(|p| [&p.user_id, &p.user_session_id]);
        if !texts
            .into_iter()
            .chain([nested])
            .chain(who.into_iter().flatten().map(Some))
            .flatten()
            .all(|t| crate::domain::storable(t))
        {
            return Err(EventError(serde::de::Error::custom(
                "a field holds the character U+0000",
            )));
        }
        let call_cid = raw
            .call_cid
            .or_else(|| raw.call.as_ref().and_then(|c| c.cid.clone()));
        let meeting_id = raw
            .call
            .as_ref()
            .and_then(|c| c.custom.get("meetingId"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Self {
            kind: raw.kind,
            call_cid,
            session_id: raw.session_id,
            meeting_id,
            created_at: raw.created_at.as_ref().and_then(Timestamp::to_utc),
            participant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_meeting_id_from_custom_not_call_id() {
        let body = br#"{"type":"call.session_started","created_at":"2026-11-28T10:00:00.123456789Z","call_cid":"default:abc","session_id":"s-1","call":{"id":"abc","type":"default","cid":"default:abc","custom":{"meetingId":"m-1"},"created_by":{"id":"u"},"settings":{}},"extra":true}"#;
        let event = WebhookEvent::parse(body).expect("parses");
        assert_eq!(event.kind, SESSION_STARTED);
        assert_eq!(event.meeting_id.as_deref(), Some("m-1"));
        assert_eq!(event.call_cid.as_deref(), Some("default:abc"));
        assert_eq!(event.session_id.as_deref(), Some("s-1"));
        assert_eq!(
            event.created_at.map(|t| t.timestamp_subsec_nanos()),
            Some(123_456_789)
        );
    }

    #[test]
    fn accepts_integer_nanoseconds_and_events_without_a_call() {
        let body = br#"{"type":"call.session_participant_joined","created_at":1764324000123456789,"call_cid":"default:abc"}"#;
        let event = WebhookEvent::parse(body).expect("parses");
        assert_eq!(event.meeting_id, None);
        assert_eq!(event.created_at.map(|t| t.timestamp()), Some(1_764_324_000));
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        for body in [&b"not json"[..], b"{}", b"[]", br#"{"type":7}"#] {
            assert!(WebhookEvent::parse(body).is_err());
        }
    }
}
