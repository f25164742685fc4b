//! What the CallSupervisor holds: its children by meeting, the calls being
//! finalized, and the background tasks it owns (they stop with it).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::{ActorId, ActorRef, RpcReplyPort};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::budget::{RestartBudget, Restarts};
use super::leases::Membership;
use super::outcome::{EndOutcome, StartError, StartOutcome};
use super::registry::CallRegistry;
use crate::analysis::AnalysisMsg;
use crate::analysis::job::AnalysisDeps;
use crate::ids::MeetingId;
use crate::meeting::deps::CallDeps;
use crate::meeting::msg::MeetingMsg;
use crate::ports::{CallContext, Claimed, LeaseStore};

/// A live call's actor, as the supervisor tracks it.
pub struct RunningCall {
    pub actor: ActorRef<MeetingMsg>,
    pub context: CallContext,
    pub incarnation: u32,
    pub restarts: Restarts,
    /// The actor was told to finalize.
    pub ending: bool,
    /// Another instance holds the call now: stop, do not restart.
    pub lease_lost: bool,
}

/// A live analysis actor.
/// The next actor of a call whose actor died, while the store says
/// whether the call is still live.
pub struct Heir {
    pub context: CallContext,
    pub incarnation: u32,
    pub restarts: Restarts,
    pub reason: String,
}

/// Who waits on a call whose start (or restart) waits on the store.
#[derive(Default)]
pub struct Waiting {
    pub starts: Vec<RpcReplyPort<Result<StartOutcome, StartError>>>,
    /// An end that arrived meanwhile (the first one's time, and everyone
    /// who asked): routed once the call's actor runs.
    pub end: Option<(DateTime<Utc>, Vec<RpcReplyPort<EndOutcome>>)>,
}

/// Store work the supervisor runs at once, at most (starts, restarts and
/// takeovers read a call's context and take its lease in tasks).
pub const STORE_TASKS: usize = 16;

pub struct RunningAnalysis {
    pub actor: ActorRef<AnalysisMsg>,
    pub incarnation: u32,
    pub restarts: Restarts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    Meeting,
    Analysis,
}

pub struct SupervisorState {
    pub deps: Arc<CallDeps>,
    pub leases: Arc<dyn LeaseStore>,
    pub analysis: Arc<AnalysisDeps>,
    pub registry: Arc<CallRegistry>,
    pub budget: RestartBudget,
    /// This process's membership: the member calls are taken for.
    pub membership: Arc<Membership>,
    /// Calls lost and taken back while their old actor was still stopping:
    /// started once it is gone.
    pub taken_back: HashMap<MeetingId, Claimed>,
    pub running: HashMap<MeetingId, RunningCall>,
    pub analyses: HashMap<MeetingId, RunningAnalysis>,
    pub by_actor: HashMap<ActorId, (MeetingId, ChildKind)>,
    /// Calls being finalized (by their actor or from the store).
    pub finalizing: HashSet<MeetingId>,
    /// Calls whose start or restart waits on the store.
    pub waiting: HashMap<MeetingId, Waiting>,
    /// Bounds the store work running at once.
    pub store_work: Arc<Semaphore>,
    /// Calls whose end is being routed (the store asked who owns them).
    pub routing: HashSet<MeetingId>,
    /// Waiting for `finalizing` to become empty (graceful shutdown).
    pub settled_waiters: Vec<RpcReplyPort<()>>,
    /// Asks the lease renewal task to renew at once.
    pub renew_now: Arc<Notify>,
    /// Work the supervisor started off its handlers (lease renewal,
    /// finalizations without an actor, verdicts). Dropped, and so aborted,
    /// with the supervisor's state, however the supervisor ends.
    tasks: JoinSet<()>,
}

impl SupervisorState {
    pub fn new(
        deps: Arc<CallDeps>,
        leases: Arc<dyn LeaseStore>,
        analysis: Arc<AnalysisDeps>,
        registry: Arc<CallRegistry>,
        budget: RestartBudget,
        membership: Arc<Membership>,
    ) -> Self {
        Self {
            deps,
            leases,
            analysis,
            registry,
            budget,
            membership,
            taken_back: HashMap::new(),
            running: HashMap::new(),
            analyses: HashMap::new(),
            by_actor: HashMap::new(),
            finalizing: HashSet::new(),
            waiting: HashMap::new(),
            store_work: Arc::new(Semaphore::new(STORE_TASKS)),
            routing: HashSet::new(),
            settled_waiters: Vec::new(),
            renew_now: Arc::new(Notify::new()),
            tasks: JoinSet::new(),
        }
    }

    /// Runs `work` in a task the supervisor owns.
    pub fn spawn_task(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        self.reap_tasks();
        self.tasks.spawn(work);
    }

    /// Collects tasks that have finished, so that the set holds only live ones.
    pub fn reap_tasks(&mut self) {
        while let Some(done) = self.tasks.try_join_next() {
            if let Err(error) = done
                && error.is_panic()
            {
                tracing::error!(%error, "a call supervisor task panicked");
            }
        }
    }

    /// Background tasks still running.
    pub fn tasks(&self) -> usize {
        self.tasks.len()
    }

    /// A call's finalization is done: wake whoever waits for none to be left.
    pub fn finalized(&mut self, meeting: MeetingId) {
        self.finalizing.remove(&meeting);
        self.wake_if_settled();
    }

    /// No call is being finalized, and no end is on its way to one (being
    /// routed, or waiting for a call's actor to start).
    pub fn is_settled(&self) -> bool {
        self.finalizing.is_empty()
            && self.routing.is_empty()
            && !self.waiting.values().any(|w| w.end.is_some())
    }

    /// Answers who waits for [`Self::is_settled`], once it holds.
    pub fn wake_if_settled(&mut self) {
        if self.is_settled() {
            for waiter in self.settled_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// The live-actor gauges, after every message.
    pub fn publish(&self) {
        metrics::gauge!(crate::metrics::LIVE_ACTORS, "kind" => "meeting")
            .set(self.running.len() as f64);
        metrics::gauge!(crate::metrics::LIVE_ACTORS, "kind" => "analysis")
            .set(self.analyses.len() as f64);
    }
}
