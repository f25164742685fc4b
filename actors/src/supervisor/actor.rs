//! CallSupervisor, the actor: its message loop and its supervision of its
//! children. It overrides ractor's default supervision (which would stop the
//! supervisor, and every other call with it, when one child exits).

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::budget::{RestartBudget, Restarts};
use super::current::CurrentSupervisor;
use super::leases::{Keeping, LeaseConfig, Membership, forward_news, keep_membership};
use super::msg::SupervisorMsg;
use super::registry::CallRegistry;
use super::state::{ChildKind, SupervisorState};
use crate::analysis::job::AnalysisDeps;
use crate::exit::ExitReason;
use crate::meeting::deps::CallDeps;
use crate::meeting::msg::MeetingMsg;
use crate::ports::LeaseStore;

pub struct CallSupervisor;

#[derive(Clone)]
pub struct SupervisorArgs {
    pub deps: Arc<CallDeps>,
    pub leases: Arc<dyn LeaseStore>,
    pub analysis: Arc<AnalysisDeps>,
    pub registry: Arc<CallRegistry>,
    pub budget: RestartBudget,
    pub lease: LeaseConfig,
    /// This process's membership (joined before the tree started).
    pub membership: Arc<Membership>,
    /// Where handles find the live supervisor (the guardian replaces a dead one).
    pub current: Arc<CurrentSupervisor>,
}

impl Actor for CallSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState::new(
            args.deps,
            args.leases.clone(),
            args.analysis,
            args.registry,
            args.budget,
            args.membership.clone(),
        );
        if let Some(news) = args.leases.lease_news(&args.lease.owner) {
            state.spawn_task(forward_news(news, myself.clone()));
        }
        let keeping = Keeping {
            store: args.leases,
            config: args.lease,
            membership: args.membership,
            supervisor: myself,
            renew_now: state.renew_now.clone(),
            fenced: state.deps.writer.fenced(),
        };
        state.spawn_task(keep_membership(keeping));
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.reap_tasks();
        match message {
            SupervisorMsg::StartCall {
                meeting,
                reason,
                reply,
            } => state.start(&myself, meeting, reason, Some(reply)),
            SupervisorMsg::Prepared {
                meeting,
                reason,
                prepared,
            } => state.prepared(&myself, meeting, reason, prepared).await,
            SupervisorMsg::RestartDecided {
                meeting,
                heir,
                over,
                member,
            } => {
                state
                    .restart_decided(&myself, meeting, heir, over, member)
                    .await
            }
            SupervisorMsg::EndRouted {
                meeting,
                ended_at,
                forwarded,
                replies,
            } => state.end_routed(&myself, meeting, ended_at, forwarded, replies),
            SupervisorMsg::EndCall {
                meeting,
                ended_at,
                reply,
            } => state.end(&myself, meeting, ended_at, vec![reply]),
            SupervisorMsg::Finalized { meeting } => {
                state.finalized(meeting);
                state
                    .start_analysis(&myself, meeting, 0, Restarts::default(), None)
                    .await;
            }
            SupervisorMsg::AnalysisPendingAgain { meeting } => {
                state
                    .start_analysis(&myself, meeting, 0, Restarts::default(), None)
                    .await;
            }
            SupervisorMsg::Analyze { meeting, reply } => {
                let started = state
                    .start_analysis(&myself, meeting, 0, Restarts::default(), None)
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
            SupervisorMsg::EndedElsewhere(ends) => {
                for (meeting, at) in ends {
                    state.ended_elsewhere(&myself, meeting, at);
                }
            }
            SupervisorMsg::Claimed { claimed, reason } => state.take_over(&myself, claimed, reason),
            SupervisorMsg::CallsLost(meetings) => state.calls_lost(
                meetings
                    .into_iter()
                    .map(|(m, lease)| (m, Some(lease)))
                    .collect(),
                "the store refused its writes: another instance holds the call",
            ),
            SupervisorMsg::MembershipLost(member) => state.membership_lost(&member),
            SupervisorMsg::LeaseNews(news) => state.lease_news(&myself, news),
            SupervisorMsg::WhenSettled(reply) => {
                if state.is_settled() {
                    let _ = reply.send(());
                } else {
                    state.settled_waiters.push(reply);
                }
            }
            SupervisorMsg::Actors(reply) => {
                let meetings = state.running.values().map(|c| c.actor.clone()).collect();
                let analyses = state.analyses.values().map(|a| a.actor.clone()).collect();
                let _ = reply.send((meetings, analyses));
            }
            SupervisorMsg::SessionsOpened { meeting, reply } => {
                let opened = state.registry.get(meeting).map(|c| c.sessions_opened());
                let _ = reply.send(opened);
            }
            SupervisorMsg::Forget { meeting, reply } => {
                let _ = reply.send(state.forget(meeting));
            }
            SupervisorMsg::Kill { meeting, reply } => {
                let found = state
                    .running
                    .get(&meeting)
                    .map(|c| c.actor.kill())
                    .is_some();
                let _ = reply.send(found);
            }
            SupervisorMsg::Panic { meeting, reply } => {
                let found = state
                    .running
                    .get(&meeting)
                    .is_some_and(|c| c.actor.cast(MeetingMsg::Panic).is_ok());
                let _ = reply.send(found);
            }
        }
        state.wake_if_settled();
        state.publish();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((id, why)) = ExitReason::of(&event) else {
            return Ok(());
        };
        // The dead actor's state (its socket and reader) goes first, so no
        // old reader runs beside the heir.
        drop(event);
        match state.by_actor.remove(&id) {
            Some((meeting, ChildKind::Meeting)) => {
                state.on_meeting_exit(&myself, meeting, why).await;
            }
            Some((meeting, ChildKind::Analysis)) => {
                state.on_analysis_exit(&myself, meeting, why).await;
            }
            None => {}
        }
        state.publish();
        Ok(())
    }
}
