//! `--instances N` and `--kill-one-at SECONDS`: the `scribe serve`
//! processes under test (one, or several on one PostgreSQL database), the
//! webhooks spread over them, one of them SIGKILLed mid-run, and what each
//! instance ended up holding.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use scribe_actors::domain::EventKind;
use scribe_actors::ids::MeetingId;
use scribe_sim::realtime::SimRealtime;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::measure::{ProcStat, proc_stat};

/// One `scribe serve` process.
pub struct Server {
    pub name: String,
    pub base: String,
    pub pid: u32,
    child: tokio::process::Child,
    alive: bool,
}

/// What every server is started with (the fleet shares all of it).
pub struct Launch<'a> {
    pub bin: &'a str,
    pub env: Vec<(&'static str, String)>,
}

impl Server {
    async fn start(launch: &Launch<'_>, name: String, listen: &str) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(launch.bin)
            .args(["serve", "--listen", listen])
            .envs(launch.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SCRIBE_INSTANCE_ID", &name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (cargo build --release first)", launch.bin))?;
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
        Ok(Self {
            name,
            base,
            pid,
            child,
            alive: true,
        })
    }
}

/// The servers under test.
pub struct Fleet {
    pub servers: Vec<Server>,
}

impl Fleet {
    /// `n` servers; with more than one, each is named `load-<i>`.
    pub async fn start(launch: &Launch<'_>, n: usize) -> anyhow::Result<Self> {
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            servers.push(Server::start(launch, format!("load-{i}"), "127.0.0.1:0").await?);
        }
        Ok(Self { servers })
    }

    /// The first server's address (the API calls go there).
    pub fn base(&self) -> &str {
        &self.servers[0].base
    }

    pub fn alive(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.alive)
    }

    /// Where the `n`th call's webhook goes: round the live servers, the
    /// end one further along than the start (so that with several
    /// instances every end lands at one that does not own the call).
    pub fn for_call(&self, n: usize, end: bool) -> &str {
        let live = self.alive().count();
        let server = self.alive().nth((n + usize::from(end)) % live);
        &server.expect("a live server").base
    }

    /// /proc figures summed over the live servers.
    pub fn stat(&self) -> anyhow::Result<ProcStat> {
        let mut sum = ProcStat {
            rss_bytes: 0,
            peak_rss_bytes: 0,
            cpu_seconds: 0.0,
        };
        for server in self.alive() {
            let stat = proc_stat(server.pid)?;
            sum.rss_bytes += stat.rss_bytes;
            sum.peak_rss_bytes += stat.peak_rss_bytes;
            sum.cpu_seconds += stat.cpu_seconds;
        }
        Ok(sum)
    }

    /// `--restart-at`: SIGKILLs the first server and starts it again, same
    /// name, same address; `held` are the calls it held. Returns from the
    /// moment the new process was started.
    pub async fn restart_first(
        &mut self,
        launch: &Launch<'_>,
        held: Vec<MeetingId>,
    ) -> anyhow::Result<Killed> {
        let server = &mut self.servers[0];
        server.child.start_kill()?;
        server.child.wait().await?;
        let at = Utc::now();
        let listen = server.base.trim_start_matches("http://").to_owned();
        *server = Server::start(launch, server.name.clone(), &listen).await?;
        Ok(Killed {
            name: server.name.clone(),
            at,
            held,
        })
    }

    /// `--kill-one-at`: SIGKILLs the first server; returns when, and the
    /// calls it held.
    pub async fn kill_first(&mut self, db: &PgPool) -> anyhow::Result<Killed> {
        let server = &mut self.servers[0];
        server.child.start_kill()?;
        let at = Utc::now();
        server.child.wait().await?;
        server.alive = false;
        let held: Vec<(uuid::Uuid,)> =
            sqlx::query_as("SELECT id FROM meetings WHERE lease_owner = $1 AND status = 'active'")
                .bind(&server.name)
                .fetch_all(db)
                .await?;
        Ok(Killed {
            name: server.name.clone(),
            at,
            held: held
                .into_iter()
                .map(|(id,)| MeetingId::from_uuid(id))
                .collect(),
        })
    }

    pub async fn stop(mut self) {
        for server in self.servers.iter_mut().filter(|s| s.alive) {
            let _ = server.child.start_kill();
            let _ = server.child.wait().await;
        }
    }
}

/// The instance `--kill-one-at` killed (or `--restart-at` restarted).
pub struct Killed {
    pub name: String,
    /// When it died (or its successor was started).
    pub at: DateTime<Utc>,
    /// Its live calls when it died.
    pub held: Vec<MeetingId>,
}

impl Killed {
    /// How many of the calls it held have no new realtime session yet.
    pub fn pending(&self, peer: &SimRealtime) -> usize {
        self.held
            .iter()
            .filter(|m| peer.connections_for(&m.to_string()).len() < 2)
            .count()
    }

    /// Kill to the first new session of each call it held (from the
    /// calls' event logs), in milliseconds; calls never taken over are
    /// left out (and counted by the caller as not completed).
    pub async fn takeover_ms(&self, store: &scribe::store::Store) -> anyhow::Result<Vec<f64>> {
        let mut times = Vec::new();
        for meeting in &self.held {
            let first = store
                .events(*meeting)
                .await?
                .into_iter()
                .find(|e| e.kind == EventKind::SocketConnected && e.created_at > self.at);
            if let Some(event) = first {
                times.push(
                    (event.created_at - self.at).num_microseconds().unwrap_or(0) as f64 / 1000.0,
                );
            }
        }
        Ok(times)
    }
}

/// Which instance finished each call (its last lease holder), counted.
pub async fn shares(db: &PgPool, meetings: &[MeetingId]) -> anyhow::Result<Value> {
    let ids: Vec<uuid::Uuid> = meetings.iter().map(|m| m.as_uuid()).collect();
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT lease_owner, count(*) FROM meetings WHERE id = ANY($1) GROUP BY lease_owner ORDER BY 1",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(owner, n)| (owner.unwrap_or_else(|| "none".into()), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into())
}
