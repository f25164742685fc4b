//! The supervisor's analysis actors: start one per ended call, restart one
//! that dies within its budget, and give up with a verdict past it.

use ractor::{Actor, ActorRef};

use super::budget::Restarts;
use super::msg::SupervisorMsg;
use super::state::{ChildKind, RunningAnalysis, SupervisorState};
use crate::analysis::{AnalysisActor, AnalysisArgs};
use crate::call_log::CallEvent;
use crate::exit::ExitReason;
use crate::ids::MeetingId;
use crate::ports::error_chain;

impl SupervisorState {
    /// Starts the meeting's AnalysisActor unless one is live. True when it
    /// started one.
    pub async fn start_analysis(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        incarnation: u32,
        restarts: Restarts,
        restart_reason: Option<String>,
    ) -> bool {
        if self.analyses.contains_key(&meeting) {
            return false;
        }
        let args = AnalysisArgs {
            meeting,
            deps: self.analysis.clone(),
            incarnation,
            restart_reason,
        };
        match Actor::spawn_linked(None, AnalysisActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.by_actor
                    .insert(actor.get_id(), (meeting, ChildKind::Analysis));
                self.analyses.insert(
                    meeting,
                    RunningAnalysis {
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

    pub async fn on_analysis_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        meeting: MeetingId,
        why: ExitReason,
    ) {
        let Some(mut entry) = self.analyses.remove(&meeting) else {
            return;
        };
        if why.is_clean() {
            // A retry may have queued the job again while this actor
            // finished. Asked in a task, as the lease renewal is: a query in
            // this handler would hold up every other call's messages while
            // it waits for a pool connection.
            let (store, me) = (self.analysis.store.clone(), myself.clone());
            self.spawn_task(async move {
                if matches!(store.analysis_pending(meeting).await, Ok(true)) {
                    let _ = me.cast(SupervisorMsg::AnalysisPendingAgain { meeting });
                }
            });
            return;
        }
        if let Err(spent) = entry
            .restarts
            .spend(&self.budget, "the analysis actor", &why)
        {
            let error = spent.to_string();
            self.deps.log(
                meeting,
                CallEvent::RestartBudgetExhausted {
                    error: error.clone(),
                    kind: Some("analysis".into()),
                },
            );
            let store = self.analysis.store.clone();
            self.spawn_task(async move {
                if let Err(e) = store.fail_analysis(meeting, &error, None).await {
                    tracing::error!(%meeting, error = %error_chain(&e), "could not mark the analysis failed");
                }
            });
            return;
        }
        crate::metrics::restarted("analysis");
        self.start_analysis(
            myself,
            meeting,
            entry.incarnation + 1,
            entry.restarts,
            Some(why.to_string()),
        )
        .await;
    }
}
