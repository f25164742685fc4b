//! AnalysisActor: one per ended call, started by the CallSupervisor the
//! moment the call is finalized (no queue, no poll). Its analysis runs in a
//! task of its own (so the actor keeps answering while the model thinks),
//! waits for one of a bounded number of permits, loads the call, runs the
//! analyzer and saves the results (or the failure). A killed actor aborts
//! its task; the supervisor restarts it and the heir resumes the same
//! durable job.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::ids::MeetingId;
use crate::meeting::{ActorSnapshot, CallDeps};
use crate::ports::{Analyzer, EventKind};

/// What analyses share: the analyzer, and the permits that bound how many
/// run at once (a slow LLM makes analyses wait, never pile up work).
pub struct AnalysisDeps {
    pub analyzer: Arc<dyn Analyzer>,
    pub permits: Arc<Semaphore>,
}

pub enum AnalysisMsg {
    Run,
    /// The analysis task finished; its outcome is in the store.
    Done(Result<(), String>),
    Snapshot(RpcReplyPort<ActorSnapshot>),
}

const STARTING: u8 = 0;
const WAITING: u8 = 1;
const RUNNING: u8 = 2;

pub struct AnalysisActor;

pub struct AnalysisArgs {
    pub meeting: MeetingId,
    pub calls: Arc<CallDeps>,
    pub analysis: Arc<AnalysisDeps>,
    pub incarnation: u32,
    pub restart_reason: Option<String>,
}

/// One analysis: what the task needs.
struct Job {
    meeting: MeetingId,
    calls: Arc<CallDeps>,
    analysis: Arc<AnalysisDeps>,
    phase: AtomicU8,
}

impl Job {
    fn stage(&self, stage: &str, mut detail: Value) {
        detail["stage"] = json!(stage);
        self.calls
            .log(self.meeting, EventKind::AnalysisStage, detail);
    }

    async fn run(&self) -> Result<(), String> {
        let began = Instant::now();
        self.phase.store(WAITING, Ordering::Relaxed);
        let _permit = self
            .analysis
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        self.phase.store(RUNNING, Ordering::Relaxed);
        let store = &self.calls.store;
        let Some(input) = store
            .begin_analysis(self.meeting)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let lines = input.lines.iter().filter(|(_, t)| !t.is_empty()).count();
        self.stage(
            "transcript_collected",
            json!({ "lines": lines, "run": input.run }),
        );
        if lines == 0 {
            self.stage(
                "empty_transcript",
                json!({ "warning": "the transcript is empty; analysing it anyway" }),
            );
        }
        let stage = |name: &str, detail: Value| self.stage(name, detail);
        let outcome = self.analysis.analyzer.analyze(&input, &stage).await;
        // The stages logged so far are committed before the verdict.
        let _ = self.calls.writer.flush().await;
        let meeting = self.meeting;
        match outcome {
            // The `results_saved` / `next_meeting_created` / `failed` stages
            // are written by the store in the same transaction.
            Ok(result) => {
                let next = store
                    .complete_analysis(meeting, &result)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(%meeting, next = ?next, "analysis completed");
                finished("completed", began);
            }
            Err(error) => {
                store
                    .fail_analysis(meeting, &error)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::warn!(%meeting, %error, "analysis failed");
                finished("failed", began);
            }
        }
        Ok(())
    }
}

fn finished(outcome: &'static str, began: Instant) {
    metrics::counter!(crate::metrics::ANALYSES, "outcome" => outcome).increment(1);
    metrics::histogram!(crate::metrics::ANALYSIS_SECONDS, "outcome" => outcome)
        .record(began.elapsed().as_secs_f64());
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
        let job = Arc::new(Job {
            meeting: args.meeting,
            calls: args.calls,
            analysis: args.analysis,
            phase: AtomicU8::new(STARTING),
        });
        match args.restart_reason {
            None => job.stage("analysis_actor_started", json!({})),
            Some(reason) => job.stage(
                "analysis_actor_restarted",
                json!({ "incarnation": args.incarnation, "reason": reason }),
            ),
        }
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
                state.task = Some(tokio::spawn(async move {
                    let outcome = job.run().await;
                    let _ = me.cast(AnalysisMsg::Done(outcome));
                }));
            }
            AnalysisMsg::Done(outcome) => {
                state.task = None;
                // A store error is worth a restart (and, past the budget, a verdict).
                outcome.map_err(|e| {
                    format!(
                        "analysis of meeting {} did not finish: {e}",
                        state.job.meeting
                    )
                })?;
                myself.drain()?;
            }
            AnalysisMsg::Snapshot(reply) => {
                let phase = match state.job.phase.load(Ordering::Relaxed) {
                    WAITING => "waiting",
                    RUNNING => "running",
                    _ => "starting",
                };
                let _ = reply.send(ActorSnapshot {
                    kind: "analysis",
                    meeting_id: state.job.meeting,
                    state: phase,
                    uptime_ms: u64::try_from(state.started.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                    restarts: state.incarnation,
                    next_sequence: 0,
                    unflushed: 0,
                    socket: "none",
                });
            }
        }
        Ok(())
    }
}
