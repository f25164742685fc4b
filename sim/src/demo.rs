//! `scribe demo`: the whole flow offline. A fresh SQLite file, the
//! simulated realtime peer, OpenAI (model, calls, sidebands) and Stream,
//! and N concurrent calls over each call path (see [`paths`]) through the
//! real HTTP server; then a report per path, one meeting's transcript,
//! summary and page, and a non-zero exit if any call lost a line or did not
//! complete. With `--serve` (the default on a terminal) the pages stay
//! open until Ctrl-C.

mod paths;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use scribe_actors::ids::MeetingId;
use serde_json::Value;

use crate::carried::{CallsConfig, EndedAnswer, StartOn};
use crate::llm::{LatencyModel, Pace, SimLlm};
use crate::openai_webhook::OpenAiWebhooks;
use crate::realtime::{SimRealtime, SimRealtimeConfig};
use crate::webhook::WebhookDriver;
use paths::{Bars, Outcome};
use scribe::config::{DemoArgs, DemoPath, Settings};
use scribe::openai::webhook::secret_key;
use scribe::startup::Application;
use scribe::store::Store;
use world::{Demo, OPENAI_KEY, OPENAI_WEBHOOK_SECRET, SECRET, TOKEN};

/// Running notes in the demo: every this many new lines...
const DEMO_NOTES_LINES: usize = 6;
/// ... or this many seconds after the last update.
const DEMO_NOTES_SECS: u64 = 15;

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
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let dialogues = world::Dialogues::default();
    // Each call plays its agent's dialogue.
    let script = |dialogues: &world::Dialogues| {
        let playing = dialogues.clone();
        move |c: &crate::realtime::ConnectionInfo| {
            world::script_of(&playing, c.meeting.as_deref().unwrap_or_default(), turns)
        }
    };
    let peer = SimRealtime::start(
        loopback,
        SimRealtimeConfig {
            pace: args.pace,
            ..SimRealtimeConfig::scripted(script(&dialogues))
        },
    )
    .await?;
    // A model that takes the time a real one takes (reading, then
    // writing), and notes taken during the calls: the demo shows what a
    // user of scribe sees.
    let llm = SimLlm::start_paced(loopback, Pace::Model(LatencyModel::SMALL)).await?;
    let mut settings = Settings::for_database(&database, TOKEN);
    settings.realtime_url = peer.url();
    settings.simulated_peer = true;
    settings.openai_base_url = llm.base_url();
    settings.openai_api_key = Some(OPENAI_KEY.into());
    settings.openai_webhook_secret = Some(OPENAI_WEBHOOK_SECRET.into());
    settings.stream_api_secret = Some(SECRET.into());
    settings.notes = scribe::config::notes_config(DEMO_NOTES_LINES, DEMO_NOTES_SECS);
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    let store = app.store().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let paths = args.path.each();
    let names: Vec<&str> = paths.iter().map(|p| p.name()).collect();
    println!(
        "scribe demo: {} calls of {turns} turns at pace {} over {} on {base}",
        args.calls,
        args.pace,
        names.join(", ")
    );

    let http = reqwest::Client::new();
    let mut agents = Vec::new();
    for (dialogue, first_session, body) in world::agents() {
        let agent: Value = http
            .post(format!("{base}/api/agents"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        agents.push(world::DemoAgent {
            id: agent["id"].as_str().context("agent id")?.to_owned(),
            dialogue,
            first_session,
        });
    }
    let key = secret_key(OPENAI_WEBHOOK_SECRET).map_err(|e| anyhow::anyhow!("{e}"))?;
    let demo = Arc::new(Demo {
        stream: WebhookDriver::new(&base, SECRET.as_bytes(), "demo-key"),
        openai_webhooks: OpenAiWebhooks::new(&format!("{base}/api/openai/webhook"), &key),
        base,
        http,
        store,
        peer,
        llm,
        agents,
        dialogues: dialogues.clone(),
        turns,
    });

    let mut failed = 0;
    let mut first: Option<MeetingId> = None;
    for path in paths {
        // OpenAI's calls play the same conversations. A SIP caller speaks
        // once the line is up (the sideband attached); a WebRTC call's
        // conversation starts on the caller's first audio packet.
        demo.llm.calls().configure(CallsConfig {
            realtime: SimRealtimeConfig {
                pace: args.pace,
                ..SimRealtimeConfig::scripted(script(&dialogues))
            },
            start: if path == DemoPath::Webrtc {
                StartOn::Audio
            } else {
                StartOn::Attach
            },
            ended: EndedAnswer::NotFound,
            api_key: Some(OPENAI_KEY.into()),
        });
        let outcomes = run_path(&demo, path, args.calls).await?;
        report(path, &outcomes);
        failed += outcomes
            .iter()
            .filter(|o| o.lost + o.duplicated + o.misordered > 0 || !o.completed)
            .count();
        first = first.or(outcomes.first().map(|o| o.meeting));
    }
    let link = match first {
        Some(first) => {
            show_meeting(&demo.store, first).await?;
            let page_key = secrecy::SecretString::from(demo.store.page_secret().await?);
            let meeting = demo.store.meeting(first).await?.context("demo meeting")?;
            let link = scribe::http::auth::page_link(&demo.base, &page_key, &meeting);
            println!("page: {link}");
            Some(link)
        }
        None => None,
    };
    let serve = args
        .serve
        .unwrap_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if serve {
        if let Some(link) = &link {
            println!("\nOpen this first: {link}");
        }
        println!(
            "scribe demo: serving {} until Ctrl-C (API token {TOKEN}); the demo database is removed then",
            demo.base
        );
        scribe::startup::shutdown_signal().await;
    }
    let _ = stop.send(());
    server.await.context("server task")??;
    if failed > 0 {
        bail!("{failed} call(s) lost lines or did not complete");
    }
    Ok(())
}

async fn run_path(demo: &Arc<Demo>, path: DemoPath, calls: usize) -> anyhow::Result<Vec<Outcome>> {
    println!("\n{} path:", path.name());
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = |name: &str| {
        let b = multi.add(ProgressBar::new(calls as u64));
        b.set_style(style.clone());
        b.set_prefix(name.to_owned());
        b
    };
    let bars = Arc::new(Bars {
        talking: bar("calls spoken"),
        ended: bar("calls ended"),
        analysed: bar("analysed"),
    });
    let mut tasks = Vec::new();
    for n in 0..calls {
        let (demo, bars) = (demo.clone(), bars.clone());
        tasks.push(tokio::spawn(async move {
            match path {
                DemoPath::Sip => paths::sip_call(&demo, n, &bars).await,
                DemoPath::Webrtc => paths::webrtc_call(&demo, n, &bars).await,
                _ => paths::stream_call(&demo, n, &bars).await,
            }
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.context("a demo call panicked")??);
    }
    for b in [&bars.talking, &bars.ended, &bars.analysed] {
        b.finish();
    }
    Ok(outcomes)
}

fn report(path: DemoPath, outcomes: &[Outcome]) {
    let (mut to_processing, mut to_completed): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for o in outcomes {
        to_processing.extend(o.end_to_processing_ms);
        to_completed.extend(o.end_to_completed_ms);
    }
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    let row = |name: &str, value: String| println!("{name:<34} {value:>10}");
    row("path", path.name().to_owned());
    row("calls", outcomes.len().to_string());
    row("lines stored", sum(|o| o.stored).to_string());
    row(
        "lost / duplicated / misordered",
        format!(
            "{}/{}/{}",
            sum(|o| o.lost),
            sum(|o| o.duplicated),
            sum(|o| o.misordered)
        ),
    );
    row(
        "completed",
        outcomes.iter().filter(|o| o.completed).count().to_string(),
    );
    row(
        "call end -> processing p50",
        fmt(percentile(&mut to_processing, 50.0)),
    );
    row(
        "call end -> processing p99",
        fmt(percentile(&mut to_processing, 99.0)),
    );
    row(
        "call end -> completed p50",
        fmt(percentile(&mut to_completed, 50.0)),
    );
    row(
        "call end -> completed p99",
        fmt(percentile(&mut to_completed, 99.0)),
    );
}

async fn show_meeting(store: &Store, id: MeetingId) -> anyhow::Result<()> {
    let meeting = store.meeting(id).await?.context("demo meeting")?;
    println!("\nmeeting {} ({}):", meeting.id, meeting.status);
    for line in store.transcript(id).await? {
        let who = line.speaker.map_or("?", |s| {
            if s == scribe_actors::domain::Speaker::User {
                "User"
            } else {
                "Agent"
            }
        });
        println!(
            "  {:>3} {who:>5}: {} [{}]",
            line.sequence_number, line.text, line.status
        );
    }
    if let Some(notes) = store.notes(id).await? {
        println!(
            "notes during the call (through line {}): {}",
            notes.through_line, notes.text
        );
    }
    println!("summary: {}", meeting.summary.unwrap_or_default());
    println!(
        "next meeting: {}",
        meeting
            .next_meeting_id
            .map_or("-".to_owned(), |m| m.to_string())
    );
    Ok(())
}
