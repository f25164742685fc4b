//! Recovery: starts an actor for every `active` call this process may run
//! and every analysis that has not finished (at startup, and after the
//! guardian replaced a dead supervisor). Calls another instance holds are
//! left to it.

use crate::ids::MeetingId;
use crate::ports::{AnalysisStore, CallStore, error_chain};
use crate::supervisor::handle::Calls;

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
            for meeting in meetings {
                match calls.adopt(meeting, reason).await {
                    Ok(outcome) => {
                        tracing::debug!(%meeting, ?outcome, "active call considered");
                        recovered.adopted += 1;
                    }
                    Err(error) => {
                        tracing::error!(%meeting, error = %error_chain(&error), "active meeting not adopted")
                    }
                }
            }
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
