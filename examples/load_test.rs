//! Load test: many concurrent simulated calls against a real `scribe serve`
//! running in its own process (so that its memory and CPU are measured
//! alone). The simulated realtime peer, the simulated model and the webhook
//! driver run here.
//!
//! ```sh
//! cargo build --release --examples
//! target/release/examples/load_test --calls 1000 --turns 4 --pace 1 --start-rate 100
//! target/release/examples/load_test --calls 1000 --database-url postgres://postgres@127.0.0.1/load
//! target/release/examples/load_test --calls 1000 --voice-api live
//! ```
//!
//! With `--voice-api live` every call runs on GPT-Live: the same
//! conversations as timed transcript fragments (user words transcribed late
//! in two turns of three), owned sessions on the simulated OpenAI, each
//! transcript checked against the timeline's lines.
//!
//! Every call is a GA conversation: a turn every few seconds at pace 1, the
//! agent's audio deltas at the real byte rate while it speaks (8 KB/s of
//! base64, as G.711), transcript deltas word by word, user transcriptions
//! before, during and after the reply. Every call stays live until all
//! have said everything (so `--calls` are held at once), then the calls end
//! at `--start-rate`. At the end every stored transcript
//! is checked line by line against what the peer said, and one JSON line
//! reports the figures; the exit status is non-zero if anything was lost,
//! duplicated or misordered, or a call did not complete.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use scribe::demo::percentile;
use scribe::sim::calls::{CallsConfig, EndedAnswer, StartOn};
use scribe::sim::llm::SimLlm;
use scribe::sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe::sim::script::{Comparison, Script, compare, done_mark};
use scribe::sim::webhook::{SimCall, WebhookDriver};
use scribe::store::{PoolSize, Store};
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[path = "load_test/pressure.rs"]
mod pressure;
use pressure::Pressure;

const TOKEN: &str = "load-test-token-0123456789abcdef0123456789";
const SECRET: &str = "load-test-secret";

#[derive(Debug, Parser)]
#[command(about = "Load test a scribe server with simulated calls")]
struct Args {
    /// Concurrent calls.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Exchanges per call.
    #[arg(long, default_value_t = 4)]
    turns: usize,
    /// Time scale of the conversations: 1 is real time, 0.1 ten times faster.
    #[arg(long, default_value_t = 1.0)]
    pace: f64,
    /// Calls started per second.
    #[arg(long, default_value_t = 100.0)]
    start_rate: f64,
    /// The database scribe uses (default: a SQLite file in a temporary folder).
    #[arg(long)]
    database_url: Option<String>,
    /// The scribe binary to run.
    #[arg(long, default_value = "target/release/scribe")]
    scribe_bin: String,
    /// The simulated model's answer time, in milliseconds.
    #[arg(long, default_value_t = 500)]
    llm_latency_ms: u64,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
    /// The voice API the server runs calls on: `realtime` or `live`.
    #[arg(long, default_value = "realtime")]
    voice_api: String,
    /// Keep this many idle connections (never a byte sent) open against the
    /// server all along; each is opened again when the server drops it at
    /// its 10 s header deadline.
    #[arg(long, default_value_t = 0)]
    idle_connections: usize,
    /// Keep this many event streams open all along (20 on each meeting,
    /// the per-meeting limit), read and dropped.
    #[arg(long, default_value_t = 0)]
    streams: usize,
}

/// What /proc says of the server process.
struct ProcStat {
    rss_bytes: u64,
    peak_rss_bytes: u64,
    cpu_seconds: f64,
}

fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
            * 1024
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field overall, stime the 15th; both in clock ticks (100 a second).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(ProcStat {
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
        cpu_seconds: (ticks(11) + ticks(12)) as f64 / 100.0,
    })
}

/// A quantile of a Prometheus histogram, interpolated within its bucket.
fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(previous.0);
            }
            let share = if count > previous.1 {
                (rank - previous.1) / (count - previous.1)
            } else {
                0.0
            };
            return Some(previous.0 + share * (le - previous.0));
        }
        previous = (le, count);
    }
    None
}

/// The value of one exact series (name and labels) of a gauge.
fn gauge(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    Ok(http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let say = |line: String| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    // Each call holds a socket here (the peer's end) and one in the server
    // (its client end), plus the HTTP connections of webhooks and the
    // model: raise the limit (the server inherits it).
    let wanted = (args.calls + 2 * (args.idle_connections + args.streams)) as u64 + 2048;
    let limit = rlimit::increase_nofile_limit(wanted).context("raising the open-file limit")?;
    if limit < wanted {
        say(format!(
            "open-file limit {limit} is below the {wanted} this run needs"
        ));
    }

    let dir = tempfile::tempdir()?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("load.db").display()));
    let turns = args.turns.max(1);
    let peer = Arc::new(
        SimRealtime::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SimRealtimeConfig {
                pace: args.pace,
                // 8 KB/s of base64 while the agent speaks: four words a second
                // at pace 1, two frames of 1,000 characters each.
                audio_frames_per_word: 2,
                audio_frame_bytes: 1000,
                ..SimRealtimeConfig::scripted(move |c| {
                    Script::for_call(c.meeting.as_deref().unwrap_or_default(), turns)
                })
            },
        )
        .await?,
    );
    let llm = SimLlm::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Duration::from_millis(args.llm_latency_ms),
    )
    .await?;
    let live = match args.voice_api.as_str() {
        "realtime" => false,
        "live" => true,
        other => bail!("--voice-api is `realtime` or `live`, not `{other}`"),
    };
    // GPT-Live sessions are OpenAI's (the simulated HTTP API's).
    llm.calls().configure(CallsConfig {
        realtime: SimRealtimeConfig {
            pace: args.pace,
            ..SimRealtimeConfig::scripted(move |c| {
                Script::for_call(c.meeting.as_deref().unwrap_or_default(), turns)
            })
        },
        start: StartOn::Attach,
        ended: EndedAnswer::NotFound,
        api_key: None,
    });

    let mut child = tokio::process::Command::new(&args.scribe_bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &database_url)
        .env("SCRIBE_API_TOKEN", TOKEN)
        .env("STREAM_API_SECRET", SECRET)
        .env("SCRIBE_REALTIME_URL", peer.url())
        .env("SCRIBE_SIMULATED_PEER", "1")
        .env("OPENAI_BASE_URL", llm.base_url())
        .env("OPENAI_API_KEY", "sk-load-test")
        .env("SCRIBE_ANALYSIS_CONCURRENCY", "64")
        .env("SCRIBE_VOICE_API", &args.voice_api)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} (cargo build --release first)", args.scribe_bin))?;
    let pid = child.id().context("server pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("server stdout")?).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(address) = line.strip_prefix("scribe listening on ") {
                return Some(address.to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .context("the server did not start")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()?;
    let agent: Value = http
        .post(format!("{base}/api/agents"))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "Coach", "instructions": "Help the user plan their week." }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let meetings: Vec<String> = futures::stream::iter(0..args.calls)
        .map(|n| {
            let (http, base, agent_id) = (http.clone(), base.clone(), agent["id"].clone());
            async move {
                let meeting: Value = http
                    .post(format!("{base}/api/meetings"))
                    .bearer_auth(TOKEN)
                    .json(&json!({ "name": "Load", "agent_id": agent_id, "user_id": format!("load-{n}") }))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                anyhow::Ok(meeting["id"].as_str().context("meeting id")?.to_owned())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let idle = proc_stat(pid)?;
    say(format!(
        "scribe on {base} (pid {pid}), idle RSS {} KiB; {} calls of {turns} turns at pace {}",
        idle.rss_bytes / 1024,
        args.calls,
        args.pace
    ));

    // Pressure beside the calls (after the idle RSS was read), and
    // `/healthz` timed every 100 ms all along.
    let pressure = Pressure::start(&base, &meetings, args.idle_connections, args.streams).await?;
    if args.idle_connections + args.streams > 0 {
        say(format!(
            "{} idle connections and {} event streams open",
            args.idle_connections, args.streams
        ));
    }

    // Start the calls at the given rate, timing each webhook.
    let driver = Arc::new(WebhookDriver::new(&base, SECRET.as_bytes(), "load-key"));
    let started_at = Instant::now();
    let mut webhook_ms = Vec::new();
    let mut starts = tokio::time::interval(Duration::from_secs_f64(1.0 / args.start_rate.max(0.1)));
    // Each webhook in a task of its own, so its time is its own.
    let mut pending = Vec::new();
    for meeting in &meetings {
        starts.tick().await;
        let driver = driver.clone();
        let call = SimCall::new(meeting);
        pending.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = driver.session_started(&call).await;
            (sent.elapsed(), answer.map(|r| r.status()))
        }));
    }
    for task in pending {
        let (took, status) = task.await?;
        webhook_ms.push(took.as_secs_f64() * 1000.0);
        anyhow::ensure!(status?.is_success(), "a session_started webhook failed");
    }
    say(format!(
        "{} calls started in {:.1} s",
        meetings.len(),
        started_at.elapsed().as_secs_f64()
    ));

    // Hold every call until all of them have said everything, so that
    // `--calls` calls are live at once; then end them at the start rate, in
    // the order they finished. Sample the server all along.
    let mut talking: HashMap<String, SimCall> = meetings
        .iter()
        .map(|m| (done_mark(m), SimCall::new(m)))
        .collect();
    let mut finished = Vec::with_capacity(meetings.len());
    let mut seen_marks = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut peak_rss = 0;
    let talk_deadline = Instant::now()
        + Duration::from_secs_f64(600.0 + args.turns as f64 * 10.0 * args.pace.max(0.01));
    while !talking.is_empty() {
        tick.tick().await;
        peak_rss = peak_rss.max(proc_stat(pid)?.rss_bytes);
        let marks = if live {
            llm.calls().marks_since(seen_marks)
        } else {
            peer.marks_since(seen_marks)
        };
        seen_marks += marks.len();
        finished.extend(marks.iter().filter_map(|mark| talking.remove(mark)));
        if Instant::now() > talk_deadline {
            bail!("{} calls did not finish talking in time", talking.len());
        }
    }
    let held_calls = gauge(
        &scrape(&http, &base).await?,
        "scribe_live_actors{kind=\"meeting\"}",
    );
    let talked = started_at.elapsed().as_secs_f64();
    let held = proc_stat(pid)?;
    peak_rss = peak_rss.max(held.rss_bytes);
    say(format!(
        "{held_calls} calls live at once, RSS {} KiB; ending them",
        held.rss_bytes / 1024
    ));
    let mut ends = Vec::with_capacity(finished.len());
    let mut end_ticks =
        tokio::time::interval(Duration::from_secs_f64(1.0 / args.start_rate.max(0.1)));
    for call in finished {
        end_ticks.tick().await;
        let driver = driver.clone();
        ends.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = driver.session_ended(&call).await;
            (sent.elapsed(), answer.map(|r| r.status()))
        }));
    }
    for task in ends {
        let (took, status) = task.await?;
        webhook_ms.push(took.as_secs_f64() * 1000.0);
        anyhow::ensure!(status?.is_success(), "a session_ended webhook failed");
    }
    let metrics_text = scrape(&http, &base).await?;
    let during = proc_stat(pid)?;

    // Wait for every analysis, then check every transcript.
    let store = Store::connect(&database_url, PoolSize(8)).await?;
    let ids: Vec<MeetingId> = meetings
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()?;
    let analysis_deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tick.tick().await;
        let counts: HashMap<String, i64> = store.meeting_counts().await?.into_iter().collect();
        let done = counts.get("completed").copied().unwrap_or(0)
            + counts.get("failed").copied().unwrap_or(0);
        if done >= ids.len() as i64 || Instant::now() > analysis_deadline {
            break;
        }
    }
    let mut total = Comparison::default();
    let (mut expected_lines, mut stored_lines, mut incomplete) = (0, 0, 0);
    let (mut to_processing, mut to_completed) = (Vec::new(), Vec::new());
    for (id, meeting) in ids.iter().zip(&meetings) {
        let script = Script::for_call(meeting, turns);
        let expected = if live {
            script.expected_live_lines()
        } else {
            script.expected_lines()
        };
        let stored = store.transcript(*id).await?;
        let c = compare(&stored, &expected);
        total.lost += c.lost;
        total.duplicated += c.duplicated;
        total.misordered += c.misordered;
        expected_lines += expected.len();
        stored_lines += stored.len();
        let record = store.meeting(*id).await?.context("meeting")?;
        if record.status != MeetingStatus::Completed {
            incomplete += 1;
        }
        let ms = |at: Option<chrono::DateTime<chrono::Utc>>| {
            at.zip(record.ended_at)
                .map(|(a, e)| (a - e).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        };
        to_processing.extend(ms(record.processing_started_at));
        to_completed.extend(ms(record.completed_at));
    }
    let mut healthz_ms = pressure.stop().await;
    let after = proc_stat(pid)?;
    let peak = after.peak_rss_bytes.max(peak_rss);
    let frames = counter(&metrics_text, "scribe_realtime_frames_total");
    let lag =
        |q| histogram_quantile(&metrics_text, "scribe_commit_lag_seconds", q).map(|s| s * 1000.0);
    let report = json!({
        "voice_api": args.voice_api,
        "calls": meetings.len(),
        "held_calls": held_calls,
        "turns": turns,
        "pace": args.pace,
        "backend": if database_url.starts_with("postgres") { "postgres" } else { "sqlite" },
        "lines_expected": expected_lines,
        "lines_stored": stored_lines,
        "lost": total.lost,
        "duplicated": total.duplicated,
        "misordered": total.misordered,
        "not_completed": incomplete,
        "talk_seconds": talked,
        "frames_per_sec": frames / talked,
        "lines_per_sec": stored_lines as f64 / talked,
        "webhook_p50_ms": percentile(&mut webhook_ms, 50.0),
        "webhook_p99_ms": percentile(&mut webhook_ms, 99.0),
        "commit_lag_p50_ms": lag(0.5),
        "commit_lag_p99_ms": lag(0.99),
        "end_to_processing_p50_ms": percentile(&mut to_processing, 50.0),
        "end_to_processing_p99_ms": percentile(&mut to_processing, 99.0),
        "end_to_completed_p50_ms": percentile(&mut to_completed, 50.0),
        "end_to_completed_p99_ms": percentile(&mut to_completed, 99.0),
        "server_idle_rss_bytes": idle.rss_bytes,
        "server_peak_rss_bytes": peak,
        "server_held_rss_bytes": held.rss_bytes,
        "server_rss_per_call_bytes": peak.saturating_sub(idle.rss_bytes) / meetings.len().max(1) as u64,
        "server_held_rss_per_call_bytes": held.rss_bytes.saturating_sub(idle.rss_bytes) / meetings.len().max(1) as u64,
        "server_cpu_seconds": after.cpu_seconds,
        "server_cpu_seconds_talking": during.cpu_seconds - idle.cpu_seconds,
        "idle_connections": args.idle_connections,
        "open_streams": args.streams,
        "healthz_samples": healthz_ms.len(),
        "healthz_p50_ms": percentile(&mut healthz_ms, 50.0),
        "healthz_p99_ms": percentile(&mut healthz_ms, 99.0),
        "healthz_max_ms": healthz_ms.last().copied(),
    });
    println!("{report}");
    child.start_kill()?;
    let _ = child.wait().await;
    if total.lost + total.duplicated + total.misordered + incomplete > 0 {
        bail!(
            "{} lost, {} duplicated, {} misordered, {incomplete} not completed",
            total.lost,
            total.duplicated,
            total.misordered
        );
    }
    Ok(())
}
