//! Validated domain types: what a request body becomes once it is known to be
//! acceptable, and what the store hands back.

pub mod agent;
pub mod meeting;
pub mod object;
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

/// The schema of a text field [`required_text`] accepts: not blank, at
/// most `max` characters, no U+0000.
pub(crate) fn text_schema(max: usize) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(NOT_BLANK_PATTERN))
        .build()
}

/// Text without U+0000 (PostgreSQL stores no NUL, in text or in JSON).
pub const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

/// Text without U+0000 holding a character that is not whitespace as
/// Rust's `str::trim` sees it (the Unicode White_Space set), spelled out:
/// `\S` differs between regex dialects (ECMA's leaves out U+0085 and adds
/// U+FEFF).
pub const NOT_BLANK_PATTERN: &str = concat!(
    r"^[^\u0000]*",
    r"[^\u0000\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^\u0000]*$"
);

/// True when `text` holds no U+0000, which PostgreSQL cannot store.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// Checks `value` is at most `max` characters as sent (the bound the API's
/// schema states) and not blank; returns it trimmed.
pub(crate) fn required_text(
    field: &str,
    value: &str,
    max: usize,
) -> Result<String, ValidationError> {
    let trimmed = optional_text(field, value, max)?.trim();
    if trimmed.is_empty() {
        return Err(ValidationError(format!("`{field}` must not be empty")));
    }
    Ok(trimmed.to_owned())
}

/// Checks `value` is at most `max` characters.
pub(crate) fn optional_text<'a>(
    field: &str,
    value: &'a str,
    max: usize,
) -> Result<&'a str, ValidationError> {
    if !storable(value) {
        return Err(ValidationError(format!(
            "`{field}` must not contain the character U+0000"
        )));
    }
    let len = value.chars().count();
    if len > max {
        return Err(ValidationError(format!(
            "`{field}` is {len} characters long; the limit is {max}"
        )));
    }
    Ok(value)
}

/// The longest id from outside (a webhook id, a call or session id) that
/// scribe stores or looks up; a longer one is refused (400) before it
/// reaches an index.
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's "not blank" pattern and `required_text` agree on
    /// every character, alone and beside a space, a letter and a NUL.
    #[test]
    fn the_not_blank_pattern_is_what_required_text_accepts() {
        let pattern = regex::Regex::new(NOT_BLANK_PATTERN).expect("the pattern compiles");
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            for text in [
                c.to_string(),
                format!(" {c}"),
                format!("a{c}"),
                format!("{c}\0"),
            ] {
                assert_eq!(
                    pattern.is_match(&text),
                    required_text("f", &text, 10).is_ok(),
                    "{text:?}"
                );
            }
        }
        let storable = regex::Regex::new(NO_NUL_PATTERN).expect("the pattern compiles");
        for text in ["", "a", "\0", "a\0b", "\u{85}"] {
            assert_eq!(
                storable.is_match(text),
                optional_text("f", text, 10).is_ok(),
                "{text:?}"
            );
        }
    }
}
