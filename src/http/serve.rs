//! The HTTP server loop and the limits it enforces before a handler runs:
//!
//! - hyper's HTTP/1 with a header read timeout: a client that has not sent
//!   a whole request head within it (a slow-loris, or a keep-alive
//!   connection left idle) is disconnected;
//! - a limit on open connections: past it, new connections wait in the
//!   kernel's accept queue until one closes;
//! - on shutdown, the listener closes, event streams end (see
//!   [`Stopping`]), and requests in flight finish.
//!
//! The body deadline, the request concurrency limit and the event-stream
//! limits are layers and guards in [`super::router`] and the stream handler.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// What the server loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A request head (and an idle keep-alive connection's next one) must
    /// arrive within this.
    pub header_read_timeout: Duration,
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            drain: Duration::from_secs(30),
        }
    }
}

/// Tells long-lived responses (the event streams) that the server stops.
#[derive(Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Resolves once the server stops (at once if it has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, flips `stopping` (the event streams end), and waits up to
/// `limits.drain` for the connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    stopping: watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        // No route upgrades the connection (no WebSocket is served here).
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} s after shutdown; closing them",
            limits.drain.as_secs()
        );
    }
    Ok(())
}
