//! OpenAI's calls REST API, for either voice API:
//!
//! - Realtime: `POST {base}/realtime/calls` (multipart: the browser's SDP
//!   offer and the session config; 201 with the SDP answer and `Location:
//!   /v1/realtime/calls/{call_id}`), and `.../{call_id}/accept` (the session
//!   config, flat), `/reject` (`{"status_code": N}`), `/hangup`;
//! - GPT-Live: `POST {base}/live/sessions` (JSON `{"session", "transport":
//!   {"type":"webrtc","sdp"}}`; the session id and the SDP answer in the
//!   JSON answer), and `/live/sessions/{id}/accept` (`{"session": {"type":
//!   "live", ...}}`), `/reject`, `/hangup`.

use std::time::Duration;

use scribe_actors::domain::VoiceApi;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Why a calls request did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CallsApiError {
    /// OpenAI answered with an error status; `message` is its own words,
    /// without the key.
    #[error("OpenAI answered HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// The answer did not have the documented shape.
    #[error("OpenAI's answer has not the documented shape: {0}")]
    Shape(&'static str),
    #[error("OpenAI could not be reached: {0}")]
    Unreachable(String),
}

impl CallsApiError {
    /// The error in scribe's words, without OpenAI's own text (which can
    /// quote part of a key): what a meeting or a page may show.
    pub fn public(&self) -> String {
        match self {
            Self::Refused { status, .. } => format!("OpenAI answered HTTP {status}"),
            Self::Shape(_) => "OpenAI's answer has not the documented shape".into(),
            Self::Unreachable(_) => "OpenAI could not be reached".into(),
        }
    }
}

/// What scribe asks of a realtime session: the model, the instructions,
/// input transcription on with server VAD, and the voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub model: String,
    pub instructions: String,
    pub voice: String,
    /// Realtime's input transcription model (GPT-Live transcribes itself).
    pub transcription: String,
}

impl SessionConfig {
    /// GPT-Live's session object (strict: only documented fields).
    pub fn to_live_json(&self) -> Value {
        json!({
            "model": self.model,
            "instructions": self.instructions,
            "audio": { "output": { "voice": self.voice } },
        })
    }

    /// The session object, as `realtime/calls` and `accept` take it.
    pub fn to_json(&self) -> Value {
        let mut session = scribe_actors::voice::realtime::session_object(
            &self.instructions,
            &self.voice,
            &self.transcription,
        );
        session["model"] = json!(self.model);
        session
    }
}

/// A WebRTC call OpenAI created: its id and its SDP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCall {
    pub call_id: String,
    pub answer: String,
}

/// The calls API at `{base}` (`OPENAI_BASE_URL`, `/v1` included).
#[derive(Clone)]
pub struct CallsApi {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    api: VoiceApi,
}

impl std::fmt::Debug for CallsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallsApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl CallsApi {
    pub fn new(base: &str, key: SecretString) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
            key,
            api: VoiceApi::Realtime,
        }
    }

    /// Creates and accepts calls on `api`.
    pub fn on(mut self, api: VoiceApi) -> Self {
        self.api = api;
        self
    }

    pub fn voice_api(&self) -> VoiceApi {
        self.api
    }

    /// The REST path of one call (Realtime) or session (GPT-Live).
    fn call_path(&self, call_id: &str) -> String {
        match self.api {
            VoiceApi::Realtime => format!("{}/realtime/calls/{call_id}", self.base),
            VoiceApi::Live => format!("{}/live/sessions/{call_id}", self.base),
        }
    }

    /// GPT-Live: the session and its WebRTC transport in one JSON request.
    async fn create_live(
        &self,
        offer: &str,
        session: &SessionConfig,
    ) -> Result<CreatedCall, CallsApiError> {
        let body = json!({
            "session": session.to_live_json(),
            "transport": { "type": "webrtc", "sdp": offer },
        });
        let response = self
            .http
            .post(format!("{}/live/sessions", self.base))
            .bearer_auth(self.key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| CallsApiError::Unreachable(e.without_url().to_string()))?;
        let answer: Value = self
            .ok(response)
            .await?
            .json()
            .await
            .map_err(|_| CallsApiError::Shape("its body is not JSON"))?;
        let call_id = answer["session"]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or(CallsApiError::Shape("no `session.id` in its answer"))?;
        let sdp = answer["transport"]["sdp"]
            .as_str()
            .filter(|sdp| sdp.starts_with("v="))
            .ok_or(CallsApiError::Shape("no SDP answer in `transport.sdp`"))?;
        Ok(CreatedCall {
            call_id: call_id.to_owned(),
            answer: sdp.to_owned(),
        })
    }

    /// Creates a WebRTC call from a browser's SDP offer.
    pub async fn create(
        &self,
        offer: &str,
        session: &SessionConfig,
    ) -> Result<CreatedCall, CallsApiError> {
        if self.api == VoiceApi::Live {
            return self.create_live(offer, session).await;
        }
        let form = reqwest::multipart::Form::new()
            .text("sdp", offer.to_owned())
            .text("session", session.to_json().to_string());
        let response = self
            .http
            .post(format!("{}/realtime/calls", self.base))
            .bearer_auth(self.key.expose_secret())
            .multipart(form)
            .send()
            .await
            .map_err(|e| CallsApiError::Unreachable(e.without_url().to_string()))?;
        let response = self.ok(response).await?;
        let call_id = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or(CallsApiError::Shape("no call id in its Location header"))?;
        let answer = response
            .text()
            .await
            .map_err(|e| CallsApiError::Unreachable(e.without_url().to_string()))?;
        if !answer.starts_with("v=") {
            return Err(CallsApiError::Shape("its body is not an SDP answer"));
        }
        Ok(CreatedCall { call_id, answer })
    }

    /// Accepts an incoming (SIP) call with this session.
    pub async fn accept(
        &self,
        call_id: &str,
        session: &SessionConfig,
    ) -> Result<(), CallsApiError> {
        let body = match self.api {
            VoiceApi::Realtime => session.to_json(),
            VoiceApi::Live => {
                let mut live = session.to_live_json();
                live["type"] = json!("live");
                json!({ "session": live })
            }
        };
        self.post(call_id, "accept", Some(body)).await
    }

    /// Rejects an incoming call with a SIP status (404: nobody here).
    pub async fn reject(&self, call_id: &str, status_code: u16) -> Result<(), CallsApiError> {
        self.post(
            call_id,
            "reject",
            Some(json!({ "status_code": status_code })),
        )
        .await
    }

    /// Ends a call.
    pub async fn hangup(&self, call_id: &str) -> Result<(), CallsApiError> {
        self.post(call_id, "hangup", None).await
    }

    async fn post(
        &self,
        call_id: &str,
        action: &str,
        body: Option<Value>,
    ) -> Result<(), CallsApiError> {
        let mut request = self
            .http
            .post(format!("{}/{action}", self.call_path(call_id)))
            .bearer_auth(self.key.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallsApiError::Unreachable(e.without_url().to_string()))?;
        self.ok(response).await.map(|_| ())
    }

    /// The response when it is a success, else OpenAI's error in its own
    /// words (`error.message`), with the key taken out should it quote it.
    async fn ok(&self, response: reqwest::Response) -> Result<reqwest::Response, CallsApiError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let message = message.replace(self.key.expose_secret(), "[the key]");
        Err(CallsApiError::Refused {
            status,
            message: if message.trim().is_empty() {
                "(no message)".into()
            } else {
                message
            },
        })
    }
}

/// The actors' hang-up of an attached call, on the API it was made with.
#[async_trait::async_trait]
impl scribe_actors::ports::CallControl for CallsApi {
    async fn hang_up(
        &self,
        api: VoiceApi,
        call_id: &str,
    ) -> Result<(), scribe_actors::ports::PortError> {
        self.clone()
            .on(api)
            .hangup(call_id)
            .await
            .map_err(scribe_actors::ports::PortError::store)
    }
}
