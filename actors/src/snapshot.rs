//! One live actor as `/admin/actors` shows it. Every field that names a
//! state is an enum; the JSON spellings are the contract.

use serde::Serialize;

use crate::ids::MeetingId;

/// One live actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActorSnapshot {
    pub kind: ActorKind,
    pub meeting_id: MeetingId,
    pub state: ActorState,
    pub uptime_ms: u64,
    pub restarts: u32,
    pub next_sequence: i64,
    pub unflushed: usize,
    pub socket: SocketState,
    /// What is wrong with the call's realtime session, in full (the
    /// provider's own words included); `null` when nothing is.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Meeting,
    Analysis,
}

/// Where an actor is in its work: a meeting actor's phase or an analysis
/// actor's, as one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ActorState {
    Meeting(MeetingPhase),
    Analysis(AnalysisPhase),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MeetingPhase {
    /// The call is live.
    Live,
    /// The call ended: draining and moving the meeting to `processing`.
    Finalizing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AnalysisPhase {
    /// Started, its task not running yet.
    Starting,
    /// Waiting for one of the bounded permits.
    Waiting,
    /// Holding a permit: loading, asking the model, saving.
    Running,
}

impl AnalysisPhase {
    /// For an atomic cell shared with the analysis task.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    pub const fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Waiting,
            2 => Self::Running,
            _ => Self::Starting,
        }
    }
}

/// The realtime socket of a meeting actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SocketState {
    Connecting,
    Open,
    Reconnecting,
    /// The service refused the configuration: no retries until a restart.
    ConfigurationError,
    Closed,
    /// The actor has no socket (an analysis).
    #[serde(rename = "none")]
    NoSocket,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snapshots_serialize_to_the_admin_contract() {
        let meeting = MeetingId::new();
        let live = ActorSnapshot {
            kind: ActorKind::Meeting,
            meeting_id: meeting,
            state: ActorState::Meeting(MeetingPhase::Finalizing),
            uptime_ms: 5,
            restarts: 1,
            next_sequence: 7,
            unflushed: 2,
            socket: SocketState::ConfigurationError,
            error: Some("invalid_api_key".into()),
        };
        assert_eq!(
            serde_json::to_value(&live).expect("serializes"),
            json!({ "kind": "meeting", "meeting_id": meeting, "state": "finalizing", "uptime_ms": 5,
                    "restarts": 1, "next_sequence": 7, "unflushed": 2, "socket": "configuration_error",
                    "error": "invalid_api_key" })
        );
        let analysis = ActorSnapshot {
            kind: ActorKind::Analysis,
            state: ActorState::Analysis(AnalysisPhase::Waiting),
            socket: SocketState::NoSocket,
            error: None,
            ..live
        };
        let v = serde_json::to_value(&analysis).expect("serializes");
        assert_eq!(
            (&v["kind"], &v["state"], &v["socket"]),
            (&json!("analysis"), &json!("waiting"), &json!("none"))
        );
    }

    #[test]
    fn analysis_phases_round_trip_through_u8() {
        for phase in [
            AnalysisPhase::Starting,
            AnalysisPhase::Waiting,
            AnalysisPhase::Running,
        ] {
            assert_eq!(AnalysisPhase::from_u8(phase.as_u8()), phase);
        }
    }
}
