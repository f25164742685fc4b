//! The HTTP surface (axum): the router, its shared state, and the layers
//! every request passes (request id, tracing span with the matched path,
//! body limit, security headers).

mod admin;
mod agents;
pub mod auth;
mod calls;
mod error;
mod extract;
pub mod health;
mod limits;
mod live;
mod meetings;
mod openai_webhook;
pub mod openapi;
pub mod serve;
pub mod streams;
mod webhook;

use std::sync::Arc;

use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Extension, Router};
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

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
    /// The key of the meeting pages' capabilities (`SCRIBE_PAGE_SECRET`,
    /// else generated once and kept in the database).
    pub page_key: Arc<SecretString>,
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
    /// What the calls scribe creates and accepts ask of OpenAI (the
    /// instructions aside): model, voice, transcription.
    pub session: Arc<crate::openai::calls::SessionConfig>,
    /// Per-meeting limits on call creation and analysis retries.
    pub limits: Arc<limits::MeetingLimits>,
    /// Open event streams, against their bounds.
    pub streams: Arc<streams::StreamLimits>,
    /// What the background database check found (`/readyz`).
    pub probe: Arc<health::Probe>,
    /// Flips when the server stops: event streams end.
    pub stopping: serve::Stopping,
    /// Requests handled at once, at most (probes aside); past it 503.
    pub max_requests: usize,
    /// Meetings whose WebRTC call is being created by this instance.
    pub creating: Arc<std::sync::Mutex<std::collections::HashSet<scribe_actors::ids::MeetingId>>>,
}

/// A whole request body must arrive within this, or the answer is 408 and
/// the connection closes: a client trickling a body cannot hold a request.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// A route whose bodies may be as large as a webhook's.
fn webhook_sized(route: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, method) = route;
    (
        schemas,
        paths,
        method.layer(DefaultBodyLimit::max(webhook::MAX_WEBHOOK_BYTES)),
    )
}

/// Every route with its OpenAPI entry: each comes from its handler's
/// `#[utoipa::path]`, so the router and the document cannot diverge.
fn routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut api_doc) = OpenApiRouter::new()
        .routes(routes!(agents::list, agents::create))
        .routes(routes!(agents::show))
        .routes(routes!(meetings::list, meetings::create))
        .routes(routes!(meetings::show))
        .routes(routes!(meetings::status))
        .routes(routes!(meetings::transcript))
        .routes(routes!(meetings::retry))
        .routes(routes!(calls::call))
        .routes(routes!(calls::hangup))
        .routes(routes!(live::events))
        .routes(routes!(live::page))
        .routes(routes!(live::script))
        .routes(routes!(live::style))
        .routes(webhook_sized(routes!(openai_webhook::receive)))
        .routes(webhook_sized(routes!(webhook::receive)))
        .routes(routes!(admin::actors))
        .routes(routes!(admin::kill))
        .routes(routes!(admin::meeting))
        .routes(routes!(admin::kill_supervisor))
        .routes(routes!(openapi::document))
        .split_for_parts();
    let (probes, probes_doc) = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::readyz))
        .split_for_parts();
    // The answers the API's layers add, on the API's routes only.
    openapi::add_common_answers(&mut api_doc);
    let mut doc = openapi::ApiDoc::openapi();
    doc.merge(api_doc);
    doc.merge(probes_doc);
    (api, probes, doc)
}

/// The whole HTTP surface with its layers.
pub fn router(state: AppState) -> Router {
    let max_requests = state.max_requests.max(1);
    let (api, probes, doc) = routes();
    let json = doc.to_json().expect("the OpenAPI document serializes");
    let api = api
        // Past `max_requests` in flight, 503 at once instead of a queue.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .concurrency_limit(max_requests),
        )
        .layer(middleware::from_fn(body_within_deadline));
    // The probes answer whatever the load.
    let all = Router::new()
        .merge(api)
        .merge(probes)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(openapi::OpenApiJson(json.into())))
        .with_state(state);

    all.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            // Every answer: never sniffed into another type, never leaks its
            // address (a page's URL carries its meeting) to another site,
            // never framed.
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            )),
    )
}

/// The answer when `max_requests` are in flight.
async fn overloaded(_: BoxError) -> ApiError {
    metrics::counter!(crate::metrics::SHED_REQUESTS).increment(1);
    ApiError::Busy {
        message: "the server is at its limit of requests in flight: try again shortly".into(),
        retry_after: 1,
    }
}

/// Reads the whole request body within [`BODY_DEADLINE`] (at most the
/// largest body any route takes) before the handler runs.
async fn body_within_deadline(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limit = webhook::MAX_WEBHOOK_BYTES;
    match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(error)) => {
            let too_large =
                std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            let (status, message) = if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("length limit exceeded: the body is over {limit} bytes"),
                )
            } else {
                (StatusCode::BAD_REQUEST, "the body could not be read".into())
            };
            ApiError::Rejected { status, message }.into_response()
        }
        Err(_) => {
            let mut answer = ApiError::Rejected {
                status: StatusCode::REQUEST_TIMEOUT,
                message: format!(
                    "the request body did not arrive within {} s",
                    BODY_DEADLINE.as_secs()
                ),
            }
            .into_response();
            answer
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            answer
        }
    }
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
