//! OpenAI's Realtime calls, simulated: `POST /v1/realtime/calls` (a WebRTC
//! call from an SDP offer), `.../{id}/accept|reject|hangup` (SIP calls
//! rung with [`SimCalls::ring`]), and the sideband socket
//! (`/v1/realtime?call_id=...`, in [`sideband`]). A call lives on its own:
//! its conversation plays whether or not a sideband is attached; sidebands
//! see the events sent while they are attached, and can fetch any item back
//! (`conversation.item.retrieve`). The provider ends a call when its script
//! closes, or on hangup.
//!
//! OpenAI does not document what attaching to an ended call answers; the
//! simulator answers as [`EndedAnswer`] says, so that tests cover each.

pub mod gpt_live;
pub mod media;
pub mod rest;
pub mod sideband;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scribe_actors::domain::VoiceApi;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::realtime::config::{ConnectionInfo, SimRealtimeConfig};
use super::realtime::play::{Chain, Names, Outgoing, play};
use super::realtime::records::Shared;
use super::script::Script;

/// How a call reached OpenAI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    WebRtc,
    Sip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// A SIP call not accepted yet.
    Ringing,
    Live,
    Rejected,
    Ended,
}

/// When a call's conversation starts playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOn {
    /// When the first sideband attaches (tests without a media peer).
    Attach,
    /// When the call is created (WebRTC) or accepted (SIP).
    Answer,
    /// When the WebRTC media endpoint receives the first audio packet.
    Audio,
}

/// What attaching to a call that ended (or never existed) answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedAnswer {
    /// HTTP 404 to the upgrade.
    NotFound,
    /// 101, then an `error` (`call_not_found`) and a close 4000.
    ErrorThenClose,
    /// 101, then a close 1000 at once.
    Close,
}

/// How the simulated calls behave.
pub struct CallsConfig {
    /// The conversation each call plays (its `ConnectionInfo` names the
    /// meeting when the first sideband said which one it is for), and the
    /// pace, audio and transcription settings it plays with.
    pub realtime: SimRealtimeConfig,
    pub start: StartOn,
    pub ended: EndedAnswer,
    /// The key requests must carry (`None`: any).
    pub api_key: Option<String>,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            realtime: SimRealtimeConfig::scripted(|_| Script::hold()),
            start: StartOn::Attach,
            ended: EndedAnswer::NotFound,
            api_key: None,
        }
    }
}

/// One simulated call.
pub struct SimCallState {
    pub id: String,
    pub kind: CallKind,
    /// The voice API the call was made or accepted on.
    pub api: VoiceApi,
    /// GPT-Live: the session clock, in ms.
    clock: Mutex<u64>,
    status: Mutex<CallStatus>,
    /// The session config it was created or accepted with.
    session: Mutex<Value>,
    /// Frames of the call's session, to every attached sideband.
    frames: broadcast::Sender<Outgoing>,
    /// Every item the call's conversation made, by id (for retrieve).
    items: Mutex<HashMap<String, Value>>,
    started: AtomicBool,
    /// Sidebands attached so far, in all.
    pub attaches: AtomicUsize,
    /// The SIP status it was rejected with.
    rejected_with: Mutex<Option<u16>>,
    /// The meeting its first sideband named (simulated peers only).
    meeting: Mutex<Option<String>>,
    /// Stops the call's media endpoint (WebRTC calls).
    media_stop: watch::Sender<bool>,
    /// Packets the media endpoint sent and received.
    pub media: watch::Sender<media::MediaCounts>,
    /// What ended the call (see [`SimCallState::ended_by`]).
    ended_by: Mutex<Option<&'static str>>,
}

impl SimCallState {
    fn new(id: String, kind: CallKind, status: CallStatus, api: VoiceApi) -> Arc<Self> {
        Arc::new(Self {
            id,
            kind,
            api,
            clock: Mutex::new(0),
            status: Mutex::new(status),
            session: Mutex::new(Value::Null),
            frames: broadcast::channel(4096).0,
            items: Mutex::new(HashMap::new()),
            started: AtomicBool::new(false),
            attaches: AtomicUsize::new(0),
            rejected_with: Mutex::new(None),
            meeting: Mutex::new(None),
            media_stop: watch::channel(false).0,
            media: watch::channel(media::MediaCounts::default()).0,
            ended_by: Mutex::new(None),
        })
    }

    /// What ended the call: `caller`, `connection_lost`, the REST `hangup`
    /// or `session.close` on a sideband (GPT-Live); `None` while it runs.
    pub fn ended_by(&self) -> Option<&'static str> {
        *self.ended_by.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn status(&self) -> CallStatus {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_status(&self, status: CallStatus) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// The session config the call was created or accepted with.
    pub fn session(&self) -> Value {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn rejected_with(&self) -> Option<u16> {
        *self
            .rejected_with
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The assistant has spoken on this call (an assistant item exists).
    fn agent_spoke(&self) -> bool {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|item| item["role"] == "assistant")
    }

    /// A sparse `session.update`: the fields sent replace theirs, objects
    /// merged key by key (as OpenAI updates a session). Returns the session.
    fn update_session(&self, update: &Value) -> Value {
        fn merge(into: &mut Value, from: &Value) {
            match (into, from) {
                (Value::Object(into), Value::Object(from)) => {
                    for (key, value) in from {
                        merge(into.entry(key.clone()).or_insert(Value::Null), value);
                    }
                }
                (into, from) => *into = from.clone(),
            }
        }
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        if session.is_null() {
            *session = json!({});
        }
        merge(&mut session, update);
        let mut answer = session.clone();
        answer["id"] = json!(format!("sess_{}", self.id));
        answer
    }

    fn item(&self, id: &str) -> Option<Value> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Ends the call: every sideband is closed.
    /// The call is over: every sideband is closed.
    fn finish(&self) {
        self.set_status(CallStatus::Ended);
        self.media_stop.send_replace(true);
        let _ = self.frames.send(Outgoing::Close(1000));
    }

    /// The call ends for `reason` (GPT-Live says why: `session.closed`),
    /// ended `by` the caller, the network, a hang-up or a close.
    fn end_with(&self, reason: &str, by: &'static str) {
        if self.status() != CallStatus::Ended {
            self.ended_by
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(by);
            if self.api == VoiceApi::Live {
                let closed = gpt_live::play::closed(&self.id, reason).to_string();
                let _ = self.frames.send(Outgoing::Frame(closed));
            }
        }
        self.finish();
    }

    /// The caller hung up.
    fn end(&self) {
        self.end_with("remote_hangup", "caller");
    }

    /// The call was accepted with `session`: it is live; its conversation
    /// starts now when calls start on answer.
    fn answered(&self, calls: &SimCalls, call: &Arc<SimCallState>, session: Value) -> Response {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = session;
        self.set_status(CallStatus::Live);
        if calls.config().start == StartOn::Answer {
            calls.start(call, None);
        }
        calls.records.changed.notify_waiters();
        StatusCode::OK.into_response()
    }

    /// The call was rejected with SIP `status`.
    fn rejected(&self, calls: &SimCalls, status: u64) -> Response {
        *self
            .rejected_with
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = u16::try_from(status).ok();
        self.set_status(CallStatus::Rejected);
        calls.records.changed.notify_waiters();
        StatusCode::OK.into_response()
    }

    /// Remembers the meeting a sideband named, for the call's script.
    fn named(&self, meeting: Option<&String>) {
        let mut named = self.meeting.lock().unwrap_or_else(PoisonError::into_inner);
        if named.is_none() {
            named.clone_from(&meeting.cloned());
        }
    }
}

/// The simulated calls, shared by the HTTP handlers and the tests.
pub struct SimCalls {
    calls: Mutex<HashMap<String, Arc<SimCallState>>>,
    config: Mutex<Arc<CallsConfig>>,
    /// Marks and gates of the calls' scripts, and a signal on every change.
    pub records: Arc<Shared>,
    created: AtomicUsize,
    /// While set, attaches are answered 503 (the sideband cannot reach
    /// OpenAI), though calls go on.
    pub attach_blocked: AtomicBool,
}

impl Default for SimCalls {
    fn default() -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
            config: Mutex::new(Arc::new(CallsConfig::default())),
            records: Arc::new(Shared::default()),
            created: AtomicUsize::new(0),
            attach_blocked: AtomicBool::new(false),
        }
    }
}

impl SimCalls {
    /// Sets how calls behave from now on.
    pub fn configure(&self, config: CallsConfig) {
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }

    fn config(&self) -> Arc<CallsConfig> {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn call(&self, id: &str) -> Option<Arc<SimCallState>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Every call so far, oldest first.
    pub fn all(&self) -> Vec<Arc<SimCallState>> {
        let mut calls: Vec<_> = self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        calls.sort_by(|a, b| a.id.cmp(&b.id));
        calls
    }

    fn register(&self, kind: CallKind, status: CallStatus) -> Arc<SimCallState> {
        self.register_on(kind, status, VoiceApi::Realtime)
    }

    fn register_on(&self, kind: CallKind, status: CallStatus, api: VoiceApi) -> Arc<SimCallState> {
        let n = self.created.fetch_add(1, Ordering::SeqCst) + 1;
        let prefix = match api {
            VoiceApi::Realtime => "rtc",
            VoiceApi::Live => "live",
        };
        let id = format!(
            "{prefix}_{n:04}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let call = SimCallState::new(id.clone(), kind, status, api);
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, call.clone());
        self.records.changed.notify_waiters();
        call
    }

    /// A SIP call rings: it waits to be accepted (its webhook is sent with
    /// [`super::openai_webhook::OpenAiWebhooks`]).
    pub fn ring(&self) -> String {
        self.register(CallKind::Sip, CallStatus::Ringing).id.clone()
    }

    /// A SIP call rings on GPT-Live (its webhook is
    /// `live.transport.incoming`).
    pub fn ring_live(&self) -> String {
        self.register_on(CallKind::Sip, CallStatus::Ringing, VoiceApi::Live)
            .id
            .clone()
    }

    /// Drops every sideband attached to the call (the network between
    /// scribe and OpenAI fails); the call itself goes on.
    pub fn drop_sidebands(&self, id: &str) -> bool {
        self.call(id)
            .map(|c| c.frames.send(Outgoing::ClientGone))
            .is_some()
    }

    /// Refuses (`true`) or allows attaches.
    pub fn block_attaches(&self, blocked: bool) {
        self.attach_blocked.store(blocked, Ordering::SeqCst);
    }

    /// The provider ends the call (the caller hangs up).
    pub fn end(&self, id: &str) -> bool {
        self.call(id).map(|c| c.end()).is_some()
    }

    /// Lets scripts waiting at `Gate(name)` go on.
    pub fn open_gate(&self, name: &str) {
        if let Ok(mut gates) = self.records.gates.lock() {
            gates.insert(name.to_owned());
        }
        self.records.changed.notify_waiters();
    }

    /// The marks scripts reached, from the `from`-th on.
    pub fn marks_since(&self, from: usize) -> Vec<String> {
        self.records
            .marks
            .lock()
            .map(|m| m.get(from..).map(<[String]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until a script reached `Mark(name)`.
    pub async fn wait_for_mark(&self, name: &str, deadline: std::time::Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.records.changed.notified();
                if self
                    .records
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

    /// Starts the call's conversation (once): its frames go to every
    /// attached sideband; when its script closes, the provider ends the call.
    pub fn start(&self, call: &Arc<SimCallState>, meeting: Option<String>) {
        if call.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let config = self.config();
        let index = self.created.load(Ordering::SeqCst);
        let info = ConnectionInfo {
            index,
            meeting,
            session: 1,
        };
        let script = (config.realtime.script)(&info);
        let (out, mut rx) = mpsc::unbounded_channel::<Outgoing>();
        let records = self.records.clone();
        let player_call = call.clone();
        tokio::spawn(async move {
            if player_call.api == VoiceApi::Live {
                let clock = &player_call.clock;
                gpt_live::play::play_live(
                    &script,
                    &config.realtime,
                    &player_call.id,
                    clock,
                    &out,
                    &records,
                    true,
                )
                .await;
                return;
            }
            let names = Names::new(false);
            let chain = Mutex::new(Chain::default());
            let transcribes = AtomicBool::new(true);
            play(
                &script,
                &config.realtime,
                &names,
                &chain,
                &out,
                &records,
                &transcribes,
            )
            .await;
            drop(player_call);
        });
        let call = call.clone();
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                match out {
                    Outgoing::Frame(text) => {
                        remember_items(&call, &text);
                        let _ = call.frames.send(Outgoing::Frame(text));
                    }
                    Outgoing::Close(_) | Outgoing::Abort => {
                        call.finish();
                        return;
                    }
                    Outgoing::Ping | Outgoing::ClientGone => {}
                }
            }
        });
    }
}

/// Keeps every item a frame carries, for `conversation.item.retrieve`.
fn remember_items(call: &SimCallState, frame: &str) {
    let Ok(event) = serde_json::from_str::<Value>(frame) else {
        return;
    };
    let kind = event["type"].as_str().unwrap_or_default();
    let mut items = call.items.lock().unwrap_or_else(PoisonError::into_inner);
    match kind {
        "conversation.item.added" | "conversation.item.done" => {
            if let Some(id) = event["item"]["id"].as_str() {
                items.insert(id.to_owned(), event["item"].clone());
            }
        }
        "conversation.item.input_audio_transcription.completed" => {
            if let (Some(id), Some(text)) =
                (event["item_id"].as_str(), event["transcript"].as_str())
                && let Some(item) = items.get_mut(id)
            {
                item["content"][0]["transcript"] = json!(text);
            }
        }
        _ => {}
    }
}

/// An error in OpenAI's shape.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": code } });
    (status, Json(body)).into_response()
}
