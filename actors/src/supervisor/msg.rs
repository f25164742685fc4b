//! What the CallSupervisor is told: requests from the `Calls` handle
//! (each with a reply port), and reports from the tasks it owns.

use chrono::{DateTime, Utc};
use ractor::{ActorRef, RpcReplyPort};

use super::outcome::{EndOutcome, StartError, StartOutcome};
use super::state::Heir;
use crate::analysis::AnalysisMsg;
use crate::ids::MeetingId;
use crate::meeting::msg::MeetingMsg;
use crate::ports::{Claimed, LeaseNews, Member};

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
        heir: Box<Heir>,
        over: bool,
        /// The member the store was asked for.
        member: Member,
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
    /// Calls this instance holds that ended at another instance (read with
    /// the heartbeat, should a notification have been missed).
    EndedElsewhere(Vec<(MeetingId, DateTime<Utc>)>),
    /// Calls this instance took (the membership task, or recovery): start
    /// them; `reason` (else "taken over") goes to each call's log.
    Claimed {
        claimed: Vec<Claimed>,
        reason: Option<String>,
    },
    /// Calls whose writes the store refused (with the lease epoch the
    /// writes carried): another instance holds them.
    CallsLost(Vec<(MeetingId, i64)>),
    /// This instance was declared dead (its heartbeat lapsed): every call
    /// it runs stops here.
    MembershipLost(Member),
    /// What another instance said (an end, freed leases), as it came.
    LeaseNews(LeaseNews),
    /// The meeting was deleted: stop whatever of it runs here, without a
    /// restart or a finalization. Replies whether something ran.
    Forget {
        meeting: MeetingId,
        reply: RpcReplyPort<bool>,
    },
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
    /// Another live instance holds the call.
    OwnedElsewhere,
    /// The call is active and its lease is this instance's.
    Ready {
        /// Its lease epoch the one the taking returned.
        context: Box<crate::ports::CallContext>,
        /// Its last holder stopped without releasing it.
        after_crash: bool,
        /// The member that took it.
        member: crate::ports::Member,
    },
}
