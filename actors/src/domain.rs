//! The closed sets of the data model and their stored spellings. The database
//! keeps statuses as text guarded by CHECK constraints with exactly these
//! values; event kinds and analysis stages are matched by these enums, never
//! as string literals.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The error returned when a stored or requested spelling is not in a set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind}; expected one of: {expected}")]
pub struct UnknownVariant {
    kind: &'static str,
    input: String,
    expected: &'static str,
}

macro_rules! closed_set {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling stored in the database and used on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownVariant;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        input: s.chars().take(64).collect(),
                        expected: concat!($($text, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }
    };
}

closed_set!(
    /// Where a meeting is in its life.
    MeetingStatus, "meeting status", {
        /// Created, call not started.
        Upcoming => "upcoming",
        /// The call is live; a MeetingActor owns it.
        Active => "active",
        /// The call ended; analysis is running.
        Processing => "processing",
        /// Analysis finished; summary and progress are stored.
        Completed => "completed",
        /// The call or its analysis failed; `error` says why.
        Failed => "failed",
        /// Called off before it happened.
        Cancelled => "cancelled",
    }
);

closed_set!(
    /// Who said a transcript line.
    Speaker, "speaker", {
        User => "user",
        Agent => "agent",
    }
);

closed_set!(
    /// How complete a transcript line's text is.
    ChunkStatus, "chunk status", {
        /// The final transcript text.
        Completed => "completed",
        /// The session ended before the final text: the deltas received.
        Partial => "partial",
        /// A reply the agent did not finish: its response was cancelled,
        /// failed or cut short, or the user cut it off (truncation). The
        /// text is what was received (the whole reply for a truncation).
        Interrupted => "interrupted",
        /// The realtime service reported (or never delivered) no transcription.
        TranscriptionFailed => "transcription_failed",
        /// A position in the conversation whose line could not be recovered.
        Lost => "lost",
    }
);

closed_set!(
    /// How a meeting's call reaches OpenAI, and so what scribe's realtime
    /// session is: *owned* (scribe opened it; resuming is a new session with
    /// the stored lines replayed) or *attached* (a sideband to a session a
    /// browser or a phone carries; resuming is re-attaching to the same
    /// provider call, and the provider ends the call).
    Transport, "transport", {
        /// Owned: OpenAI's Realtime WebSocket, opened by scribe.
        #[serde(rename = "openai")]
        OpenAi => "openai",
        /// Owned: Stream's agent endpoint.
        Stream => "stream",
        /// Attached: a browser carries the call over WebRTC.
        #[serde(rename = "webrtc")]
        WebRtc => "webrtc",
        /// Attached: a phone carries the call over SIP.
        Sip => "sip",
    }
);

impl Transport {
    /// True when scribe attaches to a session someone else carries.
    pub const fn is_attached(self) -> bool {
        matches!(self, Self::WebRtc | Self::Sip)
    }
}

closed_set!(
    /// The OpenAI voice API a call runs on. They are different protocols:
    /// Realtime's transcript is items chained by `previous_item_id`;
    /// GPT-Live's is timed fragments on one session clock.
    VoiceApi, "voice API", {
        Realtime => "realtime",
        Live => "live",
    }
);

impl VoiceApi {
    /// The model a call runs on when none is configured.
    pub const fn default_model(self) -> &'static str {
        match self {
            Self::Realtime => "gpt-realtime-2.1",
            Self::Live => "gpt-live-1.1",
        }
    }
}

closed_set!(
    /// The kinds of entries in a meeting's event log.
    EventKind, "event kind", {
        ActorStarted => "actor_started",
        ActorRestarted => "actor_restarted",
        SocketConnected => "socket_connected",
        SocketClosed => "socket_closed",
        SocketReconnecting => "socket_reconnecting",
        SocketRotated => "socket_rotated",
        RealtimeError => "realtime_error",
        /// The realtime service refused scribe's configuration (key, model,
        /// URL, session settings): not retried.
        ConfigurationError => "configuration_error",
        /// The provider refused the session (Stream's flat `server_error`):
        /// retried after a long pause.
        SessionRefused => "session_refused",
        /// A response ended without completing; its lines are `interrupted`.
        ReplyInterrupted => "reply_interrupted",
        /// The user cut the agent's reply off (`audio_end_ms`).
        ReplyTruncated => "reply_truncated",
        /// A user transcription failed (the service's error).
        TranscriptionFailed => "transcription_failed",
        /// A user turn whose transcription completed empty (silence, an
        /// idle-timeout nudge's empty audio): no line was stored.
        Silence => "silence",
        /// A session rotation went ahead mid-turn, its session about to expire.
        RotationForced => "rotation_forced",
        /// An item the sideband missed was fetched back
        /// (`conversation.item.retrieve`) and stored in its place.
        ItemRecovered => "item_recovered",
        /// The provider ended an attached call (it hung up, or the call no
        /// longer exists): the call is finalized.
        CallOver => "call_over",
        /// scribe ended an attached call at the provider (`how`:
        /// `session.close` on the sideband, or the REST `hangup`).
        HungUp => "hung_up",
        /// A GPT-Live session closed (`reason`) in a way that does not end
        /// the call.
        SessionClosed => "session_closed",
        /// A GPT-Live fragment arrived too late for its place on the
        /// timeline; it was placed after the lines already numbered.
        LateFragment => "late_fragment",
        TranscriptionOff => "transcription_off",
        LeaseLost => "lease_lost",
        OutOfOrderItem => "out_of_order_item",
        /// Numbers with no line, kept as `lost` lines (`from`, `to`).
        Gap => "gap",
        /// The process that ran the call stopped without a shutdown:
        /// lines after `after` may be missing.
        PossibleGap => "possible_gap",
        CallEnded => "call_ended",
        RestartBudgetExhausted => "restart_budget_exhausted",
        /// An analysis stage (`stage` is an [`AnalysisStage`]).
        AnalysisStage => "analysis_stage",
        /// The meeting's status changed (`from`, `to`), logged in the
        /// transaction that changed it.
        StatusChanged => "status_changed",
        /// Text of the summary as the model writes it (`attempt`, `offset`
        /// in characters, `text`); the saved result is the last word.
        AnalysisDelta => "analysis_delta",
        /// The call's running notes were updated (`text`, `through_line`,
        /// `version`), logged in the transaction that saved them.
        NotesUpdated => "notes_updated",
        /// The tokens one model request used (`purpose`, `model`, prompt,
        /// cached and completion tokens).
        ModelUsage => "model_usage",
    }
);

closed_set!(
    /// The stages of one analysis, as its `analysis_stage` log entries name them.
    AnalysisStage, "analysis stage", {
        AnalysisActorStarted => "analysis_actor_started",
        AnalysisActorRestarted => "analysis_actor_restarted",
        TranscriptCollected => "transcript_collected",
        EmptyTranscript => "empty_transcript",
        LlmAttemptStarted => "llm_attempt_started",
        LlmAttemptFailed => "llm_attempt_failed",
        AnswerReceived => "answer_received",
        ResultsSaved => "results_saved",
        NextMeetingCreated => "next_meeting_created",
        Failed => "failed",
    }
);

/// A line whose text is known, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sequence_number: i64,
    pub speaker: Speaker,
    pub text: String,
    pub status: ChunkStatus,
    pub item_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// Where the line sits on its session's clock (GPT-Live), in ms.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// When its final event was read (for the commit-lag metric).
    pub ready_at: std::time::Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_status_set_is_exactly_the_contract() {
        let spelled: Vec<&str> = MeetingStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            spelled,
            [
                "upcoming",
                "active",
                "processing",
                "completed",
                "failed",
                "cancelled"
            ]
        );
    }

    #[test]
    fn spellings_round_trip_through_from_str_and_serde() {
        for status in ChunkStatus::ALL {
            assert_eq!(status.as_str().parse::<ChunkStatus>(), Ok(*status));
            let json = serde_json::to_string(status).expect("serializes");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn event_kinds_and_stages_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(*kind));
            let json = serde_json::to_string(kind).expect("serializes");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        for transport in Transport::ALL {
            let json = serde_json::to_string(transport).expect("serializes");
            assert_eq!(json, format!("\"{}\"", transport.as_str()));
        }
        for stage in AnalysisStage::ALL {
            assert_eq!(stage.as_str().parse::<AnalysisStage>(), Ok(*stage));
            let json = serde_json::to_string(stage).expect("serializes");
            assert_eq!(json, format!("\"{}\"", stage.as_str()));
        }
        assert_eq!(EventKind::StatusChanged.as_str(), "status_changed");
    }

    #[test]
    fn unknown_spelling_lists_the_valid_ones() {
        let err = "done".parse::<MeetingStatus>().expect_err("not a status");
        assert_eq!(
            err.to_string(),
            "`done` is not a valid meeting status; expected one of: upcoming active processing completed failed cancelled"
        );
    }
}
