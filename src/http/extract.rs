//! Extractors whose rejections are `ApiError`s, so that a malformed body or
//! query answers in the API's `{"error": ...}` shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ApiError;

/// A JSON request body (needs `Content-Type: application/json`), which must
/// be an object: serde would read a struct from an array too.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
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
