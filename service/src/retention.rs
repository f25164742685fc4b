//! Retention (`SCRIBE_RETENTION_DAYS`): meetings that ended longer ago
//! than that are deleted as `DELETE /api/meetings/{id}` deletes one, by a
//! background sweep in batches of [`DELETE_AT_ONCE`] (one transaction
//! each), one instance at a time when several share the database (the
//! sweep is claimed in the `upkeep` table for one period). Unset: nothing
//! is deleted by age.
//!
//! A meeting's age is counted from the end of its call, or, for one that
//! never had a call (cancelled), from its last change; only finished
//! meetings (`completed`, `failed`, `cancelled`) age out. The sweep also
//! finishes an agent's deletion that a crash cut short.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use crate::service::CallService;
use crate::store::{DELETE_AT_ONCE, Erased, Store, StoreError};

/// The name the sweep is claimed by in `upkeep`.
pub const SWEEP: &str = "retention";

/// How long meetings are kept, and how often the sweep runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep: Duration,
    pub every: Duration,
}

impl Retention {
    /// Meetings are kept `days` days; the sweep runs every 10 minutes.
    pub fn days(days: u32) -> Self {
        Self {
            keep: Duration::from_secs(u64::from(days) * 86_400),
            every: Duration::from_secs(600),
        }
    }

    /// The oldest end kept at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::from_std(self.keep).unwrap_or(chrono::Duration::MAX)
    }
}

/// Deletes every meeting past retention at `now`, batch by batch, and
/// ends what still runs of each batch (`service`) as soon as it commits;
/// returns what it deleted. `now` is the caller's (tests pass a later one).
pub async fn sweep(
    store: &Store,
    retention: &Retention,
    now: DateTime<Utc>,
    service: Option<&CallService>,
) -> Result<Vec<Erased>, StoreError> {
    let cutoff = retention.cutoff(now);
    let mut erased = Vec::new();
    loop {
        let batch = store.expired_meetings(cutoff, DELETE_AT_ONCE).await?;
        let full = batch.len() >= DELETE_AT_ONCE;
        let deleted = store.erase(&batch).await?;
        if let Some(service) = service {
            // A live call of a deleted agent's meeting ends here too.
            service.cut_off(&deleted).await;
        }
        metrics::counter!(crate::metrics::MEETINGS_DELETED, "by" => "retention")
            .increment(deleted.len() as u64);
        erased.extend(deleted);
        if !full {
            return Ok(erased);
        }
        // Other work between batches.
        tokio::task::yield_now().await;
    }
}

/// One period of the background sweep for `holder`: claims it, and sweeps
/// when the claim is this instance's. Counts the outcome.
pub async fn sweep_if_held(
    store: &Store,
    service: &CallService,
    holder: &str,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Option<usize>, StoreError> {
    let until = now + chrono::Duration::from_std(retention.every).unwrap_or(chrono::Duration::MAX);
    let outcome = async {
        if !store.claim_upkeep(SWEEP, holder, until).await? {
            return Ok(None);
        }
        let started = Instant::now();
        let erased = sweep(store, retention, now, Some(service)).await?;
        metrics::histogram!(crate::metrics::RETENTION_SECONDS)
            .record(started.elapsed().as_secs_f64());
        Ok(Some(erased.len()))
    }
    .await;
    let label = match &outcome {
        Ok(Some(_)) => "swept",
        Ok(None) => "held_elsewhere",
        Err(_) => "failed",
    };
    metrics::counter!(crate::metrics::RETENTION_SWEEPS, "outcome" => label).increment(1);
    if outcome.is_ok() {
        metrics::gauge!(crate::metrics::RETENTION_LAST).set(Utc::now().timestamp() as f64);
    }
    outcome
}

/// Runs the sweep at once and then every `retention.every`, until aborted.
pub fn spawn(
    store: Store,
    service: CallService,
    holder: String,
    retention: Retention,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(retention.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sweep_if_held(&store, &service, &holder, &retention, Utc::now()).await {
                Ok(Some(n)) => tracing::info!(deleted = n, "retention sweep"),
                Ok(None) => tracing::debug!("retention sweep held by another instance"),
                Err(error) => {
                    tracing::warn!(error = %scribe_actors::ports::error_chain(&error), "retention sweep failed; next period tries again");
                }
            }
        }
    })
}
