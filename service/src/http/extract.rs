//! Extractors whose rejections are `ApiError`s, so that a malformed body or
//! query answers in the API's `{"error": ...}` shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ApiError;

/// Refuses a `Content-Encoding` other than identity (415): only Stream's
/// webhook takes a compressed body.
pub fn plain_encoding(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    match headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim())
    {
        None | Some("") => Ok(()),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(()),
        Some(other) => Err(ApiError::Rejected {
            status: axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "`Content-Encoding: {other}` is not taken here: send the body as it is"
            ),
        }),
    }
}

/// A JSON request body (needs `Content-Type: application/json`), which must
/// be an object: serde would read a struct from an array too.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        plain_encoding(request.headers())?;
        let axum::Json(object) =
            axum::Json::<Map<String, Value>>::from_request(request, state).await?;
        crate::domain::object::from_object(object)
            .map(Self)
            .map_err(|e: serde_json::Error| ApiError::Rejected {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                message: format!("Failed to deserialize the JSON body into the target type: {e}"),
            })
    }
}

/// Query-string parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

/// Reads a request body the handler took unread (after it checked the
/// request's head): at most `limit` bytes, else 413. A body that missed
/// its deadline is answered 408 by the route's body gate.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large =
            std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::Rejected {
                status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("length limit exceeded: the body is over {limit} bytes"),
            }
        } else {
            ApiError::BadRequest("the body could not be read".into())
        }
    })
}

/// Checks an id from outside (a webhook id, a call or session id): at most
/// [`crate::domain::MAX_EXTERNAL_ID_CHARS`] characters, without U+0000;
/// else 400.
pub fn external_id(what: &str, id: &str) -> Result<(), ApiError> {
    use crate::domain::MAX_EXTERNAL_ID_CHARS;
    if id.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(ApiError::BadRequest(format!(
            "`{what}` is over {MAX_EXTERNAL_ID_CHARS} characters"
        )));
    }
    if !crate::domain::storable(id) {
        return Err(ApiError::BadRequest(format!(
            "`{what}` contains the character U+0000"
        )));
    }
    Ok(())
}
