//! A simulated OpenAI Realtime server: a real WebSocket endpoint that
//! answers `session.update`, echoes `conversation.item.create` as the real
//! server does, plays a scripted conversation per connection (GA event
//! names, or beta ones when asked), and records every client event.
//!
//! Behaviour it shares with the real service (OpenAI's Realtime reference):
//! `session.created` first; a wrong bearer key gets `error` + close 3000;
//! the beta header gets `beta_api_shape_disabled` + close 4000 unless the
//! peer runs in beta mode; unknown client events get a non-fatal `error`.

//!
//! - [`config`]: how the peer behaves, and who is connecting.
//! - [`records`]: what it remembers of each connection.
//! - [`play`]: the conversation each connection plays.

pub mod config;
pub mod play;
pub mod records;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

pub use config::{ConnectionInfo, SimRealtimeConfig};
use play::{Chain, Names, Outgoing, close_frame, play};
pub use records::ConnectionRecord;
use records::{Shared, update_record};

/// The header scribe sends only to this simulated peer (never to a real
/// provider) so that it can tell calls apart.
pub use scribe::realtime::MEETING_HEADER;

/// A running simulated realtime server.
pub struct SimRealtime {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for SimRealtime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimRealtime {
    pub async fn start(listen: SocketAddr, config: SimRealtimeConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let config = Arc::new(config);
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (shared, config) = (shared.clone(), config.clone());
                    tokio::spawn(async move {
                        if let Err(error) = serve(stream, shared, config).await {
                            tracing::debug!(%error, "sim realtime connection ended");
                        }
                    });
                }
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// Upgrades refused with an HTTP error (`reject_upgrade`).
    pub fn refused_upgrades(&self) -> usize {
        self.shared.refused_upgrades.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ws://` URL clients connect to.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime?model=gpt-realtime-2.1", self.addr)
    }

    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared
            .connections
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn connections_for(&self, meeting: &str) -> Vec<ConnectionRecord> {
        self.connections()
            .into_iter()
            .filter(|c| c.info.as_ref().and_then(|i| i.meeting.as_deref()) == Some(meeting))
            .collect()
    }

    /// Waits until `predicate` holds over the connection records, up to `deadline`.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        predicate: impl Fn(&[ConnectionRecord]) -> bool,
    ) -> Result<(), Vec<ConnectionRecord>> {
        let wait = async {
            loop {
                let notified = self.shared.changed.notified();
                if predicate(&self.connections()) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait)
            .await
            .map_err(|_| self.connections())
    }

    /// Lets scripts waiting at `Gate(name)` go on (now and later).
    pub fn open_gate(&self, name: &str) {
        if let Ok(mut gates) = self.shared.gates.lock() {
            gates.insert(name.to_owned());
        }
        self.shared.changed.notify_waiters();
    }

    /// The marks scripts reached, from the `from`-th on (in the order
    /// reached): a cheap poll for drivers of many calls.
    pub fn marks_since(&self, from: usize) -> Vec<String> {
        self.shared
            .marks
            .lock()
            .map(|m| m.get(from..).map(<[String]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until a script reached `Mark(name)`.
    pub async fn wait_for_mark(&self, name: &str, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.shared.changed.notified();
                if self
                    .shared
                    .marks
                    .lock()
                    .is_ok_and(|m| m.iter().any(|x| x == name))
                {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }
}

/// Keeps the upgrade request's headers (lowercased names) and URI, and
/// answers it with an HTTP error when told to.
struct Upgrade<'a> {
    headers: &'a mut HashMap<String, String>,
    uri: &'a mut String,
    refuse: Option<u16>,
}

impl Callback for Upgrade<'_> {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        for (name, value) in request.headers() {
            if let Ok(v) = value.to_str() {
                self.headers
                    .insert(name.as_str().to_ascii_lowercase(), v.to_owned());
            }
        }
        *self.uri = request.uri().to_string();
        match self.refuse {
            None => Ok(response),
            Some(status) => {
                let body = json!({"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key","param":null}});
                let refusal = tokio_tungstenite::tungstenite::http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Some(body.to_string()));
                Err(refusal.unwrap_or_else(|_| ErrorResponse::new(None)))
            }
        }
    }
}

/// The `name` query parameter of a request URI.
fn query_param<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn serve(
    stream: TcpStream,
    shared: Arc<Shared>,
    config: Arc<SimRealtimeConfig>,
) -> anyhow::Result<()> {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut uri = String::new();
    let upgrade = Upgrade {
        headers: &mut headers,
        uri: &mut uri,
        refuse: config.reject_upgrade,
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, upgrade).await {
        Ok(ws) => ws,
        Err(error) => {
            if config.reject_upgrade.is_some() {
                shared.refused_upgrades.fetch_add(1, Ordering::SeqCst);
                shared.changed.notify_waiters();
            }
            return Err(error.into());
        }
    };

    let index = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
    let meeting = headers.get(MEETING_HEADER).cloned();
    let session = match &meeting {
        Some(m) => {
            let mut per = shared
                .per_meeting
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            let n = per.entry(m.clone()).or_insert(0);
            *n += 1;
            *n
        }
        None => 1,
    };
    let info = ConnectionInfo {
        index,
        meeting,
        session,
    };
    let record_index = {
        let mut all = shared
            .connections
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        all.push(ConnectionRecord {
            info: Some(info.clone()),
            authorization: headers.get("authorization").cloned(),
            beta_header: headers.contains_key("openai-beta"),
            ..ConnectionRecord::default()
        });
        all.len() - 1
    };
    shared.changed.notify_waiters();

    let (mut sink, mut source) = ws.split();
    let names = Names::new(config.beta);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let send = |v: Value| Outgoing::Frame(v.to_string());

    // Configuration errors, as the real service reports them: 101, then error + close.
    let bad_key = config
        .api_key
        .as_ref()
        .is_some_and(|k| headers.get("authorization") != Some(&format!("Bearer {k}")));
    let beta_refused = headers.contains_key("openai-beta") && !config.beta;
    let model = query_param(&uri, "model");
    let model_refused = if config.models.is_empty() {
        None
    } else {
        match model {
            Some(m) if !config.models.iter().any(|known| known == m) => Some("invalid_model"),
            None if query_param(&uri, "call_id").is_none() => Some("missing_model"),
            _ => None,
        }
    };
    if bad_key || beta_refused || model_refused.is_some() {
        let (code, close) = if bad_key {
            ("invalid_api_key", 3000)
        } else if beta_refused {
            ("beta_api_shape_disabled", 4000)
        } else {
            (model_refused.unwrap_or("invalid_model"), 4000)
        };
        sink.send(Message::text(
            json!({"type":"error","event_id":"evt_cfg","error":{"type":"invalid_request_error","code":code,"message":code,"param":null,"event_id":null}}).to_string(),
        ))
        .await?;
        sink.send(close_frame(close)).await?;
        update_record(&shared, record_index, |r| r.closed_by_peer = true);
        return Ok(());
    }

    sink.send(Message::text(
        json!({"type":"session.created","event_id":"evt_0","session":{"id":format!("sess_{index}"),"object":"realtime.session","type":"realtime","expires_at": chrono::Utc::now().timestamp() + config.session_seconds}})
            .to_string(),
    ))
    .await?;

    let conversation = Arc::new(Mutex::new(Chain::sharing(shared.item_ids.clone())));
    let session_ready = Arc::new(Notify::new());

    // Client events: record, answer session.update and item.create.
    let refuse_transcription = config.refuse_transcription;
    let transcribes = Arc::new(AtomicBool::new(true));
    let reader = {
        let (shared, out_tx, conversation, session_ready, transcribes, config) = (
            shared.clone(),
            out_tx.clone(),
            conversation.clone(),
            session_ready.clone(),
            transcribes.clone(),
            config.clone(),
        );
        let names = names.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = source.next().await {
                let text = match message {
                    Message::Text(text) => text,
                    Message::Pong(_) => {
                        update_record(&shared, record_index, |r| r.pongs += 1);
                        continue;
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                let event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                update_record(&shared, record_index, |r| {
                    r.client_events.push(event.clone())
                });
                match event["type"].as_str() {
                    Some("session.update") => {
                        if let Some(param) = &config.reject_session_update {
                            // One invalid field refuses the whole update.
                            transcribes.store(false, Ordering::Relaxed);
                            let _ = out_tx.send(send(json!({"type":"error","event_id":"evt_sr","error":{"type":"invalid_request_error","code":"invalid_value","message":format!("Invalid value for '{param}'."),"param":param,"event_id":event["event_id"]}})));
                        } else if config.ignore_session_update {
                            transcribes.store(false, Ordering::Relaxed);
                        } else {
                            let mut session = event["session"].clone();
                            session["id"] = json!(format!("sess_{index}"));
                            if refuse_transcription {
                                transcribes.store(false, Ordering::Relaxed);
                                session["audio"]["input"]["transcription"] = Value::Null;
                            }
                            let _ = out_tx.send(send(
                                json!({"type":"session.updated","event_id":"evt_su","session":session}),
                            ));
                        }
                        session_ready.notify_one();
                    }
                    Some("conversation.item.create") => {
                        let (id, previous) = conversation
                            .lock()
                            .map(|mut c| c.next("item_r"))
                            .unwrap_or_default();
                        let mut item = event["item"].clone();
                        item["id"] = json!(id);
                        item["status"] = json!("completed");
                        for kind in [names.item_added, "conversation.item.done"] {
                            let _ = out_tx.send(send(json!({"type":kind,"event_id":"evt_ic","previous_item_id":previous,"item":item})));
                        }
                    }
                    _ => {
                        let _ = out_tx.send(send(json!({"type":"error","event_id":"evt_unk","error":{"type":"invalid_request_error","code":"unknown_event","message":"unsupported client event","param":null,"event_id":event["event_id"]}})));
                    }
                }
            }
            let _ = out_tx.send(Outgoing::ClientGone);
        })
    };

    // The script, once the client configured its session.
    let script = (config.script)(&info);
    let player = {
        let (out_tx, conversation, shared) = (out_tx.clone(), conversation.clone(), shared.clone());
        let config = config.clone();
        tokio::spawn(async move {
            session_ready.notified().await;
            play(
                &script,
                &config,
                &names,
                &conversation,
                &out_tx,
                &shared,
                &transcribes,
            )
            .await;
        })
    };
    drop(out_tx);

    let mut closed_by_peer = false;
    while let Some(out) = out_rx.recv().await {
        match out {
            Outgoing::Frame(text) => {
                if sink
                    .send(Message::Text(Utf8Bytes::from(text)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Outgoing::Ping => {
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            Outgoing::Close(code) => {
                let _ = sink.send(close_frame(code)).await;
                closed_by_peer = true;
                break;
            }
            Outgoing::Abort => {
                closed_by_peer = true;
                break;
            }
            Outgoing::ClientGone => break,
        }
    }
    player.abort();
    reader.abort();
    update_record(&shared, record_index, |r| {
        r.closed_by_peer = closed_by_peer;
        r.ended = true;
    });
    Ok(())
}
