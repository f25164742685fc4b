//! A simulated OpenAI Realtime server: a real WebSocket endpoint that
//! answers `session.update`, echoes `conversation.item.create` as the real
//! server does, plays a scripted conversation per connection (GA event
//! names, or beta ones when asked), and records every client event.
//!
//! Behaviour it shares with the real service (PROTOCOL.md): `session.created`
//! first; a wrong bearer key gets `error` + close 3000; the beta header gets
//! `beta_api_shape_disabled` + close 4000 unless the peer runs in beta mode;
//! unknown client events get a non-fatal `error`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::script::{Script, Step, Transcription, Turn};

/// The header scribe sends so that a peer can tell calls apart.
pub const MEETING_HEADER: &str = "x-scribe-meeting-id";

/// Who is connecting: passed to the script chooser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connections accepted so far, this one included, from 1.
    pub index: usize,
    pub meeting: Option<String>,
    /// This meeting's connections so far, this one included, from 1.
    pub session: usize,
}

type ScriptFn = dyn Fn(&ConnectionInfo) -> Script + Send + Sync;

pub struct SimRealtimeConfig {
    /// Multiplies every delay; 0 plays as fast as the socket allows.
    pub pace: f64,
    /// Speak the beta event names, and accept the beta header.
    pub beta: bool,
    /// When set, the bearer key clients must present.
    pub api_key: Option<String>,
    /// Base64 audio frames sent per transcript word (never decoded by scribe).
    pub audio_frames_per_word: usize,
    /// Base64 characters per audio frame.
    pub audio_frame_bytes: usize,
    /// Session lifetime announced in `session.created.session.expires_at`.
    pub session_seconds: i64,
    /// Answer `session.update` with input transcription off, as the real
    /// service does when the requested transcription settings are refused.
    pub refuse_transcription: bool,
    pub script: Box<ScriptFn>,
}

impl SimRealtimeConfig {
    /// Fast, GA, no key, two audio frames a word, the given script for every connection.
    pub fn scripted(script: impl Fn(&ConnectionInfo) -> Script + Send + Sync + 'static) -> Self {
        Self {
            pace: 0.0,
            beta: false,
            api_key: None,
            audio_frames_per_word: 2,
            audio_frame_bytes: 400,
            session_seconds: 3600,
            refuse_transcription: false,
            script: Box::new(script),
        }
    }
}

/// What one connection saw and did.
#[derive(Debug, Clone, Default)]
pub struct ConnectionRecord {
    pub info: Option<ConnectionInfo>,
    pub authorization: Option<String>,
    pub beta_header: bool,
    /// Every client event, parsed, in arrival order.
    pub client_events: Vec<Value>,
    /// Pongs the client sent in answer to pings.
    pub pongs: usize,
    pub closed_by_peer: bool,
}

#[derive(Default)]
struct Shared {
    connections: Mutex<Vec<ConnectionRecord>>,
    per_meeting: Mutex<HashMap<String, usize>>,
    marks: Mutex<Vec<String>>,
    gates: Mutex<std::collections::HashSet<String>>,
    changed: Notify,
    accepted: AtomicUsize,
}

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

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ws://` URL clients connect to.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime?model=gpt-realtime", self.addr)
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

fn update_record(shared: &Shared, index: usize, f: impl FnOnce(&mut ConnectionRecord)) {
    if let Ok(mut all) = shared.connections.lock()
        && let Some(record) = all.get_mut(index)
    {
        f(record);
    }
    shared.changed.notify_waiters();
}

/// Keeps the upgrade request's headers (lowercased names).
struct CaptureHeaders<'a>(&'a mut HashMap<String, String>);

impl Callback for CaptureHeaders<'_> {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        for (name, value) in request.headers() {
            if let Ok(v) = value.to_str() {
                self.0
                    .insert(name.as_str().to_ascii_lowercase(), v.to_owned());
            }
        }
        Ok(response)
    }
}

async fn serve(
    stream: TcpStream,
    shared: Arc<Shared>,
    config: Arc<SimRealtimeConfig>,
) -> anyhow::Result<()> {
    let mut headers: HashMap<String, String> = HashMap::new();
    let ws = tokio_tungstenite::accept_hdr_async(stream, CaptureHeaders(&mut headers)).await?;

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
    if bad_key || beta_refused {
        let (code, close) = if bad_key {
            ("invalid_api_key", 3000)
        } else {
            ("beta_api_shape_disabled", 4000)
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

    let conversation = Arc::new(Mutex::new(Chain::default()));
    let session_ready = Arc::new(Notify::new());

    // Client events: record, answer session.update and item.create.
    let refuse_transcription = config.refuse_transcription;
    let reader = {
        let (shared, out_tx, conversation, session_ready) = (
            shared.clone(),
            out_tx.clone(),
            conversation.clone(),
            session_ready.clone(),
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
                        let mut session = event["session"].clone();
                        session["id"] = json!(format!("sess_{index}"));
                        if refuse_transcription {
                            session["audio"]["input"]["transcription"] = Value::Null;
                        }
                        let _ = out_tx.send(send(
                            json!({"type":"session.updated","event_id":"evt_su","session":session}),
                        ));
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
            play(&script, &config, &names, &conversation, &out_tx, &shared).await;
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
    update_record(&shared, record_index, |r| r.closed_by_peer = closed_by_peer);
    Ok(())
}

fn close_frame(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static("closed by simulated peer"),
    }))
}

enum Outgoing {
    Frame(String),
    Ping,
    Close(u16),
    Abort,
    ClientGone,
}

/// The conversation's item chain as the peer tracks it.
#[derive(Default)]
struct Chain {
    last: Option<String>,
    counter: usize,
}

impl Chain {
    /// A fresh item id and the id it follows.
    fn next(&mut self, prefix: &str) -> (String, Option<String>) {
        self.counter += 1;
        let id = format!("{prefix}_{}", self.counter);
        let previous = self.last.replace(id.clone());
        (id, previous)
    }
}

/// Event names in the dialect the peer speaks.
#[derive(Clone)]
struct Names {
    item_added: &'static str,
    transcript_delta: &'static str,
    transcript_done: &'static str,
    audio_delta: &'static str,
}

impl Names {
    fn new(beta: bool) -> Self {
        if beta {
            Self {
                item_added: "conversation.item.created",
                transcript_delta: "response.audio_transcript.delta",
                transcript_done: "response.audio_transcript.done",
                audio_delta: "response.audio.delta",
            }
        } else {
            Self {
                item_added: "conversation.item.added",
                transcript_delta: "response.output_audio_transcript.delta",
                transcript_done: "response.output_audio_transcript.done",
                audio_delta: "response.output_audio.delta",
            }
        }
    }
}

async fn pause(config: &SimRealtimeConfig, base: Duration) {
    if config.pace > 0.0 {
        tokio::time::sleep(base.mul_f64(config.pace)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

async fn play(
    script: &Script,
    config: &SimRealtimeConfig,
    names: &Names,
    chain: &Mutex<Chain>,
    out: &mpsc::UnboundedSender<Outgoing>,
    shared: &Shared,
) {
    let emit = |v: Value| out.send(Outgoing::Frame(v.to_string())).is_ok();
    let next_id = |prefix: &str| chain.lock().map(|mut c| c.next(prefix)).unwrap_or_default();
    let audio = "U".repeat(config.audio_frame_bytes);
    for (n, step) in script.steps.iter().enumerate() {
        match step {
            Step::Turn(turn) => {
                if !play_turn(n, turn, None, config, names, &emit, &next_id, &audio).await {
                    return;
                }
            }
            Step::ExpireMidReply {
                turn,
                words_before_expiry,
            } => {
                play_turn(
                    n,
                    turn,
                    Some(*words_before_expiry),
                    config,
                    names,
                    &emit,
                    &next_id,
                    &audio,
                )
                .await;
                emit(
                    json!({"type":"error","event_id":format!("evt_{n}_exp"),"error":{"type":"invalid_request_error","code":"session_expired","message":"Your session hit the maximum duration of 60 minutes.","param":null,"event_id":null}}),
                );
                let _ = out.send(Outgoing::Close(1000));
                return;
            }
            Step::Error { code, message } => {
                emit(
                    json!({"type":"error","event_id":format!("evt_{n}_err"),"error":{"type":"invalid_request_error","code":code,"message":message,"param":null,"event_id":null}}),
                );
            }
            Step::Raw(text) => {
                let _ = out.send(Outgoing::Frame(text.clone()));
            }
            Step::Ping => {
                let _ = out.send(Outgoing::Ping);
            }
            Step::Close(code) => {
                let _ = out.send(Outgoing::Close(*code));
                return;
            }
            Step::Abort => {
                let _ = out.send(Outgoing::Abort);
                return;
            }
            Step::Mark(name) => {
                if let Ok(mut marks) = shared.marks.lock() {
                    marks.push(name.clone());
                }
                shared.changed.notify_waiters();
            }
            Step::Gate(name) => loop {
                let notified = shared.changed.notified();
                if shared.gates.lock().is_ok_and(|g| g.contains(name)) {
                    break;
                }
                notified.await;
            },
            Step::Hold => return,
        }
        pause(config, Duration::from_secs(2)).await;
    }
}

/// Plays one exchange; with `cut_after`, stops the reply after that many
/// words (the caller then expires the session). False when the client left.
#[allow(clippy::too_many_arguments)]
async fn play_turn(
    n: usize,
    turn: &Turn,
    cut_after: Option<usize>,
    config: &SimRealtimeConfig,
    names: &Names,
    emit: &impl Fn(Value) -> bool,
    next_id: &impl Fn(&str) -> (String, Option<String>),
    audio: &str,
) -> bool {
    let (user_id, previous) = next_id("item_u");
    let user_item = json!({"id":user_id,"object":"realtime.item","type":"message","role":"user","status":"completed","content":[{"type":"input_audio","transcript":null}]});
    let transcript_event = |ok: bool| {
        if ok {
            json!({"type":"conversation.item.input_audio_transcription.completed","event_id":format!("evt_{n}_tr"),"item_id":user_id,"content_index":0,"transcript":turn.user})
        } else {
            json!({"type":"conversation.item.input_audio_transcription.failed","event_id":format!("evt_{n}_tf"),"item_id":user_id,"content_index":0,"error":{"type":"transcription_error","code":"audio_unintelligible","message":"Audio could not be transcribed."}})
        }
    };
    let mut ok = emit(
        json!({"type":"input_audio_buffer.speech_started","event_id":format!("evt_{n}_ss"),"item_id":user_id,"audio_start_ms":0}),
    ) && emit(
        json!({"type":"input_audio_buffer.speech_stopped","event_id":format!("evt_{n}_sp"),"item_id":user_id,"audio_end_ms":1200}),
    ) && emit(
        json!({"type":"input_audio_buffer.committed","event_id":format!("evt_{n}_co"),"item_id":user_id,"previous_item_id":previous}),
    ) && emit(
        json!({"type":names.item_added,"event_id":format!("evt_{n}_ua"),"previous_item_id":previous,"item":user_item}),
    ) && emit(
        json!({"type":"conversation.item.done","event_id":format!("evt_{n}_ud"),"previous_item_id":previous,"item":user_item}),
    );
    if cut_after.is_none() && turn.transcription == Transcription::Before {
        ok = ok && emit(transcript_event(true));
    }
    pause(config, Duration::from_millis(300)).await;

    let response_id = format!("resp_{n}");
    let (agent_id, _) = next_id("item_a");
    let agent_item = json!({"id":agent_id,"object":"realtime.item","type":"message","role":"assistant","status":"in_progress","content":[]});
    ok = ok
        && emit(
            json!({"type":"response.created","event_id":format!("evt_{n}_rc"),"response":{"id":response_id,"object":"realtime.response","status":"in_progress","output":[]}}),
        )
        && emit(
            json!({"type":names.item_added,"event_id":format!("evt_{n}_aa"),"previous_item_id":user_id,"item":agent_item}),
        );
    let words = cut_after.map_or(turn.agent.len(), |c| c.min(turn.agent.len()));
    for (w, word) in turn.agent[..words].iter().enumerate() {
        for _ in 0..config.audio_frames_per_word {
            ok = ok
                && emit(
                    json!({"type":names.audio_delta,"event_id":format!("evt_{n}_{w}_au"),"response_id":response_id,"item_id":agent_id,"output_index":0,"content_index":0,"delta":audio}),
                );
        }
        ok = ok
            && emit(
                json!({"type":names.transcript_delta,"event_id":format!("evt_{n}_{w}_td"),"response_id":response_id,"item_id":agent_id,"output_index":0,"content_index":0,"delta":word}),
            );
        if cut_after.is_none() && turn.transcription == Transcription::During && w == words / 2 {
            ok = ok && emit(transcript_event(true));
        }
        pause(config, Duration::from_millis(250)).await;
    }
    if cut_after.is_some() {
        return ok;
    }
    let full = turn.agent.concat();
    ok = ok
        && emit(
            json!({"type":names.transcript_done,"event_id":format!("evt_{n}_tdn"),"response_id":response_id,"item_id":agent_id,"output_index":0,"content_index":0,"transcript":full}),
        )
        && emit(
            json!({"type":"conversation.item.done","event_id":format!("evt_{n}_ad"),"previous_item_id":user_id,"item":{"id":agent_id,"type":"message","role":"assistant","status":"completed","content":[{"type":"output_audio","transcript":full}]}}),
        )
        && emit(
            json!({"type":"response.done","event_id":format!("evt_{n}_rd"),"response":{"id":response_id,"object":"realtime.response","status":"completed","output":[]}}),
        )
        && emit(
            json!({"type":"rate_limits.updated","event_id":format!("evt_{n}_rl"),"rate_limits":[]}),
        );
    match turn.transcription {
        Transcription::After => ok = ok && emit(transcript_event(true)),
        Transcription::Failed => ok = ok && emit(transcript_event(false)),
        Transcription::Before | Transcription::During | Transcription::Withheld => {}
    }
    ok
}
