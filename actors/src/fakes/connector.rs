//! [`FakeConnector`]: realtime sessions as in-memory channels the test drives.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::DEADLINE;
use crate::ports::{ConnectError, RealtimeConnector, RealtimeSession, SessionTarget};

/// One session the fake connector opened: the test's ends of it.
pub struct FakeSession {
    pub target: SessionTarget,
    /// Frames for scribe to read; dropping it ends the session.
    pub to_scribe: mpsc::UnboundedSender<Result<Message, WsError>>,
    /// What scribe sent.
    pub from_scribe: mpsc::UnboundedReceiver<Message>,
}

/// Opens in-memory sessions and keeps them open.
pub struct FakeConnector {
    sessions: Mutex<Vec<FakeSession>>,
    opened: watch::Sender<usize>,
}

impl FakeConnector {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            sessions: Mutex::new(Vec::new()),
            opened: watch::channel(0).0,
        })
    }

    pub fn opened(&self) -> usize {
        *self.opened.borrow()
    }

    /// The call session `n` (from 0) was opened for.
    pub fn target(&self, n: usize) -> SessionTarget {
        self.session(n, |s| s.target.clone())
    }

    /// The text frames scribe sent on session `n` so far.
    pub fn sent(&self, n: usize) -> Vec<String> {
        self.session(n, |s| {
            let mut sent = Vec::new();
            while let Ok(Message::Text(text)) = s.from_scribe.try_recv() {
                sent.push(text.to_string());
            }
            sent
        })
    }

    /// The service sends `frame` on session `n`.
    pub fn send(&self, n: usize, frame: &str) {
        self.session(n, |s| {
            let _ = s.to_scribe.unbounded_send(Ok(Message::text(frame)));
        });
    }

    /// The service ends session `n` without a close frame.
    pub fn drop_session(&self, n: usize) {
        self.session(n, |s| s.to_scribe.close_channel());
    }

    fn session<T>(&self, n: usize, with: impl FnOnce(&mut FakeSession) -> T) -> T {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        with(&mut sessions[n])
    }

    /// Waits until `n` sessions were opened in all.
    pub async fn wait_for_sessions(&self, n: usize) {
        let mut opened = self.opened.subscribe();
        tokio::time::timeout(DEADLINE, opened.wait_for(|o| *o >= n))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {n} realtime sessions"))
            .map(|_| ())
            .unwrap_or_else(|_| panic!("connector gone"));
    }
}

#[async_trait]
impl RealtimeConnector for FakeConnector {
    async fn connect(&self, target: &SessionTarget) -> Result<RealtimeSession, ConnectError> {
        let (to_scribe, frames) = mpsc::unbounded();
        let (outbox, from_scribe) = mpsc::unbounded();
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(FakeSession {
                target: target.clone(),
                to_scribe,
                from_scribe,
            });
        self.opened.send_modify(|n| *n += 1);
        Ok(RealtimeSession {
            provider: "the fake realtime service".into(),
            frames: frames.boxed(),
            outbox: Box::pin(outbox.sink_map_err(|_| WsError::ConnectionClosed)),
        })
    }
}
