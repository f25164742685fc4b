//! What asking the call supervisor can answer, and how it can fail.

use std::time::Duration;

use crate::domain::MeetingStatus;
use crate::ports::PortError;

/// What starting (or adopting) a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    AlreadyRunning,
    NotFound,
    NotActive(MeetingStatus),
    /// Another live instance holds the call's lease and runs it.
    OwnedElsewhere,
    /// The call had already ended elsewhere: finalizing it here.
    Ending,
}

/// What ending a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOutcome {
    /// The live actor is finalizing the call.
    Finalizing,
    /// No actor was live: finalizing from the stored state.
    FinalizingFromStore,
    /// Another instance owns the call: it was told through the database.
    Forwarded,
}

/// Why a call was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the call's state could not be read or its lease taken")]
    Store(#[from] PortError),
    #[error("the meeting actor did not start")]
    Spawn(#[source] ractor::SpawnErr),
}

/// Why a request to the call supervisor failed.
#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    #[error("no call supervisor is running")]
    NoSupervisor,
    #[error("the call supervisor did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the call supervisor dropped the request")]
    NoReply,
    #[error("the call supervisor is not taking messages")]
    Unreachable,
    #[error("calls were still being finalized after {0:?}")]
    NotSettled(Duration),
    #[error(transparent)]
    Start(#[from] StartError),
}
