//! A standalone simulated OpenAI Realtime server, for pointing a scribe (or
//! anything else that speaks the Realtime protocol) at it:
//!
//! ```sh
//! cargo run --example fake_realtime -- --listen 127.0.0.1:9100 --pace 1
//! SCRIBE_REALTIME_URL="ws://127.0.0.1:9100/v1/realtime?model=gpt-realtime-2.1" SCRIBE_SIMULATED_PEER=1 cargo run --release
//! ```
//!
//! Every connection plays a conversation of `--turns` exchanges (user
//! transcriptions before, during and after the agent's replies), then holds
//! the socket open until the client closes it.

use std::net::SocketAddr;

use clap::Parser;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::Script;

#[derive(Debug, Parser)]
#[command(about = "Simulated OpenAI Realtime server (WebSocket)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Time scale: 1 plays turns a few seconds apart, 0 as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    pace: f64,
    /// Exchanges per connection.
    #[arg(long, default_value_t = 20)]
    turns: usize,
    /// Speak the beta event names (and accept the beta header).
    #[arg(long)]
    beta: bool,
    /// Require `Authorization: Bearer <key>`; a wrong key gets error + close 3000.
    #[arg(long)]
    api_key: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = scribe::telemetry::init()?;
    let turns = args.turns;
    let peer = SimRealtime::start(
        args.listen,
        SimRealtimeConfig {
            pace: args.pace,
            beta: args.beta,
            api_key: args.api_key,
            ..SimRealtimeConfig::scripted(move |c| {
                Script::conversation(&format!("call {}", c.index), turns)
            })
        },
    )
    .await?;
    println!("fake realtime server listening on {}", peer.url());
    tokio::signal::ctrl_c().await?;
    println!("{} connections served", peer.connections().len());
    Ok(())
}
