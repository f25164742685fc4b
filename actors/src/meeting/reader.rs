//! The socket reader of one realtime session: a task the MeetingActor spawns
//! and aborts. It parses every frame and applies it to the shared call at
//! once, with no `.await` between reading a frame and applying it, so an
//! abort can never drop a frame that was read.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::SplitStream;
use ractor::ActorRef;
use tokio_tungstenite::tungstenite::Message;

use super::MeetingMsg;
use super::shared::SharedCall;
use crate::realtime::client::RealtimeSocket;
use crate::realtime::event::{ServerEvent, parse};
use crate::transcript::Notice;
use crate::writer::ChunkWriter;

/// How a realtime session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEnd {
    /// A close frame, with its code when it had one.
    Closed { code: Option<u16>, reason: String },
    /// The TCP stream ended without a close frame.
    Eof,
    /// A protocol or I/O error (including an oversized frame).
    Error(String),
    /// Nothing at all arrived for this long: the peer is gone.
    Silent(Duration),
}

impl SocketEnd {
    /// Close codes the realtime service uses for configuration errors.
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            Self::Closed {
                code: Some(3000 | 4000),
                ..
            }
        )
    }
}

/// What the reader tells the actor besides the end of the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtimeNotice {
    SessionCreated {
        expires_at: Option<i64>,
    },
    SessionUpdated {
        transcription_on: bool,
    },
    Error {
        code: Option<String>,
        message: String,
    },
    Transcript(Notice),
    GarbageFrame(String),
}

pub struct ReaderContext {
    pub epoch: u64,
    pub call: Arc<SharedCall>,
    pub writer: ChunkWriter,
    pub actor: ActorRef<MeetingMsg>,
    pub silence_timeout: Duration,
    pub backlog_retry: Duration,
}

pub async fn read_socket(mut stream: SplitStream<RealtimeSocket>, cx: ReaderContext) {
    let notify = |notice: RealtimeNotice| {
        let _ = cx.actor.cast(MeetingMsg::Realtime {
            epoch: cx.epoch,
            notice,
        });
    };
    let frames = metrics::counter!(crate::metrics::FRAMES);
    let end = loop {
        let backlog = cx.call.has_backlog();
        tokio::select! {
            frame = tokio::time::timeout(cx.silence_timeout, stream.next()) => match frame {
                Err(_) => break SocketEnd::Silent(cx.silence_timeout),
                Ok(None) => break SocketEnd::Eof,
                Ok(Some(Err(error))) => break SocketEnd::Error(error.to_string()),
                Ok(Some(Ok(Message::Text(text)))) => {
                    frames.increment(1);
                    match parse(&text) {
                        Ok(event) => {
                            let Some(notices) = cx.call.apply(cx.epoch, &event, &cx.writer) else {
                                break SocketEnd::Error("session superseded".into());
                            };
                            for n in notices {
                                notify(RealtimeNotice::Transcript(n));
                            }
                            match event {
                                ServerEvent::SessionCreated { expires_at } => notify(RealtimeNotice::SessionCreated { expires_at }),
                                ServerEvent::SessionUpdated { transcription_on } => notify(RealtimeNotice::SessionUpdated { transcription_on }),
                                ServerEvent::Error { code, message, .. } => notify(RealtimeNotice::Error { code, message }),
                                _ => {}
                            }
                        }
                        Err(error) => notify(RealtimeNotice::GarbageFrame(error.to_string())),
                    }
                }
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    notify(RealtimeNotice::GarbageFrame(format!("binary frame of {} bytes", bytes.len())));
                }
                Ok(Some(Ok(Message::Close(frame)))) => break SocketEnd::Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                },
                // Pings are answered by tungstenite as part of reading.
                Ok(Some(Ok(_))) => {}
            },
            () = tokio::time::sleep(cx.backlog_retry), if backlog => {
                cx.call.flush_backlog(&cx.writer);
            }
        }
    };
    let _ = cx.actor.cast(MeetingMsg::SocketEnded {
        epoch: cx.epoch,
        end,
    });
}
