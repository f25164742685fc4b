//! The simulated OpenAI HTTP API: chat completions
//! (`POST /v1/chat/completions`, streamed with `stream: true`) that take
//! the time a real model takes ([`Pace`]: reading the prompt, then writing
//! the answer) and scripted faults (500, 429 with `Retry-After`, stalls,
//! content that is not JSON, a stream cut off mid-answer),
//! and, on the same base URL, Realtime calls and their sidebands
//! ([`super::calls`], reached with [`SimLlm::calls`]). Chat answers are
//! deterministic:
//!
//! - with `response_format` `json_schema` (or `json_object`), a blueprint
//!   answer: the user message carries a line
//!   `BLUEPRINT: {"sessions":[...],"current":"..."}`; the answer completes
//!   every session up to and including `current`;
//! - otherwise a summary of the conversation in the user message, or, for
//!   a prompt with `NEW LINES:`, the running notes updated with them
//!   ([`answer`]).
//!
//! It refuses what OpenAI's current (reasoning) chat models refuse, with
//! OpenAI's 400 shapes: `max_tokens` (`max_completion_tokens` instead), a
//! `temperature` or `top_p` other than 1, `stop`, and a `json_schema`
//! response format without a name and a schema, or `strict` with a schema
//! that leaves an object open or a property optional.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::carried::SimCalls;
pub use pace::{LatencyModel, Pace};
use stream::Answer;

pub mod answer;
pub mod pace;
mod stream;

/// One scripted misbehaviour, used by the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmFault {
    ServerError,
    RateLimited {
        retry_after_secs: u64,
    },
    /// Answer only after this long (past the client's attempt timeout).
    Stall(Duration),
    /// A 200 whose content is not the JSON that was asked for.
    NotJson,
    /// A 200 cut off at the output limit (`finish_reason: length`).
    CutOff,
    /// A 200 whose message is a refusal (`refusal` set, no content).
    Refusal,
    /// Half the answer, then the connection drops: a streamed answer ends
    /// without a finish reason or `[DONE]`; an unstreamed one is a 502.
    Severed,
    /// OpenAI's 401 for a key it does not know, which quotes part of the
    /// key presented (`Incorrect API key provided: sk-abc***wxyz. ...`).
    InvalidKey,
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    pub at: Instant,
    pub body: Value,
}

struct Shared {
    pace: Pace,
    cache: pace::PromptCache,
    faults: Mutex<VecDeque<LlmFault>>,
    requests: Mutex<Vec<LlmRequest>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a request in flight for as long as it lives (a streamed answer:
/// until its last chunk is sent).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct SimLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    calls: Arc<SimCalls>,
    task: JoinHandle<()>,
}

impl Drop for SimLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimLlm {
    /// A server answering after a fixed `latency`, whatever the request.
    pub async fn start(listen: SocketAddr, latency: Duration) -> std::io::Result<Self> {
        Self::start_paced(listen, Pace::Fixed(latency)).await
    }

    /// A server taking the time `pace` says.
    pub async fn start_paced(listen: SocketAddr, pace: Pace) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            pace,
            cache: pace::PromptCache::default(),
            faults: Mutex::default(),
            requests: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let calls = Arc::new(SimCalls::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared.clone())
            .merge(super::carried::rest::routes(calls.clone()))
            .merge(super::carried::gpt_live::routes(calls.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            calls,
            task,
        })
    }

    /// The simulated Realtime calls on this server.
    pub fn calls(&self) -> &Arc<SimCalls> {
        &self.calls
    }

    /// The base URL clients use (`/v1` included).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues faults for the next requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = LlmFault>) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(faults);
    }

    /// The most requests that were ever being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<LlmRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "message": message, "type": kind, "param": null, "code": null } })),
    )
        .into_response()
}

/// The key as OpenAI quotes it back: its first 3 and last 4 characters.
fn quoted_key(headers: &axum::http::HeaderMap) -> String {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 8 {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}***{tail}")
}

async fn complete(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let in_flight = InFlight::enter(shared.clone());
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(LlmRequest {
            at: Instant::now(),
            body: body.clone(),
        });
    let fault = shared
        .faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front();
    if let Some(refused) = refuse(&body) {
        return refused;
    }
    let wants_json = matches!(
        body["response_format"]["type"].as_str(),
        Some("json_object" | "json_schema")
    );
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let prompt: String = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let prompt_tokens = pace::tokens(&prompt);
    let cached = shared.cache.read(&prompt);
    let reading = match shared.pace {
        Pace::Fixed(latency) => latency,
        Pace::Model(model) => model.reading(prompt_tokens, cached),
    };
    let mut answer = Answer {
        content: None,
        refusal: None,
        finish: "stop",
        severed: false,
        delay: Duration::ZERO,
    };
    match fault {
        Some(LlmFault::ServerError) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "simulated server error",
            );
        }
        Some(LlmFault::RateLimited { retry_after_secs }) => {
            let mut response = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "simulated rate limit",
            );
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Some(LlmFault::InvalidKey) => {
            let message = format!(
                "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                quoted_key(&headers)
            );
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": "invalid_api_key" } })),
            )
                .into_response();
        }
        Some(LlmFault::Stall(delay)) => {
            answer.delay = delay;
            answer.content = Some(answer::answer(&user, wants_json));
        }
        Some(LlmFault::NotJson) => {
            answer.content =
                Some("Sure! Here is the analysis you asked for: it went well.".to_owned());
        }
        Some(LlmFault::CutOff) => {
            let full = answer::answer(&user, wants_json);
            let half: String = full.chars().take(full.chars().count() / 2).collect();
            answer.content = Some(half);
            answer.finish = "length";
        }
        Some(LlmFault::Severed) => {
            let full = answer::answer(&user, wants_json);
            let half: String = full.chars().take(full.chars().count() / 2).collect();
            answer.content = Some(half);
            answer.severed = true;
        }
        Some(LlmFault::Refusal) => {
            answer.refusal = Some("I'm sorry, I can't help with that.".to_owned());
        }
        None => answer.content = Some(answer::answer(&user, wants_json)),
    }
    let chunks = pace::Chunks {
        id: format!("chatcmpl-sim-{}", uuid::Uuid::new_v4().simple()),
        created: chrono::Utc::now().timestamp(),
        model: body["model"].clone(),
        include_usage: body["stream_options"]["include_usage"] == true,
    };
    let written = answer
        .content
        .as_deref()
        .or(answer.refusal.as_deref())
        .unwrap_or_default();
    let written = pace::pieces(written).len() as u64;
    let usage = pace::usage(prompt_tokens, cached, written);
    if body["stream"] == true {
        return stream::respond(shared.clone(), in_flight, chunks, answer, reading, usage);
    }
    let writing = match shared.pace {
        Pace::Fixed(_) => Duration::ZERO,
        Pace::Model(model) => model.writing(written),
    };
    let wait = reading + writing + answer.delay;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    if answer.severed {
        // Without streaming, a connection cut mid-answer is no answer.
        return api_error(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "simulated connection loss",
        );
    }
    drop(in_flight);
    let message =
        json!({ "role": "assistant", "content": answer.content, "refusal": answer.refusal });
    Json(json!({
        "id": chunks.id,
        "object": "chat.completion",
        "created": chunks.created,
        "model": chunks.model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": answer.finish,
            "logprobs": null
        }],
        "usage": usage
    }))
    .into_response()
}

/// OpenAI's 400 for a parameter a current chat model does not take.
fn refuse(body: &Value) -> Option<Response> {
    let bad = |param: &str, code: &str, message: String| {
        let body = json!({ "error": { "message": message, "type": "invalid_request_error", "param": param, "code": code } });
        Some((StatusCode::BAD_REQUEST, Json(body)).into_response())
    };
    let model = body["model"].as_str().unwrap_or_default();
    if body.get("max_tokens").is_some() {
        return bad(
            "max_tokens",
            "unsupported_parameter",
            format!(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead. ({model})"
            ),
        );
    }
    for param in ["temperature", "top_p"] {
        if body.get(param).is_some_and(|v| v.as_f64() != Some(1.0)) {
            return bad(
                param,
                "unsupported_value",
                format!(
                    "Unsupported value: '{param}' does not support {} with this model. Only the default (1) value is supported.",
                    body[param]
                ),
            );
        }
    }
    if body.get("stop").is_some() {
        return bad(
            "stop",
            "unsupported_parameter",
            "Unsupported parameter: 'stop' is not supported with this model.".into(),
        );
    }
    let format = &body["response_format"];
    if format["type"] == "json_schema" {
        let schema = &format["json_schema"];
        if !schema["name"].is_string() || !schema["schema"].is_object() {
            return bad(
                "response_format.json_schema",
                "invalid_value",
                "A json_schema response format needs a `name` and a `schema`.".into(),
            );
        }
        if schema["strict"] == true && !strict_schema(&schema["schema"]) {
            return bad(
                "response_format.json_schema.schema",
                "invalid_json_schema",
                "Invalid schema for response_format: In strict mode, every object must set 'additionalProperties': false and list every property in 'required'.".into(),
            );
        }
    }
    None
}

/// Structured Outputs' strict mode: every object closed, every property
/// required, all the way down.
fn strict_schema(schema: &Value) -> bool {
    match schema["type"].as_str() {
        Some("object") => {
            let properties = schema["properties"].as_object();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            schema["additionalProperties"] == false
                && properties.is_none_or(|p| {
                    p.len() == required.len()
                        && p.iter()
                            .all(|(k, v)| required.contains(&k.as_str()) && strict_schema(v))
                })
        }
        Some("array") => strict_schema(&schema["items"]),
        _ => true,
    }
}
