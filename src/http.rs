//! The HTTP surface (axum): the router, its shared state, and the layers
//! every request passes (request id, tracing span with the matched path,
//! body limit).

mod admin;
mod agents;
pub mod auth;
mod calls;
mod error;
mod extract;
mod health;
mod live;
mod meetings;
mod openai_webhook;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::routing::{get, post};
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::ApiError;

use scribe_actors::domain::Transport;
use scribe_actors::supervisor::calls::Calls;

use crate::openai::calls::CallsApi;
use crate::store::Store;

/// Largest request body the JSON API accepts; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub calls: Calls,
    pub api_token: Arc<SecretString>,
    pub admin_token: Option<Arc<SecretString>>,
    pub stream_api_secret: Option<Arc<SecretString>>,
    pub chaos: bool,
    /// Where this server's pages are (`http://<listen address>`).
    pub page_base: Arc<str>,
    /// How calls started by Stream's webhooks reach OpenAI (owned sessions).
    pub owned_transport: Transport,
    /// OpenAI's calls API (`None` without `OPENAI_API_KEY`).
    pub calls_api: Option<CallsApi>,
    /// The key of `OPENAI_WEBHOOK_SECRET` (`None` when unset).
    pub openai_webhook_key: Option<Arc<Vec<u8>>>,
    /// The model and voice of the calls scribe creates and accepts.
    pub realtime_model: Arc<str>,
    pub voice: Arc<str>,
    /// Meetings whose WebRTC call is being created by this instance.
    pub creating: Arc<std::sync::Mutex<std::collections::HashSet<scribe_actors::ids::MeetingId>>>,
}

/// The whole HTTP surface with its layers.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/agents", get(agents::list).post(agents::create))
        .route("/api/agents/{id}", get(agents::show))
        .route("/api/meetings", get(meetings::list).post(meetings::create))
        .route("/api/meetings/{id}", get(meetings::show))
        .route("/api/meetings/{id}/status", get(meetings::status))
        .route("/api/meetings/{id}/transcript", get(meetings::transcript))
        .route("/api/meetings/{id}/retry", post(meetings::retry))
        .route("/api/meetings/{id}/call", post(calls::call))
        .route("/api/meetings/{id}/hangup", post(calls::hangup))
        .route(
            "/api/openai/webhook",
            post(openai_webhook::receive).layer(DefaultBodyLimit::max(webhook::MAX_WEBHOOK_BYTES)),
        )
        .route("/api/meetings/{id}/events", get(live::events))
        .route("/meetings/{id}", get(live::page))
        .route("/assets/meeting.js", get(live::script))
        .route("/assets/meeting.css", get(live::style))
        .route(
            "/api/webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(webhook::MAX_WEBHOOK_BYTES)),
        )
        .route("/admin/actors", get(admin::actors))
        .route("/admin/actors/{meeting_id}/kill", post(admin::kill))
        .route("/admin/supervisor/kill", post(admin::kill_supervisor))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/readyz", get(health::readyz))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);

    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
    )
}

fn request_span(request: &Request) -> tracing::Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path, request_id)
}
