//! The secrets `serve` is given: how long they must be, and a generated
//! API token when none is.

use secrecy::{ExposeSecret, SecretString};

/// The shortest API token, admin token or page secret `serve` accepts: a
/// short token can be guessed, and the API token unlocks every listing.
pub const MIN_SECRET_CHARS: usize = 32;

/// A configured secret too short to be safe.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{name} is {len} characters long; it must be at least {MIN_SECRET_CHARS} \
     (for example: `openssl rand -hex 32`)"
)]
pub struct WeakSecret {
    pub name: &'static str,
    pub len: usize,
}

pub(super) fn strong(name: &'static str, secret: SecretString) -> Result<SecretString, WeakSecret> {
    let len = secret.expose_secret().trim().chars().count();
    if len < MIN_SECRET_CHARS {
        Err(WeakSecret { name, len })
    } else {
        Ok(secret)
    }
}

/// A fresh random API token: 32 bytes, hex encoded.
pub fn generate_token() -> SecretString {
    crate::domain::random_secret().into()
}
