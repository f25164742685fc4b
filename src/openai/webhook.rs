//! OpenAI's webhooks follow Standard Webhooks: headers `webhook-id`,
//! `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature` (space-separated `v1,<base64>` entries, any of which
//! may match), an HMAC-SHA256 of `{id}.{timestamp}.{raw body}` keyed with
//! the endpoint secret `whsec_<base64>`. A timestamp more than 300 s from
//! now, either way, is refused (as OpenAI's SDK does).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a webhook's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("webhook-timestamp is not a Unix time")]
    BadTimestamp,
    #[error("webhook-timestamp is more than {TOLERANCE_SECS} s from now")]
    Stale,
    #[error("invalid webhook signature")]
    BadSignature,
    #[error("OPENAI_WEBHOOK_SECRET is not a `whsec_` base64 secret")]
    BadSecret,
}

/// The key of a `whsec_<base64>` secret (a bare base64 secret also works).
pub fn secret_key(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or(WebhookError::BadSecret)
}

/// The `v1,<base64>` signature of a delivery.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks a delivery's signature and timestamp against `key`, at `now`
/// (Unix seconds). Every `v1` entry is compared in constant time.
pub fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    let id = id.ok_or(WebhookError::Missing("webhook-id"))?;
    let timestamp = timestamp.ok_or(WebhookError::Missing("webhook-timestamp"))?;
    let signatures = signatures.ok_or(WebhookError::Missing("webhook-signature"))?;
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadTimestamp)?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(WebhookError::Stale);
    }
    let expected = sign(key, id, timestamp, body);
    let expected = expected.as_bytes();
    let matched =
        signatures
            .split(' ')
            .filter(|s| s.starts_with("v1,"))
            .fold(false, |found, candidate| {
                let same: bool = candidate.as_bytes().ct_eq(expected).into();
                found | same
            });
    if matched {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// An OpenAI webhook event, reduced to what scribe routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiEvent {
    pub id: String,
    pub kind: String,
    /// `data.call_id` of `realtime.call.incoming`, or `data.session_id` of
    /// GPT-Live's `live.transport.incoming` (opaque either way).
    pub call_id: Option<String>,
    /// `data.sip_headers`, by name (the first of each).
    pub sip_headers: Vec<(String, String)>,
}

/// An OpenAI event as scribe reads it (the OpenAPI document's request body
/// of `POST /api/openai/webhook`).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OpenAiWebhookEvent)]
pub(crate) struct Raw {
    #[schema(pattern = r"^[^\u0000]*$")]
    id: String,
    #[serde(rename = "type")]
    #[schema(pattern = r"^[^\u0000]*$")]
    kind: String,
    /// `call_id` (or GPT-Live's `session_id`) and `sip_headers` are read.
    #[serde(default)]
    data: Value,
}

impl OpenAiEvent {
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: Raw = crate::domain::object::from_slice(body)?;
        let call_id = raw.data["call_id"]
            .as_str()
            .or_else(|| raw.data["session_id"].as_str());
        if ![Some(raw.id.as_str()), Some(raw.kind.as_str()), call_id]
            .into_iter()
            .flatten()
            .all(crate::domain::storable)
        {
            return Err(serde::de::Error::custom(
                "a field holds the character U+0000",
            ));
        }
        let sip_headers = raw.data["sip_headers"]
            .as_array()
            .map(|headers| {
                headers
                    .iter()
                    .filter_map(|h| {
                        Some((
                            h["name"].as_str()?.to_owned(),
                            h["value"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id: raw.id,
            kind: raw.kind,
            call_id: raw.data["call_id"]
                .as_str()
                .or_else(|| raw.data["session_id"].as_str())
                .map(str::to_owned),
            sip_headers,
        })
    }

    /// A SIP header's value, by name (case-insensitive).
    pub fn sip_header(&self, name: &str) -> Option<&str> {
        self.sip_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_signature_made_with_the_secret_verifies_and_nothing_else_does() {
        let key = secret_key(SECRET).expect("a whsec secret");
        let body = br#"{"object":"event","id":"evt_1","type":"realtime.call.incoming"}"#;
        let now = 1_764_000_000;
        let good = sign(&key, "wh_1", now, body);
        assert_eq!(
            verify(
                &key,
                Some("wh_1"),
                Some(&now.to_string()),
                Some(&good),
                body,
                now
            ),
            Ok(())
        );
        // Several entries: any match counts.
        let several = format!("v1,AAAA v1a,xyz {good}");
        assert_eq!(
            verify(
                &key,
                Some("wh_1"),
                Some(&now.to_string()),
                Some(&several),
                body,
                now
            ),
            Ok(())
        );
        // Another id, body or key: refused.
        assert_eq!(
            verify(
                &key,
                Some("wh_2"),
                Some(&now.to_string()),
                Some(&good),
                body,
                now
            ),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(
                &key,
                Some("wh_1"),
                Some(&now.to_string()),
                Some(&good),
                b"{}",
                now
            ),
            Err(WebhookError::BadSignature)
        );
        let other = secret_key("whsec_b3RoZXIgc2VjcmV0").expect("secret");
        assert_eq!(
            verify(
                &other,
                Some("wh_1"),
                Some(&now.to_string()),
                Some(&good),
                body,
                now
            ),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn stale_or_missing_parts_are_refused() {
        let key = secret_key(SECRET).expect("secret");
        let body = b"{}";
        let then = 1_764_000_000;
        let sig = sign(&key, "wh_1", then, body);
        assert_eq!(
            verify(
                &key,
                Some("wh_1"),
                Some(&then.to_string()),
                Some(&sig),
                body,
                then + 301
            ),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify(
                &key,
                Some("wh_1"),
                Some(&then.to_string()),
                Some(&sig),
                body,
                then - 301
            ),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify(
                &key,
                Some("wh_1"),
                Some(&then.to_string()),
                Some(&sig),
                body,
                then + 300
            ),
            Ok(())
        );
        assert_eq!(
            verify(&key, None, Some("1"), Some(&sig), body, then),
            Err(WebhookError::Missing("webhook-id"))
        );
        assert_eq!(
            verify(&key, Some("wh_1"), Some("soon"), Some(&sig), body, then),
            Err(WebhookError::BadTimestamp)
        );
        assert_eq!(secret_key("whsec_"), Err(WebhookError::BadSecret));
    }

    #[test]
    fn an_incoming_call_gives_its_call_id_and_sip_headers() {
        let body = br#"{"object":"event","id":"evt_9","type":"realtime.call.incoming","created_at":1764000000,"data":{"call_id":"rtc_abc","sip_headers":[{"name":"From","value":"sip:+14155550123@example.com"},{"name":"To","value":"sip:+18005550100@sip.api.openai.com"},{"name":"Call-ID","value":"x"}]}}"#;
        let event = OpenAiEvent::parse(body).expect("parses");
        assert_eq!(event.kind, "realtime.call.incoming");
        assert_eq!(event.call_id.as_deref(), Some("rtc_abc"));
        assert_eq!(
            event.sip_header("to"),
            Some("sip:+18005550100@sip.api.openai.com")
        );
        assert_eq!(
            event.sip_header("FROM"),
            Some("sip:+14155550123@example.com")
        );
    }
}
