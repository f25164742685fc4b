//! `--idle-connections` and `--streams`: pressure held against the server
//! while the calls run, and `/healthz` timed all along.

use std::time::{Duration, Instant};

use anyhow::bail;

/// Idle connections and event streams held open against the server while
/// the calls run, and `/healthz` timed every 100 ms.
pub struct Pressure {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    healthz: tokio::task::JoinHandle<Vec<f64>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Pressure {
    pub async fn start(
        base: &str,
        meetings: &[String],
        idle: usize,
        streams: usize,
    ) -> anyhow::Result<Self> {
        let address = base.trim_start_matches("http://").to_owned();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..idle {
            let (address, mut stopped) = (address.clone(), stopped.clone());
            tasks.push(tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                loop {
                    let Ok(mut socket) = tokio::net::TcpStream::connect(&address).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let mut byte = [0u8; 1];
                    tokio::select! {
                        _ = socket.read(&mut byte) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }));
        }
        let streams_client = reqwest::Client::builder().build()?;
        for n in 0..streams {
            let Some(meeting) = meetings.get(n / 20) else {
                bail!(
                    "{streams} streams need {} meetings (20 each)",
                    streams.div_ceil(20)
                );
            };
            // The API token opens any meeting's stream (a page uses its key).
            let mut answer = streams_client
                .get(format!("{base}/api/meetings/{meeting}/events"))
                .bearer_auth(super::TOKEN)
                .send()
                .await?;
            anyhow::ensure!(
                answer.status().is_success(),
                "stream {n} refused: {}",
                answer.status()
            );
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        chunk = answer.chunk() => if !matches!(chunk, Ok(Some(_))) { return },
                        _ = stopped.changed() => return,
                    }
                }
            }));
        }
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let url = format!("{base}/healthz");
        let mut stopped = stopped.clone();
        let healthz = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => return samples,
                }
                let sent = Instant::now();
                if probe
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    samples.push(sent.elapsed().as_secs_f64() * 1000.0);
                } else {
                    // A failed probe counts as the client's whole timeout.
                    samples.push(10_000.0);
                }
            }
        });
        Ok(Self {
            tasks,
            healthz,
            stop,
        })
    }

    /// Closes everything; the `/healthz` times in ms.
    pub async fn stop(self) -> Vec<f64> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.healthz.await.unwrap_or_default()
    }
}
