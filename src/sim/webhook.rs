//! A Stream webhook driver: builds `call.session_started` /
//! `call.session_ended` events as Stream sends them and posts them signed.

use serde_json::{Value, json};

use crate::stream::event::{SESSION_ENDED, SESSION_STARTED};
use crate::stream::signature::sign;

pub struct WebhookDriver {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
    api_key: String,
}

/// A simulated call: the Stream call and session that carry one meeting.
#[derive(Debug, Clone)]
pub struct SimCall {
    pub meeting_id: String,
    pub call_id: String,
    pub session_id: String,
}

impl SimCall {
    pub fn new(meeting_id: &str) -> Self {
        Self {
            meeting_id: meeting_id.to_owned(),
            call_id: format!("call-{}", &meeting_id[..8.min(meeting_id.len())]),
            session_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn cid(&self) -> String {
        format!("default:{}", self.call_id)
    }

    /// The event body Stream sends, with `kind` as its type.
    pub fn event(&self, kind: &str) -> Value {
        json!({
            "type": kind,
            "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "call_cid": self.cid(),
            "session_id": self.session_id,
            "call": {
                "id": self.call_id,
                "type": "default",
                "cid": self.cid(),
                "custom": { "meetingId": self.meeting_id },
                "created_by": { "id": "sim-user" },
                "settings": {}
            }
        })
    }
}

impl WebhookDriver {
    /// Posts to `base` + `/api/webhook`.
    pub fn new(base: &str, secret: &[u8], api_key: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("{}/api/webhook", base.trim_end_matches('/')),
            secret: secret.to_vec(),
            api_key: api_key.to_owned(),
        }
    }

    /// Posts `body` signed, with `X-Webhook-Id` = `webhook_id`.
    pub async fn post(&self, body: &[u8], webhook_id: &str) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-webhook-id", webhook_id)
            .header("x-webhook-attempt", "1")
            .header("x-api-key", &self.api_key)
            .header("x-signature", sign(&self.secret, body))
            .body(body.to_vec())
            .send()
            .await
    }

    pub async fn session_started(&self, call: &SimCall) -> reqwest::Result<reqwest::Response> {
        let body = call.event(SESSION_STARTED).to_string();
        self.post(body.as_bytes(), &uuid::Uuid::new_v4().to_string())
            .await
    }

    pub async fn session_ended(&self, call: &SimCall) -> reqwest::Result<reqwest::Response> {
        let body = call.event(SESSION_ENDED).to_string();
        self.post(body.as_bytes(), &uuid::Uuid::new_v4().to_string())
            .await
    }
}
