//! Bearer-token checks. Tokens are compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use scribe_actors::ids::MeetingId;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// Proof that the request carried `Authorization: Bearer $SCRIBE_API_TOKEN`.
/// Put it first among a handler's extractors so it is checked before the body.
pub struct ApiCaller;

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer_matches(&parts.headers, &state.api_token) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The header that carries a meeting's page capability.
pub const MEETING_TOKEN_HEADER: &str = "x-meeting-token";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn meeting_mac(page_key: &SecretString, meeting: MeetingId) -> HmacSha256 {
    let mut mac =
        <HmacSha256 as hmac::KeyInit>::new_from_slice(page_key.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
    hmac::Mac::update(&mut mac, b"scribe meeting page v1:");
    hmac::Mac::update(&mut mac, meeting.to_string().as_bytes());
    mac
}

/// The capability a meeting's page embeds so that its buttons (try again,
/// start a call, hang up) work without the API token: an HMAC of the
/// meeting id under the page key, a secret of its own. The page is public,
/// so the capability is too: it reveals nothing about the API token, allows
/// acting on that meeting only, and changes when the page key does.
pub fn meeting_token(page_key: &SecretString, meeting: MeetingId) -> String {
    hex::encode(hmac::Mac::finalize(meeting_mac(page_key, meeting)).into_bytes())
}

/// True when the request carries the API token, or this meeting's page
/// capability in [`MEETING_TOKEN_HEADER`] (checked in constant time).
pub fn may_act_on_meeting(
    headers: &HeaderMap,
    api_token: &SecretString,
    page_key: &SecretString,
    meeting: MeetingId,
) -> bool {
    if bearer_matches(headers, api_token) {
        return true;
    }
    headers
        .get(MEETING_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| hex::decode(v.trim()).ok())
        .is_some_and(|presented| {
            hmac::Mac::verify_slice(meeting_mac(page_key, meeting), &presented).is_ok()
        })
}

/// True when the `Authorization` header is `Bearer <expected>`.
pub fn bearer_matches(headers: &HeaderMap, expected: &SecretString) -> bool {
    let Some(presented) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    bool::from(
        presented
            .trim()
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(value).expect("valid header"),
        );
        h
    }

    #[test]
    fn accepts_only_the_exact_bearer_token() {
        let token = SecretString::from("s3cret");
        assert!(bearer_matches(&headers("Bearer s3cret"), &token));
        assert!(!bearer_matches(&headers("Bearer s3cre"), &token));
        assert!(!bearer_matches(&headers("Bearer s3cret2"), &token));
        assert!(!bearer_matches(&headers("Basic s3cret"), &token));
        assert!(!bearer_matches(&headers("s3cret"), &token));
        assert!(!bearer_matches(&HeaderMap::new(), &token));
    }
}
