//! One analysis, as its task runs it: wait for a permit, load the call,
//! ask the analyzer, save the results or the failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::call_log::{CallEvent, Stage};
use crate::domain::AnalysisStage;
use crate::ids::MeetingId;
use crate::ports::{AnalysisStore, Analyzer, PortError};
use crate::snapshot::AnalysisPhase;
use crate::writer::ChunkWriter;

/// What analyses share: the store, the analyzer, the writer for the event
/// log, and the permits that bound how many run at once (a slow LLM makes
/// analyses wait, never pile up work).
pub struct AnalysisDeps {
    pub store: Arc<dyn AnalysisStore>,
    pub analyzer: Arc<dyn Analyzer>,
    pub writer: ChunkWriter,
    pub permits: Arc<Semaphore>,
}

/// Why an analysis run did not reach a verdict (a model failure is a
/// verdict: the meeting is `failed` with it). The supervisor restarts the
/// actor, within its budget.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the analysis store failed")]
    Store(#[from] PortError),
    #[error("the analysis permits were closed")]
    PermitsClosed,
}

/// One analysis: what its task needs.
pub struct Job {
    pub meeting: MeetingId,
    pub deps: Arc<AnalysisDeps>,
    phase: AtomicU8,
}

impl Job {
    pub fn new(meeting: MeetingId, deps: Arc<AnalysisDeps>) -> Self {
        Self {
            meeting,
            deps,
            phase: AtomicU8::new(AnalysisPhase::Starting.as_u8()),
        }
    }

    pub fn phase(&self) -> AnalysisPhase {
        AnalysisPhase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    fn set_phase(&self, phase: AnalysisPhase) {
        self.phase.store(phase.as_u8(), Ordering::Relaxed);
    }

    /// Logs a stage in the meeting's event log.
    pub fn stage(&self, stage: Stage) {
        self.deps
            .writer
            .log(self.meeting, CallEvent::AnalysisStage(stage));
    }

    pub async fn run(&self) -> Result<(), RunError> {
        let began = Instant::now();
        self.set_phase(AnalysisPhase::Waiting);
        let queued = Queued::enter();
        let _permit = self
            .deps
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RunError::PermitsClosed)?;
        drop(queued);
        self.set_phase(AnalysisPhase::Running);
        let store = &self.deps.store;
        let Some(input) = store.begin_analysis(self.meeting).await? else {
            return Ok(());
        };
        let lines = input.lines.iter().filter(|(_, t)| !t.is_empty()).count();
        self.stage(Stage {
            lines: Some(lines),
            notes_through: input.notes.as_ref().map(|n| n.through_line),
            run: Some(input.run),
            ..Stage::new(AnalysisStage::TranscriptCollected)
        });
        if lines == 0 && input.notes.is_none() {
            self.stage(Stage {
                warning: Some("the transcript is empty; analysing it anyway".into()),
                ..Stage::new(AnalysisStage::EmptyTranscript)
            });
        }
        let log = |event: CallEvent| self.deps.writer.log(self.meeting, event);
        let outcome = self.deps.analyzer.analyze(&input, &log).await;
        // The stages logged so far are committed before the verdict.
        let _ = self.deps.writer.flush().await;
        let meeting = self.meeting;
        match outcome {
            // The `results_saved` / `next_meeting_created` / `failed` stages
            // are written by the store in the same transaction.
            Ok(result) => {
                let next = store.complete_analysis(meeting, &result).await?;
                tracing::info!(%meeting, next = ?next, "analysis completed");
                tracing::Span::current().record("outcome", "completed");
                finished("completed", began);
            }
            Err(error) => {
                store
                    .fail_analysis(meeting, &error.to_string(), Some(error.detail()))
                    .await?;
                tracing::warn!(%meeting, %error, detail = error.detail(), "analysis failed");
                tracing::Span::current().record("outcome", "failed");
                finished("failed", began);
            }
        }
        Ok(())
    }
}

/// An analysis waiting for a permit, counted on `scribe_analysis_queue`
/// until it has one or is dropped.
struct Queued;

impl Queued {
    fn enter() -> Self {
        metrics::gauge!(crate::metrics::ANALYSIS_QUEUE).increment(1.0);
        Self
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::ANALYSIS_QUEUE).decrement(1.0);
    }
}

fn finished(outcome: &'static str, began: Instant) {
    metrics::counter!(crate::metrics::ANALYSES, "outcome" => outcome).increment(1);
    metrics::histogram!(crate::metrics::ANALYSIS_SECONDS, "outcome" => outcome)
        .record(began.elapsed().as_secs_f64());
}
