//! Liveness and readiness probes, and the Prometheus scrape. Neither
//! `/readyz` nor `/metrics` touches the database: a background task
//! ([`Probe::run`]) checks it once a second and refreshes the meeting
//! counts, and the handlers serve what it found.

use scribe_actors::domain::MeetingStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::time::Instant;

use super::{ApiError, AppState};
use crate::store::Store;

/// How long the database has to answer a check.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the background task checks the database.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A check older than this means the checker itself is stuck: not ready.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// What the last database check found.
#[derive(Debug)]
pub struct Probe {
    ready: AtomicBool,
    checked_at: Mutex<Option<Instant>>,
    checks: AtomicU64,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            ready: AtomicBool::new(false),
            checked_at: Mutex::new(None),
            checks: AtomicU64::new(0),
        }
    }
}

impl Probe {
    /// Checks the database and refreshes the meeting counts every
    /// [`PROBE_EVERY`] (the first check is [`Probe::check`], made at
    /// startup), until the task is dropped.
    pub async fn run(self: Arc<Self>, store: Store) {
        let mut every = tokio::time::interval_at(Instant::now() + PROBE_EVERY, PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            every.tick().await;
            self.check(&store).await;
            // SQLite's log is checkpointed every half minute besides the
            // automatic checkpoints, so that it does not stay large.
            ticks += 1;
            if ticks.is_multiple_of(30)
                && let Err(error) = store.checkpoint().await
            {
                tracing::warn!(%error, "WAL checkpoint failed");
            }
        }
    }

    /// Database checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Acquire)
    }

    /// One check: the database answers within two seconds; the meeting
    /// counts are refreshed.
    pub async fn check(&self, store: &Store) {
        self.checks.fetch_add(1, Ordering::AcqRel);
        metrics::counter!(crate::metrics::PROBE_QUERIES).increment(1);
        let ready = matches!(
            tokio::time::timeout(READY_TIMEOUT, store.ping()).await,
            Ok(Ok(()))
        );
        if ready
            && let Ok(Ok(counts)) =
                tokio::time::timeout(READY_TIMEOUT, store.meeting_counts()).await
        {
            // A status no meeting has now reads 0, not its last count.
            let statuses = MeetingStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .chain(["deleted"]);
            for status in statuses {
                let count = counts
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!(crate::metrics::MEETINGS, "status" => status).set(count as f64);
            }
        }
        self.ready.store(ready, Ordering::Release);
        *self
            .checked_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Ready: the last check passed and is recent.
    fn is_ready(&self) -> bool {
        let fresh = self
            .checked_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() <= STALE_AFTER);
        fresh && self.ready.load(Ordering::Acquire)
    }
}

/// A probe's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeAnswer {
    /// `ok` (alive) or `ready`.
    status: &'static str,
}

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    operation_id = "healthz",
    responses((status = 200, description = "The process is up.", body = ProbeAnswer)),
)]
pub async fn healthz() -> Json<ProbeAnswer> {
    Json(ProbeAnswer { status: "ok" })
}

/// `GET /metrics`: Prometheus text, meetings by status as of the last
/// background check.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition.", body = String, content_type = "text/plain"),
        (status = 503, description = "Another metrics recorder is installed in this process (only when scribe is a library).",
            body = super::error::ErrorBody),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(handle) = crate::metrics::handle() else {
        return Err(ApiError::Unconfigured(
            "another metrics recorder is installed in this process",
        ));
    };
    metrics::gauge!(crate::metrics::OPEN_STREAMS).set(state.streams.open_now() as f64);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

/// Ready when the last background check (at most 5 s old) reached the
/// database within two seconds.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    operation_id = "readyz",
    responses(
        (status = 200, description = "The last background check reached the database.", body = ProbeAnswer),
        (status = 503, description = "The database did not answer the last check, or the check is stale.",
            body = super::error::ErrorBody, headers(("retry-after" = u64, description = "Seconds to wait."))),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<ProbeAnswer>, ApiError> {
    if state.probe.is_ready() {
        Ok(Json(ProbeAnswer { status: "ready" }))
    } else {
        Err(ApiError::Busy {
            message: "the database is unavailable".into(),
            retry_after: PROBE_EVERY.as_secs().max(1),
        })
    }
}
