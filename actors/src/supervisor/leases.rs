//! Call ownership across instances. The supervisor renews its leases in a
//! task of its own (a slow database never blocks its handlers) and acts on
//! each report: it stops calls whose lease is gone, finalizes calls that
//! ended at another instance, and takes over calls nobody holds.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior};

use super::msg::SupervisorMsg;
use super::state::SupervisorState;
use crate::domain::EventKind;
use crate::ids::MeetingId;
use crate::ports::{LeaseReport, LeaseStore, error_chain};

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

/// Renews `config.owner`'s leases every `renew_every`, one renewal at a
/// time, and reports each to the supervisor. Ends when the supervisor does.
pub async fn renew_leases(
    store: Arc<dyn LeaseStore>,
    config: LeaseConfig,
    supervisor: ActorRef<SupervisorMsg>,
) {
    let mut tick = tokio::time::interval(config.renew_every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate: the supervisor has just started calls.
    tick.tick().await;
    loop {
        tick.tick().await;
        let began = Instant::now();
        match store.renew_leases(&config.owner, config.ttl).await {
            Ok(report) => {
                if supervisor
                    .cast(SupervisorMsg::LeasesRenewed { report, began })
                    .is_err()
                {
                    return;
                }
            }
            // The next tick tries again, well within the lease.
            Err(error) => tracing::warn!(error = %error_chain(&error), "leases not renewed"),
        }
    }
}

impl SupervisorState {
    pub async fn leases_renewed(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        report: LeaseReport,
        began: Instant,
    ) {
        tracing::trace!(owner = %self.owner, ?report, "leases renewed");
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
                    json!({ "owner": self.owner, "reason": "the lease expired or passed to another instance" }),
                );
            }
        }
        for (meeting, ended_at) in report.end_requested {
            if !self.end_live(meeting, ended_at)
                && !self.live.contains_key(&meeting)
                && !self.finalizing.contains(&meeting)
            {
                self.finalize_without_actor(myself, meeting, ended_at);
            }
        }
        for meeting in report.orphaned {
            if self.live.contains_key(&meeting) || self.finalizing.contains(&meeting) {
                continue;
            }
            let reason = Some(format!(
                "taken over by {}: the call's lease had expired",
                self.owner
            ));
            match self.start(myself, meeting, reason).await {
                Ok(outcome) => tracing::info!(%meeting, ?outcome, "orphaned call considered"),
                Err(error) => {
                    tracing::warn!(%meeting, error = %error_chain(&error), "orphaned call not taken over")
                }
            }
        }
    }
}
