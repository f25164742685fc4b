//! A Stream webhook driver: builds `call.session_started`,
//! `call.session_ended` and the participant events as Stream sends them
//! (its documented fields) and posts them signed.

use serde_json::{Value, json};

use scribe::stream::event::{PARTICIPANT_LEFT, SESSION_ENDED, SESSION_STARTED};
use scribe::stream::signature::sign;

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

impl SimCall {
    /// A participant event (`call.session_participant_joined` or
    /// `..._left`) for user `user_id` in its session `user_session_id`:
    /// routed by `call_cid`, no `call`.
    pub fn participant(&self, kind: &str, user_id: &str, user_session_id: &str) -> Value {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut event = json!({
            "type": kind,
            "created_at": now,
            "call_cid": self.cid(),
            "session_id": self.session_id,
            "participant": {
                "user": { "id": user_id, "role": "user", "custom": {}, "teams": [], "banned": false, "online": true,
                          "created_at": now, "updated_at": now },
                "user_session_id": user_session_id,
                "role": "user",
                "joined_at": now
            }
        });
        if kind == PARTICIPANT_LEFT {
            event["duration_seconds"] = json!(0);
        }
        event
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

    /// Posts `event` as a fresh delivery.
    pub async fn send(&self, event: &Value) -> reqwest::Result<reqwest::Response> {
        self.post(
            event.to_string().as_bytes(),
            &uuid::Uuid::new_v4().to_string(),
        )
        .await
    }
}
