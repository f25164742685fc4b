//! `POST /api/webhook`: Stream webhooks. The signature header is required
//! before the body is read, and the raw body's signature is checked before
//! anything is parsed; a body sent with `Content-Encoding: gzip` is
//! inflated (bounded in size, and a few at once) first.
//! Deliveries are de-duplicated durably. The answer goes out before any
//! realtime connection is attempted: starting and ending calls is handed to
//! the supervisor.
//!
//! A Stream session ends only when its last participant leaves, and
//! scribe's agent is one: while it is connected `call.session_ended` may
//! never come. So a call ends at whichever comes first of
//! `call.session_ended`, `call.ended` (the call was ended), and the
//! `call.session_participant_left` after which nobody but scribe's agent
//! remains (who is in a session is counted in the database, by each
//! participant's `user_session_id`, from `call.session_participant_joined`
//! and `..._left`, routed by `call_cid`). The others are duplicates:
//! answered 200 (`duplicate`) and logged.

use std::io::Read;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use flate2::bufread::GzDecoder;
use scribe_actors::ids::MeetingId;
use secrecy::ExposeSecret;
use serde::Serialize;
use tracing::Instrument;

use super::error::ErrorBody;
use super::extract::read_body;
use super::{ApiError, AppState};
use crate::realtime::AGENT_USER_ID;
use crate::service::Ending;
use crate::store::{Movement, Presence, SessionStart, WebhookDelivery};
use crate::stream::event::{
    CALL_ENDED, PARTICIPANT_JOINED, PARTICIPANT_LEFT, SESSION_ENDED, SESSION_STARTED, WebhookEvent,
};
use crate::stream::signature;

/// Largest webhook body accepted, compressed or inflated.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Gzip bodies inflated at once, at most: each may take
/// [`MAX_WEBHOOK_BYTES`] of memory and a core while it inflates.
const INFLATING_AT_ONCE: usize = 4;
static INFLATING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(INFLATING_AT_ONCE);

/// Inflates a gzip body (at most [`INFLATING_AT_ONCE`] at once, off the
/// async threads), refusing anything that grows past the limit.
async fn inflate(body: Bytes) -> Result<Vec<u8>, ApiError> {
    let _turn = INFLATING
        .acquire()
        .await
        .map_err(|_| ApiError::Unconfigured("gzip inflation is unavailable"))?;
    tokio::task::spawn_blocking(move || inflate_now(&body))
        .await
        .map_err(|_| ApiError::BadRequest("gzip body does not inflate".into()))?
}

/// One gzip member, and nothing after it (a second member would be a body
/// nobody signed for).
fn inflate_now(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut decoder = GzDecoder::new(body);
    (&mut decoder)
        .take(MAX_WEBHOOK_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("gzip body does not inflate: {e}")))?;
    if out.len() > MAX_WEBHOOK_BYTES {
        return Err(ApiError::Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("inflated webhook body exceeds {MAX_WEBHOOK_BYTES} bytes"),
        });
    }
    if !decoder.into_inner().is_empty() {
        return Err(ApiError::BadRequest(
            "gzip body does not inflate: data after its end".into(),
        ));
    }
    Ok(out)
}

/// What a webhook delivery did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    pub status: WebhookOutcome,
    /// The meeting an accepted phone call records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<MeetingId>,
}

/// Stream: `started`, `ending` (this event ended the call), `joined` or
/// `left` (a participant, counted), `duplicate` (seen before, or the call
/// had already ended), `ignored` (not an event scribe acts on) or
/// `unroutable` (no meeting of ours named). OpenAI: `accepted`,
/// `rejected` (no agent for the number, or OpenAI refused the accept),
/// `duplicate` or `ignored`. Either: `deleted` (the meeting it names was
/// deleted: nothing done, nothing kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    Started,
    Ending,
    Joined,
    Left,
    Duplicate,
    Ignored,
    Unroutable,
    Accepted,
    Rejected,
    Deleted,
}

impl WebhookOutcome {
    /// The spelling on the wire and in the metrics' `outcome` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Ending => "ending",
            Self::Joined => "joined",
            Self::Left => "left",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Unroutable => "unroutable",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Deleted => "deleted",
        }
    }
}

/// The answer `status`, for no meeting in particular.
pub fn answer(status: WebhookOutcome) -> Json<WebhookAnswer> {
    Json(WebhookAnswer {
        status,
        meeting_id: None,
    })
}

/// `POST /api/webhook`, counted by event type and outcome.
#[utoipa::path(
    post,
    path = "/api/webhook",
    tag = "webhooks",
    operation_id = "stream_webhook",
    security(("stream_signature" = [])),
    params(
        ("x-webhook-id" = Option<String>, Header, nullable = false, description = "Stream's delivery id: a repeated delivery is answered `duplicate`."),
        ("x-api-key" = Option<String>, Header, nullable = false, description = "Stream's API key (not checked: the signature is)."),
    ),
    request_body(
        description = "A Stream event (`call.session_started`, `call.session_ended`, `call.ended`, \
                       `call.session_participant_joined`, `call.session_participant_left`, or any other, ignored), \
                       as JSON, or gzip-compressed JSON with `Content-Encoding: gzip` (at most 1 MiB either way).",
        content((crate::stream::event::Raw = "application/json")),
    ),
    responses(
        (status = 200, description = "Verified and handled.", body = WebhookAnswer),
        (status = 400, description = "Signed, but not a Stream event (or a gzip body that does not inflate), or an id over 256 characters.", body = ErrorBody),
        (status = 401, description = "Missing or invalid `X-Signature`.", body = ErrorBody),
        (status = 404, description = "The event names a meeting that does not exist or cannot start.", body = ErrorBody),
        (status = 413, description = "The body, or its inflated form, is over 1 MiB.", body = ErrorBody),
        (status = 415, description = "A `Content-Encoding` other than gzip.", body = ErrorBody),
        (status = 503, description = "`STREAM_API_SECRET` is not set, or the call supervisor is unavailable.", body = ErrorBody),
    ),
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let mut kind = "unverified";
    let answer = handle(state, headers, body, &mut kind).await;
    let outcome = match &answer {
        Ok(Json(body)) => body.status.as_str().to_owned(),
        Err(error) => error.status().as_u16().to_string(),
    };
    metrics::counter!(crate::metrics::WEBHOOKS, "type" => kind, "outcome" => outcome).increment(1);
    answer
}

async fn handle(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    kind: &mut &'static str,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let Some(secret) = state.stream_api_secret.as_ref() else {
        return Err(ApiError::Unconfigured(
            "STREAM_API_SECRET is not set: webhooks cannot be verified",
        ));
    };
    // The head first: nothing is read of a delivery that cannot verify.
    let Some(sig) = header(&headers, "x-signature") else {
        return Err(ApiError::BadSignature("missing X-Signature header"));
    };
    if let Some(id) = header(&headers, "x-webhook-id") {
        super::extract::external_id("X-Webhook-Id", id)?;
    }
    // Stream says a compressed body with `Content-Encoding: gzip`; no other
    // encoding is sent, and nothing else is inflated.
    let gzip = match header(&headers, "content-encoding").map(str::trim) {
        None | Some("") => false,
        Some(encoding) if encoding.eq_ignore_ascii_case("identity") => false,
        Some(encoding) if encoding.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            return Err(ApiError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: format!("`Content-Encoding: {other}` is not taken: only gzip is"),
            });
        }
    };
    let body = read_body(body, MAX_WEBHOOK_BYTES).await?;
    let body = if gzip {
        inflate(body).await?
    } else {
        body.to_vec()
    };
    if !signature::verify(secret.expose_secret().as_bytes(), &body, sig) {
        return Err(ApiError::BadSignature("invalid webhook signature"));
    }
    let event = WebhookEvent::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Only verified events name a type: the label set stays small.
    *kind = [
        SESSION_STARTED,
        SESSION_ENDED,
        CALL_ENDED,
        PARTICIPANT_JOINED,
        PARTICIPANT_LEFT,
    ]
    .into_iter()
    .find(|k| *k == event.kind)
    .unwrap_or("other");
    let webhook_id = header(&headers, "x-webhook-id").map(str::to_owned);
    // An event that names its meeting is handled in the meeting's span (and
    // trace); a participant's is routed by its call, in none.
    let meeting = event.meeting_id.as_deref().and_then(|m| m.parse().ok());
    let span = match meeting {
        Some(meeting) if *kind != PARTICIPANT_JOINED && *kind != PARTICIPANT_LEFT => {
            webhook_span(meeting, &event)
        }
        _ => tracing::Span::none(),
    };
    let kind = *kind;
    dispatch(state, event, webhook_id, kind)
        .instrument(span)
        .await
}

async fn dispatch(
    state: AppState,
    event: WebhookEvent,
    webhook_id: Option<String>,
    kind: &'static str,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let (state, event) = (&state, &event);
    tracing::info!(kind = %event.kind, call_cid = ?event.call_cid, webhook_id = ?webhook_id, "webhook received");
    let delivery = WebhookDelivery {
        webhook_id,
        event_type: event.kind.clone(),
        call_cid: event.call_cid.clone(),
        session_id: event.session_id.clone(),
    };
    let outcome = match kind {
        SESSION_STARTED => session_started(state, event, &delivery).await?,
        SESSION_ENDED | CALL_ENDED => call_ended(state, event, &delivery).await?,
        PARTICIPANT_JOINED => presence(state, event, &delivery, Movement::Joined).await?,
        PARTICIPANT_LEFT => presence(state, event, &delivery, Movement::Left).await?,
        _ => WebhookOutcome::Ignored,
    };
    Ok(answer(outcome))
}

/// The meeting an event with a call names (`call.custom.meetingId`).
fn named_meeting(event: &WebhookEvent) -> Option<MeetingId> {
    let Some(raw) = event.meeting_id.as_deref() else {
        tracing::info!(kind = %event.kind, "webhook without call.custom.meetingId ignored");
        return None;
    };
    // A meeting id that is not a UUID cannot name one of ours. Answered 2xx:
    // Stream would retry anything else for nothing.
    let parsed = raw.parse::<MeetingId>().ok();
    if parsed.is_none() {
        tracing::info!(kind = %event.kind, "webhook whose meetingId is not one of ours ignored");
    }
    parsed
}

async fn session_started(
    state: &AppState,
    event: &WebhookEvent,
    delivery: &WebhookDelivery,
) -> Result<WebhookOutcome, ApiError> {
    let Some(meeting) = named_meeting(event) else {
        return Ok(WebhookOutcome::Unroutable);
    };
    start_session(state, meeting, delivery).await
}

async fn start_session(
    state: &AppState,
    meeting: MeetingId,
    delivery: &WebhookDelivery,
) -> Result<WebhookOutcome, ApiError> {
    match state
        .store
        .start_session(delivery, meeting, state.owned_transport)
        .await?
    {
        SessionStart::Duplicate => Ok(WebhookOutcome::Duplicate),
        SessionStart::Deleted => {
            tracing::info!(%meeting, "the start of a deleted meeting's call: nothing done");
            Ok(WebhookOutcome::Deleted)
        }
        SessionStart::NotFound => Err(ApiError::meeting_not_found()),
        SessionStart::NotStartable(status) => Err(ApiError::NotFound(format!(
            "Meeting is {status} and cannot start a call"
        ))),
        SessionStart::Started => {
            // The socket is opened after this answer.
            state.service.started(meeting);
            Ok(WebhookOutcome::Started)
        }
    }
}

/// The call ended when Stream says it did: a retried delivery arrives late
/// (never later than now, whatever the clocks say).
fn when(event: &WebhookEvent) -> chrono::DateTime<chrono::Utc> {
    let now = crate::domain::now();
    event.created_at.map_or(now, |at| at.min(now))
}

/// `call.session_ended` or `call.ended`.
async fn call_ended(
    state: &AppState,
    event: &WebhookEvent,
    delivery: &WebhookDelivery,
) -> Result<WebhookOutcome, ApiError> {
    let Some(meeting) = named_meeting(event) else {
        return Ok(WebhookOutcome::Unroutable);
    };
    ended(state, meeting, event, delivery).await
}

/// A Stream webhook's span, in the meeting's trace.
fn webhook_span(meeting: MeetingId, event: &WebhookEvent) -> tracing::Span {
    scribe_actors::meeting_span!(
        meeting,
        "stream.webhook",
        webhook.type = %event.kind,
        call.path = "stream"
    )
}

async fn ended(
    state: &AppState,
    meeting: MeetingId,
    event: &WebhookEvent,
    delivery: &WebhookDelivery,
) -> Result<WebhookOutcome, ApiError> {
    let Some(found) = state.store.meeting(meeting).await? else {
        return Err(ApiError::meeting_not_found());
    };
    if found.deleted_at.is_some() {
        tracing::info!(%meeting, kind = %event.kind, "the end of a deleted meeting's call: nothing done");
        return Ok(WebhookOutcome::Deleted);
    }
    let outcome = end(state, meeting, when(event), &event.kind).await?;
    state.store.record_delivery(delivery).await?;
    Ok(outcome)
}

/// A participant joined or left a call session: counted; when nobody but
/// scribe's agent remains after a `left`, the call ends.
async fn presence(
    state: &AppState,
    event: &WebhookEvent,
    delivery: &WebhookDelivery,
    movement: Movement,
) -> Result<WebhookOutcome, ApiError> {
    let (Some(call_cid), Some(session_id), Some(participant)) =
        (&event.call_cid, &event.session_id, &event.participant)
    else {
        tracing::info!(kind = %event.kind, "participant event without call_cid, session_id or participant ignored");
        return Ok(WebhookOutcome::Unroutable);
    };
    if state.store.delivery_seen(delivery).await? {
        return Ok(WebhookOutcome::Duplicate);
    }
    let at = when(event);
    let presence = Presence {
        call_cid,
        session_id,
        user_session_id: &participant.user_session_id,
        user_id: &participant.user_id,
    };
    let remaining = state
        .store
        .record_presence(&presence, movement, at, AGENT_USER_ID)
        .await?;
    // Many participants share a session: the delivery id alone marks it seen.
    let seen = WebhookDelivery {
        call_cid: None,
        session_id: None,
        ..delivery.clone()
    };
    state.store.record_delivery(&seen).await?;
    tracing::info!(%call_cid, %session_id, user = %participant.user_id, ?movement, people = remaining.people, "stream participant");
    let agent = participant.user_id == AGENT_USER_ID;
    match movement {
        Movement::Joined => Ok(WebhookOutcome::Joined),
        Movement::Left if agent || remaining.people > 0 => Ok(WebhookOutcome::Left),
        Movement::Left => {
            let Some(meeting) = state.store.meeting_for_stream_call(call_cid).await? else {
                return Ok(WebhookOutcome::Unroutable);
            };
            end(
                state,
                meeting,
                at,
                "the last participant but scribe's agent left",
            )
            .instrument(webhook_span(meeting, event))
            .await
        }
    }
}

/// Ends the meeting's call, for whichever of the events that end it came
/// first (finalized as `call.session_ended` always did; the actor closes its
/// agent socket); any later one is a duplicate. Ending is idempotent, so it
/// is dispatched again for a call still live: a retry after a failure here
/// still ends it.
async fn end(
    state: &AppState,
    meeting: MeetingId,
    ended_at: chrono::DateTime<chrono::Utc>,
    why: &str,
) -> Result<WebhookOutcome, ApiError> {
    let ending = state.service.end(meeting, ended_at).await?;
    if ending == Ending::NotActive {
        tracing::info!(%meeting, why, "the call had already ended: a duplicate end");
        return Ok(WebhookOutcome::Duplicate);
    }
    if ending == Ending::First {
        tracing::info!(%meeting, why, "call ended");
        Ok(WebhookOutcome::Ending)
    } else {
        tracing::info!(%meeting, why, "the call's end was already on its way: a duplicate end");
        Ok(WebhookOutcome::Duplicate)
    }
}
