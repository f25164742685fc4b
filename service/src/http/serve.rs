//! The HTTP server loop and the limits it enforces before a handler runs:
//!
//! - hyper's HTTP/1 with a header read timeout: a client that has not sent
//!   a whole request head within it (a slow-loris, or a keep-alive
//!   connection left idle) is disconnected;
//! - a limit on open connections: past it, new connections wait in the
//!   kernel's accept queue until one closes;
//! - a limit on connections from one client address: past it, a new
//!   connection from that address is closed at once (addresses a load
//!   balancer speaks from, loopback and private ones, are not capped unless
//!   asked);
//! - a write that makes no progress for [`ServeLimits::write_stall`] (a
//!   client that sends requests and never reads the answers) closes the
//!   connection;
//! - on shutdown, the listener closes, event streams end (see
//!   [`Stopping`]), and requests in flight finish.
//!
//! The body deadline, the request concurrency limit and the event-stream
//! limits are layers and guards in [`super::router`] and the stream handler.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_io_timeout::TimeoutStream;

/// What the server loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A request head (and an idle keep-alive connection's next one) must
    /// arrive within this.
    pub header_read_timeout: Duration,
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// Connections open at once from one client address, at most.
    pub max_connections_per_address: usize,
    /// Whether loopback and private addresses are capped too (off: a load
    /// balancer or proxy in front reaches scribe from such an address, and
    /// all its clients share it).
    pub cap_private_addresses: bool,
    /// A connection whose answer cannot be written for this long (its
    /// client reads nothing) is closed.
    pub write_stall: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_address: 256,
            cap_private_addresses: false,
            write_stall: Duration::from_secs(30),
            drain: Duration::from_secs(30),
        }
    }
}

/// The address a request's connection came from (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(pub IpAddr);

/// True when connections and streams from `address` count against its
/// per-address bounds: public addresses always, loopback and private ones
/// (where a load balancer speaks from) only when `cap_private`.
pub fn is_capped(address: IpAddr, cap_private: bool) -> bool {
    cap_private || !is_private(address)
}

/// True for the addresses a load balancer or proxy in front of scribe
/// speaks from: loopback, private (RFC 1918, unique local), link-local.
fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
        },
    }
}

/// Connections open per client address.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place among its address's; dropping it gives it back.
struct AddressPlace {
    open: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, address: IpAddr, limit: usize) -> Option<AddressPlace> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            open: self.clone(),
            address,
        })
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The peer's address as one key: an IPv4 client seen through an IPv6
/// socket counts as itself.
fn client_address(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
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
    let per_address = Arc::new(PerAddress::default());
    let mut refused_logged: Option<tokio::time::Instant> = None;
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
        let address = client_address(peer);
        let place = if is_capped(address, limits.cap_private_addresses) {
            match per_address.take(address, limits.max_connections_per_address.max(1)) {
                Some(place) => Some(place),
                None => {
                    // Closed at once; said at most once a minute.
                    metrics::counter!(crate::metrics::REFUSED_CONNECTIONS).increment(1);
                    let now = tokio::time::Instant::now();
                    if refused_logged.is_none_or(|at| now - at >= Duration::from_secs(60)) {
                        refused_logged = Some(now);
                        tracing::warn!(%address, limit = limits.max_connections_per_address,
                            "connections refused: the address is at its limit of open connections");
                    }
                    drop(stream);
                    continue;
                }
            }
        } else {
            None
        };
        let _ = stream.set_nodelay(true);
        // A write pending for `write_stall` fails, and the connection ends.
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_stall));
        let service = TowerToHyperService::new(
            tower::ServiceBuilder::new()
                .map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ClientAddress(address));
                    request
                })
                .service(router.clone()),
        );
        // No route upgrades the connection (no WebSocket is served here).
        let connection = http.serve_connection(TokioIo::new(Box::pin(stream)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(place);
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
