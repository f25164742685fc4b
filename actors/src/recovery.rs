//! Recovery: starts an actor for every `active` call this process may run
//! and every analysis that has not finished (at startup, and after the
//! guardian replaced a dead supervisor). Calls another instance holds are
//! left to it.

use futures::StreamExt;

use crate::ids::MeetingId;
use crate::ports::{AnalysisStore, CallStore, error_chain};
use crate::supervisor::handle::Calls;

/// Adoptions asked of the supervisor at once.
pub const ADOPTING_AT_ONCE: usize = crate::supervisor::state::STORE_TASKS;

/// What a recovery found to do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub adopted: usize,
    pub analyses: usize,
}

pub async fn recover(
    calls: &Calls,
    store: &dyn CallStore,
    analyses: &dyn AnalysisStore,
    reason: &str,
) -> Recovered {
    let mut recovered = Recovered::default();
    match store.active_meetings().await {
        Ok(meetings) => {
            // Several at once (the supervisor bounds the store work); a
            // thousand calls are not adopted one round trip after another.
            let adopted = futures::stream::iter(meetings)
                .map(|meeting| async move {
                    match calls.adopt(meeting, reason).await {
                        Ok(outcome) => {
                            tracing::debug!(%meeting, ?outcome, "active call considered");
                            1
                        }
                        Err(error) => {
                            tracing::error!(%meeting, error = %error_chain(&error), "active meeting not adopted");
                            0
                        }
                    }
                })
                .buffer_unordered(ADOPTING_AT_ONCE)
                .fold(0, |n, one| async move { n + one })
                .await;
            recovered.adopted += adopted;
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "active meetings not listed; the lease renewal takes them over")
        }
    }
    match analyses.unfinished_analyses().await {
        Ok(meetings) => {
            for meeting in meetings {
                resume(calls, meeting, &mut recovered).await;
            }
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "unfinished analyses not listed")
        }
    }
    recovered
}

async fn resume(calls: &Calls, meeting: MeetingId, recovered: &mut Recovered) {
    match calls.analyze(meeting).await {
        Ok(_) => recovered.analyses += 1,
        Err(error) => {
            tracing::error!(%meeting, error = %error_chain(&error), "unfinished analysis not resumed")
        }
    }
}
