//! `Calls`: the handle the HTTP layer and recovery use to reach the live
//! supervisor, with a timeout on every request.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, RpcReplyPort};

use super::current::CurrentSupervisor;
use super::msg::SupervisorMsg;
use super::outcome::{CallsError, EndOutcome, StartOutcome};
use crate::analysis::AnalysisMsg;
use crate::ids::MeetingId;
use crate::meeting::msg::MeetingMsg;
use crate::snapshot::ActorSnapshot;

/// How long a live actor may take to answer a snapshot request before it
/// is left out of the list.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(1);

/// A handle on the live supervisor with a timeout on every request.
#[derive(Clone)]
pub struct Calls {
    current: Arc<CurrentSupervisor>,
    timeout: Duration,
}

impl Calls {
    pub fn new(current: Arc<CurrentSupervisor>) -> Self {
        Self {
            current,
            timeout: Duration::from_secs(10),
        }
    }

    fn supervisor(&self) -> Result<ActorRef<SupervisorMsg>, CallsError> {
        self.current.get().ok_or(CallsError::NoSupervisor)
    }

    /// Chaos: kills the call supervisor (and with it every call actor); the
    /// guardian starts a new one that re-adopts them. False when none ran.
    pub fn kill_supervisor(&self) -> bool {
        self.current.get().map(|s| s.kill()).is_some()
    }

    /// Stops the whole actor tree for a graceful shutdown: nothing restarts.
    pub fn stop_all(&self) {
        if let Some(guardian) = self.current.guardian() {
            guardian.stop(Some("shutdown".into()));
        }
    }

    /// Kills the whole actor tree, guardian included, as if this instance's
    /// call side died: nothing restarts it, nothing releases its leases.
    pub fn kill_all(&self) -> bool {
        self.current.guardian().map(ActorCell::kill).is_some()
    }

    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, CallsError> {
        match self.supervisor()?.call(msg, Some(self.timeout)).await {
            Ok(CallResult::Success(value)) => Ok(value),
            Ok(CallResult::Timeout) => Err(CallsError::Timeout(self.timeout)),
            Ok(CallResult::SenderError) => Err(CallsError::NoReply),
            Err(_) => Err(CallsError::Unreachable),
        }
    }

    pub async fn start(&self, meeting: MeetingId) -> Result<StartOutcome, CallsError> {
        let outcome = self
            .ask(|reply| SupervisorMsg::StartCall {
                meeting,
                reason: None,
                reply,
            })
            .await?;
        Ok(outcome?)
    }

    /// Starts an actor for a call found `active` with no actor here (at
    /// startup, or after the supervisor was replaced); `reason` goes to the
    /// event log.
    pub async fn adopt(
        &self,
        meeting: MeetingId,
        reason: &str,
    ) -> Result<StartOutcome, CallsError> {
        let outcome = self
            .ask(|reply| SupervisorMsg::StartCall {
                meeting,
                reason: Some(reason.to_owned()),
                reply,
            })
            .await?;
        Ok(outcome?)
    }

    /// Starts calls this member already took (nobody live held them);
    /// `reason` goes to each call's log.
    pub fn take_claimed(
        &self,
        claimed: Vec<crate::ports::Claimed>,
        reason: &str,
    ) -> Result<(), CallsError> {
        self.supervisor()?
            .cast(SupervisorMsg::Claimed {
                claimed,
                reason: Some(reason.to_owned()),
            })
            .map_err(|_| CallsError::Unreachable)
    }

    pub async fn end(
        &self,
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
    ) -> Result<EndOutcome, CallsError> {
        self.ask(|reply| SupervisorMsg::EndCall {
            meeting,
            ended_at,
            reply,
        })
        .await
    }

    /// Waits (up to `patience`) until a session of `meeting` is open here
    /// (configured; replayed or seeded when owned). False when none opened
    /// in time, or this process does not hold the call.
    pub async fn socket_up(&self, meeting: MeetingId, patience: Duration) -> bool {
        let Ok(Some(mut opened)) = self
            .ask(|reply| SupervisorMsg::SessionsOpened { meeting, reply })
            .await
        else {
            return false;
        };
        tokio::time::timeout(patience, opened.wait_for(|n| *n > 0))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// Waits (up to `patience`) until every call being finalized is done.
    pub async fn settled(&self, patience: Duration) -> Result<(), CallsError> {
        match self
            .supervisor()?
            .call(SupervisorMsg::WhenSettled, Some(patience))
            .await
        {
            Ok(CallResult::Success(())) => Ok(()),
            Ok(CallResult::Timeout) => Err(CallsError::NotSettled(patience)),
            Ok(CallResult::SenderError) => Err(CallsError::NoReply),
            Err(_) => Err(CallsError::Unreachable),
        }
    }

    /// The meeting was deleted: its actor (socket closed) and its analysis
    /// stop here, nothing restarted or finalized. True when one ran.
    pub async fn forget(&self, meeting: MeetingId) -> Result<bool, CallsError> {
        self.ask(|reply| SupervisorMsg::Forget { meeting, reply })
            .await
    }

    pub async fn kill(&self, meeting: MeetingId) -> Result<bool, CallsError> {
        self.ask(|reply| SupervisorMsg::Kill { meeting, reply })
            .await
    }

    /// Starts the meeting's analysis unless it is running.
    pub async fn analyze(&self, meeting: MeetingId) -> Result<bool, CallsError> {
        self.ask(|reply| SupervisorMsg::Analyze { meeting, reply })
            .await
    }

    pub async fn kill_analysis(&self, meeting: MeetingId) -> Result<bool, CallsError> {
        self.ask(|reply| SupervisorMsg::KillAnalysis { meeting, reply })
            .await
    }

    pub async fn panic(&self, meeting: MeetingId) -> Result<bool, CallsError> {
        self.ask(|reply| SupervisorMsg::Panic { meeting, reply })
            .await
    }

    /// Snapshots of every live actor (one that does not answer within a
    /// second is left out).
    pub async fn snapshots(&self) -> Result<Vec<ActorSnapshot>, CallsError> {
        let (meetings, analyses) = self.ask(SupervisorMsg::Actors).await?;
        let wait = Some(SNAPSHOT_WAIT);
        let asks = meetings
            .iter()
            .map(|actor| actor.call(MeetingMsg::Snapshot, wait).map(answer).boxed())
            .chain(
                analyses
                    .iter()
                    .map(|actor| actor.call(AnalysisMsg::Snapshot, wait).map(answer).boxed()),
            );
        Ok(futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect())
    }
}

/// A snapshot an actor gave in time, or nothing.
fn answer<E>(reply: Result<CallResult<ActorSnapshot>, E>) -> Option<ActorSnapshot> {
    match reply {
        Ok(CallResult::Success(snapshot)) => Some(snapshot),
        _ => None,
    }
}
