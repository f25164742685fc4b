//! The sideband socket of a simulated call: `GET /v1/realtime?call_id=...`
//! upgraded to a WebSocket (through hyper, onto tokio-tungstenite). It
//! streams the call's session events from the moment it attaches, answers
//! `session.update` and `conversation.item.retrieve` (the whole item, or an
//! `error` echoing the client's `event_id`), and closes when the call ends.
//! No `session.created` is promised on attach, and none is sent.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{CallStatus, EndedAnswer, SimCallState, SimCalls, StartOn, error};
use crate::realtime::MEETING_HEADER;
use crate::realtime::config::ConnectionInfo;
use crate::realtime::play::Outgoing;
use crate::realtime::records::ConnectionRecord;

#[derive(Deserialize)]
pub struct AttachQuery {
    call_id: Option<String>,
}

/// How one attach ends before it streams anything.
enum Refusal {
    BadKey,
    Gone,
    Closed,
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// `GET /v1/realtime?call_id=...`.
pub async fn attach(
    State(calls): State<Arc<SimCalls>>,
    Query(query): Query<AttachQuery>,
    request: Request,
) -> Response {
    let Some(call_id) = query.call_id else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_call_id",
            "This simulator serves sidebands (`?call_id=`); owned sessions are on the realtime simulator.",
        );
    };
    attach_call(calls, call_id, request)
}

/// A sideband to `call_id` (Realtime's `?call_id=`, GPT-Live's
/// `/live/sessions/{id}/attach`).
pub fn attach_call(calls: Arc<SimCalls>, call_id: String, mut request: Request) -> Response {
    let headers = request.headers();
    let Some(key) = websocket_key(headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "A WebSocket upgrade is required.",
        );
    };
    if calls.attach_blocked.load(Ordering::SeqCst) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Try again later.",
        );
    }
    let config = calls.config();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bad_key = config
        .api_key
        .as_ref()
        .is_some_and(|k| authorization.as_deref() != Some(&format!("Bearer {k}")));
    let meeting = headers
        .get(MEETING_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let call = calls
        .call(&call_id)
        .filter(|c| c.status() == CallStatus::Live);
    let refusal = match (&call, bad_key, config.ended) {
        (_, true, _) => Some(Refusal::BadKey),
        (None, _, EndedAnswer::NotFound) => {
            return error(
                StatusCode::NOT_FOUND,
                "call_not_found",
                &format!("Call {call_id} not found."),
            );
        }
        (None, _, EndedAnswer::ErrorThenClose) => Some(Refusal::Gone),
        (None, _, EndedAnswer::Close) => Some(Refusal::Closed),
        (Some(_), false, _) => None,
    };
    accept(&mut request, key, move |ws| {
        serve(ws, calls, call, refusal, meeting, authorization)
    })
}

/// The `Sec-WebSocket-Accept` answer to a WebSocket upgrade request, or
/// `None` when it is not one.
pub fn websocket_key(headers: &axum::http::HeaderMap) -> Option<String> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))?;
    upgrade.then_some(key)
}

/// Answers 101 and runs `serve` on the socket once upgraded.
pub fn accept<F, Fut>(request: &mut Request, key: String, serve: F) -> Response
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        serve(ws).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, key)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn serve<S>(
    ws: WebSocketStream<S>,
    calls: Arc<SimCalls>,
    call: Option<Arc<SimCallState>>,
    refusal: Option<Refusal>,
    meeting: Option<String>,
    authorization: Option<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut source) = ws.split();
    let error_event = |code: &str, message: &str| {
        Message::text(json!({"type":"error","event_id":"evt_attach","error":{"type":"invalid_request_error","code":code,"message":message,"param":null,"event_id":null}}).to_string())
    };
    match (refusal, call) {
        (Some(Refusal::BadKey), _) => {
            let _ = sink
                .send(error_event(
                    "invalid_api_key",
                    "Incorrect API key provided.",
                ))
                .await;
            let _ = sink.send(close(3000, "invalid_api_key")).await;
        }
        (Some(Refusal::Gone), _) | (None, None) => {
            let _ = sink
                .send(error_event("call_not_found", "The call does not exist."))
                .await;
            let _ = sink.send(close(4000, "call_not_found")).await;
        }
        (Some(Refusal::Closed), _) => {
            let _ = sink.send(close(1000, "")).await;
        }
        (None, Some(call)) => {
            let record = ConnectionRecord {
                info: Some(ConnectionInfo {
                    index: call.attaches.fetch_add(1, Ordering::SeqCst) + 1,
                    meeting: meeting.clone(),
                    session: 1,
                }),
                authorization,
                ..ConnectionRecord::default()
            };
            if let Ok(mut all) = calls.records.connections.lock() {
                all.push(record);
            }
            calls.records.changed.notify_waiters();
            let mut frames = call.frames.subscribe();
            call.named(meeting.as_ref());
            if calls.config().start == StartOn::Attach {
                calls.start(&call, meeting);
            }
            loop {
                tokio::select! {
                    frame = frames.recv() => match frame {
                        Ok(Outgoing::Frame(text)) => {
                            if sink.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                                return;
                            }
                        }
                        Ok(Outgoing::Close(code)) => {
                            let _ = sink.send(close(code, "the call ended")).await;
                            return;
                        }
                        // The network between scribe and OpenAI failed.
                        Ok(Outgoing::ClientGone) => return,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                    message = source.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            if let Some(answer) = answer(&call, &event)
                                && sink.send(Message::text(answer.to_string())).await.is_err()
                            {
                                return;
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
    }
}

/// The service's answer to a client event on the sideband.
fn answer(call: &SimCallState, event: &Value) -> Option<Value> {
    match event["type"].as_str()? {
        // GPT-Live: the application closes the session (the call ends).
        "session.close" if call.api == scribe_actors::domain::VoiceApi::Live => {
            call.end_with("close_requested", "session.close");
            None
        }
        "session.update" => {
            // As OpenAI documents it: the voice cannot change once the
            // assistant has spoken; only the fields sent are updated.
            if call.agent_spoke() && !event["session"]["audio"]["output"]["voice"].is_null() {
                return Some(json!({"type":"error","event_id":"evt_cuv","error":{
                    "type":"invalid_request_error","code":"cannot_update_voice",
                    "message":"Cannot update a conversation's voice if assistant audio is present.",
                    "param":"session.audio.output.voice","event_id":event["event_id"]}}));
            }
            let session = call.update_session(&event["session"]);
            Some(json!({"type":"session.updated","event_id":"evt_su","session":session}))
        }
        "conversation.item.retrieve" => {
            let id = event["item_id"].as_str().unwrap_or_default();
            Some(match call.item(id) {
                Some(item) => {
                    json!({"type":"conversation.item.retrieved","event_id":"evt_ir","item":item})
                }
                None => {
                    json!({"type":"error","event_id":"evt_ire","error":{"type":"invalid_request_error","code":"item_not_found","message":format!("Item {id} not found."),"param":"item_id","event_id":event["event_id"]}})
                }
            })
        }
        _ => None,
    }
}
