//! OpenAI's webhooks, simulated: deliveries signed as Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), such as the
//! `realtime.call.incoming` of a SIP call.

use serde_json::{Value, json};

use scribe::openai::webhook::sign;

/// Posts OpenAI-style webhooks to one endpoint, signed with one secret.
pub struct OpenAiWebhooks {
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
}

impl OpenAiWebhooks {
    /// Posts to `url` (scribe's `/api/openai/webhook`), signing with the
    /// key of a `whsec_` secret.
    pub fn new(url: &str, key: &[u8]) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: url.to_owned(),
            key: key.to_vec(),
        }
    }

    /// The event OpenAI sends when a SIP call reaches the project.
    pub fn incoming_call(call_id: &str, from: &str, to: &str) -> Value {
        json!({
            "object": "event",
            "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
            "type": "realtime.call.incoming",
            "created_at": chrono::Utc::now().timestamp(),
            "data": {
                "call_id": call_id,
                "sip_headers": [
                    { "name": "From", "value": format!("sip:{from}@example.com") },
                    { "name": "To", "value": format!("sip:{to}@sip.api.openai.com;transport=tls") },
                    { "name": "Call-ID", "value": format!("{call_id}@example.com") }
                ]
            }
        })
    }

    /// GPT-Live's incoming SIP call (`live.transport.incoming`).
    pub fn incoming_live(session_id: &str, from: &str, to: &str) -> Value {
        json!({
            "object": "event",
            "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
            "type": "live.transport.incoming",
            "created_at": chrono::Utc::now().timestamp(),
            "data": {
                "type": "sip",
                "session_id": session_id,
                "sip_media_security": "srtp",
                "sip_headers": [
                    { "name": "From", "value": format!("sip:{from}@example.com") },
                    { "name": "To", "value": format!("sip:{to}@sip.api.openai.com;transport=tls") },
                    { "name": "Call-ID", "value": format!("{session_id}@example.com") }
                ]
            }
        })
    }

    /// Posts `body` as delivery `webhook_id`, signed for `timestamp`.
    pub async fn post_at(
        &self,
        body: &[u8],
        webhook_id: &str,
        timestamp: i64,
    ) -> reqwest::Result<reqwest::Response> {
        let signature = sign(&self.key, webhook_id, timestamp, body);
        self.post_signed(body, webhook_id, timestamp, &signature)
            .await
    }

    /// Posts `body` with exactly these headers.
    pub async fn post_signed(
        &self,
        body: &[u8],
        webhook_id: &str,
        timestamp: i64,
        signature: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await
    }

    /// Posts `event` now, as a fresh delivery.
    pub async fn send(&self, event: &Value) -> reqwest::Result<reqwest::Response> {
        let id = format!("wh_{}", uuid::Uuid::new_v4().simple());
        self.post_at(
            event.to_string().as_bytes(),
            &id,
            chrono::Utc::now().timestamp(),
        )
        .await
    }
}
