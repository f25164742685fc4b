//! The `Stream-Authorization` token for Stream's agent endpoint: HS256 with
//! the API secret; claims `user_id`, `call_cids`, `iat`, `exp`.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentClaims {
    pub user_id: String,
    pub call_cids: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

/// How far in the past `iat` is set, against clock skew between scribe and
/// Stream (Stream's own SDKs do the same).
pub const CLOCK_SKEW_SECS: i64 = 5;

/// A token issued [`CLOCK_SKEW_SECS`] before `now` (Unix seconds), valid
/// until an hour after `now`.
pub fn agent_token(
    secret: &[u8],
    user_id: &str,
    call_cid: &str,
    now: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = AgentClaims {
        user_id: user_id.to_owned(),
        call_cids: vec![call_cid.to_owned()],
        iat: now - CLOCK_SKEW_SECS,
        exp: now + 3600,
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[test]
    fn round_trips_with_the_secret_only() {
        let now = chrono::Utc::now().timestamp();
        let token =
            agent_token(b"stream-secret", "scribe-agent", "default:call-1", now).expect("signs");
        let decoded = decode::<AgentClaims>(
            &token,
            &DecodingKey::from_secret(b"stream-secret").expect("key"),
            &Validation::default(),
        )
        .expect("verifies");
        assert_eq!(decoded.claims.call_cids, ["default:call-1"]);
        assert_eq!(decoded.claims.iat, now - 5, "issued 5 s in the past");
        assert_eq!(decoded.claims.exp, now + 3600);
        assert!(
            decode::<AgentClaims>(
                &token,
                &DecodingKey::from_secret(b"wrong").expect("key"),
                &Validation::default()
            )
            .is_err()
        );
    }
}
