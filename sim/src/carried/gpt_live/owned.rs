//! An owned GPT-Live session on the simulated OpenAI: `GET /v1/live/sessions`
//! upgraded to a WebSocket. The first client message must be
//! `session.start` (strict: an unknown field is an `error` naming it, then
//! the socket closes; `reject_session_update` refuses every start the same
//! way); `session.started` answers it, then the session's
//! script plays as timed fragments. `session.close` from the client ends it
//! with `session.closed` `close_requested`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::super::sideband::{accept, websocket_key};
use super::super::{SimCalls, error};
use super::play::{closed, play_live};
use crate::realtime::MEETING_HEADER;
use crate::realtime::config::ConnectionInfo;
use crate::realtime::play::Outgoing;
use crate::realtime::records::ConnectionRecord;

fn close(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static(""),
    }))
}

pub async fn open(State(calls): State<Arc<SimCalls>>, mut request: Request) -> Response {
    let headers = request.headers();
    let Some(key) = websocket_key(headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "A WebSocket upgrade is required.",
        );
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(expected) = calls.config().api_key.clone()
        && authorization.as_deref() != Some(&format!("Bearer {expected}"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Incorrect API key provided.",
        );
    }
    let meeting = headers
        .get(MEETING_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    accept(&mut request, key, move |ws| {
        serve(ws, calls, meeting, authorization)
    })
}

async fn serve<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    calls: Arc<SimCalls>,
    meeting: Option<String>,
    authorization: Option<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut source) = ws.split();
    let first = tokio::time::timeout(Duration::from_secs(10), source.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        return;
    };
    let start: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let event_id = start["event_id"].clone();
    let forced = calls.config().realtime.reject_session_update.clone();
    let refusal = if let Some(param) = forced {
        // A test's refusal, as OpenAI words one.
        Some((param.clone(), format!("Unknown parameter: '{param}'.")))
    } else if start["type"] != "session.start" {
        Some((
            "type".to_owned(),
            "The first message must be `session.start`.".to_owned(),
        ))
    } else {
        super::strict(&start["session"], &super::SESSION_FIELDS).err()
    };
    let records = calls.records.clone();
    let index = records.accepted.fetch_add(1, Ordering::SeqCst) + 1;
    let session = meeting.as_ref().map_or(1, |m| {
        let mut per = records
            .per_meeting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = per.entry(m.clone()).or_insert(0);
        *n += 1;
        *n
    });
    let info = ConnectionInfo {
        index,
        meeting,
        session,
    };
    let mut position = 0;
    if let Ok(mut all) = records.connections.lock() {
        position = all.len();
        all.push(ConnectionRecord {
            info: Some(info.clone()),
            authorization,
            client_events: vec![start.clone()],
            ..ConnectionRecord::default()
        });
    }
    records.changed.notify_waiters();
    if let Some((param, message)) = refusal {
        let error = json!({"type":"error","event_id":"evt_refused","error":{"type":"invalid_request_error","code":"unknown_parameter","message":message,"param":param,"client_event_id":event_id}});
        let _ = sink.send(Message::text(error.to_string())).await;
        let _ = sink.send(close(1008)).await;
        return;
    }
    let config = calls.config();
    let session_id = format!("live_sess_{index:04}");
    let expires_at = chrono::Utc::now().timestamp() + config.realtime.session_seconds;
    let started = json!({"type":"session.started","event_id":"evt_started","session":{
        "id": session_id, "expires_at": expires_at, "model": start["session"]["model"],
        "status": "active", "instructions": start["session"]["instructions"]}});
    if sink.send(Message::text(started.to_string())).await.is_err() {
        return;
    }
    let script = (config.realtime.script)(&info);
    let (out, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let player = {
        let (records, session_id) = (records.clone(), session_id.clone());
        tokio::spawn(async move {
            let clock = Mutex::new(0);
            play_live(
                &script,
                &config.realtime,
                &session_id,
                &clock,
                &out,
                &records,
                false,
            )
            .await;
            // Keep the channel open after the script: the session holds.
            std::future::pending::<()>().await;
        })
    };
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some(Outgoing::Frame(text)) => {
                    if sink.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close(code)) => {
                    let _ = sink.send(close(code)).await;
                    break;
                }
                Some(Outgoing::Abort) | None => break,
                Some(Outgoing::Ping) => {
                    let _ = sink.send(Message::Ping(Default::default())).await;
                }
                Some(Outgoing::ClientGone) => {}
            },
            message = source.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if let Ok(mut all) = records.connections.lock()
                        && let Some(record) = all.get_mut(position)
                    {
                        record.client_events.push(event.clone());
                    }
                    if event["type"] == "session.close" {
                        let bye = closed(&session_id, "close_requested").to_string();
                        let _ = sink.send(Message::text(bye)).await;
                        let _ = sink.send(close(1000)).await;
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    player.abort();
}
