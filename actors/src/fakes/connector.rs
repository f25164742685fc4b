//! [`FakeConnector`]: realtime sessions as in-memory channels the test
//! drives, and scripted outcomes for the next connections.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::DEADLINE;
use crate::ports::{ConnectError, RealtimeConnector, RealtimeSession, SessionTarget};

/// What the next connection does (by default: opens and stays open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Opens, and ends at once without a frame.
    OpensThenCloses,
    /// The provider has no such call (a 404 on the upgrade).
    Gone,
    /// The connection fails (refused, reset).
    Fails,
}

/// One session the fake connector opened: the test's ends of it.
pub struct FakeSession {
    pub target: SessionTarget,
    /// Frames for scribe to read; dropping it ends the session.
    pub to_scribe: mpsc::UnboundedSender<Result<Message, WsError>>,
}

/// Opens in-memory sessions and keeps them open, unless told otherwise.
pub struct FakeConnector {
    sessions: Mutex<Vec<FakeSession>>,
    plan: Mutex<VecDeque<Outcome>>,
    opened: watch::Sender<usize>,
    /// The text frames scribe sent, by session.
    sent: watch::Sender<Vec<Vec<String>>>,
}

impl FakeConnector {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            sessions: Mutex::new(Vec::new()),
            plan: Mutex::new(VecDeque::new()),
            opened: watch::channel(0).0,
            sent: watch::channel(Vec::new()).0,
        })
    }

    /// The next connections do what `outcomes` say, in order.
    pub fn plan(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        self.plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(outcomes);
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
        self.sent.borrow().get(n).cloned().unwrap_or_default()
    }

    /// Waits until scribe sent, on session `n`, a frame `matches` accepts.
    pub async fn wait_for_sent(
        &self,
        n: usize,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let mut sent = self.sent.subscribe();
        let found = tokio::time::timeout(DEADLINE, async {
            loop {
                let frame = sent
                    .borrow_and_update()
                    .get(n)
                    .and_then(|frames| frames.iter().find(|f| matches(f)).cloned());
                if let Some(frame) = frame {
                    return frame;
                }
                if sent.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for scribe to send {what}"))
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
        let outcome = self
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        match outcome {
            Some(Outcome::Gone) => {
                return Err(ConnectError::Gone {
                    provider: "the fake realtime service".into(),
                    call: target.attach_to().unwrap_or_default().to_owned(),
                });
            }
            Some(Outcome::Fails) => return Err(ConnectError::Io("connection refused".into())),
            Some(Outcome::OpensThenCloses) | None => {}
        }
        let (to_scribe, frames) = mpsc::unbounded();
        let (outbox, mut from_scribe) = mpsc::unbounded::<Message>();
        let index = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            sessions.push(FakeSession {
                target: target.clone(),
                to_scribe,
            });
            sessions.len() - 1
        };
        self.sent.send_modify(|sent| sent.push(Vec::new()));
        // What scribe sends is kept, in order, for the test to read.
        let sent = self.sent.clone();
        tokio::spawn(async move {
            while let Some(message) = from_scribe.next().await {
                if let Message::Text(text) = message {
                    sent.send_modify(|sent| sent[index].push(text.to_string()));
                }
            }
        });
        if outcome == Some(Outcome::OpensThenCloses) {
            self.drop_session(index);
        }
        self.opened.send_modify(|n| *n += 1);
        Ok(RealtimeSession {
            provider: "the fake realtime service".into(),
            frames: frames.boxed(),
            outbox: Box::pin(outbox.sink_map_err(|_| WsError::ConnectionClosed)),
        })
    }
}
