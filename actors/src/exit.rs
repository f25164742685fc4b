//! Why a supervised actor ended, read from ractor's supervision events once,
//! so that nothing downstream compares reason strings.

use std::fmt;

use ractor::{ActorId, SupervisionEvent};

/// How a child actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// It stopped itself when its work was done (`drain`, `stop`).
    Finished,
    /// It was stopped with a reason.
    Stopped(String),
    /// It was killed abruptly (ractor `kill`): queued messages and
    /// `post_stop` skipped.
    Killed,
    /// A handler returned an error or panicked.
    Failed(String),
    /// A MeetingActor whose attached call the provider ended: it finalized
    /// the call itself and stopped.
    CallOver,
}

/// The reason ractor gives an actor ended by `kill()`.
const KILLED: &str = "killed";

/// The stop reason of a MeetingActor whose call the provider ended.
pub const CALL_OVER: &str = "call over: the provider ended it";

impl ExitReason {
    /// The actor and its exit, for the events that say an actor ended.
    pub fn of(event: &SupervisionEvent) -> Option<(ActorId, ExitReason)> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let reason = match reason.as_deref() {
                    None => Self::Finished,
                    Some(KILLED) => Self::Killed,
                    Some(CALL_OVER) => Self::CallOver,
                    Some(other) => Self::Stopped(other.to_owned()),
                };
                Some((cell.get_id(), reason))
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                Some((cell.get_id(), Self::Failed(error.to_string())))
            }
            _ => None,
        }
    }

    /// True when the actor ended on purpose (its work done, or told to
    /// stop), false when it was killed or failed.
    pub fn is_clean(&self) -> bool {
        matches!(self, Self::Finished | Self::Stopped(_) | Self::CallOver)
    }
}

/// The text the event log shows (`reason` of `actor_restarted`).
impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Finished => f.write_str("stopped"),
            Self::Stopped(reason) => f.write_str(reason),
            Self::Killed => f.write_str(KILLED),
            Self::Failed(error) => write!(f, "failed: {error}"),
            Self::CallOver => f.write_str(CALL_OVER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_and_stopped_are_clean() {
        assert!(ExitReason::Finished.is_clean());
        assert!(ExitReason::Stopped("shutdown".into()).is_clean());
        assert!(!ExitReason::Killed.is_clean());
        assert!(!ExitReason::Failed("boom".into()).is_clean());
    }

    #[test]
    fn the_log_shows_the_reasons_as_before() {
        assert_eq!(ExitReason::Killed.to_string(), "killed");
        assert_eq!(ExitReason::Finished.to_string(), "stopped");
        assert_eq!(ExitReason::Failed("x".into()).to_string(), "failed: x");
    }
}
