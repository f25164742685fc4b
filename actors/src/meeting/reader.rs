//! The socket reader of one realtime session: a task the MeetingActor spawns
//! and aborts. It parses every frame and applies it to the shared call at
//! once, with no `.await` between reading a frame and applying it, so an
//! abort can never drop a frame that was read.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use ractor::ActorRef;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::msg::{MeetingMsg, RealtimeNotice, SocketEnd};
use super::shared::SharedCall;
use crate::voice::VoiceProtocol;
use crate::writer::ChunkWriter;

pub struct ReaderContext {
    pub epoch: u64,
    pub call: Arc<SharedCall>,
    pub writer: ChunkWriter,
    pub actor: ActorRef<MeetingMsg>,
    pub silence_timeout: Duration,
    pub backlog_retry: Duration,
    /// The protocol the session speaks.
    pub protocol: &'static dyn VoiceProtocol,
}

pub async fn read_socket(
    mut stream: BoxStream<'static, Result<Message, WsError>>,
    cx: ReaderContext,
) {
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
                    let parsed = cx.protocol.parse(&text);
                    match parsed {
                        Ok(event) => {
                            let Some(notices) = cx.call.apply(cx.epoch, &event, &cx.writer) else {
                                break SocketEnd::Superseded;
                            };
                            for n in notices {
                                notify(RealtimeNotice::Transcript(n));
                            }
                            if let Some(notice) = RealtimeNotice::of(event) {
                                notify(notice);
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
