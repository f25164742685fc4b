//! `ApiError`: every failure a handler can answer with, as a status code and
//! a `{"error": "..."}` body. 5xx bodies are generic; their cause chain is
//! logged once, inside the request span.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use scribe_actors::ids::InvalidId;
use scribe_actors::ports::error_chain;
use serde::Serialize;

use crate::domain::ValidationError;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in scribe's words.
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Conflict(String),
    /// It existed and was deleted (410).
    #[error("{0}")]
    Gone(String),
    /// An extractor's rejection, with the status axum chose (400, 413, 415, 422).
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("{0}")]
    BadSignature(&'static str),
    /// A signature (or its timestamp) that does not verify.
    #[error("{0}")]
    Signature(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Unconfigured(&'static str),
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("the call supervisor is unavailable")]
    Calls(#[source] scribe_actors::supervisor::outcome::CallsError),
    /// The server is at a limit (event streams, requests in flight): 503
    /// with `Retry-After` in whole seconds.
    #[error("{message}")]
    Busy { message: String, retry_after: u64 },
    /// Past a rate limit; `retry_after` in whole seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn meeting_not_found() -> Self {
        Self::NotFound("Meeting not found".into())
    }

    pub fn agent_not_found() -> Self {
        Self::NotFound("Agent not found".into())
    }

    pub fn meeting_deleted() -> Self {
        Self::Gone("Meeting deleted: nothing of it is kept but its id and times".into())
    }

    pub fn agent_deleted() -> Self {
        Self::Gone("Agent deleted, with its meetings".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::Rejected { status, .. } => *status,
            Self::BadSignature(_) | Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unconfigured(_) | Self::Calls(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Store(source) | Self::Unavailable(source) => {
                tracing::error!(error = %error_chain(source), "request failed");
            }
            Self::Calls(source) => tracing::error!(error = %error_chain(source), "request failed"),
            _ => {}
        }
        let body = Json(ErrorBody {
            error: self.to_string(),
        });
        match self {
            Self::Unauthorized => {
                (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
            }
            Self::TooManyRequests { retry_after, .. } | Self::Busy { retry_after, .. } => (
                status,
                [(header::RETRY_AFTER, retry_after.to_string())],
                body,
            )
                .into_response(),
            _ => (status, body).into_response(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::Rejected {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: rejection.body_text(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self::Unprocessable(error.0)
    }
}

impl From<InvalidId> for ApiError {
    fn from(error: InvalidId) -> Self {
        Self::BadRequest(error.to_string())
    }
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::Rejected {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("{method} is not allowed on {}", uri.path()),
    }
}

impl From<crate::service::EndError> for ApiError {
    fn from(error: crate::service::EndError) -> Self {
        match error {
            crate::service::EndError::Store(e) => e.into(),
            crate::service::EndError::Calls(e) => Self::Calls(e),
        }
    }
}
