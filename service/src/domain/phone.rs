//! Phone numbers in E.164 (`+` and up to 15 digits), as agents list them
//! and as a SIP call's `To`/`From` header names them.

use std::fmt;

use serde::Serialize;

use super::ValidationError;

/// An E.164 number: `+`, a first digit 1-9, at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = r"^\+[1-9][0-9]{1,14}$", example = "+14155550100")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses an E.164 number exactly as written (no spaces or dashes).
    pub fn parse(field: &str, text: &str) -> Result<Self, ValidationError> {
        let digits = text.strip_prefix('+').unwrap_or_default();
        let valid = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValidationError(format!(
                "`{field}` must be an E.164 number such as +14155550123, got {text:?}"
            )))
        }
    }

    /// The number a SIP or tel URI names, by its digits:
    /// `sip:+18005550100@sip.example.com`, `<tel:+1-800-555-0100>;tag=x`,
    /// `"Desk" <sip:18005550100@host>`. `None` when it names no number.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let inner = match (uri.find('<'), uri.find('>')) {
            (Some(open), Some(close)) if open < close => &uri[open + 1..close],
            _ => uri,
        };
        let user = inner
            .trim()
            .strip_prefix("sip:")
            .or_else(|| inner.trim().strip_prefix("sips:"))
            .or_else(|| inner.trim().strip_prefix("tel:"))?;
        let user = user.split(['@', ';']).next().unwrap_or_default();
        let digits: String = user.chars().filter(char::is_ascii_digit).collect();
        let only_digits = user
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | ' ' | '(' | ')'));
        if !only_digits {
            return None;
        }
        Self::parse("uri", &format!("+{digits}")).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_e164_numbers_are_accepted() {
        assert!(PhoneNumber::parse("n", "+14155550123").is_ok());
        for bad in [
            "14155550123",
            "+0415",
            "+1",
            "+1 415 555",
            "+1234567890123456",
            "",
            "+",
        ] {
            assert!(PhoneNumber::parse("n", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sip_and_tel_uris_name_their_number_by_its_digits() {
        let want = PhoneNumber::parse("n", "+18005550100").expect("valid");
        for uri in [
            "sip:+18005550100@sip.api.openai.com",
            "<sip:+18005550100@10.0.0.1;transport=tls>;tag=abc",
            "\"Front desk\" <sip:18005550100@pbx.example.com>",
            "tel:+1-800-555-0100",
            "sips:+18005550100@host;user=phone",
        ] {
            assert_eq!(PhoneNumber::from_uri(uri), Some(want.clone()), "{uri}");
        }
        for uri in [
            "sip:alice@example.com",
            "mailto:+18005550100",
            "",
            "sip:@host",
        ] {
            assert_eq!(PhoneNumber::from_uri(uri), None, "{uri}");
        }
    }
}
