//! # scribe-sim
//!
//! Simulated outside parts that speak the real wire protocols: a realtime
//! peer (OpenAI Realtime over WebSocket), an OpenAI-compatible
//! chat-completions server, OpenAI's calls API with its sideband and
//! WebRTC endpoint, GPT-Live, and signed Stream and OpenAI webhook
//! drivers; and `scribe demo` ([`demo`]). They are product features
//! (`--simulate`, the demo, load tests), not mocks: scribe talks to them
//! exactly as it talks to the real services. The service library
//! (`scribe`) does not depend on this crate.

pub mod carried;
pub mod demo;
pub mod dialogues;
pub mod llm;
pub mod openai_webhook;
pub mod realtime;
pub mod script;
pub mod webhook;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use llm::SimLlm;
use realtime::{SimRealtime, SimRealtimeConfig};
use scribe::config::Settings;
use script::Script;

/// The simulated realtime peer and LLM of `scribe serve --simulate`, on
/// loopback ports of their own. They run until dropped.
pub struct Simulators {
    pub realtime: SimRealtime,
    pub llm: SimLlm,
}

impl Simulators {
    /// Starts both: an endless real-time conversation on every realtime
    /// connection, and a model that answers in 800 ms.
    pub async fn start() -> anyhow::Result<Self> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let realtime = SimRealtime::start(
            loopback,
            SimRealtimeConfig {
                pace: 1.0,
                ..SimRealtimeConfig::scripted(|c| {
                    Script::conversation(&format!("call {}", c.index), 1_000)
                })
            },
        )
        .await
        .context("starting the simulated realtime peer")?;
        let llm = SimLlm::start(loopback, Duration::from_millis(800))
            .await
            .context("starting the simulated LLM")?;
        tracing::info!(realtime = %realtime.url(), llm = %llm.base_url(), "simulators listening");
        Ok(Self { realtime, llm })
    }

    /// Points `settings` at the simulators instead of OpenAI.
    pub fn configure(&self, settings: &mut Settings) {
        settings.realtime_url = self.realtime.url();
        settings.openai_base_url = self.llm.base_url();
        settings.simulated_peer = true;
    }
}
