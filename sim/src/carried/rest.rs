//! The calls REST API of the simulated OpenAI: create (a WebRTC call from
//! an SDP offer, answered by a real media endpoint), accept, reject, hangup
//! and refer, each refusing a bad key and a malformed request as OpenAI does.

use std::sync::{Arc, PoisonError};

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::media::{self, PeerEnd};
use super::{CallKind, CallStatus, SimCallState, SimCalls, StartOn, error, sideband};
use scribe_actors::domain::VoiceApi;

/// The calls REST routes, on the simulated OpenAI HTTP API.
pub fn routes(calls: Arc<SimCalls>) -> axum::Router {
    axum::Router::new()
        .route("/v1/realtime/calls", post(create))
        .route("/v1/realtime/calls/{id}/accept", post(accept))
        .route("/v1/realtime/calls/{id}/reject", post(reject))
        .route("/v1/realtime/calls/{id}/hangup", post(hangup))
        .route("/v1/realtime/calls/{id}/refer", post(refer))
        .route("/v1/realtime", axum::routing::get(sideband::attach))
        .with_state(calls)
}

/// A WebRTC call on `api`: registered, its media endpoint running (a
/// caller that goes away ends it), its conversation started as configured.
pub(super) fn launch(
    calls: &Arc<SimCalls>,
    peer: media::Peer,
    session: Value,
    api: VoiceApi,
) -> Arc<SimCallState> {
    let config = calls.config();
    let call = calls.register_on(CallKind::WebRtc, CallStatus::Live, api);
    *call.session.lock().unwrap_or_else(PoisonError::into_inner) = session;
    let (heard, first_audio) = oneshot::channel();
    let media_call = call.clone();
    let media_calls = calls.clone();
    let stop = call.media_stop.subscribe();
    let counts = call.media.clone();
    tokio::spawn(async move {
        // A caller that goes away (a closed tab), or never connects, ends the call.
        let end = peer.run(stop, Some(heard), Some(counts)).await;
        if matches!(end, PeerEnd::PeerGone | PeerEnd::NeverConnected) {
            media_call.end_with("connection_lost", "connection_lost");
            media_calls.records.changed.notify_waiters();
        }
    });
    match config.start {
        StartOn::Answer => calls.start(&call, None),
        StartOn::Audio => {
            let (calls, call) = (calls.clone(), call.clone());
            tokio::spawn(async move {
                if first_audio.await.is_ok() {
                    let meeting = call
                        .meeting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    calls.start(&call, meeting);
                }
            });
        }
        StartOn::Attach => {}
    }
    call
}

/// The refusal of a request whose bearer key is not the configured one.
pub(super) fn unauthorized(calls: &SimCalls, headers: &HeaderMap) -> Option<Response> {
    let key = calls.config().api_key.clone()?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    (presented != format!("Bearer {key}")).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Incorrect API key provided.",
        )
    })
}

/// OpenAI's 400 for a session config without `type` `realtime` and a model.
fn bad_session(session: &Value) -> Option<Response> {
    (session["type"] != "realtime" || !session["model"].is_string()).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_session",
            "`session.type` must be `realtime` and `session.model` is required.",
        )
    })
}

#[derive(Deserialize)]
struct CreateQuery {
    model: Option<String>,
}

/// `POST /v1/realtime/calls`: `sdp` and `session` parts, 201 with the SDP
/// answer and `Location: /v1/realtime/calls/{id}`.
async fn create(
    State(calls): State<Arc<SimCalls>>,
    Query(query): Query<CreateQuery>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if let Some(refused) = unauthorized(&calls, &headers) {
        return refused;
    }
    if query.model.is_some() {
        // As OpenAI: `?model=` on this URL is an empty 400.
        return StatusCode::BAD_REQUEST.into_response();
    }
    let (mut sdp, mut session) = (None, None);
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let text = field.text().await.unwrap_or_default();
        match name.as_str() {
            "sdp" => sdp = Some(text),
            "session" => session = Some(text),
            _ => {}
        }
    }
    let Some(sdp) = sdp else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_offer",
            "The `sdp` part is required.",
        );
    };
    let session: Value = match session.as_deref().map(serde_json::from_str) {
        Some(Ok(session)) => session,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_session",
                "The `session` part must be JSON.",
            );
        }
    };
    if let Some(refused) = bad_session(&session) {
        return refused;
    }
    let (answer, peer) = match media::answer(&sdp).await {
        Ok(negotiated) => negotiated,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_offer", &why),
    };
    let call = launch(&calls, peer, session, VoiceApi::Realtime);
    let location = format!("/v1/realtime/calls/{}", call.id);
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response()
}

/// The call a request names, when its key is good and the call exists.
pub(super) fn known_call(
    calls: &SimCalls,
    headers: &HeaderMap,
    id: &str,
) -> Result<Arc<super::SimCallState>, Box<Response>> {
    if let Some(refused) = unauthorized(calls, headers) {
        return Err(Box::new(refused));
    }
    calls.call(id).ok_or_else(|| Box::new(not_found(id)))
}

/// The 404 OpenAI answers for a call it does not know.
fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "call_not_found",
        &format!("Call {id} not found."),
    )
}

async fn accept(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(session): Json<Value>,
) -> Response {
    let call = match known_call(&calls, &headers, &id) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    if call.status() != CallStatus::Ringing {
        return error(
            StatusCode::BAD_REQUEST,
            "call_not_ringing",
            "The call is not ringing.",
        );
    }
    if let Some(refused) = bad_session(&session) {
        return refused;
    }
    call.answered(&calls, &call, session)
}

async fn reject(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let call = match known_call(&calls, &headers, &id) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    call.rejected(&calls, body["status_code"].as_u64().unwrap_or(603))
}

async fn hangup(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&calls, &headers) {
        return refused;
    }
    match calls.call(&id) {
        Some(call) if call.status() != CallStatus::Ended => {
            call.end_with("close_requested", "hangup");
            calls.records.changed.notify_waiters();
            StatusCode::OK.into_response()
        }
        Some(_) => error(
            StatusCode::NOT_FOUND,
            "call_not_found",
            "The call has ended.",
        ),
        None => not_found(&id),
    }
}

async fn refer(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&calls, &headers) {
        return refused;
    }
    match calls.call(&id) {
        Some(_) => StatusCode::OK.into_response(),
        None => not_found(&id),
    }
}
