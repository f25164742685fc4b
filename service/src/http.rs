//! The HTTP surface (axum): the router, its shared state, and the layers
//! every request passes (request id, tracing span with the matched path,
//! body limit, security headers).

mod admin;
mod agents;
pub mod auth;
mod error;
pub mod export;
mod extract;
pub mod health;
pub mod limits;
mod meeting_call;
mod meetings;
mod openai_webhook;
pub mod openapi;
mod page;
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
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

pub use error::ApiError;

use scribe_actors::domain::Transport;
use scribe_actors::supervisor::handle::Calls;

use crate::openai::rest::CallsApi;
use crate::store::Store;

/// The meeting page's `Content-Security-Policy` (its error pages carry it too).
pub fn live_page_policy() -> &'static str {
    page::PAGE_POLICY
}

/// Largest request body the JSON API accepts; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub calls: Calls,
    /// Starts, ends and hangs up calls: the one way to the actors.
    pub service: crate::service::CallService,
    pub api_token: Arc<SecretString>,
    /// The key of the meeting pages' capabilities (`SCRIBE_PAGE_SECRET`,
    /// else generated once and kept in the database).
    pub page_key: Arc<SecretString>,
    pub admin_token: Option<Arc<SecretString>>,
    pub stream_api_secret: Option<Arc<SecretString>>,
    pub chaos: bool,
    /// How calls started by Stream's webhooks reach OpenAI (owned sessions).
    pub owned_transport: Transport,
    /// OpenAI's calls API (`None` without `OPENAI_API_KEY`).
    pub calls_api: Option<CallsApi>,
    /// The key of `OPENAI_WEBHOOK_SECRET` (`None` when unset).
    pub openai_webhook_key: Option<Arc<Vec<u8>>>,
    /// What the calls scribe creates and accepts ask of OpenAI (the
    /// instructions aside): model, voice, transcription.
    pub session: Arc<crate::openai::rest::SessionConfig>,
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

impl AppState {
    /// The meeting's page link, with the key that opens it.
    pub fn page_url(&self, meeting: &crate::domain::meeting::Meeting) -> String {
        self.service.page_url(meeting)
    }

    /// The meeting as the API token's holder sees it: with its page link.
    pub fn with_page_url(
        &self,
        mut meeting: crate::domain::meeting::Meeting,
    ) -> crate::domain::meeting::Meeting {
        meeting.page_url = Some(self.page_url(&meeting));
        meeting
    }
}

/// A whole request body must arrive within this, or the answer is 408 and
/// the connection closes: a client trickling a body cannot hold a request.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// A route whose bodies may be at most `limit` bytes: a declared length
/// over it is refused at once (413), and a body is read (by the handler,
/// after its credentials were checked) within [`BODY_DEADLINE`].
fn sized(route: UtoipaMethodRouter<AppState>, limit: usize) -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, method) = route;
    (
        schemas,
        paths,
        method
            .layer::<_, std::convert::Infallible>(middleware::from_fn(
                move |request: Request, next: Next| body_gate(limit, request, next),
            ))
            .layer(DefaultBodyLimit::max(limit)),
    )
}

/// A route with the JSON API's body limit.
fn api_sized(route: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    sized(route, MAX_BODY_BYTES)
}

/// Every route with its OpenAPI entry: each comes from its handler's
/// `#[utoipa::path]`, so the router and the document cannot diverge.
fn routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut api_doc) = OpenApiRouter::new()
        .routes(api_sized(routes!(agents::list, agents::create)))
        .routes(api_sized(routes!(agents::show, agents::delete)))
        .routes(api_sized(routes!(meetings::list, meetings::create)))
        .routes(api_sized(routes!(meetings::show, meetings::delete)))
        .routes(api_sized(routes!(meetings::status)))
        .routes(api_sized(routes!(meetings::transcript)))
        .routes(api_sized(routes!(meetings::notes)))
        .routes(api_sized(routes!(meetings::usage)))
        .routes(api_sized(routes!(meetings::retry)))
        .routes(api_sized(routes!(meetings::page_link)))
        .routes(sized(
            routes!(meeting_call::call),
            meeting_call::MAX_OFFER_BYTES,
        ))
        .routes(api_sized(routes!(meeting_call::hangup)))
        .routes(api_sized(routes!(page::events)))
        .routes(api_sized(routes!(page::page)))
        .routes(api_sized(routes!(page::script)))
        .routes(api_sized(routes!(page::style)))
        .routes(sized(
            routes!(openai_webhook::receive),
            webhook::MAX_WEBHOOK_BYTES,
        ))
        .routes(sized(routes!(webhook::receive), webhook::MAX_WEBHOOK_BYTES))
        .routes(api_sized(routes!(admin::actors)))
        .routes(api_sized(routes!(admin::kill)))
        .routes(api_sized(routes!(admin::meeting)))
        .routes(api_sized(routes!(admin::kill_supervisor)))
        .routes(api_sized(routes!(openapi::document)))
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
    // Past `max_requests` in flight, 503 at once instead of a queue. A
    // request's body is read inside (by its handler): it counts. One
    // count for the whole API (a router layer wraps each route: the
    // global limit shares its semaphore among them).
    let api = api.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(overloaded))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(max_requests)),
    );
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
            .layer(middleware::map_request(plain_request_id))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(log_answer)
                    // A 5xx's cause is logged where it arises (once); a
                    // refusal at a limit is no error of the server's.
                    .on_failure(()),
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

/// Refuses a declared length over the route's `limit` at once (413), and
/// gives the handler a body that fails once [`BODY_DEADLINE`] has passed;
/// a request whose body missed it is answered 408, and its connection
/// closes. Nothing is read here: the handler reads the body after it
/// checked the request's credentials.
async fn body_gate(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return closing(ApiError::Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("length limit exceeded: the body is over {limit} bytes"),
        });
    }
    // A request without a body (most GETs) has nothing to time.
    if axum::body::HttpBody::size_hint(request.body()).exact() == Some(0) {
        return next.run(request).await;
    }
    let late = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = within_deadline(body, late.clone());
    let answer = next.run(Request::from_parts(parts, body)).await;
    if late.load(std::sync::atomic::Ordering::Acquire) {
        return closing(ApiError::Rejected {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "the request body did not arrive within {} s",
                BODY_DEADLINE.as_secs()
            ),
        });
    }
    answer
}

/// An error answer after which the connection closes (its body, if any,
/// is not read).
fn closing(error: ApiError) -> Response {
    let mut answer = error.into_response();
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

/// `body`, failing (and flagging `late`) once [`BODY_DEADLINE`] has passed
/// since the request arrived.
fn within_deadline(body: Body, late: Arc<std::sync::atomic::AtomicBool>) -> Body {
    use futures::StreamExt;
    let deadline = Box::pin(tokio::time::sleep(BODY_DEADLINE));
    let stream = futures::stream::unfold(Some((body.into_data_stream(), deadline)), move |state| {
        let late = late.clone();
        async move {
            let (mut data, mut deadline) = state?;
            tokio::select! {
                item = data.next() => item.map(|item| (item, Some((data, deadline)))),
                () = &mut deadline => {
                    late.store(true, std::sync::atomic::Ordering::Release);
                    Some((Err(axum::Error::new("the body's deadline passed")), None))
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// The longest `X-Request-Id` kept from a request.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// True for a request id scribe keeps as sent: short and plain (letters,
/// digits, `-`, `_`, `.`).
pub fn is_plain_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Drops an incoming `X-Request-Id` that is not plain (a new one is made):
/// nothing a client sends can make a log line long or odd.
async fn plain_request_id(mut request: Request) -> Request {
    // One plain value is kept; several, or an odd one, are dropped.
    let mut sent = request.headers().get_all(&REQUEST_ID).iter();
    let keep = match (sent.next(), sent.next()) {
        (None, _) => true,
        (Some(one), None) => is_plain_request_id(one.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !keep {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// One line per answer: at INFO, except a refusal at a limit (an answer
/// with `Retry-After`: 429, or 503 at the requests', streams' bound),
/// which is counted in the metrics and logged at DEBUG, so that a flood of
/// refusals does not flood the log.
fn log_answer(response: &Response, latency: Duration, _span: &tracing::Span) {
    let status = response.status().as_u16();
    let latency = format_args!("{} ms", latency.as_millis());
    if response.headers().contains_key(header::RETRY_AFTER) {
        tracing::debug!(%latency, status, "finished processing request");
    } else {
        tracing::info!(%latency, status, "finished processing request");
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
