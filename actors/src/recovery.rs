//! Recovery: starts an actor for every `active` call this member holds
//! with none running, and every analysis that has not finished (at
//! startup, and after the guardian replaced a dead supervisor). Calls
//! nobody live holds are taken by the membership task; calls another
//! instance holds are left to it.

use futures::StreamExt;

use crate::ids::MeetingId;
use crate::ports::{AnalysisStore, LeaseStore, error_chain};
use crate::supervisor::handle::Calls;
use crate::supervisor::leases::{Membership, take_all};

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
    leases: &dyn LeaseStore,
    membership: &Membership,
    ttl: std::time::Duration,
    analyses: &dyn AnalysisStore,
    reason: &str,
) -> Recovered {
    let mut recovered = Recovered::default();
    let member = &membership.get();
    // Calls nobody live holds (an earlier life of this instance's, a dead
    // instance's) are taken now, batch by batch, as the membership task
    // would at its next look.
    let took = take_all(leases, member, ttl, |claimed| {
        let n = claimed.len();
        match calls.take_claimed(claimed, reason) {
            Ok(()) => {
                recovered.adopted += n;
                true
            }
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "calls taken not started; the supervisor adopts them when it starts");
                false
            }
        }
    })
    .await;
    if let Err(error) = took {
        tracing::error!(error = %error_chain(&error), "calls nobody holds not taken; the membership task takes them");
    }
    // From now on the membership task takes what nobody holds.
    membership.open_takes();
    match leases.owned_calls(member).await {
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
            tracing::error!(error = %error_chain(&error), "this member's calls not listed")
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
