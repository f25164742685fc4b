//! A meeting's call carried by a browser (WebRTC): `POST
//! /api/meetings/{id}/call` takes the browser's SDP offer, has OpenAI create
//! the call, records it, attaches the meeting's actor to it and answers
//! OpenAI's SDP answer; `POST /api/meetings/{id}/hangup` ends an active call.
//! Both take the API token or the meeting's page key (`X-Meeting-Token`),
//! checked before the body is read.

use std::time::Duration;

use super::auth::MeetingAccess;
use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::domain::meeting::Meeting;
use crate::openai::rest::{CallsApiError, SessionConfig};
use crate::store::AttachedStart;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scribe_actors::domain::{MeetingStatus, Transport};
use scribe_actors::ids::MeetingId;
use serde::Serialize;
use tracing::Instrument;

/// The largest SDP offer accepted.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// What the API takes as an offer, as the OpenAPI document states it: a
/// first line `v=0`, then an origin (`o=`) line, then an audio section
/// (`m=audio `). [`sdp_offer`] checks exactly this.
pub const SDP_OFFER_PATTERN: &str =
    r"^v=0\r?\n([^\n]*\n)*o=[^\n]*\n([^\n]*\n)*m=audio [^\n]*(\n[^\n]*)*$";

/// The request body of `POST /api/meetings/{id}/call`, for the document.
pub struct SdpOffer;

impl utoipa::PartialSchema for SdpOffer {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(SDP_OFFER_PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for SdpOffer {}

/// True when `text` is an offer [`SDP_OFFER_PATTERN`] describes.
fn is_offer(text: &str) -> bool {
    let mut lines = text.lines();
    if lines.next() != Some("v=0") {
        return false;
    }
    let rest: Vec<&str> = lines.collect();
    rest.iter()
        .position(|l| l.starts_with("o="))
        .is_some_and(|origin| rest[origin + 1..].iter().any(|l| l.starts_with("m=audio ")))
}

/// Checks the offer is SDP with an audio section; returns it as text.
fn sdp_offer(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/sdp") {
        return Err(ApiError::Rejected {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("the body must be `application/sdp`, got `{content_type}`"),
        });
    }
    if body.len() > MAX_OFFER_BYTES {
        return Err(ApiError::Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the offer is over {MAX_OFFER_BYTES} bytes"),
        });
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not an SDP offer: not UTF-8".into()))?;
    if !is_offer(text) {
        return Err(ApiError::BadRequest(
            "the body is not an SDP offer with an audio section".into(),
        ));
    }
    Ok(text.to_owned())
}

/// What OpenAI is asked for on a call of this meeting.
async fn session_config(state: &AppState, meeting: &Meeting) -> Result<SessionConfig, ApiError> {
    let instructions = match &meeting.prompt {
        Some(prompt) => prompt.clone(),
        None => state
            .store
            .agent(meeting.agent_id)
            .await?
            .map(|a| a.instructions)
            .ok_or_else(ApiError::agent_not_found)?,
    };
    Ok(SessionConfig {
        instructions,
        ..(*state.session).clone()
    })
}

/// Removes the meeting from the calls being created, however the request ends.
struct Creating<'a> {
    state: &'a AppState,
    meeting: MeetingId,
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.state
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.meeting);
    }
}

/// How long the answer to a browser waits for the sideband to attach.
const ATTACH_BEFORE_ANSWER: Duration = Duration::from_secs(3);

/// `POST /api/meetings/{id}/call`.
#[utoipa::path(
    post,
    path = "/api/meetings/{id}/call",
    tag = "calls",
    operation_id = "start_call",
    security(("api_token" = []), ("meeting_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    request_body(
        description = "The browser's SDP offer, with an audio section.",
        content((SdpOffer = "application/sdp")),
    ),
    responses(
        (status = 201, description = "OpenAI's SDP answer; the meeting is `active` and scribe attached.",
            body = String, content_type = "application/sdp"),
        (status = 400, description = "The id is not a UUID, or the body is not an SDP offer with audio.", body = ErrorBody),
        (status = 401, description = "A bearer token that is not the API token.", body = ErrorBody),
        (status = 404, description = "No such meeting, or neither the API token nor this meeting's page key.", body = ErrorBody),
        (status = 410, description = "The meeting was deleted.", body = ErrorBody),
        (status = 409, description = "The meeting is not `upcoming`, or its call is being created.", body = ErrorBody),
        (status = 413, description = "The offer is over 64 KiB.", body = ErrorBody),
        (status = 415, description = "The body is not `application/sdp`.", body = ErrorBody),
        (status = 422, description = "OpenAI refused the offer.", body = ErrorBody),
        (status = 429, description = "Too many calls created for this meeting: 3, then one every 20 s.", body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds to wait."))),
        (status = 502, description = "OpenAI refused the call for another reason, or could not be reached.", body = ErrorBody),
        (status = 503, description = "`OPENAI_API_KEY` is not set, or the call supervisor is unavailable.", body = ErrorBody),
    ),
)]
pub async fn call(
    access: MeetingAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let span = scribe_actors::meeting_span!(
        access.meeting.id,
        "call.request",
        call.path = "webrtc",
        voice.api = state.store.voice_api().as_str()
    );
    create_call(access, state, headers, body)
        .instrument(span)
        .await
}

async fn create_call(
    access: MeetingAccess,
    state: AppState,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let meeting = access.meeting;
    super::extract::plain_encoding(&headers)?;
    let body = super::extract::read_body(body, MAX_OFFER_BYTES).await?;
    let offer = sdp_offer(&headers, &body)?;
    let Some(api) = state.calls_api.clone() else {
        return Err(ApiError::Unconfigured(
            "OPENAI_API_KEY is not set: scribe cannot create calls",
        ));
    };
    let api = api.on(state.store.voice_api());
    if meeting.status != MeetingStatus::Upcoming {
        return Err(ApiError::Conflict(format!(
            "Meeting is {}: a call starts only for an upcoming meeting",
            meeting.status
        )));
    }
    let fresh = state
        .creating
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(meeting.id);
    if !fresh {
        return Err(ApiError::Conflict(
            "a call is already being created for this meeting".into(),
        ));
    }
    let _creating = Creating {
        state: &state,
        meeting: meeting.id,
    };
    // Only a request that would reach OpenAI counts against the meeting.
    state.limits.call(meeting.id)?;
    let session = session_config(&state, &meeting).await?;
    let created = api.create(&offer, &session).await.map_err(refused)?;
    match state
        .store
        .start_attached(meeting.id, Transport::WebRtc, &created.call_id)
        .await?
    {
        AttachedStart::Started => {}
        AttachedStart::NotUpcoming(status) => {
            // Another instance started a call first: this one goes.
            if let Err(error) = api.hangup(&created.call_id).await {
                tracing::warn!(meeting = %meeting.id, %error, "extra call not hung up");
            }
            return Err(ApiError::Conflict(format!(
                "Meeting is {status}: a call starts only for an upcoming meeting"
            )));
        }
        AttachedStart::NotFound => return Err(ApiError::meeting_not_found()),
    }
    tracing::info!(meeting = %meeting.id, call = %created.call_id, "webrtc call created");
    let id = meeting.id;
    // The browser sends no audio before it has the answer: answering once
    // the sideband is attached means scribe hears the call from its first
    // word. A slow attach delays the call by at most ATTACH_BEFORE_ANSWER.
    if !state
        .service
        .started_and_attached(id, ATTACH_BEFORE_ANSWER)
        .await
    {
        tracing::warn!(meeting = %id, "answering before the sideband attached: the call's first events may be missed");
    }
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/sdp")],
        created.answer,
    )
        .into_response())
}

/// What a hang-up ended: the call scribe is attached to (a browser's or a
/// phone's, at OpenAI: ended there too), or the voice session scribe owns
/// (its own socket; on Stream, scribe's agent leaves and the Stream call
/// goes on for whoever else is in it).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    AttachedCall,
    OwnedSession,
}

/// The answer of a hang-up: the meeting is `processing`, and what ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HungUp {
    status: MeetingStatus,
    ended: Ended,
}

/// `POST /api/meetings/{id}/hangup`.
#[utoipa::path(
    post,
    path = "/api/meetings/{id}/hangup",
    tag = "calls",
    operation_id = "hang_up",
    security(("api_token" = []), ("meeting_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id.")),
    responses(
        super::openapi::MeetingLookup,
        (status = 202, description = "The call ended (`ended` says which: the call scribe is attached to, or the \
                                      session it owns); its analysis runs.", body = HungUp),
        (status = 409, description = "The meeting is not `active`, or has no call scribe is attached to or owns.", body = ErrorBody),
        (status = 503, description = "The call supervisor is unavailable.", body = ErrorBody),
    ),
)]
pub async fn hangup(
    access: MeetingAccess,
    State(state): State<AppState>,
) -> Result<(StatusCode, axum::Json<HungUp>), ApiError> {
    let meeting = access.meeting;
    if meeting.status != MeetingStatus::Active {
        return Err(ApiError::Conflict(format!(
            "Meeting is {}: only an active call can be hung up",
            meeting.status
        )));
    }
    let ended = match meeting.transport {
        Some(transport) if transport.is_attached() => Ended::AttachedCall,
        Some(_) => Ended::OwnedSession,
        None => {
            return Err(ApiError::Conflict(
                "the meeting has no call scribe is attached to or owns".into(),
            ));
        }
    };
    // The same path as `call.session_ended`. The call's actor (here or on
    // the instance that owns it) ends an attached call at OpenAI the way
    // its path ends, after it stopped listening for the sideband's end:
    // nothing re-attaches.
    state.service.hang_up(&meeting).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(HungUp {
            status: MeetingStatus::Processing,
            ended,
        }),
    ))
}

/// OpenAI's refusal, as the caller sees it. OpenAI's own words go to the
/// log; the answer (which a page shows) says what happened in scribe's. An
/// offer OpenAI found invalid (400, 422) is the caller's: 422; anything
/// else (a bad key, a limit, OpenAI down) is 502.
fn refused(error: CallsApiError) -> ApiError {
    tracing::warn!(%error, "OpenAI refused to create the call");
    if let CallsApiError::Refused {
        status: 400 | 422, ..
    } = error
    {
        return ApiError::Unprocessable(format!(
            "OpenAI refused the offer: {} (the server log has its words)",
            error.public()
        ));
    }
    ApiError::Rejected {
        status: StatusCode::BAD_GATEWAY,
        message: format!(
            "OpenAI refused the call: {} (the server log has its words)",
            error.public()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sdp_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/sdp"),
        );
        headers
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Any body: no panic, and accepted only when it is SDP with an
        /// origin and an audio section, within the size limit.
        #[test]
        fn the_offer_check_accepts_exactly_sdp_with_audio(
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..512),
                "(v=0\\r\\n)?(o=- [0-9]{1,5} 2 IN IP4 127\\.0\\.0\\.1\\r\\n)?(s=-\\r\\n)?(m=(audio|video) 9 UDP/TLS/RTP/SAVPF 111\\r\\n)?[a-z=]{0,20}"
                    .prop_map(String::into_bytes),
                // Lines in any order, either line ending, a bare \r.
                "(v=0\r?\n)?((o=x|m=audio 9|m=audio|m=video 9|s=-|a=[a-z]{0,3}|v=0)\r{0,2}\n){0,5}(m=audio 1)?"
                    .prop_map(String::into_bytes),
            ]
        ) {
            let body = Bytes::from(body);
            let verdict = sdp_offer(&sdp_headers(), &body);
            let text = std::str::from_utf8(&body).ok();
            // Exactly what the OpenAPI document's pattern says.
            let pattern = regex::Regex::new(SDP_OFFER_PATTERN).expect("the pattern compiles");
            let valid = text.is_some_and(|t| pattern.is_match(t));
            prop_assert_eq!(verdict.is_ok(), valid);
            if let Ok(offer) = verdict {
                prop_assert_eq!(Some(offer.as_str()), text);
            }
        }

        /// Anything but `application/sdp` is refused with 415, whatever the
        /// body.
        #[test]
        fn another_type_is_refused_whatever_the_body(
            kind in "[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assume!(!kind.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/sdp"));
            let mut headers = HeaderMap::new();
            if let Ok(value) = axum::http::HeaderValue::from_str(&kind) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            let refused = sdp_offer(&headers, &Bytes::from(body));
            let unsupported = matches!(
                refused,
                Err(ApiError::Rejected { status, .. }) if status == StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
            prop_assert!(unsupported, "{:?}", refused.map(|_| ()));
        }
    }

    #[test]
    fn an_oversized_offer_is_refused_with_413() {
        let mut body = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP 111\r\n".to_vec();
        body.resize(MAX_OFFER_BYTES + 1, b'a');
        let refused = sdp_offer(&sdp_headers(), &Bytes::from(body));
        assert!(matches!(
            refused,
            Err(ApiError::Rejected { status, .. }) if status == StatusCode::PAYLOAD_TOO_LARGE
        ));
    }
}
