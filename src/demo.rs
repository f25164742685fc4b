//! `scribe demo`: the whole flow offline. A fresh SQLite file, the
//! simulated realtime peer and LLM, and N concurrent calls driven through
//! the real HTTP server with signed webhooks; then a report, one meeting's
//! transcript and summary, and a non-zero exit if any call lost a line or
//! did not complete.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use scribe_actors::domain::MeetingStatus;
use scribe_actors::ids::MeetingId;
use serde_json::{Value, json};

use crate::config::{DemoArgs, Settings};
use crate::sim::llm::SimLlm;
use crate::sim::realtime::{SimRealtime, SimRealtimeConfig};
use crate::sim::script::{Comparison, Script, SentLine, compare, done_mark};
use crate::sim::webhook::{SimCall, WebhookDriver};
use crate::startup::Application;
use crate::store::Store;

const SECRET: &str = "demo-stream-secret";
const TOKEN: &str = "demo-api-token";

/// What one call came to.
struct Outcome {
    meeting: MeetingId,
    lost: usize,
    duplicated: usize,
    misordered: usize,
    stored: usize,
    completed: bool,
    end_to_processing_ms: Option<f64>,
    end_to_completed_ms: Option<f64>,
}

/// The `p`-th percentile (nearest rank) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values.get(rank).copied()
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a folder for the demo database")?;
    let database = format!("sqlite://{}", dir.path().join("demo.db").display());
    let turns = args.turns.max(1);
    let peer = SimRealtime::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimRealtimeConfig {
            pace: args.pace,
            ..SimRealtimeConfig::scripted(move |c| {
                Script::for_call(c.meeting.as_deref().unwrap_or_default(), turns)
            })
        },
    )
    .await?;
    let llm = SimLlm::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Duration::from_millis(300),
    )
    .await?;
    let mut settings = Settings::for_database(&database, TOKEN);
    settings.realtime_url = peer.url();
    settings.simulated_peer = true;
    settings.openai_base_url = llm.base_url();
    settings.stream_api_secret = Some(SECRET.into());
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    let store = app.store().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    println!(
        "scribe demo: {} calls of {turns} turns at pace {} on {base}",
        args.calls, args.pace
    );

    let http = reqwest::Client::new();
    let agent: Value = http
        .post(format!("{base}/api/agents"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "name": "Coach",
            "instructions": "Help the user plan their week, one session at a time.",
            "blueprint": { "sessions": [
                { "session_name": "Intro", "goals": ["Learn what the user wants"] },
                { "session_name": "Plan", "goals": ["Write the week's plan"] }
            ]}
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = |name: &str| {
        let b = bars.add(ProgressBar::new(args.calls as u64));
        b.set_style(style.clone());
        b.set_prefix(name.to_owned());
        b
    };
    let (talking, ended, analysed) = (bar("calls spoken"), bar("calls ended"), bar("analysed"));
    let driver = Arc::new(WebhookDriver::new(&base, SECRET.as_bytes(), "demo-key"));
    let peer = Arc::new(peer);

    let mut tasks = Vec::new();
    for n in 0..args.calls {
        let meeting: Value = http
            .post(format!("{base}/api/meetings"))
            .bearer_auth(TOKEN)
            .json(&json!({ "name": "Intro", "agent_id": agent["id"], "user_id": format!("demo-user-{n}") }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = meeting["id"].as_str().context("meeting id")?.to_owned();
        let (driver, peer, store) = (driver.clone(), peer.clone(), store.clone());
        let (talking, ended, analysed) = (talking.clone(), ended.clone(), analysed.clone());
        tasks.push(tokio::spawn(async move {
            drive_call(
                &id,
                turns,
                &driver,
                &peer,
                &store,
                (&talking, &ended, &analysed),
            )
            .await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.context("a demo call panicked")??);
    }
    for b in [&talking, &ended, &analysed] {
        b.finish();
    }

    let (mut to_processing, mut to_completed): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for o in &outcomes {
        to_processing.extend(o.end_to_processing_ms);
        to_completed.extend(o.end_to_completed_ms);
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    println!();
    println!("{:<34} {:>10}", "calls", outcomes.len());
    println!("{:<34} {:>10}", "lines stored", sum(|o| o.stored));
    println!(
        "{:<34} {:>10}",
        "lost / duplicated / misordered",
        format!(
            "{}/{}/{}",
            sum(|o| o.lost),
            sum(|o| o.duplicated),
            sum(|o| o.misordered)
        )
    );
    println!(
        "{:<34} {:>10}",
        "completed",
        outcomes.iter().filter(|o| o.completed).count()
    );
    println!(
        "{:<34} {:>10}",
        "call end -> processing p50",
        fmt(percentile(&mut to_processing, 50.0))
    );
    println!(
        "{:<34} {:>10}",
        "call end -> processing p99",
        fmt(percentile(&mut to_processing, 99.0))
    );
    println!(
        "{:<34} {:>10}",
        "call end -> completed p50",
        fmt(percentile(&mut to_completed, 50.0))
    );
    println!(
        "{:<34} {:>10}",
        "call end -> completed p99",
        fmt(percentile(&mut to_completed, 99.0))
    );

    if let Some(first) = outcomes.first() {
        let meeting = store
            .meeting(first.meeting)
            .await?
            .context("demo meeting")?;
        println!("\nmeeting {} ({}):", meeting.id, meeting.status);
        for line in store.transcript(first.meeting).await? {
            let who = line.speaker.map_or("?", |s| {
                if s == scribe_actors::domain::Speaker::User {
                    "User"
                } else {
                    "Coach"
                }
            });
            println!(
                "  {:>3} {who:>5}: {} [{}]",
                line.sequence_number, line.text, line.status
            );
        }
        println!("summary: {}", meeting.summary.unwrap_or_default());
        println!(
            "next meeting: {}",
            meeting
                .next_meeting_id
                .map_or("-".to_owned(), |m| m.to_string())
        );
    }
    let _ = stop.send(());
    server.await.context("server task")??;
    let failed = outcomes
        .iter()
        .filter(|o| o.lost + o.duplicated + o.misordered > 0 || !o.completed)
        .count();
    if failed > 0 {
        bail!("{failed} call(s) lost lines or did not complete");
    }
    Ok(())
}

async fn drive_call(
    id: &str,
    turns: usize,
    driver: &WebhookDriver,
    peer: &SimRealtime,
    store: &Store,
    (talking, ended, analysed): (&ProgressBar, &ProgressBar, &ProgressBar),
) -> anyhow::Result<Outcome> {
    let meeting: MeetingId = id.parse()?;
    let expected: Vec<SentLine> = Script::for_call(id, turns).expected_lines();
    let call = SimCall::new(id);
    driver.session_started(&call).await?.error_for_status()?;
    let deadline = Duration::from_secs(600);
    if !peer.wait_for_mark(&done_mark(id), deadline).await {
        bail!("call {id} was not spoken within {deadline:?}");
    }
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let started = tokio::time::Instant::now();
    loop {
        poll.tick().await;
        if store.transcript(meeting).await?.len() >= expected.len() || started.elapsed() > deadline
        {
            break;
        }
    }
    talking.inc(1);
    driver.session_ended(&call).await?.error_for_status()?;
    let mut was_ended = false;
    let record = loop {
        poll.tick().await;
        let m = store.meeting(meeting).await?.context("meeting vanished")?;
        if !was_ended && m.ended_at.is_some() {
            was_ended = true;
            ended.inc(1);
        }
        if matches!(m.status, MeetingStatus::Completed | MeetingStatus::Failed)
            || started.elapsed() > deadline
        {
            break m;
        }
    };
    if !was_ended {
        ended.inc(1);
    }
    analysed.inc(1);
    let stored = store.transcript(meeting).await?;
    let Comparison {
        lost,
        duplicated,
        misordered,
    } = compare(&stored, &expected);
    let ms = |a: Option<chrono::DateTime<chrono::Utc>>| {
        a.zip(record.ended_at)
            .map(|(a, e)| (a - e).num_microseconds().unwrap_or(0) as f64 / 1000.0)
    };
    Ok(Outcome {
        meeting,
        lost,
        duplicated,
        misordered,
        stored: stored.len(),
        completed: record.status == MeetingStatus::Completed,
        end_to_processing_ms: ms(record.processing_started_at),
        end_to_completed_ms: ms(record.completed_at),
    })
}
