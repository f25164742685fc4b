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
//! target/release/examples/load_test --calls 900 --instances 3 --kill-one-at 20 \
//!     --database-url postgres://postgres@127.0.0.1/load
//! ```
//!
//! With `--instances N` the servers share one PostgreSQL database; each
//! call's `call.session_started` goes to instance `n % N` and its
//! `call.session_ended` to the next one, so every end lands at an
//! instance that does not own the call. `--kill-one-at` SIGKILLs the first
//! instance mid-run; the run waits until the others hold its calls, then
//! reports the takeover times and each instance's share (`fleet`). The
//! servers inherit the environment (`SCRIBE_LEASE_MS=5000 load_test ...`).
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use scribe::store::{PoolSize, Store};
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use scribe_sim::carried::{CallsConfig, EndedAnswer, StartOn};
use scribe_sim::demo::percentile;
use scribe_sim::llm::{LatencyModel, Pace, SimLlm};
use scribe_sim::realtime::ConnectionInfo;
use scribe_sim::realtime::{SimRealtime, SimRealtimeConfig};
use scribe_sim::script::{Comparison, Script, Step, compare, done_mark};
use scribe_sim::webhook::{SimCall, WebhookDriver};
use serde_json::{Value, json};

#[path = "load_test/fleet.rs"]
mod fleet;
#[path = "load_test/measure.rs"]
mod measure;
#[path = "load_test/pressure.rs"]
mod pressure;
use fleet::{Fleet, Launch};
use measure::{counter, gauge_sum, histogram_quantile, scrape, upkeep_rows};
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
    /// The simulated model's answer time, in milliseconds, whatever the
    /// request (default: a model that takes the time a real one takes).
    #[arg(long)]
    llm_latency_ms: Option<u64>,
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
    /// Once every call is live, hold them all this many seconds more and
    /// count the rows the ownership upkeep wrote meanwhile (heartbeats,
    /// takeovers; not the takings of new calls), reported per renewal
    /// interval (10 s).
    #[arg(long, default_value_t = 0)]
    hold_seconds: u64,
    /// Run this many `scribe serve` processes on one PostgreSQL database
    /// (`--database-url`), Stream's webhooks spread over all of them: each
    /// call's end goes to another instance than its start.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// SIGKILL the first instance this many seconds after the first call
    /// started (with `--instances` 2 or more): the others take its calls over.
    #[arg(long)]
    kill_one_at: Option<f64>,
    /// SIGKILL the first instance this many seconds after the first call
    /// started and start it again at once (same name, same address): it
    /// adopts its calls back. Reports the time to re-adopt them.
    #[arg(long, conflicts_with = "kill_one_at")]
    restart_at: Option<f64>,
}

/// What a connection says: the call's conversation on its first session;
/// on a later one (a takeover after `--kill-one-at`) nothing new, only
/// the mark that the call is done talking.
fn session_script(c: &ConnectionInfo, turns: usize) -> Script {
    let meeting = c.meeting.as_deref().unwrap_or_default();
    if c.session > 1 {
        return Script {
            steps: vec![Step::Mark(done_mark(meeting)), Step::Hold],
        };
    }
    Script::for_call(meeting, turns)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let instances = args.instances.max(1);
    let postgres = args
        .database_url
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres"));
    if instances > 1 && !postgres {
        bail!(
            "--instances {instances} needs a shared PostgreSQL database (--database-url postgres://...)"
        );
    }
    if args.kill_one_at.is_some() && instances < 2 {
        bail!("--kill-one-at needs --instances 2 or more (someone must take the calls over)");
    }
    let kill_at = args.kill_one_at.or(args.restart_at);
    if kill_at.is_some() && args.voice_api != "realtime" {
        bail!("--kill-one-at and --restart-at run with --voice-api realtime");
    }
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
                ..SimRealtimeConfig::scripted(move |c| session_script(c, turns))
            },
        )
        .await?,
    );
    let pace = args
        .llm_latency_ms
        .map_or(Pace::Model(LatencyModel::SMALL), |ms| {
            Pace::Fixed(Duration::from_millis(ms))
        });
    let llm = SimLlm::start_paced(SocketAddr::from(([127, 0, 0, 1], 0)), pace).await?;
    let live = match args.voice_api.as_str() {
        "realtime" => false,
        "live" => true,
        other => bail!("--voice-api is `realtime` or `live`, not `{other}`"),
    };
    // GPT-Live sessions are OpenAI's (the simulated HTTP API's).
    llm.calls().configure(CallsConfig {
        realtime: SimRealtimeConfig {
            pace: args.pace,
            ..SimRealtimeConfig::scripted(move |c| session_script(c, turns))
        },
        start: StartOn::Attach,
        ended: EndedAnswer::NotFound,
        api_key: None,
    });

    let launch = Launch {
        bin: &args.scribe_bin,
        env: vec![
            ("DATABASE_URL", database_url.clone()),
            ("SCRIBE_API_TOKEN", TOKEN.into()),
            ("STREAM_API_SECRET", SECRET.into()),
            ("SCRIBE_REALTIME_URL", peer.url()),
            ("SCRIBE_SIMULATED_PEER", "1".into()),
            ("OPENAI_BASE_URL", llm.base_url()),
            ("OPENAI_API_KEY", "sk-load-test".into()),
            ("SCRIBE_ANALYSIS_CONCURRENCY", "64".into()),
            // The load test creates its meetings as fast as it can.
            ("SCRIBE_MEETINGS_PER_MINUTE", "1000000".into()),
            ("SCRIBE_VOICE_API", args.voice_api.clone()),
            ("RUST_LOG", "warn".into()),
        ],
    };
    let mut fleet = Fleet::start(&launch, instances).await?;
    let base = fleet.base().to_owned();
    let pg = if postgres {
        Some(sqlx::PgPool::connect(&database_url).await?)
    } else {
        None
    };
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
    let ids: Vec<MeetingId> = meetings
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()?;
    let idle = fleet.stat()?;
    say(format!(
        "scribe on {base} ({instances} instance(s)), idle RSS {} KiB; {} calls of {turns} turns at pace {}",
        idle.rss_bytes / 1024,
        args.calls,
        args.pace
    ));

    // Pressure beside the calls (after the idle RSS was read), and
    // `/healthz` timed every 100 ms all along.
    // On the last instance, which `--kill-one-at` leaves alive.
    let watched = fleet.servers.last().context("a server")?.base.clone();
    let pressure =
        Pressure::start(&watched, &meetings, args.idle_connections, args.streams).await?;
    if args.idle_connections + args.streams > 0 {
        say(format!(
            "{} idle connections and {} event streams open",
            args.idle_connections, args.streams
        ));
    }

    // Start the calls at the given rate, timing each webhook.
    // One driver per instance; each webhook goes where `Fleet::for_call` says.
    let drivers: HashMap<String, Arc<WebhookDriver>> = fleet
        .servers
        .iter()
        .map(|s| {
            let driver = WebhookDriver::new(&s.base, SECRET.as_bytes(), "load-key");
            (s.base.clone(), Arc::new(driver))
        })
        .collect();
    let started_at = Instant::now();
    let mut webhook_ms = Vec::new();
    let mut starts = tokio::time::interval(Duration::from_secs_f64(1.0 / args.start_rate.max(0.1)));
    // Each webhook in a task of its own, so its time is its own.
    let mut pending = Vec::new();
    for (n, meeting) in meetings.iter().enumerate() {
        starts.tick().await;
        let driver = drivers[fleet.for_call(n, false)].clone();
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
    let mut killed = None;
    let mut seen_marks = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut peak_rss = 0;
    let talk_deadline = Instant::now()
        + Duration::from_secs_f64(600.0 + args.turns as f64 * 10.0 * args.pace.max(0.01));
    // With `--kill-one-at` or `--restart-at`, also until the dead
    // instance's calls all have a new session (taken over or adopted).
    let mut orphans = 0;
    while !talking.is_empty() || (kill_at.is_some() && (killed.is_none() || orphans > 0)) {
        tick.tick().await;
        if let (Some(at), None) = (kill_at, &killed)
            && started_at.elapsed().as_secs_f64() >= at
        {
            let dead = match &pg {
                Some(pg) if args.kill_one_at.is_some() => fleet.kill_first(pg).await?,
                // Restarted: every call was live (none ends before all talked).
                _ => fleet.restart_first(&launch, ids.clone()).await?,
            };
            say(format!(
                "{} SIGKILLed holding {} calls{}",
                dead.name,
                dead.held.len(),
                if args.restart_at.is_some() {
                    "; started again"
                } else {
                    ""
                }
            ));
            killed = Some(dead);
        }
        if let Some(dead) = &killed {
            orphans = dead.pending(&peer);
        }
        peak_rss = peak_rss.max(fleet.stat()?.rss_bytes);
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
    let held_calls = gauge_sum(&http, &fleet, "scribe_live_actors{kind=\"meeting\"}").await?;
    let upkeep_per_renewal = if args.hold_seconds > 0 {
        let before = upkeep_rows(&http, &fleet).await?;
        say(format!(
            "holding {held_calls} calls {} s to count the ownership upkeep",
            args.hold_seconds
        ));
        tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
        let after = upkeep_rows(&http, &fleet).await?;
        Some((after - before) / (args.hold_seconds as f64 / 10.0))
    } else {
        None
    };
    let talked = started_at.elapsed().as_secs_f64();
    let held = fleet.stat()?;
    peak_rss = peak_rss.max(held.rss_bytes);
    say(format!(
        "{held_calls} calls live at once, RSS {} KiB; ending them",
        held.rss_bytes / 1024
    ));
    let mut ends = Vec::with_capacity(finished.len());
    let order: HashMap<&str, usize> = meetings
        .iter()
        .enumerate()
        .map(|(n, m)| (m.as_str(), n))
        .collect();
    let mut end_ticks =
        tokio::time::interval(Duration::from_secs_f64(1.0 / args.start_rate.max(0.1)));
    for call in finished {
        end_ticks.tick().await;
        let n = order[call.meeting_id.as_str()];
        let driver = drivers[fleet.for_call(n, true)].clone();
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
    // Counters summed over the live instances; the commit lag is the
    // first live instance's.
    let mut metrics_text = String::new();
    for server in fleet.alive() {
        metrics_text.push_str(&scrape(&http, &server.base).await?);
    }
    let during = fleet.stat()?;

    // Wait for every analysis, then check every transcript.
    let store = Store::connect(&database_url, PoolSize(8)).await?;
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
    // Lines a SIGKILLed instance's calls never stored: said and not yet
    // committed when it died, or never said (an owned session dies with
    // its socket; the new one does not say them again).
    let mut cut_by_kill = 0;
    let held_by_dead: std::collections::HashSet<MeetingId> = killed
        .as_ref()
        .map(|k| k.held.iter().copied().collect())
        .unwrap_or_default();
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
        if held_by_dead.contains(id) {
            cut_by_kill += c.lost;
        } else {
            total.lost += c.lost;
        }
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
    let instances_report = match &pg {
        Some(pg) if instances > 1 => {
            let mut takeover = match &killed {
                Some(k) => k.takeover_ms(&store).await?,
                None => Vec::new(),
            };
            json!({
                "instances": instances,
                "calls_per_instance": fleet::shares(pg, &ids).await?,
                "killed": killed.as_ref().map(|k| json!({
                    "instance": k.name,
                    "at_seconds": args.kill_one_at,
                    "calls_held": k.held.len(),
                    "taken_over": takeover.len(),
                    "takeover_p50_ms": percentile(&mut takeover, 50.0),
                    "takeover_p99_ms": percentile(&mut takeover, 99.0),
                    "takeover_max_ms": takeover.last().copied(),
                    "lines_cut_by_kill": cut_by_kill,
                })),
            })
        }
        _ => Value::Null,
    };
    let restart_report = match (&killed, args.restart_at) {
        (Some(k), Some(at)) => {
            let mut adopted = k.takeover_ms(&store).await?;
            json!({
                "at_seconds": at,
                "calls_held": k.held.len(),
                "readopted": adopted.len(),
                "readopt_p50_ms": percentile(&mut adopted, 50.0),
                "readopt_p99_ms": percentile(&mut adopted, 99.0),
                "readopt_max_ms": adopted.last().copied(),
                "lines_cut_by_kill": cut_by_kill,
            })
        }
        _ => Value::Null,
    };
    let after = fleet.stat()?;
    let peak = after.peak_rss_bytes.max(peak_rss);
    let frames = counter(&metrics_text, "scribe_realtime_frames_total");
    let lag =
        |q| histogram_quantile(&metrics_text, "scribe_commit_lag_seconds", q).map(|s| s * 1000.0);
    let report = json!({
        "voice_api": args.voice_api,
        "calls": meetings.len(),
        "held_calls": held_calls,
        "lease_upkeep_rows_per_renewal": upkeep_per_renewal,
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
        // Per call on one instance only (several share the calls; a killed one's memory is gone).
        "server_rss_per_call_bytes": (instances == 1).then(|| peak.saturating_sub(idle.rss_bytes) / meetings.len().max(1) as u64),
        "server_held_rss_per_call_bytes": (instances == 1).then(|| held.rss_bytes.saturating_sub(idle.rss_bytes) / meetings.len().max(1) as u64),
        "server_cpu_seconds": after.cpu_seconds,
        "server_cpu_seconds_talking": during.cpu_seconds - idle.cpu_seconds,
        "idle_connections": args.idle_connections,
        "open_streams": args.streams,
        "healthz_samples": healthz_ms.len(),
        "healthz_p50_ms": percentile(&mut healthz_ms, 50.0),
        "healthz_p99_ms": percentile(&mut healthz_ms, 99.0),
        "healthz_max_ms": healthz_ms.last().copied(),
        "fleet": instances_report,
        "restart": restart_report,
    });
    println!("{report}");
    fleet.stop().await;
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
