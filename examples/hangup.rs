//! Results at hang-up, measured: calls of 5, 30 and 60 minutes of
//! simulated conversation through a simulated model that takes the time a
//! real one takes ([`LatencyModel`]: time to first token, prompt tokens
//! read per second, output tokens per second), with running notes on and
//! off. For each length and mode it reports, from the moment the call is
//! hung up: the first summary text on the meeting's event stream (what the
//! page shows) and the meeting `completed`, p50 and p99; and the tokens
//! each call cost (notes and analysis, prompt and completion).
//!
//! ```sh
//! cargo build --release --example hangup
//! target/release/examples/hangup                       # SQLite, 10 calls a length
//! target/release/examples/hangup --database-url postgres://postgres@127.0.0.1/hangup
//! ```
//!
//! A minute of conversation is 3 exchanges of the scripted dialogues
//! (about 160 spoken words, 210 tokens); the conversation is played
//! `--pace` times real time (0.05: a 60-minute call in about 2 minutes),
//! and the notes follow every `--notes-lines` lines, so they see the same
//! lines as in real time; only the model's time is real. The calls of one
//! length run at once, started `--stagger-ms` apart, and are hung up as
//! each finishes. Exits non-zero if a call does not complete.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use scribe::config::{Settings, notes_config};
use scribe::startup::Application;
use scribe_actors::notes::NotesConfig;
use scribe_sim::demo::percentile;
use scribe_sim::llm::{LatencyModel, Pace, SimLlm};
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Script, done_mark};
use scribe_sim::webhook::{SimCall, WebhookDriver};
use serde_json::{Value, json};

const TOKEN: &str = "hangup-api-token-0123456789abcdef0123";
const SECRET: &str = "hangup-stream-secret";
/// Exchanges in a minute of conversation.
const EXCHANGES_PER_MINUTE: usize = 3;

#[derive(Parser, Debug)]
struct Args {
    /// Conversation lengths, in minutes.
    #[arg(long, value_delimiter = ',', default_value = "5,30,60")]
    minutes: Vec<usize>,
    /// Calls of each length (at once).
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Time scale of the conversation (1: real time).
    #[arg(long, default_value_t = 0.05)]
    pace: f64,
    /// Notes every this many new lines, in the runs with notes.
    #[arg(long, default_value_t = 20)]
    notes_lines: usize,
    /// Which runs: with notes, without, or both.
    #[arg(long, default_value = "both", value_parser = ["on", "off", "both"])]
    notes: String,
    /// The model: time to first token (ms), prompt tokens/s, output tokens/s.
    #[arg(long, default_value_t = LatencyModel::SMALL.first_token.as_millis() as u64)]
    first_token_ms: u64,
    #[arg(long, default_value_t = LatencyModel::SMALL.prompt_tokens_per_sec)]
    prompt_tokens_per_sec: f64,
    #[arg(long, default_value_t = LatencyModel::SMALL.output_tokens_per_sec)]
    output_tokens_per_sec: f64,
    /// Between the starts of one length's calls.
    #[arg(long, default_value_t = 300)]
    stagger_ms: u64,
    /// The database (default: a fresh SQLite file).
    #[arg(long)]
    database_url: Option<String>,
    /// One JSON line per run instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one call measured.
#[derive(Debug, Default, Clone)]
struct Measured {
    lines: usize,
    first_text_ms: Option<f64>,
    completed_ms: Option<f64>,
    usage: Value,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let database = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("hangup.db").display()));
    let model = LatencyModel {
        first_token: Duration::from_millis(args.first_token_ms),
        prompt_tokens_per_sec: args.prompt_tokens_per_sec,
        output_tokens_per_sec: args.output_tokens_per_sec,
    };
    let modes: Vec<bool> = match args.notes.as_str() {
        "on" => vec![true],
        "off" => vec![false],
        _ => vec![true, false],
    };
    println!(
        "model: first token {} ms, {} prompt tokens/s, {} output tokens/s; {} calls a length; pace {}",
        args.first_token_ms,
        args.prompt_tokens_per_sec,
        args.output_tokens_per_sec,
        args.calls,
        args.pace
    );
    let mut failed = 0;
    for notes in modes {
        for &minutes in &args.minutes {
            let measured = run(&args, &database, model, notes, minutes).await?;
            failed += measured.iter().filter(|m| m.completed_ms.is_none()).count();
            report(&args, minutes, notes, &measured);
        }
    }
    if failed > 0 {
        bail!("{failed} call(s) did not complete");
    }
    Ok(())
}

/// One length in one mode: a fresh server over the same database.
async fn run(
    args: &Args,
    database: &str,
    model: LatencyModel,
    notes: bool,
    minutes: usize,
) -> anyhow::Result<Vec<Measured>> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let turns = minutes * EXCHANGES_PER_MINUTE;
    let peer = SimRealtime::start(
        loopback,
        SimRealtimeConfig {
            pace: args.pace,
            audio_frames_per_word: 0,
            ..SimRealtimeConfig::scripted(move |c| {
                Script::for_call(c.meeting.as_deref().unwrap_or_default(), turns)
            })
        },
    )
    .await?;
    let llm = SimLlm::start_paced(loopback, Pace::Model(model)).await?;
    let mut settings = Settings::for_database(database, TOKEN);
    settings.realtime_url = peer.url();
    settings.simulated_peer = true;
    settings.openai_base_url = llm.base_url();
    settings.stream_api_secret = Some(SECRET.into());
    settings.analysis_concurrency = 256;
    settings.notes = if notes {
        notes_config(args.notes_lines, 0)
    } else {
        NotesConfig::OFF
    };
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let agent: Value = http
        .post(format!("{base}/api/agents"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "Maya", "instructions": "Tutor the student." }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let agent = agent["id"].as_str().context("agent id")?.to_owned();
    let world = Arc::new(World {
        base,
        http,
        agent,
        peer,
        deadline: Duration::from_secs_f64(turns as f64 * 12.0 * args.pace.max(0.01) + 120.0),
    });
    let stream = WebhookDriver::new(&world.base, SECRET.as_bytes(), "hangup-key");
    let stream = Arc::new(stream);
    let mut calls = Vec::new();
    for n in 0..args.calls {
        let (world, stream) = (world.clone(), stream.clone());
        calls.push(tokio::spawn(
            async move { one_call(&world, &stream, n).await },
        ));
        tokio::time::sleep(Duration::from_millis(args.stagger_ms)).await;
    }
    let mut measured = Vec::new();
    for call in calls {
        match call.await? {
            Ok(m) => measured.push(m),
            Err(error) => {
                eprintln!("a call failed: {error:#}");
                measured.push(Measured::default());
            }
        }
    }
    let _ = stop.send(());
    server.await??;
    drop(llm);
    Ok(measured)
}

struct World {
    base: String,
    http: reqwest::Client,
    agent: String,
    peer: SimRealtime,
    deadline: Duration,
}

/// One call: planned, started over Stream's webhook, played to its end,
/// hung up; its event stream read from just before the hang-up.
async fn one_call(world: &World, stream: &WebhookDriver, n: usize) -> anyhow::Result<Measured> {
    let meeting: Value = world
        .http
        .post(format!("{}/api/meetings", world.base))
        .bearer_auth(TOKEN)
        // Each call its own name, so no two prompts share a prefix that the
        // model's prompt cache would serve (real calls differ anyway).
        .json(&json!({ "name": format!("Fractions, student {n}"), "agent_id": world.agent, "user_id": format!("student-{n}") }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = meeting["id"].as_str().context("meeting id")?.to_owned();
    let call = SimCall::new(&id);
    stream.session_started(&call).await?.error_for_status()?;
    if !world
        .peer
        .wait_for_mark(&done_mark(&id), world.deadline)
        .await
    {
        bail!("call {id} was not spoken in time");
    }
    // Every line stored before the hang-up (the notes see them all).
    let lines = wait_for_lines(world, &id).await?;
    let events = world
        .http
        .get(format!("{}/api/meetings/{id}/events", world.base))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?;
    let hung_up = Instant::now();
    stream.session_ended(&call).await?.error_for_status()?;
    let (mut first_text, mut completed) = (None, None);
    let mut body = events.bytes_stream();
    let mut pending = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            pending.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = pending.find("\n\n") {
                let event: String = pending.drain(..end + 2).collect();
                let name = event.lines().find_map(|l| l.strip_prefix("event: "));
                let at = hung_up.elapsed().as_secs_f64() * 1000.0;
                match name {
                    Some("analysis_delta") if first_text.is_none() => first_text = Some(at),
                    Some("end") => {
                        if event.contains("data: completed") {
                            completed = Some(at);
                        }
                        return Ok::<_, anyhow::Error>(());
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .context("the analysis took over 2 minutes")??;
    let usage = get(world, &format!("/api/meetings/{id}/usage")).await?;
    Ok(Measured {
        lines,
        first_text_ms: first_text,
        completed_ms: completed,
        usage,
    })
}

/// A GET of the API, with the token.
async fn get(world: &World, path: &str) -> anyhow::Result<Value> {
    Ok(world
        .http
        .get(format!("{}{path}", world.base))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Waits until the meeting's lines stop growing (all of them stored).
async fn wait_for_lines(world: &World, id: &str) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        let transcript = get(world, &format!("/api/meetings/{id}/transcript")).await?;
        let n = transcript["chunks"].as_array().map_or(0, Vec::len);
        if n != last.0 {
            last = (n, Instant::now());
        } else if n > 0 && last.1.elapsed() > Duration::from_millis(300) {
            return Ok(n);
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the lines of {id} were not stored");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tokens of `purpose` (or all, `None`) in a call's usage.
fn tokens(usage: &Value, purpose: Option<&str>, kind: &str) -> u64 {
    match purpose {
        None => usage[kind].as_u64().unwrap_or(0),
        Some(p) => usage["by_purpose"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["purpose"] == p)
            .map(|l| l[kind].as_u64().unwrap_or(0))
            .sum(),
    }
}

fn report(args: &Args, minutes: usize, notes: bool, measured: &[Measured]) {
    let pct = |values: Vec<f64>, p: f64| percentile(&mut values.clone(), p);
    let first: Vec<f64> = measured.iter().filter_map(|m| m.first_text_ms).collect();
    let done: Vec<f64> = measured.iter().filter_map(|m| m.completed_ms).collect();
    let mean = |f: &dyn Fn(&Measured) -> u64| {
        let done: Vec<u64> = measured
            .iter()
            .filter(|m| m.completed_ms.is_some())
            .map(f)
            .collect();
        done.iter().sum::<u64>() / done.len().max(1) as u64
    };
    let figures = json!({
        "minutes": minutes,
        "notes": notes,
        "calls": measured.len(),
        "completed": done.len(),
        "lines_per_call": mean(&|m| m.lines as u64),
        "first_text_ms": { "p50": pct(first.clone(), 50.0), "p99": pct(first, 99.0) },
        "completed_ms": { "p50": pct(done.clone(), 50.0), "p99": pct(done, 99.0) },
        "tokens_per_call": {
            "analysis_prompt": mean(&|m| tokens(&m.usage, Some("analysis"), "prompt_tokens")),
            "analysis_completion": mean(&|m| tokens(&m.usage, Some("analysis"), "completion_tokens")),
            "notes_prompt": mean(&|m| tokens(&m.usage, Some("notes"), "prompt_tokens")),
            "notes_completion": mean(&|m| tokens(&m.usage, Some("notes"), "completion_tokens")),
            "notes_requests": mean(&|m| {
                m.usage["by_purpose"].as_array().into_iter().flatten()
                    .filter(|l| l["purpose"] == "notes").map(|l| l["requests"].as_u64().unwrap_or(0)).sum()
            }),
            "cached": mean(&|m| tokens(&m.usage, None, "cached_tokens")),
            "total": mean(&|m| tokens(&m.usage, None, "prompt_tokens") + tokens(&m.usage, None, "completion_tokens")),
        },
    });
    if args.json {
        println!("{figures}");
        return;
    }
    let ms = |v: &Value| v.as_f64().map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    let t = &figures["tokens_per_call"];
    println!(
        "{minutes:>3} min, notes {:<3} | {} lines | first text p50 {:>8} p99 {:>8} | completed p50 {:>8} p99 {:>8} | tokens: analysis {}+{}, notes {}x {}+{}, total {} | {}/{} completed",
        if notes { "on" } else { "off" },
        figures["lines_per_call"],
        ms(&figures["first_text_ms"]["p50"]),
        ms(&figures["first_text_ms"]["p99"]),
        ms(&figures["completed_ms"]["p50"]),
        ms(&figures["completed_ms"]["p99"]),
        t["analysis_prompt"],
        t["analysis_completion"],
        t["notes_requests"],
        t["notes_prompt"],
        t["notes_completion"],
        t["total"],
        figures["completed"],
        figures["calls"],
    );
}
