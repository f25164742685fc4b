//! CallSupervisor: starts one MeetingActor per live meeting, restarts one
//! that dies while its meeting is still `active` (after the old instance's
//! termination event, within a restart budget), and routes the end of a call
//! to its actor, or finalizes from stored state when no actor is live.
//!
//! It overrides ractor's default supervision (which would stop the
//! supervisor, and every other call with it, when one child exits).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde_json::json;

use crate::analysis::{AnalysisActor, AnalysisArgs, AnalysisDeps, AnalysisMsg};
use crate::domain::MeetingStatus;
use crate::guardian::CurrentSupervisor;
use crate::ids::MeetingId;
use crate::meeting::shared::SharedCall;
use crate::meeting::{
    ActorSnapshot, CallDeps, MeetingActor, MeetingArgs, MeetingMsg, finalize_in_store,
};
use crate::ports::{CallContext, EventKind};
use crate::writer::ChunkWriter;

/// At most `max_restarts` restarts of one meeting's actor within `window`.
#[derive(Debug, Clone, Copy)]
pub struct RestartBudget {
    pub max_restarts: usize,
    pub window: Duration,
}

impl RestartBudget {
    /// Counts one more death of `what` against the budget. `Err` (a
    /// human-readable verdict) when the budget is spent: no restart.
    fn spend(&self, restarts: &mut VecDeque<Instant>, what: &str, why: &str) -> Result<(), String> {
        let now = Instant::now();
        restarts.retain(|t| now.duration_since(*t) < self.window);
        if restarts.len() >= self.max_restarts {
            return Err(format!(
                "{what} died {} times within {} s (last: {why}); gave up restarting it",
                restarts.len() + 1,
                self.window.as_secs()
            ));
        }
        restarts.push_back(now);
        Ok(())
    }
}

impl Default for RestartBudget {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// The per-call state that must outlive actors, the supervisor included.
#[derive(Default)]
pub struct CallRegistry {
    calls: Mutex<HashMap<MeetingId, Arc<SharedCall>>>,
}

impl CallRegistry {
    fn get_or_insert(&self, meeting: MeetingId, next_sequence: i64) -> Arc<SharedCall> {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls
            .entry(meeting)
            .or_insert_with(|| Arc::new(SharedCall::new(meeting, next_sequence)))
            .clone()
    }

    fn get(&self, meeting: MeetingId) -> Option<Arc<SharedCall>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&meeting)
            .cloned()
    }

    fn remove(&self, meeting: MeetingId) -> Option<Arc<SharedCall>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&meeting)
    }

    fn all(&self) -> Vec<Arc<SharedCall>> {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.values().cloned().collect()
    }

    /// At shutdown, once the actors are gone: ends every call's realtime
    /// session (open lines become `partial` / `transcription_failed`) and
    /// hands every line to the writer, waiting up to `patience` for room.
    /// Returns how many lines the writer could not take.
    pub async fn end_all_sessions(&self, writer: &ChunkWriter, patience: Duration) -> usize {
        let calls = self.all();
        for call in &calls {
            call.end_session(writer);
        }
        let deadline = Instant::now() + patience;
        loop {
            let left: usize = calls
                .iter()
                .filter(|c| c.flush_backlog(writer))
                .map(|c| c.unflushed())
                .sum();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOutcome {
    /// The live actor is finalizing the call.
    Finalizing,
    /// No actor was live: finalizing from the stored state.
    FinalizingFromStore,
    /// Another instance owns the call: it was told through the database.
    Forwarded,
}

/// How this instance holds calls: its name in the leases, how long a lease
/// lasts, and how often leases are renewed (and orphans looked for).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub owner: String,
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            ttl: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
        }
    }
}

/// Every live actor: meeting actors, then analysis actors.
pub type LiveActors = (Vec<ActorRef<MeetingMsg>>, Vec<ActorRef<AnalysisMsg>>);

pub enum SupervisorMsg {
    StartCall {
        meeting: MeetingId,
        /// Why an actor is started for a call that may have had one before
        /// (e.g. adoption after a process restart), for the event log.
        reason: Option<String>,
        reply: RpcReplyPort<Result<StartOutcome, String>>,
    },
    EndCall {
        meeting: MeetingId,
        ended_at: DateTime<Utc>,
        reply: RpcReplyPort<EndOutcome>,
    },
    Actors(RpcReplyPort<LiveActors>),
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
    /// A finalization without an actor is done.
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
    /// Renew leases (in a task of its own, so that a slow database never
    /// blocks the supervisor), then act on the report.
    LeaseTick,
    /// The renewal's report: stop calls whose lease is gone; finalize calls
    /// that ended elsewhere; take over calls nobody holds.
    LeasesRenewed(crate::ports::LeaseReport),
    /// The renewal failed; the next tick tries again.
    LeasesNotRenewed,
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

pub struct CallSupervisor;

#[derive(Clone)]
pub struct SupervisorArgs {
    pub deps: Arc<CallDeps>,
    pub analysis: Arc<AnalysisDeps>,
    pub registry: Arc<CallRegistry>,
    pub budget: RestartBudget,
    pub lease: LeaseConfig,
    /// Where background work finds the live supervisor (it may be replaced).
    pub current: Arc<CurrentSupervisor>,
}

struct LiveCall {
    actor: ActorRef<MeetingMsg>,
    context: CallContext,
    incarnation: u32,
    restarts: VecDeque<Instant>,
    ending: bool,
    /// The lease went to another instance: stop, do not restart.
    lease_lost: bool,
    /// When this actor was started (a lease report older than that may
    /// not list the call yet).
    since: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildKind {
    Meeting,
    Analysis,
}

struct LiveAnalysis {
    actor: ActorRef<AnalysisMsg>,
    incarnation: u32,
    restarts: VecDeque<Instant>,
}

pub struct SupervisorState {
    deps: Arc<CallDeps>,
    analysis: Arc<AnalysisDeps>,
    analyses: HashMap<MeetingId, LiveAnalysis>,
    registry: Arc<CallRegistry>,
    budget: RestartBudget,
    lease: LeaseConfig,
    current: Arc<CurrentSupervisor>,
    live: HashMap<MeetingId, LiveCall>,
    by_actor: HashMap<ActorId, (MeetingId, ChildKind)>,
    /// Calls being finalized (by their actor or from the store).
    finalizing: HashSet<MeetingId>,
    /// Waiting for `finalizing` to become empty (graceful shutdown).
    settled_waiters: Vec<RpcReplyPort<()>>,
    /// When the lease renewal under way began, if one is.
    renewal_began: Option<Instant>,
}

impl SupervisorState {
    /// Starts the meeting's AnalysisActor unless one is live.
    async fn start_analysis(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        incarnation: u32,
        restarts: VecDeque<Instant>,
        restart_reason: Option<String>,
    ) -> bool {
        if self.analyses.contains_key(&meeting) {
            return false;
        }
        let args = AnalysisArgs {
            meeting,
            calls: self.deps.clone(),
            analysis: self.analysis.clone(),
            incarnation,
            restart_reason,
        };
        match Actor::spawn_linked(None, AnalysisActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.by_actor
                    .insert(actor.get_id(), (meeting, ChildKind::Analysis));
                self.analyses.insert(
                    meeting,
                    LiveAnalysis {
                        actor,
                        incarnation,
                        restarts,
                    },
                );
                true
            }
            Err(error) => {
                // Only while the supervisor stops: the job stays pending in
                // the store, and the next start (or supervisor) resumes it.
                tracing::warn!(%meeting, %error, "analysis actor not started; its job stays pending");
                false
            }
        }
    }

    async fn on_analysis_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        why: String,
        expected: bool,
    ) {
        let Some(mut entry) = self.analyses.remove(&meeting) else {
            return;
        };
        if expected {
            // A retry may have queued the job again while this actor
            // finished. Asked in a task, as the lease renewal is: a query in
            // this handler would hold up every other call's messages while
            // it waits for a pool connection.
            let (store, me) = (self.deps.store.clone(), myself.clone());
            tokio::spawn(async move {
                if matches!(store.analysis_pending(meeting).await, Ok(true)) {
                    let _ = me.cast(SupervisorMsg::AnalysisPendingAgain { meeting });
                }
            });
            return;
        }
        if let Err(error) = self
            .budget
            .spend(&mut entry.restarts, "the analysis actor", &why)
        {
            self.deps.log(
                meeting,
                EventKind::RestartBudgetExhausted,
                json!({ "error": error, "kind": "analysis" }),
            );
            if let Err(e) = self.deps.store.fail_analysis(meeting, &error).await {
                tracing::error!(%meeting, error = %e, "could not mark the analysis failed");
            }
            return;
        }
        crate::metrics::restarted("analysis");
        self.start_analysis(
            myself,
            meeting,
            entry.incarnation + 1,
            entry.restarts,
            Some(why),
        )
        .await;
    }

    /// The live-actor gauges, after every message.
    fn publish(&self) {
        metrics::gauge!(crate::metrics::LIVE_ACTORS, "kind" => "meeting")
            .set(self.live.len() as f64);
        metrics::gauge!(crate::metrics::LIVE_ACTORS, "kind" => "analysis")
            .set(self.analyses.len() as f64);
    }

    fn finalized(&mut self, meeting: MeetingId) {
        self.finalizing.remove(&meeting);
        if self.finalizing.is_empty() {
            for waiter in self.settled_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        context: CallContext,
        incarnation: u32,
        restarts: VecDeque<Instant>,
        restart_reason: Option<String>,
    ) -> Result<(), String> {
        let meeting = context.meeting_id;
        let call = self.registry.get_or_insert(meeting, context.next_sequence);
        let args = MeetingArgs {
            context: context.clone(),
            call,
            deps: self.deps.clone(),
            incarnation,
            restart_reason,
        };
        let (actor, _) = Actor::spawn_linked(None, MeetingActor, args, myself.get_cell())
            .await
            .map_err(|e| format!("meeting actor did not start: {e}"))?;
        self.by_actor
            .insert(actor.get_id(), (meeting, ChildKind::Meeting));
        self.live.insert(
            meeting,
            LiveCall {
                actor,
                context,
                incarnation,
                restarts,
                ending: false,
                lease_lost: false,
                since: Instant::now(),
            },
        );
        Ok(())
    }

    async fn start(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        reason: Option<String>,
    ) -> Result<StartOutcome, String> {
        if self.live.contains_key(&meeting) {
            return Ok(StartOutcome::AlreadyRunning);
        }
        let context = match self.deps.store.call_context(meeting).await {
            Ok(Some(context)) => context,
            Ok(None) => return Ok(StartOutcome::NotFound),
            Err(e) => return Err(e.to_string()),
        };
        if context.status != MeetingStatus::Active {
            return Ok(StartOutcome::NotActive(context.status));
        }
        let leased = self
            .deps
            .store
            .acquire_lease(meeting, &self.lease.owner, self.lease.ttl)
            .await
            .map_err(|e| e.to_string())?;
        if !leased {
            return Ok(StartOutcome::OwnedElsewhere);
        }
        if context.lease_unreleased && self.registry.get(meeting).is_none() {
            // The process that ran the call died without a shutdown, and
            // its unwritten lines died with it: numbers past the stored
            // high-water mark were never reported, so say where the hole is.
            let after = context.next_sequence - 1;
            self.deps.log(
                meeting,
                EventKind::PossibleGap,
                json!({
                    "after": after,
                    "reason": format!("the process that ran this call stopped without a shutdown: lines it read after number {after} and had not committed may be missing"),
                }),
            );
        }
        if let Some(ended_at) = context.end_requested_at {
            self.finalize_without_actor(meeting, ended_at);
            return Ok(StartOutcome::Ending);
        }
        self.spawn(myself, context, 0, VecDeque::new(), reason)
            .await?;
        Ok(StartOutcome::Started)
    }

    fn finalize_without_actor(&mut self, meeting: MeetingId, ended_at: DateTime<Utc>) {
        self.finalizing.insert(meeting);
        let deps = self.deps.clone();
        let registry = self.registry.clone();
        let current = self.current.clone();
        tokio::spawn(async move {
            if let Some(call) = registry.get(meeting) {
                call.end_session(&deps.writer);
                while call.flush_backlog(&deps.writer) {
                    tokio::time::sleep(deps.config.backlog_retry).await;
                }
            }
            let done = finalize_in_store(&deps, meeting, ended_at).await;
            registry.remove(meeting);
            // To the live supervisor, which may have replaced this one: a
            // replacement started after this commit finds the job anyway.
            current.cast(SupervisorMsg::Finalized { meeting });
            tracing::info!(%meeting, lines = done.lines, lost = done.lost.len(), "call finalized without a live actor");
        });
    }

    fn end_live(&mut self, meeting: MeetingId, ended_at: DateTime<Utc>) -> bool {
        match self.live.get_mut(&meeting) {
            Some(entry)
                if !entry.ending && entry.actor.cast(MeetingMsg::Finalize { ended_at }).is_ok() =>
            {
                entry.ending = true;
                self.finalizing.insert(meeting);
                true
            }
            _ => false,
        }
    }

    fn lease_tick(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.renewal_began.is_some() {
            return;
        }
        self.renewal_began = Some(Instant::now());
        let (store, owner, ttl) = (
            self.deps.store.clone(),
            self.lease.owner.clone(),
            self.lease.ttl,
        );
        let myself = myself.clone();
        tokio::spawn(async move {
            let message = match store.renew_leases(&owner, ttl).await {
                Ok(report) => SupervisorMsg::LeasesRenewed(report),
                Err(error) => {
                    tracing::warn!(%error, "leases not renewed");
                    SupervisorMsg::LeasesNotRenewed
                }
            };
            let _ = myself.cast(message);
        });
    }

    async fn leases_renewed(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        report: crate::ports::LeaseReport,
    ) {
        let began = self.renewal_began.take().unwrap_or_else(Instant::now);
        tracing::trace!(owner = %self.lease.owner, ?report, "leases renewed");
        // A call started after the renewal read its leases is missing from
        // the report because it is new, not because its lease is gone.
        let lost: Vec<MeetingId> = self
            .live
            .iter()
            .filter(|(m, c)| !c.ending && c.since < began && !report.owned.contains(m))
            .map(|(m, _)| *m)
            .collect();
        for meeting in lost {
            if let Some(entry) = self.live.get_mut(&meeting) {
                tracing::warn!(%meeting, "call's lease is gone; stopping its actor here");
                entry.lease_lost = true;
                entry.actor.kill();
                self.deps.log(
                    meeting,
                    EventKind::LeaseLost,
                    json!({ "owner": self.lease.owner, "reason": "the lease expired or passed to another instance" }),
                );
            }
        }
        for (meeting, ended_at) in report.end_requested {
            if !self.end_live(meeting, ended_at)
                && !self.live.contains_key(&meeting)
                && !self.finalizing.contains(&meeting)
            {
                self.finalize_without_actor(meeting, ended_at);
            }
        }
        for meeting in report.orphaned {
            if self.live.contains_key(&meeting) || self.finalizing.contains(&meeting) {
                continue;
            }
            let reason = Some(format!(
                "taken over by {}: the call's lease had expired",
                self.lease.owner
            ));
            match self.start(myself, meeting, reason).await {
                Ok(outcome) => tracing::info!(%meeting, ?outcome, "orphaned call considered"),
                Err(error) => tracing::warn!(%meeting, %error, "orphaned call not taken over"),
            }
        }
    }

    async fn on_child_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: ActorId,
        why: String,
        expected: bool,
    ) {
        let Some((meeting, kind)) = self.by_actor.remove(&id) else {
            return;
        };
        if kind == ChildKind::Analysis {
            self.on_analysis_exit(myself, meeting, why, expected).await;
            return;
        }
        let Some(mut entry) = self.live.remove(&meeting) else {
            return;
        };
        if entry.lease_lost {
            self.registry.remove(meeting);
            return;
        }
        if entry.ending {
            if expected {
                self.registry.remove(meeting);
                self.finalized(meeting);
                // The hand-off: analysis starts now, no queue in between.
                self.start_analysis(myself, meeting, 0, VecDeque::new(), None)
                    .await;
            } else {
                // Died while finalizing: finish the job from what is stored and shared.
                self.finalize_without_actor(meeting, Utc::now());
            }
            return;
        }
        tracing::warn!(%meeting, reason = %why, "meeting actor died; considering a restart");
        if let Err(error) = self
            .budget
            .spend(&mut entry.restarts, "the call's actor", &why)
        {
            self.deps.log(
                meeting,
                EventKind::RestartBudgetExhausted,
                json!({ "error": error }),
            );
            let store = self.deps.store.clone();
            let call = self.registry.remove(meeting);
            let writer = self.deps.writer.clone();
            tokio::spawn(async move {
                if let Some(call) = call {
                    call.end_session(&writer);
                    while call.flush_backlog(&writer) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                // Lines and the event log first, then the verdict.
                let _ = writer.flush().await;
                if let Err(e) = store.fail(meeting, &error).await {
                    tracing::error!(%meeting, error = %e, "could not mark the meeting failed");
                }
            });
            return;
        }
        // Only a definite answer stops the restart: with the database out
        // of reach the call is still live and its lines wait in memory.
        let over = match self.deps.store.call_context(meeting).await {
            Ok(Some(CallContext { status, .. })) => status != MeetingStatus::Active,
            Ok(None) => true,
            Err(error) => {
                tracing::warn!(%meeting, %error, "call state unknown; restarting its actor anyway");
                false
            }
        };
        if over {
            self.registry.remove(meeting);
            return;
        }
        let incarnation = entry.incarnation + 1;
        crate::metrics::restarted("meeting");
        if let Err(error) = self
            .spawn(
                myself,
                entry.context,
                incarnation,
                entry.restarts,
                Some(why),
            )
            .await
        {
            tracing::error!(%meeting, %error, "meeting actor could not be restarted");
        }
    }
}

impl Actor for CallSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn post_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(state.lease.renew_every, || SupervisorMsg::LeaseTick);
        Ok(())
    }

    async fn pre_start(
        &self,
        _: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            deps: args.deps,
            analysis: args.analysis,
            analyses: HashMap::new(),
            registry: args.registry,
            budget: args.budget,
            lease: args.lease,
            current: args.current,
            live: HashMap::new(),
            by_actor: HashMap::new(),
            finalizing: HashSet::new(),
            settled_waiters: Vec::new(),
            renewal_began: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartCall {
                meeting,
                reason,
                reply,
            } => {
                let outcome = state.start(&myself, meeting, reason).await;
                let _ = reply.send(outcome);
            }
            SupervisorMsg::EndCall {
                meeting,
                ended_at,
                reply,
            } => {
                let live_ending = state.live.get(&meeting).map(|entry| entry.ending);
                let outcome = match live_ending {
                    Some(true) => EndOutcome::Finalizing,
                    Some(false) if state.end_live(meeting, ended_at) => EndOutcome::Finalizing,
                    _ if state.finalizing.contains(&meeting) => EndOutcome::FinalizingFromStore,
                    _ => {
                        let forwarded = state
                            .deps
                            .store
                            .request_end(meeting, &state.lease.owner, ended_at)
                            .await;
                        if matches!(forwarded, Ok(true)) {
                            EndOutcome::Forwarded
                        } else {
                            state.finalize_without_actor(meeting, ended_at);
                            EndOutcome::FinalizingFromStore
                        }
                    }
                };
                let _ = reply.send(outcome);
            }
            SupervisorMsg::Finalized { meeting } => {
                state.finalized(meeting);
                state
                    .start_analysis(&myself, meeting, 0, VecDeque::new(), None)
                    .await;
            }
            SupervisorMsg::AnalysisPendingAgain { meeting } => {
                state
                    .start_analysis(&myself, meeting, 0, VecDeque::new(), None)
                    .await;
            }
            SupervisorMsg::Analyze { meeting, reply } => {
                let started = state
                    .start_analysis(&myself, meeting, 0, VecDeque::new(), None)
                    .await;
                let _ = reply.send(started);
            }
            SupervisorMsg::KillAnalysis { meeting, reply } => {
                let found = state
                    .analyses
                    .get(&meeting)
                    .map(|a| a.actor.kill())
                    .is_some();
                let _ = reply.send(found);
            }
            SupervisorMsg::LeaseTick => state.lease_tick(&myself),
            SupervisorMsg::LeasesRenewed(report) => state.leases_renewed(&myself, report).await,
            SupervisorMsg::LeasesNotRenewed => state.renewal_began = None,
            SupervisorMsg::WhenSettled(reply) => {
                if state.finalizing.is_empty() {
                    let _ = reply.send(());
                } else {
                    state.settled_waiters.push(reply);
                }
            }
            SupervisorMsg::Actors(reply) => {
                let meetings = state.live.values().map(|c| c.actor.clone()).collect();
                let analyses = state.analyses.values().map(|a| a.actor.clone()).collect();
                let _ = reply.send((meetings, analyses));
            }
            SupervisorMsg::Kill { meeting, reply } => {
                let found = state.live.get(&meeting).map(|c| c.actor.kill()).is_some();
                let _ = reply.send(found);
            }
            SupervisorMsg::Panic { meeting, reply } => {
                let found = state
                    .live
                    .get(&meeting)
                    .is_some_and(|c| c.actor.cast(MeetingMsg::Panic).is_ok());
                let _ = reply.send(found);
            }
        }
        state.publish();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, last_state, reason) => {
                // The dead actor's state (its socket and reader) goes first,
                // so no old reader runs beside the heir.
                drop(last_state);
                let killed = reason.as_deref() == Some("killed");
                let why = reason.unwrap_or_else(|| "stopped".into());
                state
                    .on_child_exit(&myself, cell.get_id(), why, !killed)
                    .await;
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                state
                    .on_child_exit(&myself, cell.get_id(), format!("failed: {error}"), false)
                    .await;
            }
            _ => {}
        }
        state.publish();
        Ok(())
    }
}

/// A handle on the live supervisor with a timeout on every request.
#[derive(Clone)]
pub struct Calls {
    current: Arc<CurrentSupervisor>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    #[error("the call supervisor did not answer: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Store(String),
}

impl Calls {
    pub fn new(current: Arc<CurrentSupervisor>) -> Self {
        Self {
            current,
            timeout: Duration::from_secs(10),
        }
    }

    fn supervisor(&self) -> Result<ActorRef<SupervisorMsg>, CallsError> {
        self.current
            .get()
            .ok_or_else(|| CallsError::Unavailable("no call supervisor is running".into()))
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
            Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
            Ok(ractor::rpc::CallResult::Timeout) => {
                Err(CallsError::Unavailable("timed out".into()))
            }
            Ok(ractor::rpc::CallResult::SenderError) => {
                Err(CallsError::Unavailable("no reply".into()))
            }
            Err(e) => Err(CallsError::Unavailable(e.to_string())),
        }
    }

    pub async fn start(&self, meeting: MeetingId) -> Result<StartOutcome, CallsError> {
        self.ask(|reply| SupervisorMsg::StartCall {
            meeting,
            reason: None,
            reply,
        })
        .await?
        .map_err(CallsError::Store)
    }

    /// Starts an actor for a call found `active` with no actor here (at
    /// startup, or after the supervisor was replaced); `reason` goes to the
    /// event log.
    pub async fn adopt(
        &self,
        meeting: MeetingId,
        reason: &str,
    ) -> Result<StartOutcome, CallsError> {
        self.ask(|reply| SupervisorMsg::StartCall {
            meeting,
            reason: Some(reason.to_owned()),
            reply,
        })
        .await?
        .map_err(CallsError::Store)
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

    /// Waits (up to `patience`) until every call being finalized is done.
    pub async fn settled(&self, patience: Duration) -> Result<(), CallsError> {
        match self
            .supervisor()?
            .call(SupervisorMsg::WhenSettled, Some(patience))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(())) => Ok(()),
            Ok(_) => Err(CallsError::Unavailable(format!(
                "calls still finalizing after {patience:?}"
            ))),
            Err(e) => Err(CallsError::Unavailable(e.to_string())),
        }
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

    /// Snapshots of every live meeting actor (an actor that does not answer
    /// within a second is left out).
    pub async fn snapshots(&self) -> Result<Vec<ActorSnapshot>, CallsError> {
        let (meetings, analyses) = self.ask(SupervisorMsg::Actors).await?;
        let wait = Some(Duration::from_secs(1));
        let answer = |r: Result<ractor::rpc::CallResult<ActorSnapshot>, String>| match r {
            Ok(ractor::rpc::CallResult::Success(s)) => Some(s),
            _ => None,
        };
        let asks = meetings
            .iter()
            .map(|actor| {
                actor
                    .call(MeetingMsg::Snapshot, wait)
                    .map(move |r| answer(r.map_err(|e| e.to_string())))
                    .boxed()
            })
            .chain(analyses.iter().map(|actor| {
                actor
                    .call(AnalysisMsg::Snapshot, wait)
                    .map(move |r| answer(r.map_err(|e| e.to_string())))
                    .boxed()
            }));
        Ok(futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect())
    }
}
