//! What every demo call shares: the server's address, the store, the
//! simulated peers, the webhook senders, the agent, and the demo's secrets.

use anyhow::Context;
use scribe_actors::ids::MeetingId;
use serde_json::{Value, json};

use crate::llm::SimLlm;
use crate::openai_webhook::OpenAiWebhooks;
use crate::realtime::SimRealtime;
use crate::webhook::WebhookDriver;
use scribe::store::Store;

pub const SECRET: &str = "demo-stream-secret";
pub const TOKEN: &str = "demo-api-token-0123456789abcdef0123";
pub const OPENAI_KEY: &str = "sk-demo";
/// `whsec_` and the base64 of "scribe demo webhook secret".
pub const OPENAI_WEBHOOK_SECRET: &str = "whsec_c2NyaWJlIGRlbW8gd2ViaG9vayBzZWNyZXQ=";
/// The demo agent's phone number (SIP calls ring it).
pub const PHONE: &str = "+18005550100";

/// Everything a demo call needs.
pub struct Demo {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub peer: SimRealtime,
    pub llm: SimLlm,
    pub stream: WebhookDriver,
    pub openai_webhooks: OpenAiWebhooks,
    pub agent: String,
    pub turns: usize,
}

impl Demo {
    pub async fn new_meeting(&self, n: usize) -> anyhow::Result<MeetingId> {
        let meeting: Value = self
            .http
            .post(format!("{}/api/meetings", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": "Intro", "agent_id": self.agent, "user_id": format!("demo-user-{n}") }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(meeting["id"].as_str().context("meeting id")?.parse()?)
    }
}
