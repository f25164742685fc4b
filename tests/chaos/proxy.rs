//! A fault-injecting TCP proxy between scribe and its database: it passes
//! bytes through until told to refuse new connections, reset every
//! connection, or stall (hold every byte, in both directions, until the
//! link is healed, as a network partition does).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow.
    Up,
    /// New connections are closed at once (with a reset); open ones stay.
    Refuse,
    /// Every connection is reset, open ones included, and new ones too.
    Reset,
    /// Nothing flows; connections stay open; bytes wait in the proxy.
    Stall,
}

pub struct FaultProxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (link, watching) = watch::channel(Link::Up);
        let task = tokio::spawn(async move {
            let mut connections = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                let link = *watching.borrow();
                if matches!(link, Link::Refuse | Link::Reset) {
                    reset(client);
                    continue;
                }
                connections.retain(|c: &JoinHandle<()>| !c.is_finished());
                connections.push(tokio::spawn(relay(client, upstream, watching.clone())));
            }
        });
        Self { addr, link, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Closes with RST rather than FIN: the peer sees "connection reset".
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn relay(client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    // A stalled link holds new connections too, before they reach the server.
    if wait_until_up(&mut link).await.is_err() {
        reset(client);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = pump(&mut client_read, &mut server_write, link.clone());
    let down = pump(&mut server_read, &mut client_write, link.clone());
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    let resetting = matches!(*link.borrow(), Link::Reset);
    if resetting
        && let (Ok(client), Ok(server)) = (
            client_read.reunite(client_write),
            server_read.reunite(server_write),
        )
    {
        reset(client);
        reset(server);
    }
}

/// Copies bytes one way; stops at EOF, an error, or a reset.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    mut link: watch::Receiver<Link>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = wait_for(&mut link, Link::Reset) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if wait_until_up(&mut link).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits while the link is stalled (or refusing: open connections go on);
/// `Err` when it is reset.
async fn wait_until_up(link: &mut watch::Receiver<Link>) -> Result<(), ()> {
    match link
        .wait_for(|l| matches!(l, Link::Up | Link::Refuse | Link::Reset))
        .await
    {
        Ok(l) if *l == Link::Reset => Err(()),
        Ok(_) => Ok(()),
        Err(_) => Err(()),
    }
}

async fn wait_for(link: &mut watch::Receiver<Link>, wanted: Link) {
    if link.wait_for(|l| *l == wanted).await.is_err() {
        std::future::pending::<()>().await;
    }
}
