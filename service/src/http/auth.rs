//! Who may do what: the API token (bearer), a meeting's page key. Every
//! credential is compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use scribe_actors::ids::MeetingId;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::domain::meeting::Meeting;

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

/// The header that carries a meeting's page key (the page's buttons send it).
pub const MEETING_TOKEN_HEADER: &str = "x-meeting-token";

/// The query parameter that carries it in a page link and an event stream's
/// address (`?key=`).
pub const MEETING_KEY_PARAM: &str = "key";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn meeting_mac(page_key: &SecretString, meeting: MeetingId, generation: i64) -> HmacSha256 {
    let mut mac =
        <HmacSha256 as hmac::KeyInit>::new_from_slice(page_key.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
    hmac::Mac::update(&mut mac, b"scribe meeting page v2:");
    hmac::Mac::update(&mut mac, meeting.to_string().as_bytes());
    hmac::Mac::update(&mut mac, b":");
    hmac::Mac::update(&mut mac, generation.to_string().as_bytes());
    mac
}

/// The key in a meeting's page link: an HMAC of the meeting id and its
/// link generation under the page secret (`SCRIBE_PAGE_SECRET`, else one
/// kept in the database). The id alone opens nothing; the key opens that
/// meeting's page, event stream, status, transcript, call, hang-up and
/// retry, and nothing else. It stops working when a new link is issued for
/// the meeting (the generation goes up) or the page secret changes.
pub fn meeting_token(page_key: &SecretString, meeting: MeetingId, generation: i64) -> String {
    hex::encode(hmac::Mac::finalize(meeting_mac(page_key, meeting, generation)).into_bytes())
}

/// A meeting's page link (`<base>/meetings/<id>?key=<key>`).
pub fn page_link(base: &str, page_key: &SecretString, meeting: &Meeting) -> String {
    format!(
        "{base}/meetings/{}?{MEETING_KEY_PARAM}={}",
        meeting.id,
        meeting_token(page_key, meeting.id, meeting.page_generation)
    )
}

/// True when `presented` is the meeting's current key (in constant time).
fn key_matches(page_key: &SecretString, meeting: &Meeting, presented: &str) -> bool {
    hex::decode(presented.trim()).is_ok_and(|presented| {
        hmac::Mac::verify_slice(
            meeting_mac(page_key, meeting.id, meeting.page_generation),
            &presented,
        )
        .is_ok()
    })
}

/// Who may act on a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The API token: everything.
    Api,
    /// The meeting's page key.
    Page,
}

/// A meeting the request may act on, and by which credential: the API
/// token (`Authorization: Bearer`), or the meeting's page key (the
/// `X-Meeting-Token` header or the `key` query parameter). Checked from the
/// head, before any body is read.
///
/// A wrong bearer token is 401. Without a credential, or with a key that
/// is not this meeting's current one, the answer is the same 404 as for a
/// meeting that does not exist: the id alone opens nothing, and says
/// nothing about whether the meeting exists. A deleted meeting is 410 to
/// the API token and to the key its link carried.
pub struct MeetingAccess {
    pub meeting: Meeting,
    pub holder: Holder,
}

impl MeetingAccess {
    /// Refuses anyone but the API token's holder (with the same 404).
    pub fn api_only(self) -> Result<Meeting, ApiError> {
        match self.holder {
            Holder::Api => Ok(self.meeting),
            Holder::Page => Err(ApiError::meeting_not_found()),
        }
    }
}

#[derive(serde::Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

impl FromRequestParts<AppState> for MeetingAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let id: MeetingId = id.parse()?;
        let api = if parts.headers.contains_key(AUTHORIZATION) {
            if !bearer_matches(&parts.headers, &state.api_token) {
                return Err(ApiError::Unauthorized);
            }
            true
        } else {
            false
        };
        let presented = parts
            .headers
            .get(MEETING_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                axum::extract::Query::<KeyQuery>::try_from_uri(&parts.uri)
                    .ok()
                    .and_then(|q| q.0.key)
            });
        if !api && presented.is_none() {
            return Err(ApiError::meeting_not_found());
        }
        let meeting = state
            .store
            .meeting(id)
            .await?
            .ok_or_else(ApiError::meeting_not_found)?;
        let holder = if api {
            Holder::Api
        } else if presented.is_some_and(|key| key_matches(&state.page_key, &meeting, &key)) {
            Holder::Page
        } else {
            return Err(ApiError::meeting_not_found());
        };
        // A deleted meeting says so to whoever could open it, and opens
        // nothing: its page key keeps the generation it had, for this only.
        if meeting.deleted_at.is_some() {
            return Err(ApiError::meeting_deleted());
        }
        Ok(Self { meeting, holder })
    }
}

/// True when the `Authorization` header is `Bearer <expected>`.
pub fn bearer_matches(headers: &HeaderMap, expected: &SecretString) -> bool {
    // The scheme is case-insensitive (RFC 9110); the token is not.
    let Some(presented) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
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
        assert!(bearer_matches(&headers("bearer s3cret"), &token));
        assert!(!bearer_matches(&headers("Bearer S3CRET"), &token));
        assert!(!bearer_matches(&headers("Bearer s3cre"), &token));
        assert!(!bearer_matches(&headers("Bearer s3cret2"), &token));
        assert!(!bearer_matches(&headers("Basic s3cret"), &token));
        assert!(!bearer_matches(&headers("s3cret"), &token));
        assert!(!bearer_matches(&HeaderMap::new(), &token));
    }
}
