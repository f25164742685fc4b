//! One socket's session, as a value: made when the socket opens, dropped
//! when it ends (which stops its reader). Everything that belongs to one
//! session lives here, so a new socket starts clean and nothing is reset
//! by hand.

use std::time::Duration;

use futures::SinkExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::ports::Outbox;

pub type Sent = Result<(), tokio_tungstenite::tungstenite::Error>;

pub struct Session {
    /// Events of other sessions (older sockets) are ignored.
    pub epoch: u64,
    /// What scribe sends on.
    outbox: Outbox,
    /// The task reading the socket.
    reader: JoinHandle<()>,
    /// When the socket opened.
    pub opened: Instant,
    /// The service confirmed scribe's settings (or needed none).
    pub configured: bool,
    /// When the session expires, once the service said.
    pub expires: Option<Instant>,
    /// `error` events and unreadable frames so far (the first few are logged).
    pub errors: u32,
    /// A configuration error the service reported before closing the
    /// socket (`code: message`): the close that follows is not retried.
    pub refusal: Option<String>,
    /// Client events queued by handlers that could not wait, sent next.
    pub outgoing: Vec<String>,
}

impl Session {
    pub fn new(epoch: u64, outbox: Outbox, reader: JoinHandle<()>) -> Self {
        Self {
            epoch,
            outbox,
            reader,
            opened: Instant::now(),
            configured: false,
            expires: None,
            errors: 0,
            refusal: None,
            outgoing: Vec::new(),
        }
    }

    pub async fn send(&mut self, frame: String) -> Sent {
        self.outbox
            .send(Message::Text(Utf8Bytes::from(frame)))
            .await
    }

    /// Sends the queued client events; stops at the first failure (the
    /// socket is going away: its reader reports the end).
    pub async fn flush(&mut self) {
        for frame in std::mem::take(&mut self.outgoing) {
            if self.send(frame).await.is_err() {
                break;
            }
        }
    }

    /// Says goodbye (a close frame, one second at most) and drops the socket.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.outbox.send(Message::Close(None)),
        )
        .await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
