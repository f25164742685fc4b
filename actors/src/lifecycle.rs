//! The meeting state machine: which status may become which, written once.
//! The store makes every status change through one function that asks
//! [`check`] first and refuses anything else; the event stream and the page
//! can therefore rely on every `status_changed` entry being one of these.
//!
//! ```text
//! upcoming ──> active ──> processing ──> completed
//!    │           │            │
//!    │           └──> failed <┘
//!    │                  │
//!    │                  └──> processing   (retry of the analysis)
//!    └──> cancelled
//! ```

use crate::domain::MeetingStatus::{
    self, Active, Cancelled, Completed, Failed, Processing, Upcoming,
};

/// Every allowed change, with what makes it.
pub const TRANSITIONS: [(MeetingStatus, MeetingStatus, &str); 7] = [
    (Upcoming, Active, "the call started"),
    (
        Upcoming,
        Cancelled,
        "the meeting was called off before its call",
    ),
    (Active, Processing, "the call ended: analysis starts"),
    (Active, Failed, "the call could not be run"),
    (Processing, Completed, "the analysis saved its results"),
    (Processing, Failed, "the analysis failed"),
    (Failed, Processing, "a retry runs the analysis again"),
];

/// A change the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a meeting that is {from} cannot become {to}")]
pub struct TransitionRefused {
    pub from: MeetingStatus,
    pub to: MeetingStatus,
}

impl MeetingStatus {
    /// True when a meeting in this status may become `to`.
    pub fn may_become(self, to: MeetingStatus) -> bool {
        TRANSITIONS.iter().any(|(f, t, _)| *f == self && *t == to)
    }

    /// True for the statuses nothing but a retry leaves.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Completed | Failed | Cancelled)
    }
}

/// `Ok` when `from` may become `to`.
pub fn check(from: MeetingStatus, to: MeetingStatus) -> Result<(), TransitionRefused> {
    if from.may_become(to) {
        Ok(())
    } else {
        Err(TransitionRefused { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_listed_changes_are_allowed() {
        let mut allowed = Vec::new();
        for from in MeetingStatus::ALL {
            for to in MeetingStatus::ALL {
                if from.may_become(*to) {
                    allowed.push(format!("{from}->{to}"));
                }
            }
        }
        assert_eq!(
            allowed,
            [
                "upcoming->active",
                "upcoming->cancelled",
                "active->processing",
                "active->failed",
                "processing->completed",
                "processing->failed",
                "failed->processing",
            ]
        );
    }

    #[test]
    fn a_refusal_names_both_statuses() {
        assert_eq!(check(Upcoming, Active), Ok(()));
        let refused = check(Completed, Processing).expect_err("completed is final");
        assert_eq!(
            refused.to_string(),
            "a meeting that is completed cannot become processing"
        );
        assert!(
            check(Active, Active).is_err(),
            "no change is not a transition"
        );
        assert!(check(Cancelled, Active).is_err());
    }

    #[test]
    fn only_completed_failed_and_cancelled_are_terminal() {
        let terminal: Vec<_> = MeetingStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [&Completed, &Failed, &Cancelled]);
    }
}
