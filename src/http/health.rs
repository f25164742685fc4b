//! Liveness and readiness probes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, AppState};

const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus text. Meetings by status are read from the
/// database at each scrape (one grouped count).
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(handle) = crate::metrics::handle() else {
        return Err(ApiError::Unconfigured(
            "another metrics recorder is installed in this process",
        ));
    };
    for (status, count) in state.store.meeting_counts().await? {
        metrics::gauge!(crate::metrics::MEETINGS, "status" => status).set(count as f64);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

/// The database answers within two seconds.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(e)) => Err(ApiError::Unavailable(e)),
        Err(_) => Err(ApiError::Unavailable(crate::store::StoreError::Database(
            sqlx::Error::PoolTimedOut,
        ))),
    }
}
