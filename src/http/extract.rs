//! Extractors whose rejections are `ApiError`s, so that a malformed body or
//! query answers in the API's `{"error": ...}` shape.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;

use super::ApiError;

/// A JSON request body (needs `Content-Type: application/json`).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// Query-string parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);
