//! Chat completions for analysis, streamed, through async-openai, with one
//! retry policy: async-openai's own retry layer is replaced by a plain transport
//! (so retries never nest), and this client retries 429, 5xx, transport
//! errors, attempt timeouts and answers that do not validate, with
//! exponential backoff and jitter, honouring `Retry-After`.
//!
//! The request is one every current chat model accepts, reasoning models
//! included (OpenAI's `openai` 3.57 types, `chat/completion_create_params.py`):
//! a `developer` message (it replaces `system` from o1 on) and the user's;
//! structured answers as `response_format: json_schema` with `strict: true`;
//! nothing else: no `max_tokens` (deprecated, refused by reasoning models in
//! favour of `max_completion_tokens`), no `temperature` or `top_p` (a
//! reasoning model takes only the default), no `stop`. An answer cut off at
//! the output limit (`finish_reason: length`) or a refusal is a failed
//! attempt, never a result.
//!
//! Every request streams (`stream: true`, `stream_options.include_usage`):
//! the caller sees the answer as it is written ([`Attempt::Wrote`]) and the
//! tokens it cost ([`Attempt::Used`], from the last chunk). A stream that
//! breaks off or ends without a finish reason is a failed attempt, retried
//! like any other; only a whole answer that validates is a result.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::{HttpRequestFactory, ReqwestService};
use async_openai::types::chat::{
    ChatCompletionRequestDeveloperMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequestArgs,
    FinishReason, ResponseFormat, ResponseFormatJsonSchema,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;

/// How hard the client tries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Each attempt is abandoned after this long.
    pub attempt_timeout: Duration,
    /// A `Retry-After` longer than this is capped to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// What happened to one attempt, for the meeting's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Started {
        attempt: u32,
    },
    Failed {
        attempt: u32,
        /// Scribe's words: public (the meeting's event log).
        error: String,
        /// The provider's own text: logs and `/admin` only.
        detail: String,
        retry_in: Option<Duration>,
    },
    Succeeded {
        attempt: u32,
    },
    /// The answer so far, as the model writes it.
    Wrote {
        attempt: u32,
        text: String,
    },
    /// The tokens the attempt used, as the provider reported them.
    Used {
        attempt: u32,
        usage: TokenUsage,
    },
}

/// Tokens one request used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt: u64,
    /// Of the prompt, read from the provider's cache.
    pub cached: u64,
    pub completion: u64,
}

/// Every attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the analysis model failed {attempts} attempt(s); last error: {last_error}")]
pub struct LlmFailure {
    pub attempts: u32,
    /// The last attempt's error in scribe's words.
    pub last_error: String,
    /// The last attempt's error as the provider put it.
    pub last_detail: String,
}

impl From<LlmFailure> for scribe_actors::ports::AnalysisError {
    fn from(failure: LlmFailure) -> Self {
        Self::Model {
            attempts: failure.attempts,
            last_error: failure.last_error,
            detail: failure.last_detail,
        }
    }
}

/// One attempt's error and whether another attempt may help: `public` is
/// scribe's short words, `detail` the provider's own text (which can quote
/// part of a key or name hosts) for the logs and `/admin`.
struct AttemptError {
    public: String,
    detail: String,
    retryable: bool,
}

impl AttemptError {
    fn ours(public: String, retryable: bool) -> Self {
        Self {
            detail: public.clone(),
            public,
            retryable,
        }
    }
}

/// The plain transport, remembering the last `Retry-After` it saw.
#[derive(Clone)]
struct Transport {
    inner: ReqwestService,
    retry_after: Arc<Mutex<Option<Duration>>>,
}

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<'static, Result<reqwest::Response, OpenAIError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let sent = self.inner.call(request);
        let slot = self.retry_after.clone();
        Box::pin(async move {
            let response = sent.await?;
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = after;
            Ok(response)
        })
    }
}

/// The form of the answer asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerFormat {
    /// Free text.
    Text,
    /// A JSON object fitting `schema` (Structured Outputs, strict).
    Json {
        name: &'static str,
        schema: serde_json::Value,
    },
}

pub struct LlmClient {
    client: Client<OpenAIConfig>,
    model: String,
    policy: RetryPolicy,
    retry_after: Arc<Mutex<Option<Duration>>>,
}

impl LlmClient {
    pub fn new(
        base_url: &str,
        api_key: Option<&SecretString>,
        model: &str,
        policy: RetryPolicy,
    ) -> Self {
        let mut config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        if let Some(key) = api_key {
            config = config.with_api_key(key.expose_secret());
        }
        let retry_after = Arc::new(Mutex::new(None));
        let transport = Transport {
            inner: ReqwestService::new(reqwest::Client::new()),
            retry_after: retry_after.clone(),
        };
        Self {
            client: Client::with_config(config).with_http_service(transport),
            model: model.to_owned(),
            policy,
            retry_after,
        }
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// One chat completion (developer + user message), retried under the
    /// policy until `validate` accepts the answer's text, in `format`.
    pub async fn complete<T>(
        &self,
        instructions: &str,
        user: &str,
        format: &AnswerFormat,
        validate: impl Fn(&str) -> Result<T, String>,
        mut on_attempt: impl FnMut(Attempt) + Send,
    ) -> Result<T, LlmFailure> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        let attempts = self.policy.attempts.max(1);
        let (mut last_error, mut last_detail) = (String::new(), String::new());
        for attempt in 1..=attempts {
            on_attempt(Attempt::Started { attempt });
            // In the meeting's trace: a child of the analysis (or notes
            // update) it is made for.
            let span = tracing::info_span!(
                target: "scribe::call",
                "model.request",
                gen_ai.request.model = %self.model,
                attempt,
                outcome = tracing::field::Empty
            );
            let outcome = match tokio::time::timeout(
                self.policy.attempt_timeout,
                self.once(instructions, user, format, attempt, &mut on_attempt),
            )
            .instrument(span.clone())
            .await
            {
                Err(_) => Err(AttemptError::ours(
                    format!(
                        "no answer within {} s",
                        self.policy.attempt_timeout.as_secs_f32()
                    ),
                    true,
                )),
                Ok(Err(e)) => Err(e),
                // The validation's words are scribe's own.
                Ok(Ok(text)) => validate(&text)
                    .map_err(|e| AttemptError::ours(format!("answer did not validate: {e}"), true)),
            };
            match outcome {
                Ok(value) => {
                    span.record("outcome", "ok");
                    metrics::counter!(crate::metrics::LLM_ATTEMPTS, "outcome" => "ok").increment(1);
                    on_attempt(Attempt::Succeeded { attempt });
                    return Ok(value);
                }
                Err(error) => {
                    span.record("outcome", "error");
                    metrics::counter!(crate::metrics::LLM_ATTEMPTS, "outcome" => "error")
                        .increment(1);
                    last_error = error.public.clone();
                    last_detail = error.detail.clone();
                    let more = error.retryable && attempt < attempts;
                    let retry_in = more.then(|| {
                        let after = self
                            .retry_after
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take();
                        let backoff = backoff.next().unwrap_or(self.policy.max_delay);
                        after.map_or(backoff, |a| a.min(self.policy.max_retry_after).max(backoff))
                    });
                    on_attempt(Attempt::Failed {
                        attempt,
                        error: error.public,
                        detail: error.detail,
                        retry_in,
                    });
                    match retry_in {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => {
                            return Err(LlmFailure {
                                attempts: attempt,
                                last_error,
                                last_detail,
                            });
                        }
                    }
                }
            }
        }
        Err(LlmFailure {
            attempts,
            last_error,
            last_detail,
        })
    }

    async fn once(
        &self,
        instructions: &str,
        user: &str,
        format: &AnswerFormat,
        attempt: u32,
        on_attempt: &mut (impl FnMut(Attempt) + Send),
    ) -> Result<String, AttemptError> {
        let invalid = |e: OpenAIError| AttemptError {
            public: "the request to the model could not be built".into(),
            detail: format!("request could not be built: {e}"),
            retryable: false,
        };
        let mut request = CreateChatCompletionRequestArgs::default();
        request
            .model(&self.model)
            .messages(vec![
                ChatCompletionRequestMessage::Developer(
                    ChatCompletionRequestDeveloperMessage::from(instructions),
                ),
                ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(user)),
            ])
            .stream(true)
            .stream_options(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            });
        if let AnswerFormat::Json { name, schema } = format {
            request.response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: (*name).to_owned(),
                    schema: schema.clone(),
                    strict: Some(true),
                },
            });
        }
        let request = request.build().map_err(invalid)?;
        *self
            .retry_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let mut stream = self
            .client
            .chat()
            .create_stream(request)
            .await
            .map_err(classify)?;
        let (mut text, mut refusal, mut finish) = (String::new(), String::new(), None);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match e {
                OpenAIError::StreamError(_) | OpenAIError::Reqwest(_) => AttemptError {
                    public: "the answer's stream broke off".into(),
                    detail: e.to_string(),
                    retryable: true,
                },
                e => classify(e),
            })?;
            if let Some(usage) = chunk.usage {
                on_attempt(Attempt::Used {
                    attempt,
                    usage: TokenUsage {
                        prompt: u64::from(usage.prompt_tokens),
                        cached: usage
                            .prompt_tokens_details
                            .and_then(|d| d.cached_tokens)
                            .map_or(0, u64::from),
                        completion: u64::from(usage.completion_tokens),
                    },
                });
            }
            let mut wrote = false;
            for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
                if let Some(content) = choice.delta.content.filter(|c| !c.is_empty()) {
                    text.push_str(&content);
                    wrote = true;
                }
                if let Some(part) = choice.delta.refusal {
                    refusal.push_str(&part);
                }
                if choice.finish_reason.is_some() {
                    finish = choice.finish_reason;
                }
            }
            if wrote {
                on_attempt(Attempt::Wrote {
                    attempt,
                    text: text.clone(),
                });
            }
        }
        if !refusal.is_empty() {
            return Err(AttemptError {
                public: "the model refused to answer".into(),
                detail: format!("the model refused: {refusal}"),
                retryable: false,
            });
        }
        match finish {
            None => Err(AttemptError::ours(
                "the answer's stream ended before the answer was complete".into(),
                true,
            )),
            Some(FinishReason::Length) => Err(AttemptError::ours(
                "the answer was cut off at the model's output limit".into(),
                false,
            )),
            Some(FinishReason::ContentFilter) => Err(AttemptError::ours(
                "the answer was stopped by the model's content filter".into(),
                false,
            )),
            Some(_) if text.is_empty() => {
                Err(AttemptError::ours("the answer had no content".into(), true))
            }
            Some(_) => Ok(text),
        }
    }
}

fn classify(error: OpenAIError) -> AttemptError {
    let (public, retryable) = match &error {
        OpenAIError::ApiError(e) => {
            let status = e.status_code.as_u16();
            (
                format!("the model answered HTTP {status}"),
                status == 408 || status == 409 || status == 429 || status >= 500,
            )
        }
        OpenAIError::Reqwest(_) => ("the model could not be reached".to_owned(), true),
        OpenAIError::JSONDeserialize(..) | OpenAIError::StreamError(_) => {
            ("the model's answer could not be read".to_owned(), true)
        }
        _ => ("the request to the model failed".to_owned(), false),
    };
    AttemptError {
        public,
        detail: error.to_string(),
        retryable,
    }
}
