//! The realtime endpoint each call's agent connects to, by provider:
//!
//! - plain URL (default `wss://api.openai.com/v1/realtime?model=gpt-realtime`)
//!   with `Authorization: Bearer $OPENAI_API_KEY`;
//! - OpenAI `call_id` attach: a URL containing `{call_id}` gets the meeting's
//!   call id substituted (`wss://api.openai.com/v1/realtime?call_id={call_id}`);
//! - Stream's agent endpoint: a URL whose path ends in `/connect_agent` gets
//!   `call_type`, `call_id` and `api_key` in its query and a
//!   `Stream-Authorization` JWT signed with the Stream secret.
//!
//! On GPT-Live (`--voice-api live`), an owned session opens at
//! `{ws base}/live/sessions` and a sideband attaches at
//! `{ws base}/live/sessions/{id}/attach`, the ws base being
//! `OPENAI_BASE_URL`'s.
//!
//! Nothing scribe-specific goes on the wire to a real provider. Only when
//! told that the endpoint is scribe's own simulated peer
//! ([`RealtimeEndpoint::correlated`]: `--simulate`, the demo, tests, the load
//! test) does a request carry `x-scribe-meeting-id`, which the simulator
//! uses to give each call its script.

use async_trait::async_trait;
use scribe_actors::domain::{Transport, VoiceApi};
use scribe_actors::ports::{ConnectError, RealtimeConnector, RealtimeSession, SessionTarget};
use scribe_actors::voice::realtime::{MAX_MESSAGE_BYTES, bearer_request, open};
use secrecy::{ExposeSecret, SecretString};
use tokio_tungstenite::tungstenite::handshake::client::Request;

use crate::stream::jwt::agent_token;

/// The Stream user the agent joins calls as.
pub const AGENT_USER_ID: &str = "scribe-agent";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    OpenAiCall,
    StreamAgent,
}

impl Provider {
    /// How errors name it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::OpenAi | Self::OpenAiCall => "OpenAI Realtime",
            Self::StreamAgent => "Stream's agent endpoint",
        }
    }

    /// How a call on this owned session reaches OpenAI.
    pub const fn transport(self) -> Transport {
        match self {
            Self::OpenAi | Self::OpenAiCall => Transport::OpenAi,
            Self::StreamAgent => Transport::Stream,
        }
    }
}

/// What attached sessions are called in errors.
pub const SIDEBAND: &str = "OpenAI Realtime";
/// What GPT-Live sessions are called in errors.
pub const LIVE: &str = "GPT-Live";

/// The largest message a sideband accepts: `conversation.item.retrieved`
/// carries the item's audio, base64.
pub const MAX_SIDEBAND_MESSAGE_BYTES: usize = 16 << 20;

/// `{OPENAI_BASE_URL}` as a WebSocket base: `http` -> `ws`, `https` -> `wss`.
pub fn ws_base(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    }
}

/// The header that tells the simulated peer which meeting a session is for.
pub const MEETING_HEADER: &str = "x-scribe-meeting-id";

#[derive(Debug)]
pub struct RealtimeEndpoint {
    url: String,
    provider: Provider,
    openai_api_key: Option<SecretString>,
    stream_api_key: Option<SecretString>,
    stream_api_secret: Option<SecretString>,
    correlate: bool,
    /// Where sidebands attach: `{ws base}/realtime?call_id=...`.
    sideband_base: String,
}

impl RealtimeEndpoint {
    pub fn new(
        url: &str,
        openai_api_key: Option<SecretString>,
        stream_api_key: Option<SecretString>,
        stream_api_secret: Option<SecretString>,
    ) -> Self {
        let path = url.split('?').next().unwrap_or_default();
        let provider = if path.ends_with("/connect_agent") {
            Provider::StreamAgent
        } else if url.contains("{call_id}") {
            Provider::OpenAiCall
        } else {
            Provider::OpenAi
        };
        Self {
            url: url.to_owned(),
            provider,
            openai_api_key,
            stream_api_key,
            stream_api_secret,
            correlate: false,
            sideband_base: ws_base(crate::config::DEFAULT_OPENAI_BASE_URL),
        }
    }

    /// GPT-Live: the owned session's or the sideband's URL.
    fn live_url(&self, call: &SessionTarget) -> String {
        match call.attach_to() {
            Some(id) => format!("{}/live/sessions/{id}/attach", self.sideband_base),
            None => format!("{}/live/sessions", self.sideband_base),
        }
    }

    /// Attaches sidebands under `openai_base_url` (`OPENAI_BASE_URL`).
    pub fn attaching_at(mut self, openai_base_url: &str) -> Self {
        self.sideband_base = ws_base(openai_base_url);
        self
    }

    /// Sends [`MEETING_HEADER`] with every request: only for scribe's own
    /// simulated peer, never for a real provider.
    pub fn correlated(mut self, correlate: bool) -> Self {
        self.correlate = correlate;
        self
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    fn url_for(&self, call: &SessionTarget) -> Result<String, ConnectError> {
        let call_id = || {
            call.call_id.clone().ok_or_else(|| {
                ConnectError::Config("this meeting has no call id to attach to".into())
            })
        };
        match self.provider {
            Provider::OpenAi => Ok(self.url.clone()),
            Provider::OpenAiCall => Ok(self.url.replace("{call_id}", &call_id()?)),
            Provider::StreamAgent => {
                let api_key = self.stream_api_key.as_ref().ok_or_else(|| {
                    ConnectError::Config(
                        "STREAM_API_KEY is required for Stream's agent endpoint".into(),
                    )
                })?;
                let separator = if self.url.contains('?') { '&' } else { '?' };
                Ok(format!(
                    "{}{separator}call_type={}&call_id={}&api_key={}",
                    self.url,
                    call.call_type.as_deref().unwrap_or("default"),
                    call_id()?,
                    api_key.expose_secret()
                ))
            }
        }
    }
}

#[async_trait]
impl RealtimeConnector for RealtimeEndpoint {
    async fn connect(&self, target: &SessionTarget) -> Result<RealtimeSession, ConnectError> {
        let request = self.request(target)?;
        let live = target.voice_api() == VoiceApi::Live;
        let Some(call) = target.attach_to() else {
            let name = if live { LIVE } else { self.provider.name() };
            return open(request, name, MAX_MESSAGE_BYTES).await;
        };
        let name = if live { LIVE } else { SIDEBAND };
        match open(request, name, MAX_SIDEBAND_MESSAGE_BYTES).await {
            // OpenAI has no such call: it is over.
            Err(ConnectError::Refused {
                status: 404,
                provider,
            }) => Err(ConnectError::Gone {
                provider,
                call: call.to_owned(),
            }),
            other => other,
        }
    }
}

impl RealtimeEndpoint {
    /// The upgrade request for a call's session: URL, query and headers.
    pub fn request(&self, call: &SessionTarget) -> Result<Request, ConnectError> {
        let live = call.voice_api() == VoiceApi::Live;
        let direct = match call.attach_to() {
            _ if live => Some(self.live_url(call)),
            Some(call_id) => Some(format!("{}/realtime?call_id={call_id}", self.sideband_base)),
            None => None,
        };
        if let Some(url) = direct {
            // A sideband, or a GPT-Live session: OpenAI's own key.
            let key = self.openai_api_key.as_ref().ok_or_else(|| {
                ConnectError::Config(
                    "OPENAI_API_KEY is required for GPT-Live and to attach to a call".into(),
                )
            })?;
            let mut request = bearer_request(&url, Some(key.expose_secret()))?;
            if self.correlate
                && let Ok(value) = call.meeting_id.to_string().parse()
            {
                request.headers_mut().insert(MEETING_HEADER, value);
            }
            return Ok(request);
        }
        let url = self.url_for(call)?;
        let mut request = bearer_request(
            &url,
            self.openai_api_key.as_ref().map(|k| k.expose_secret()),
        )?;
        let headers = request.headers_mut();
        if self.correlate
            && let Ok(value) = call.meeting_id.to_string().parse()
        {
            headers.insert(MEETING_HEADER, value);
        }
        if self.provider == Provider::StreamAgent {
            let secret = self.stream_api_secret.as_ref().ok_or_else(|| {
                ConnectError::Config(
                    "STREAM_API_SECRET is required for Stream's agent endpoint".into(),
                )
            })?;
            let cid = format!(
                "{}:{}",
                call.call_type.as_deref().unwrap_or("default"),
                call.call_id.as_deref().unwrap_or_default()
            );
            let token = agent_token(
                secret.expose_secret().as_bytes(),
                AGENT_USER_ID,
                &cid,
                chrono::Utc::now().timestamp(),
            )
            .map_err(|e| {
                ConnectError::Config(format!("cannot sign the Stream agent token: {e}"))
            })?;
            let value = token.parse().map_err(|_| {
                ConnectError::Config("the Stream agent token is not a valid header value".into())
            })?;
            headers.insert("stream-authorization", value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scribe_actors::ids::MeetingId;
    use scribe_actors::path::{CallPath, Carrier, Resume};

    fn call() -> SessionTarget {
        SessionTarget {
            meeting_id: MeetingId::new(),
            call_id: Some("abc".into()),
            call_type: Some("default".into()),
            path: CallPath::Owned {
                api: VoiceApi::Realtime,
            },
        }
    }

    #[test]
    fn a_sideband_attaches_under_the_api_base_with_openais_key() {
        let endpoint = RealtimeEndpoint::new(
            crate::config::DEFAULT_REALTIME_URL,
            Some("sk-1".into()),
            None,
            None,
        )
        .attaching_at("https://api.openai.com/v1/");
        let target = SessionTarget {
            path: CallPath::Attached {
                api: VoiceApi::Realtime,
                carrier: Carrier::WebRtc,
                provider_call_id: "rtc_123".into(),
                resume: Resume::default(),
            },
            ..call()
        };
        let request = endpoint.request(&target).expect("request");
        assert_eq!(
            request.uri().to_string(),
            "wss://api.openai.com/v1/realtime?call_id=rtc_123"
        );
        assert_eq!(request.headers()["authorization"], "Bearer sk-1");
        assert_eq!(ws_base("http://127.0.0.1:9/v1"), "ws://127.0.0.1:9/v1");
    }

    #[test]
    fn plain_openai_gets_the_bearer_key_and_nothing_of_scribes() {
        let endpoint = RealtimeEndpoint::new(
            crate::config::DEFAULT_REALTIME_URL,
            Some("sk-1".into()),
            None,
            None,
        );
        let request = endpoint.request(&call()).expect("request");
        assert_eq!(
            request.uri().to_string(),
            crate::config::DEFAULT_REALTIME_URL
        );
        assert_eq!(request.headers()["authorization"], "Bearer sk-1");
        assert!(request.headers().get("openai-beta").is_none(), "GA only");
        let names: Vec<&str> = request.headers().keys().map(|k| k.as_str()).collect();
        assert!(
            names.iter().all(|n| !n.contains("scribe")),
            "nothing scribe-specific on the wire: {names:?}"
        );
    }

    #[test]
    fn only_the_simulated_peer_is_told_the_meeting() {
        let endpoint = RealtimeEndpoint::new("ws://127.0.0.1:9/v1/realtime", None, None, None)
            .correlated(true);
        let c = call();
        let request = endpoint.request(&c).expect("request");
        assert_eq!(
            request.headers()[MEETING_HEADER],
            c.meeting_id.to_string().as_str()
        );
    }

    #[test]
    fn call_id_attach_substitutes_the_call() {
        let endpoint = RealtimeEndpoint::new(
            "wss://api.openai.com/v1/realtime?call_id={call_id}",
            None,
            None,
            None,
        );
        assert_eq!(endpoint.provider(), Provider::OpenAiCall);
        let request = endpoint.request(&call()).expect("request");
        assert_eq!(request.uri().query(), Some("call_id=abc"));
        let mut no_call = call();
        no_call.call_id = None;
        assert!(matches!(
            endpoint.request(&no_call),
            Err(ConnectError::Config(_))
        ));
    }

    #[test]
    fn stream_agent_endpoint_gets_query_and_jwt() {
        let endpoint = RealtimeEndpoint::new(
            "wss://video.stream-io-api.com/video/connect_agent?model=gpt-realtime",
            Some("sk-1".into()),
            Some("stream-key".into()),
            Some("stream-secret".into()),
        );
        assert_eq!(endpoint.provider(), Provider::StreamAgent);
        let request = endpoint.request(&call()).expect("request");
        assert_eq!(
            request.uri().query(),
            Some("model=gpt-realtime&call_type=default&call_id=abc&api_key=stream-key")
        );
        let jwt = request.headers()["stream-authorization"]
            .to_str()
            .expect("ascii");
        let claims = jsonwebtoken::decode::<crate::stream::jwt::AgentClaims>(
            jwt,
            &jsonwebtoken::DecodingKey::from_secret(b"stream-secret").expect("key"),
            &jsonwebtoken::Validation::default(),
        )
        .expect("valid JWT");
        assert_eq!(claims.claims.call_cids, ["default:abc"]);
        assert_eq!(claims.claims.user_id, AGENT_USER_ID);
    }
}
