//! `POST /api/openai/webhook`: OpenAI's webhooks (Standard Webhooks). An
//! incoming SIP call (`realtime.call.incoming`) is routed by the number in
//! its `To` header to the agent that lists it: scribe creates the meeting,
//! accepts the call with the agent's session, attaches to it, and answers
//! `{"status":"accepted","meeting_id":...}`. A number no agent lists is
//! rejected with SIP 404. The `webhook-id` and the call id de-duplicate
//! retried and concurrent deliveries: one meeting and one accept per call.
//! Under GPT-Live (`--voice-api live`) the same holds for
//! `live.transport.incoming` (and its older name `live.call.incoming`,
//! `data.session_id`); the other API's incoming call is `ignored`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use scribe_actors::domain::{Transport, VoiceApi};

use super::error::ErrorBody;
use super::extract::read_body;
use super::webhook::{MAX_WEBHOOK_BYTES, WebhookAnswer, WebhookOutcome, answer};
use super::{ApiError, AppState};
use crate::domain::meeting::NewMeeting;
use crate::domain::phone::PhoneNumber;
use crate::openai::rest::{CallsApi, SessionConfig};
use crate::openai::webhook::{OpenAiEvent, check_head, verify};
use crate::store::{AttachedStart, WebhookDelivery};
use scribe_actors::ids::{AgentId, MeetingId};
use tracing::Instrument;

pub const CALL_INCOMING: &str = "realtime.call.incoming";
/// GPT-Live's incoming call (`data.session_id`), and its older name.
pub const LIVE_INCOMING: [&str; 2] = ["live.transport.incoming", "live.call.incoming"];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /api/openai/webhook`.
#[utoipa::path(
    post,
    path = "/api/openai/webhook",
    tag = "webhooks",
    operation_id = "openai_webhook",
    security(("openai_signature" = [])),
    params(
        ("webhook-id" = Option<String>, Header, nullable = false, description = "The delivery's id (signed): a repeated delivery is answered `duplicate`."),
        ("webhook-timestamp" = Option<String>, Header, nullable = false, pattern = "^[0-9]{1,12}$",
            description = "Seconds since the epoch (signed); at most 5 minutes away from now."),
    ),
    request_body(
        description = "An OpenAI event: `realtime.call.incoming`, `live.call.incoming` and \
                       `live.transport.incoming` are acted on, any other is ignored (at most 1 MiB).",
        content((crate::openai::webhook::Raw = "application/json")),
    ),
    responses(
        (status = 200, description = "Verified and handled.", body = WebhookAnswer),
        (status = 400, description = "Signed, but not an OpenAI event, or an incoming call without its id (`data.call_id` for Realtime, `data.session_id` for GPT-Live).", body = ErrorBody),
        (status = 401, description = "Missing or invalid signature headers, or a timestamp too far from now.", body = ErrorBody),
        (status = 404, description = "The agent the number reaches no longer exists.", body = ErrorBody),
        (status = 503, description = "`OPENAI_WEBHOOK_SECRET` or `OPENAI_API_KEY` is not set, or the call supervisor is unavailable.", body = ErrorBody),
    ),
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let Some(key) = state.openai_webhook_key.clone() else {
        return Err(ApiError::Unconfigured(
            "OPENAI_WEBHOOK_SECRET is not set: OpenAI webhooks cannot be verified",
        ));
    };
    // The head first: nothing is read of a delivery that cannot verify.
    check_head(
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| ApiError::Signature(e.to_string()))?;
    super::extract::external_id(
        "webhook-id",
        header(&headers, "webhook-id").unwrap_or_default(),
    )?;
    super::extract::plain_encoding(&headers)?;
    let body = read_body(body, MAX_WEBHOOK_BYTES).await?;
    verify(
        &key,
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| ApiError::Signature(e.to_string()))?;
    let event = OpenAiEvent::parse(&body)
        .map_err(|e| ApiError::BadRequest(format!("webhook body is not an OpenAI event: {e}")))?;
    super::extract::external_id("type", &event.kind)?;
    let webhook_id = header(&headers, "webhook-id").unwrap_or_default();
    let delivery = WebhookDelivery {
        webhook_id: Some(format!("openai:{webhook_id}")),
        event_type: event.kind.clone(),
        call_cid: None,
        session_id: None,
    };
    if state.store.delivery_seen(&delivery).await? {
        return Ok(answer(WebhookOutcome::Duplicate));
    }
    tracing::info!(kind = %event.kind, webhook_id, "openai webhook received");
    let outcome = match event.kind.as_str() {
        // One SIP call can raise both a Realtime and a GPT-Live webhook; the
        // first accept decides which API owns it. scribe accepts with the
        // configured API only and leaves the other alone.
        CALL_INCOMING if serves(&state, VoiceApi::Realtime) => {
            incoming_call(&state, &event).await?
        }
        kind if LIVE_INCOMING.contains(&kind) && serves(&state, VoiceApi::Live) => {
            incoming_call(&state, &event).await?
        }
        _ => answer(WebhookOutcome::Ignored),
    };
    state.store.record_delivery(&delivery).await?;
    Ok(outcome)
}

/// True when scribe accepts calls on `api` (its configured voice API).
fn serves(state: &AppState, api: VoiceApi) -> bool {
    state
        .calls_api
        .as_ref()
        .map_or(api == VoiceApi::Realtime, |_| {
            state.store.voice_api() == api
        })
}

async fn incoming_call(
    state: &AppState,
    event: &OpenAiEvent,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let call_id = event
        .call_id
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest(format!("`{}` is missing", event.call_id_field())))?;
    super::extract::external_id(event.call_id_field(), call_id)?;
    if let Some(known) = state.store.meeting_for_call(call_id).await? {
        // A call of a deleted meeting stays refused: its tombstone keeps
        // OpenAI's id of it.
        let gone = state.store.is_deleted(known).await?;
        return Ok(answer(if gone {
            WebhookOutcome::Deleted
        } else {
            WebhookOutcome::Duplicate
        }));
    }
    let Some(api) = state.calls_api.clone() else {
        return Err(ApiError::Unconfigured(
            "OPENAI_API_KEY is not set: scribe cannot accept calls",
        ));
    };
    let api = api.on(state.store.voice_api());
    // SIP headers come from the caller: they route, they never authorize.
    let to = event.sip_header("To").and_then(PhoneNumber::from_uri);
    let agent = match &to {
        Some(number) => state.store.agent_for_number(number).await?,
        None => None,
    };
    let Some(agent_id) = agent else {
        tracing::info!(call = call_id, to = ?to, "incoming call to a number no agent lists: rejected");
        if let Err(error) = api.reject(call_id, 404).await {
            tracing::warn!(call = call_id, %error, "reject not confirmed by OpenAI");
        }
        return Ok(answer(WebhookOutcome::Rejected));
    };
    let from = event
        .sip_header("From")
        .and_then(PhoneNumber::from_uri)
        .map_or_else(|| "an unknown number".to_owned(), |n| n.to_string());
    let new = NewMeeting::parse(&format!("Call from {from}"), &from, agent_id, None)?;
    let Some(meeting) = state.store.insert_sip_meeting(new, call_id).await? else {
        return Ok(answer(WebhookOutcome::Duplicate));
    };
    let span = scribe_actors::meeting_span!(
        meeting,
        "openai.webhook",
        webhook.type = "realtime.call.incoming",
        call.path = "sip",
        voice.api = state.store.voice_api().as_str()
    );
    accept(state, meeting, agent_id, call_id, &api)
        .instrument(span)
        .await
}

/// Accepts the call of a meeting just made for it, and starts its sideband.
async fn accept(
    state: &AppState,
    meeting: MeetingId,
    agent_id: AgentId,
    call_id: &str,
    api: &CallsApi,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let agent = state
        .store
        .agent(agent_id)
        .await?
        .ok_or_else(ApiError::agent_not_found)?;
    let session = SessionConfig {
        instructions: agent.instructions,
        ..(*state.session).clone()
    };
    if let Err(error) = api.accept(call_id, &session).await {
        tracing::warn!(call = call_id, %meeting, %error, "OpenAI refused the accept");
        state
            .store
            .cancel_meeting(
                meeting,
                &format!("the call could not be accepted: {}", error.public()),
                Some(&error.to_string()),
            )
            .await?;
        return Ok(answer(WebhookOutcome::Rejected));
    }
    match state
        .store
        .start_attached(meeting, Transport::Sip, call_id)
        .await?
    {
        AttachedStart::Started => {}
        other => {
            tracing::error!(call = call_id, %meeting, ?other, "accepted call's meeting did not start");
            return Ok(answer(WebhookOutcome::Duplicate));
        }
    }
    state.service.started(meeting);
    Ok(Json(WebhookAnswer {
        status: WebhookOutcome::Accepted,
        meeting_id: Some(meeting),
    }))
}
