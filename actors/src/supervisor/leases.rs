//! Call ownership across instances. The supervisor renews its leases in a
//! task of its own (a slow database never blocks its handlers) and acts on
//! each report: it stops calls whose lease is gone, finalizes calls that
//! ended at another instance, and takes over calls nobody holds.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};

use super::msg::SupervisorMsg;
use super::state::SupervisorState;
use crate::call_log::CallEvent;
use crate::ids::MeetingId;
use crate::ports::{LeaseNews, LeaseReport, LeaseStore, error_chain};

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

/// How often calls nobody holds are looked for (at most; never less often
/// than leases are renewed): a dead instance's calls are taken over within
/// their lease plus this.
pub const ORPHAN_SCAN: Duration = Duration::from_secs(1);

/// Renews `config.owner`'s leases every `renew_every`, and looks for calls
/// nobody holds every [`ORPHAN_SCAN`] in between, one query at a time;
/// `renew_now` asks for a renewal at once. Reports each to the supervisor.
/// Ends when the supervisor does.
pub async fn renew_leases(
    store: Arc<dyn LeaseStore>,
    config: LeaseConfig,
    supervisor: ActorRef<SupervisorMsg>,
    renew_now: Arc<Notify>,
) {
    let scan = config.renew_every.min(ORPHAN_SCAN);
    // Every so many looks is a renewal.
    let looks_per_renewal = (config.renew_every.as_millis() / scan.as_millis().max(1)).max(1);
    let mut tick = tokio::time::interval(scan);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate: the supervisor has just started calls.
    tick.tick().await;
    let mut looks = 0;
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => false,
            () = renew_now.notified() => true,
        };
        looks += 1;
        let began = Instant::now();
        let message = if asked || looks >= looks_per_renewal {
            match store.renew_leases(&config.owner, config.ttl).await {
                Ok(report) => {
                    looks = 0;
                    SupervisorMsg::LeasesRenewed { report, began }
                }
                // The next tick tries again, well within the lease.
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "leases not renewed");
                    continue;
                }
            }
        } else {
            match store.orphaned_calls(config.ttl).await {
                Ok(orphaned) if orphaned.is_empty() => continue,
                Ok(orphaned) => SupervisorMsg::Orphaned(orphaned),
                Err(error) => {
                    tracing::debug!(error = %error_chain(&error), "no look for calls nobody holds");
                    continue;
                }
            }
        };
        if supervisor.cast(message).is_err() {
            return;
        }
    }
}

/// Passes what other instances tell this one to the supervisor, as it comes.
pub async fn forward_news(
    mut news: tokio::sync::mpsc::Receiver<LeaseNews>,
    supervisor: ActorRef<SupervisorMsg>,
) {
    while let Some(item) = news.recv().await {
        if supervisor.cast(SupervisorMsg::LeaseNews(item)).is_err() {
            return;
        }
    }
}

impl SupervisorState {
    pub fn leases_renewed(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        report: LeaseReport,
        began: Instant,
    ) {
        tracing::trace!(owner = %self.owner, ?report, "leases renewed");
        // A call started after the renewal read its leases is missing from
        // the report because it is new, not because its lease is gone.
        let lost: Vec<MeetingId> = self
            .running
            .iter()
            .filter(|(m, c)| !c.ending && c.since < began && !report.owned.contains(m))
            .map(|(m, _)| *m)
            .collect();
        for meeting in lost {
            if let Some(entry) = self.running.get_mut(&meeting) {
                tracing::warn!(%meeting, "call's lease is gone; stopping its actor here");
                entry.lease_lost = true;
                entry.actor.kill();
                self.deps.log(
                    meeting,
                    CallEvent::LeaseLost {
                        owner: self.owner.clone(),
                        reason: "the lease expired or passed to another instance".into(),
                    },
                );
            }
        }
        for (meeting, ended_at) in report.end_requested {
            self.ended_elsewhere(myself, meeting, ended_at);
        }
        self.take_over(myself, report.orphaned);
    }

    /// What another instance said, acted on at once.
    pub fn lease_news(&mut self, myself: &ActorRef<SupervisorMsg>, news: LeaseNews) {
        tracing::debug!(owner = %self.owner, ?news, "lease news");
        match news {
            LeaseNews::EndRequested { meeting, at } => self.ended_elsewhere(myself, meeting, at),
            LeaseNews::Released | LeaseNews::Missed => self.renew_now.notify_one(),
        }
    }
}
