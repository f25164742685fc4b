//! Validated domain types: what a request body becomes once it is known to be
//! acceptable, and what the store hands back.

pub mod agent;
pub mod meeting;
pub mod phone;

use chrono::{DateTime, SubsecRound, Utc};

/// A request field or body that parsed but is not acceptable. The message
/// names the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// The current time at the precision both databases keep (microseconds), so
/// a value written and read back compares equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A fresh random secret: 32 bytes, hex encoded (64 characters).
pub fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Trims `value` and checks it is non-empty and at most `max` characters.
pub(crate) fn required_text(
    field: &str,
    value: &str,
    max: usize,
) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError(format!("`{field}` must not be empty")));
    }
    optional_text(field, trimmed, max).map(str::to_owned)
}

/// Checks `value` is at most `max` characters.
pub(crate) fn optional_text<'a>(
    field: &str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, ValidationError> {
    let len = value.chars().count();
    if len > max {
        return Err(ValidationError(format!(
            "`{field}` is {len} characters long; the limit is {max}"
        )));
    }
    Ok(value)
}
