//! The closed sets of the data model and their stored spellings. The database
//! keeps them as text guarded by CHECK constraints with exactly these values.

use std::fmt;
use std::str::FromStr;

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
        /// The realtime service reported (or never delivered) no transcription.
        TranscriptionFailed => "transcription_failed",
        /// A position in the conversation whose line could not be recovered.
        Lost => "lost",
    }
);

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
    fn unknown_spelling_lists_the_valid_ones() {
        let err = "done".parse::<MeetingStatus>().expect_err("not a status");
        assert_eq!(
            err.to_string(),
            "`done` is not a valid meeting status; expected one of: upcoming active processing completed failed cancelled"
        );
    }
}
