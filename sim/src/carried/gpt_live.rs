//! GPT-Live on the simulated OpenAI, on every path:
//!
//! - `POST /v1/live/sessions` (JSON: `session`, `transport` with the
//!   browser's offer): a WebRTC call, answered by a real media endpoint;
//!   the answer is JSON (`session.id`, `transport.sdp`);
//! - `GET /v1/live/sessions` upgraded: an owned session (`session.start`
//!   first; see [`owned`]);
//! - `GET /v1/live/sessions/{id}/attach`: the sideband;
//! - `POST /v1/live/sessions/{id}/accept|reject|hangup|refer`.
//!
//! Session configs are strict, as OpenAI's are: an unknown field is a 400
//! (`unknown_parameter`, naming it).

pub mod owned;
pub mod play;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scribe_actors::domain::VoiceApi;
use serde_json::{Value, json};

use super::media;
use super::rest::{known_call, launch, unauthorized};
use super::{CallKind, CallStatus, SimCalls, error, sideband};

/// Fields a session config may have (`session.start`, a WebRTC session).
pub const SESSION_FIELDS: [&str; 11] = [
    "model",
    "audio",
    "client",
    "delegation",
    "idle_timeout_s",
    "input",
    "instructions",
    "safety_identifier",
    "store",
    "triggers",
    "wake_policy",
];
/// Fields an accepted SIP session's config may have.
const ACCEPT_SESSION_FIELDS: [&str; 9] = [
    "type",
    "model",
    "instructions",
    "audio",
    "delegation",
    "input",
    "store",
    "safety_identifier",
    "triggers",
];

/// The GPT-Live routes, on the simulated OpenAI HTTP API.
pub fn routes(calls: Arc<SimCalls>) -> axum::Router {
    axum::Router::new()
        .route("/v1/live/sessions", post(create).get(owned::open))
        .route("/v1/live/sessions/{id}/attach", get(attach))
        .route("/v1/live/sessions/{id}/accept", post(accept))
        .route("/v1/live/sessions/{id}/reject", post(reject))
        .route("/v1/live/sessions/{id}/hangup", post(hangup))
        .route("/v1/live/sessions/{id}/refer", post(refer))
        .with_state(calls)
}

/// OpenAI's refusal of a session config with an unknown field or no
/// model, naming the field.
pub fn strict(session: &Value, allowed: &[&str]) -> Result<(), (String, String)> {
    let Some(fields) = session.as_object() else {
        return Err(("session".into(), "`session` must be an object.".into()));
    };
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err((
            format!("session.{unknown}"),
            format!("Unknown parameter: 'session.{unknown}'."),
        ));
    }
    if !session["model"].is_string() {
        return Err((
            "session.model".into(),
            "Missing required parameter: 'session.model'.".into(),
        ));
    }
    Ok(())
}

fn refused(param: &str, message: &str) -> Response {
    let body = json!({"error":{"type":"invalid_request_error","code":"unknown_parameter","message":message,"param":param}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn create(
    State(calls): State<Arc<SimCalls>>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(refused) = unauthorized(&calls, &headers) {
        return refused;
    }
    let Some(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body must be JSON.",
        );
    };
    if let Err((param, message)) = strict(&body["session"], &SESSION_FIELDS) {
        return refused(&param, &message);
    }
    let (Some("webrtc"), Some(offer)) = (
        body["transport"]["type"].as_str(),
        body["transport"]["sdp"].as_str(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_transport",
            "`transport` must be `{\"type\":\"webrtc\",\"sdp\":...}`.",
        );
    };
    let (answer, peer) = match media::answer(offer).await {
        Ok(negotiated) => negotiated,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_offer", &why),
    };
    let call = launch(&calls, peer, body["session"].clone(), VoiceApi::Live);
    Json(json!({
        "session": { "id": call.id },
        "transport": { "type": "webrtc", "sdp": answer },
    }))
    .into_response()
}

async fn attach(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    sideband::attach_call(calls, id, request)
}

async fn accept(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let call = match known_call(&calls, &headers, &id) {
        Ok(call) if call.api == VoiceApi::Live => call,
        Ok(_) => {
            return error(
                StatusCode::NOT_FOUND,
                "session_not_found",
                "No such Live session.",
            );
        }
        Err(refused) => return *refused,
    };
    if call.status() != CallStatus::Ringing {
        return error(
            StatusCode::BAD_REQUEST,
            "session_not_ringing",
            "The session is not ringing.",
        );
    }
    let session = &body["session"];
    if let Err((param, message)) = strict(session, &ACCEPT_SESSION_FIELDS) {
        return refused(&param, &message);
    }
    if session["type"] != "live" {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_session",
            "`session.type` must be `live`.",
        );
    }
    call.answered(&calls, &call, session.clone())
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
    // GPT-Live requires the status, 300-699.
    let Some(status) = body["status_code"]
        .as_u64()
        .filter(|s| (300..700).contains(s))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_status_code",
            "`status_code` (300-699) is required.",
        );
    };
    call.rejected(&calls, status)
}

async fn hangup(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let call = match known_call(&calls, &headers, &id) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    if call.status() == CallStatus::Ended {
        return error(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "The session has ended.",
        );
    }
    // OpenAI documents this for SIP calls; a WebRTC session is ended with
    // `session.close` on a sideband.
    if call.kind == CallKind::WebRtc {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_transport",
            "Hangup ends SIP calls; end a WebRTC session with session.close.",
        );
    }
    call.end_with("close_requested", "hangup");
    calls.records.changed.notify_waiters();
    StatusCode::OK.into_response()
}

async fn refer(
    State(calls): State<Arc<SimCalls>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match known_call(&calls, &headers, &id) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(refused) => *refused,
    }
}
