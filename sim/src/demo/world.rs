//! What every demo call shares: the server's address, the store, the
//! simulated peers, the webhook senders, the agents (one per scripted
//! dialogue: a tutor, a coach, a language partner), and the demo's secrets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use scribe_actors::ids::MeetingId;
use serde_json::{Value, json};

use crate::dialogues::{self, Dialogue};
use crate::llm::SimLlm;
use crate::openai_webhook::OpenAiWebhooks;
use crate::realtime::SimRealtime;
use crate::script::Script;
use crate::webhook::WebhookDriver;
use scribe::store::Store;

pub const SECRET: &str = "demo-stream-secret";
pub const TOKEN: &str = "demo-api-token-0123456789abcdef0123";
pub const OPENAI_KEY: &str = "sk-demo";
/// `whsec_` and the base64 of "scribe demo webhook secret".
pub const OPENAI_WEBHOOK_SECRET: &str = "whsec_c2NyaWJlIGRlbW8gd2ViaG9vayBzZWNyZXQ=";
/// The coaching agent's phone number (SIP calls ring it).
pub const PHONE: &str = "+18005550100";

/// The dialogue a phone call plays (the agent with [`PHONE`] is its coach).
pub const PHONE_DIALOGUE: &Dialogue = &dialogues::COACHING;

/// One of the demo's agents: who it is, what its calls say, the first
/// session of its plan.
pub struct DemoAgent {
    pub id: String,
    pub dialogue: &'static Dialogue,
    pub first_session: &'static str,
}

/// Which dialogue each meeting's call plays (meeting id to dialogue),
/// shared with the simulated peers' scripts.
pub type Dialogues = Arc<Mutex<HashMap<String, &'static Dialogue>>>;

/// The conversation `meeting`'s call plays: its agent's dialogue.
pub fn script_of(dialogues: &Dialogues, meeting: &str, turns: usize) -> Script {
    let dialogue = dialogues
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(meeting)
        .copied()
        .unwrap_or(PHONE_DIALOGUE);
    Script::for_dialogue(meeting, dialogue, turns)
}

/// The demo's agents: their dialogue, their plan's first session, and
/// their name, instructions and plan.
pub fn agents() -> [(&'static Dialogue, &'static str, Value); 3] {
    let plan = |first: &str, goal: &str, second: &str, goal2: &str| {
        json!({ "sessions": [
            { "session_name": first, "goals": [goal] },
            { "session_name": second, "goals": [goal2] }
        ]})
    };
    [
        (
            &dialogues::TUTORING,
            "Fractions",
            json!({
                "name": dialogues::TUTORING.agent,
                "instructions": "You are a patient maths tutor for a high-school student. Explain one step at a time and let them try first.",
                "blueprint": plan("Fractions", "Add fractions with unlike denominators", "Ratios", "Scale a recipe with ratios"),
            }),
        ),
        (
            &dialogues::COACHING,
            "Intro",
            json!({
                "name": dialogues::COACHING.agent,
                "instructions": "You are a leadership coach for new team leads. Ask before you advise; end with one concrete step.",
                "phone_numbers": [PHONE],
                "blueprint": plan("Intro", "Learn what the user wants", "Action plan", "Write the week's plan"),
            }),
        ),
        (
            &dialogues::LANGUAGE,
            "At the restaurant",
            json!({
                "name": dialogues::LANGUAGE.agent,
                "instructions": "You are a friendly Spanish conversation partner for a traveller. Correct gently and keep it practical.",
                "blueprint": plan("At the restaurant", "Order a meal", "Finding your way", "Ask for and follow directions"),
            }),
        ),
    ]
}

/// Everything a demo call needs.
pub struct Demo {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub peer: SimRealtime,
    pub llm: SimLlm,
    pub stream: WebhookDriver,
    pub openai_webhooks: OpenAiWebhooks,
    pub agents: Vec<DemoAgent>,
    pub dialogues: Dialogues,
    pub turns: usize,
}

impl Demo {
    /// A meeting with the `n`th call's agent (they take turns), its
    /// dialogue noted for the peers.
    pub async fn new_meeting(&self, n: usize) -> anyhow::Result<MeetingId> {
        let agent = &self.agents[n % self.agents.len()];
        let meeting: Value = self
            .http
            .post(format!("{}/api/meetings", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": agent.first_session, "agent_id": agent.id, "user_id": format!("demo-user-{n}") }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = meeting["id"].as_str().context("meeting id")?;
        self.dialogues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), agent.dialogue);
        Ok(id.parse()?)
    }

    /// The conversation `meeting`'s call plays.
    pub fn script(&self, meeting: &str) -> Script {
        script_of(&self.dialogues, meeting, self.turns)
    }
}
