//! Meetings: one planned or held voice call and, once analysed, its results.

use chrono::{DateTime, Utc};
use scribe_actors::domain::{MeetingStatus, Transport, VoiceApi};
use scribe_actors::ids::{AgentId, MeetingId};
use serde::Serialize;
use serde_json::Value;

use super::agent::{MAX_INSTRUCTIONS_CHARS, MAX_NAME_CHARS};
use super::{ValidationError, optional_text, required_text};

pub const MAX_USER_ID_CHARS: usize = 200;

/// A meeting as stored, with the id of the meeting it led to, if any.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Meeting {
    pub id: MeetingId,
    pub name: String,
    pub user_id: String,
    pub agent_id: AgentId,
    pub status: MeetingStatus,
    pub prompt: Option<String>,
    pub progress: Option<Value>,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub processing_started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub transcript_collected: bool,
    pub previous_meeting_id: Option<MeetingId>,
    pub next_meeting_id: Option<MeetingId>,
    /// How the call reaches OpenAI (`openai`, `stream`, `webrtc`, `sip`),
    /// once it started.
    pub transport: Option<Transport>,
    /// OpenAI's own id of the call (`rtc_...`), for a browser or phone call.
    pub provider_call_id: Option<String>,
    /// The voice API the call runs on (`realtime`, `live`), once it started.
    pub voice_api: Option<VoiceApi>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The meeting's page, with the key that opens it (for the API token's
    /// holder only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// Which page links work: the ones issued at this generation.
    #[serde(skip)]
    pub page_generation: i64,
    /// Set on a tombstone: the meeting was deleted (never served).
    #[serde(skip)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A meeting that passed validation and may be stored (status `upcoming`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMeeting {
    pub name: String,
    pub user_id: String,
    pub agent_id: AgentId,
    pub prompt: Option<String>,
    /// Set when the meeting is the next session of a completed one.
    pub previous_meeting_id: Option<MeetingId>,
    /// Blueprint progress carried over from the previous session.
    pub progress: Option<Value>,
}

impl NewMeeting {
    /// A first meeting as a user asks for it over the API.
    pub fn parse(
        name: &str,
        user_id: &str,
        agent_id: AgentId,
        prompt: Option<&str>,
    ) -> Result<Self, ValidationError> {
        // Bounded as sent (the API schema's bound); blank means none.
        let prompt = match prompt {
            None => None,
            Some(p) => match optional_text("prompt", p, MAX_INSTRUCTIONS_CHARS)?.trim() {
                "" => None,
                p => Some(p.to_owned()),
            },
        };
        Ok(Self {
            name: required_text("name", name, MAX_NAME_CHARS)?,
            user_id: required_text("user_id", user_id, MAX_USER_ID_CHARS)?,
            agent_id,
            prompt,
            previous_meeting_id: None,
            progress: None,
        })
    }
}

/// Which meetings a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeetingFilter {
    pub status: Option<MeetingStatus>,
    pub user_id: Option<String>,
    pub agent_id: Option<AgentId>,
    /// At most this many, newest first.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_prompt_means_no_prompt() {
        let m = NewMeeting::parse("Intro", "u1", AgentId::new(), Some("   ")).expect("valid");
        assert_eq!(m.prompt, None);
    }

    #[test]
    fn names_the_offending_field() {
        let err = NewMeeting::parse("Intro", " ", AgentId::new(), None).expect_err("blank user");
        assert_eq!(err.0, "`user_id` must not be empty");
    }
}
