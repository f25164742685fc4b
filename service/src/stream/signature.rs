//! Webhook signatures: lowercase hex HMAC-SHA256 of the raw body, keyed with
//! the API secret, compared in constant time.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The signature Stream sends in `X-Signature` for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// True when `signature` (hex, either case) is the HMAC of `body`.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature.trim()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_only_the_exact_body() {
        let sig = sign(b"secret", br#"{"type":"call.session_started"}"#);
        assert!(verify(
            b"secret",
            br#"{"type":"call.session_started"}"#,
            &sig
        ));
        assert!(verify(
            b"secret",
            br#"{"type":"call.session_started"}"#,
            &sig.to_uppercase()
        ));
        assert!(!verify(
            b"secret",
            br#"{"type": "call.session_started"}"#,
            &sig
        ));
        assert!(!verify(
            b"other",
            br#"{"type":"call.session_started"}"#,
            &sig
        ));
        assert!(!verify(b"secret", b"x", "not hex"));
        assert!(!verify(b"secret", b"x", ""));
    }
}
