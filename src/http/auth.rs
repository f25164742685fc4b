//! Bearer-token checks. Tokens are compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
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
