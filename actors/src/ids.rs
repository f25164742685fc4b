//! Identifier newtypes. Each wraps a UUID, prints and parses as the hyphenated
//! form, and serializes as a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The error returned when a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind} id (expected a UUID)")]
pub struct InvalidId {
    kind: &'static str,
    input: String,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) identifier.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId {
                    kind: $kind,
                    input: s.chars().take(64).collect(),
                })
            }
        }
    };
}

uuid_id!(
    /// A meeting: one planned or held voice call.
    MeetingId,
    "meeting"
);
uuid_id!(
    /// An agent: the AI persona (instructions, optional blueprint) that runs calls.
    AgentId,
    "agent"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_display_and_from_str() {
        let id = MeetingId::new();
        let parsed: MeetingId = id.to_string().parse().expect("parses its own display");
        assert_eq!(parsed, id);
    }

    #[test]
    fn rejects_garbage_with_a_message_naming_the_kind() {
        let err = "not-a-uuid"
            .parse::<AgentId>()
            .expect_err("garbage is rejected");
        assert_eq!(
            err.to_string(),
            "`not-a-uuid` is not a valid agent id (expected a UUID)"
        );
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let id = MeetingId::new();
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, format!("\"{id}\""));
    }
}
