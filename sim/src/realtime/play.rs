//! The conversation a connection plays: its script, turn by turn, with GA
//! or beta event names, pauses at the configured pace, marks and gates.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::super::script::{Reply, Script, Step, Transcription, Turn};
use super::config::SimRealtimeConfig;
use super::records::Shared;

pub fn close_frame(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static("closed by simulated peer"),
    }))
}

#[derive(Debug, Clone)]
pub enum Outgoing {
    Frame(String),
    Ping,
    Close(u16),
    Abort,
    ClientGone,
}

/// The conversation's item chain as the peer tracks it. Its ids come from
/// a counter the peer's sessions share, so that no two sessions name the
/// same item (OpenAI's ids are unique too).
#[derive(Default)]
pub struct Chain {
    last: Option<String>,
    counter: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Chain {
    /// A chain whose ids continue `counter`'s.
    pub fn sharing(counter: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        Self {
            last: None,
            counter,
        }
    }

    /// A fresh item id and the id it follows.
    pub fn next(&mut self, prefix: &str) -> (String, Option<String>) {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let id = format!("{prefix}_{n}");
        let previous = self.last.replace(id.clone());
        (id, previous)
    }
}

/// Event names in the dialect the peer speaks.
#[derive(Clone)]
pub struct Names {
    pub item_added: &'static str,
    transcript_delta: &'static str,
    transcript_done: &'static str,
    audio_delta: &'static str,
}

impl Names {
    pub fn new(beta: bool) -> Self {
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

pub(crate) async fn pause(config: &SimRealtimeConfig, base: Duration) {
    if config.pace > 0.0 {
        tokio::time::sleep(base.mul_f64(config.pace)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn play(
    script: &Script,
    config: &SimRealtimeConfig,
    names: &Names,
    chain: &Mutex<Chain>,
    out: &mpsc::UnboundedSender<Outgoing>,
    shared: &Shared,
    transcribes: &AtomicBool,
) {
    let emit = |v: Value| out.send(Outgoing::Frame(v.to_string())).is_ok();
    let voice = Voice {
        emit: &emit,
        transcribes,
    };
    let next_id = |prefix: &str| chain.lock().map(|mut c| c.next(prefix)).unwrap_or_default();
    let audio = "U".repeat(config.audio_frame_bytes);
    for (n, step) in script.steps.iter().enumerate() {
        match step {
            Step::Turn(turn) => {
                if !play_turn(n, turn, None, config, names, &voice, &next_id, &audio).await {
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
                    &voice,
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
            Step::StreamRefusal => {
                emit(json!({"type":"server_error","code":"42","message":"Error:  code "}));
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
            Step::SessionClosed(_) => {
                let _ = out.send(Outgoing::Close(1000));
                return;
            }
            Step::Abort => {
                let _ = out.send(Outgoing::Abort);
                return;
            }
            Step::Mark(name) => shared.mark(name),
            Step::Gate(name) => shared.pass_gate(name).await,
            Step::Hold => return,
        }
        pause(config, Duration::from_secs(2)).await;
    }
}

/// What a turn may send besides its frames: the user's transcription only
/// while the session transcribes.
pub struct Voice<'a> {
    pub emit: &'a (dyn Fn(Value) -> bool + Sync),
    pub transcribes: &'a AtomicBool,
}

impl Voice<'_> {
    fn say(&self, frame: Value) -> bool {
        (self.emit)(frame)
    }

    /// A user transcription event, sent only when the session transcribes
    /// (true when it is withheld: the client is still there).
    fn transcript(&self, frame: Value) -> bool {
        !self.transcribes.load(Ordering::Relaxed) || (self.emit)(frame)
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
    voice: &Voice<'_>,
    next_id: &impl Fn(&str) -> (String, Option<String>),
    audio: &str,
) -> bool {
    let (user_id, previous) = next_id("item_u");
    let user_item = json!({"id":user_id,"object":"realtime.item","type":"message","role":"user","status":"completed","content":[{"type":"input_audio","transcript":null}]});
    let transcript_event = |ok: bool| {
        if ok {
            json!({"type":"conversation.item.input_audio_transcription.completed","event_id":format!("evt_{n}_tr"),"item_id":user_id,"content_index":0,"transcript":turn.user,"usage":{"type":"duration","seconds":1.2}})
        } else {
            json!({"type":"conversation.item.input_audio_transcription.failed","event_id":format!("evt_{n}_tf"),"item_id":user_id,"content_index":0,"error":{"type":"transcription_error","code":"audio_unintelligible","message":"Audio could not be transcribed.","param":null}})
        }
    };
    let mut ok = voice.say(
        json!({"type":"input_audio_buffer.speech_started","event_id":format!("evt_{n}_ss"),"item_id":user_id,"audio_start_ms":0}),
    ) && voice.say(
        json!({"type":"input_audio_buffer.speech_stopped","event_id":format!("evt_{n}_sp"),"item_id":user_id,"audio_end_ms":1200}),
    ) && voice.say(
        json!({"type":"input_audio_buffer.committed","event_id":format!("evt_{n}_co"),"item_id":user_id,"previous_item_id":previous}),
    ) && voice.say(
        json!({"type":names.item_added,"event_id":format!("evt_{n}_ua"),"previous_item_id":previous,"item":user_item}),
    ) && voice.say(
        json!({"type":"conversation.item.done","event_id":format!("evt_{n}_ud"),"previous_item_id":previous,"item":user_item}),
    );
    if let Transcription::DeltasThenFailed { words } = turn.transcription {
        for (w, word) in turn.user_words().iter().take(words).enumerate() {
            ok = ok
                && voice.transcript(
                    json!({"type":"conversation.item.input_audio_transcription.delta","event_id":format!("evt_{n}_{w}_ud"),"item_id":user_id,"content_index":0,"delta":word,"logprobs":null}),
                );
        }
    }
    if cut_after.is_none() && turn.transcription == Transcription::Before {
        ok = ok && voice.transcript(transcript_event(true));
    }
    pause(config, Duration::from_millis(300)).await;

    let response_id = format!("resp_{n}");
    let (agent_id, _) = next_id("item_a");
    let agent_item = json!({"id":agent_id,"object":"realtime.item","type":"message","role":"assistant","status":"in_progress","content":[]});
    ok = ok
        && voice.say(
            json!({"type":"response.created","event_id":format!("evt_{n}_rc"),"response":{"id":response_id,"object":"realtime.response","status":"in_progress","output":[]}}),
        )
        && voice.say(
            json!({"type":names.item_added,"event_id":format!("evt_{n}_aa"),"previous_item_id":user_id,"item":agent_item}),
        );
    let streamed = match (cut_after, turn.reply) {
        (Some(c), _) => c,
        (None, Reply::Cancelled { words, .. } | Reply::Failed { words }) => words,
        (None, Reply::Completed | Reply::Truncated { .. }) => turn.agent.len(),
    }
    .min(turn.agent.len());
    for (w, word) in turn.agent[..streamed].iter().enumerate() {
        for _ in 0..config.audio_frames_per_word {
            ok = ok
                && voice.say(
                    json!({"type":names.audio_delta,"event_id":format!("evt_{n}_{w}_au"),"response_id":response_id,"item_id":agent_id,"output_index":0,"content_index":0,"delta":audio}),
                );
        }
        ok = ok
            && voice.say(
                json!({"type":names.transcript_delta,"event_id":format!("evt_{n}_{w}_td"),"response_id":response_id,"item_id":agent_id,"output_index":0,"content_index":0,"delta":word}),
            );
        if cut_after.is_none() && turn.transcription == Transcription::During && w == streamed / 2 {
            ok = ok && voice.transcript(transcript_event(true));
        }
        pause(config, Duration::from_millis(250)).await;
    }
    if cut_after.is_some() {
        return ok;
    }
    ok = ok && end_reply(n, turn, &response_id, &agent_id, &user_id, names, voice);
    match turn.transcription {
        Transcription::After => ok = ok && voice.transcript(transcript_event(true)),
        Transcription::Failed | Transcription::DeltasThenFailed { .. } => {
            ok = ok && voice.transcript(transcript_event(false));
        }
        Transcription::Before | Transcription::During | Transcription::Withheld => {}
    }
    ok
}

/// The end of a reply whose words were streamed, as [`Reply`] says (the
/// shapes of `response.done` and `conversation.item.truncated` in OpenAI's
/// generated types).
fn end_reply(
    n: usize,
    turn: &Turn,
    response_id: &str,
    agent_id: &str,
    user_id: &str,
    names: &Names,
    voice: &Voice<'_>,
) -> bool {
    let words = |k: usize| turn.agent[..k.min(turn.agent.len())].concat();
    let response_done = |status: &str, details: Value, output: Value| json!({"type":"response.done","event_id":format!("evt_{n}_rd"),"response":{"id":response_id,"object":"realtime.response","status":status,"status_details":details,"output":output}});
    match turn.reply {
        Reply::Cancelled {
            output_words,
            ..
        } => {
            let output = match output_words {
                Some(k) => json!([{"id":agent_id,"object":"realtime.item","type":"message","role":"assistant","status":"incomplete","content":[{"type":"output_audio","transcript":words(k)}]}]),
                None => json!([]),
            };
            voice.say(response_done(
                "cancelled",
                json!({"type":"cancelled","reason":"turn_detected"}),
                output,
            ))
        }
        Reply::Failed { .. } => voice.say(response_done(
            "failed",
            json!({"type":"failed","error":{"type":"server_error","code":"internal_error","message":"The server had an error while processing your request."}}),
            json!([]),
        )),
        Reply::Completed | Reply::Truncated { .. } => {
            let full = turn.agent.concat();
            let mut ok = voice.say(
                json!({"type":names.transcript_done,"event_id":format!("evt_{n}_tdn"),"response_id":response_id,"item_id":agent_id,"output_index":0,"content_index":0,"transcript":full}),
            ) && voice.say(
                json!({"type":"conversation.item.done","event_id":format!("evt_{n}_ad"),"previous_item_id":user_id,"item":{"id":agent_id,"type":"message","role":"assistant","status":"completed","content":[{"type":"output_audio","transcript":full}]}}),
            ) && voice.say(response_done("completed", Value::Null, json!([])))
                && voice.say(
                    json!({"type":"rate_limits.updated","event_id":format!("evt_{n}_rl"),"rate_limits":[]}),
                );
            if let Reply::Truncated { audio_end_ms } = turn.reply {
                ok = ok
                    && voice.say(
                        json!({"type":"input_audio_buffer.speech_started","event_id":format!("evt_{n}_bi"),"item_id":format!("item_b{n}"),"audio_start_ms":audio_end_ms}),
                    )
                    && voice.say(
                        json!({"type":"conversation.item.truncated","event_id":format!("evt_{n}_tc"),"item_id":agent_id,"content_index":0,"audio_end_ms":audio_end_ms}),
                    )
                    && voice.say(
                        json!({"type":"input_audio_buffer.speech_stopped","event_id":format!("evt_{n}_bs"),"item_id":format!("item_b{n}"),"audio_end_ms":audio_end_ms + 400}),
                    );
            }
            ok
        }
    }
}
