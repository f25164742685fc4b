//! AnalysisActor: one per ended call, started by the CallSupervisor the
//! moment the call is finalized (no queue, no poll). Its analysis runs in a
//! task of its own (so the actor keeps answering while the model thinks),
//! waits for one of a bounded number of permits, loads the call, runs the
//! analyzer and saves the results (or the failure). A killed actor aborts
//! its task; the supervisor restarts it and the heir resumes the same
//! durable job.
//!
//! - [`job`]: the analysis itself, its shared deps, its errors.

pub mod job;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::call_log::Stage;
use crate::domain::AnalysisStage;
use crate::ids::MeetingId;
use crate::ports::error_chain;
use crate::snapshot::{ActorKind, ActorSnapshot, ActorState, SocketState};
use job::{AnalysisDeps, Job, RunError};

pub enum AnalysisMsg {
    Run,
    /// The analysis task finished; its outcome is in the store.
    Done(Result<(), RunError>),
    Snapshot(RpcReplyPort<ActorSnapshot>),
}

pub struct AnalysisActor;

pub struct AnalysisArgs {
    pub meeting: MeetingId,
    pub deps: Arc<AnalysisDeps>,
    pub incarnation: u32,
    pub restart_reason: Option<String>,
}

pub struct AnalysisState {
    job: Arc<Job>,
    incarnation: u32,
    started: Instant,
    task: Option<JoinHandle<()>>,
}

/// The task dies with the actor, however the actor goes.
impl Drop for AnalysisState {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Actor for AnalysisActor {
    type Msg = AnalysisMsg;
    type State = AnalysisState;
    type Arguments = AnalysisArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AnalysisMsg>,
        args: AnalysisArgs,
    ) -> Result<AnalysisState, ActorProcessingErr> {
        let job = Arc::new(Job::new(args.meeting, args.deps));
        job.stage(match args.restart_reason {
            None => Stage::new(AnalysisStage::AnalysisActorStarted),
            Some(reason) => Stage {
                incarnation: Some(args.incarnation),
                reason: Some(reason),
                ..Stage::new(AnalysisStage::AnalysisActorRestarted)
            },
        });
        myself.cast(AnalysisMsg::Run)?;
        Ok(AnalysisState {
            job,
            incarnation: args.incarnation,
            started: Instant::now(),
            task: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<AnalysisMsg>,
        message: AnalysisMsg,
        state: &mut AnalysisState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AnalysisMsg::Run => {
                let job = state.job.clone();
                let me = myself.clone();
                let span = crate::meeting_span!(
                    job.meeting,
                    "analysis",
                    incarnation = state.incarnation,
                    outcome = tracing::field::Empty
                );
                state.task = Some(tokio::spawn(
                    async move {
                        let outcome = job.run().await;
                        let _ = me.cast(AnalysisMsg::Done(outcome));
                    }
                    .instrument(span),
                ));
            }
            AnalysisMsg::Done(outcome) => {
                state.task = None;
                // A store error is worth a restart (and, past the budget, a verdict).
                outcome.map_err(|e| {
                    format!(
                        "analysis of meeting {} did not finish: {}",
                        state.job.meeting,
                        error_chain(&e)
                    )
                })?;
                myself.drain()?;
            }
            AnalysisMsg::Snapshot(reply) => {
                let _ = reply.send(ActorSnapshot {
                    kind: ActorKind::Analysis,
                    meeting_id: state.job.meeting,
                    state: ActorState::Analysis(state.job.phase()),
                    uptime_ms: u64::try_from(state.started.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                    restarts: state.incarnation,
                    next_sequence: 0,
                    unflushed: 0,
                    socket: SocketState::NoSocket,
                    error: None,
                });
            }
        }
        Ok(())
    }
}
