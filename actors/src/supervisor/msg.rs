//! What the CallSupervisor is told: requests from the `Calls` handle
//! (each with a reply port), and reports from the tasks it owns.

use chrono::{DateTime, Utc};
use ractor::{ActorRef, RpcReplyPort};
use tokio::time::Instant;

use super::outcome::{EndOutcome, StartError, StartOutcome};
use super::state::Heir;
use crate::analysis::AnalysisMsg;
use crate::ids::MeetingId;
use crate::meeting::msg::MeetingMsg;
use crate::ports::{LeaseNews, LeaseReport};

/// Every live actor: meeting actors, then analysis actors.
pub type LiveActors = (Vec<ActorRef<MeetingMsg>>, Vec<ActorRef<AnalysisMsg>>);

pub enum SupervisorMsg {
    StartCall {
        meeting: MeetingId,
        /// Why an actor is started for a call that may have had one before
        /// (e.g. adoption after a process restart), for the event log.
        reason: Option<String>,
        reply: RpcReplyPort<Result<StartOutcome, StartError>>,
    },
    EndCall {
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        reply: RpcReplyPort<EndOutcome>,
    },
    Actors(RpcReplyPort<LiveActors>),
    /// The store answered what starting a call needs (its context, its
    /// lease), read in a task.
    Prepared {
        meeting: MeetingId,
        reason: Option<String>,
        prepared: Result<Prepared, StartError>,
    },
    /// The store answered whether another instance owns a call that is to
    /// end (and was told).
    EndRouted {
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        forwarded: bool,
        replies: Vec<RpcReplyPort<EndOutcome>>,
    },
    /// The store answered whether a call whose actor died is still live.
    RestartDecided {
        meeting: MeetingId,
        heir: Heir,
        over: bool,
    },
    /// The sessions opened for a call this process holds (`None`: none).
    SessionsOpened {
        meeting: MeetingId,
        reply: RpcReplyPort<Option<tokio::sync::watch::Receiver<u32>>>,
    },
    /// Start the meeting's analysis (after a retry, or at startup for an
    /// unfinished job). Replies whether an actor was started.
    Analyze {
        meeting: MeetingId,
        reply: RpcReplyPort<bool>,
    },
    /// Chaos: kill the meeting's analysis actor abruptly.
    KillAnalysis {
        meeting: MeetingId,
        reply: RpcReplyPort<bool>,
    },
    /// A finalization without an actor is done (from the supervisor's task).
    Finalized {
        meeting: MeetingId,
    },
    /// A finished analysis's job was queued again (a retry raced with it):
    /// start it once more.
    AnalysisPendingAgain {
        meeting: MeetingId,
    },
    /// Replies once no call is being finalized (for graceful shutdown).
    WhenSettled(RpcReplyPort<()>),
    /// The lease renewal's report (from the supervisor's renewal task):
    /// stop calls whose lease is gone; finalize calls that ended elsewhere;
    /// take over calls nobody holds.
    LeasesRenewed {
        report: LeaseReport,
        began: Instant,
    },
    /// Calls nobody holds (from the renewal task's scan between renewals):
    /// take them over.
    Orphaned(Vec<MeetingId>),
    /// What another instance said (an end, freed leases), as it came.
    LeaseNews(LeaseNews),
    /// Chaos: kill the meeting's actor abruptly. Replies whether one was live.
    Kill {
        meeting: MeetingId,
        reply: RpcReplyPort<bool>,
    },
    /// Chaos: make the meeting's actor panic inside a handler.
    Panic {
        meeting: MeetingId,
        reply: RpcReplyPort<bool>,
    },
}

/// What the store said of a call to be started.
#[derive(Debug)]
pub enum Prepared {
    NotFound,
    NotActive(crate::domain::MeetingStatus),
    /// Another live instance holds the call's lease.
    OwnedElsewhere,
    /// The call is active and its lease is this instance's.
    Ready(crate::ports::CallContext),
}
