//! Persona password derivation, bit-identical to the platform's:
//!
//! ```text
//! password(email) = first 32 chars of
//!     strip_non_alnum( base64_standard( HMAC_SHA256(key = seed secret, msg = email UTF-8) ) )
//! ```
//!
//! No password is ever stored: seeding and every later login derive the same
//! one. A single differing byte here locks every persona out, so this file is
//! small, has no options, and is pinned by known vectors in the tests.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The platform's development fallback. Refused in production mode.
pub const DEV_FALLBACK_SECRET: &str = "dev-persona-seed-secret-rotate-in-prod";

/// Longest password the derivation yields.
pub const PASSWORD_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the persona seed secret (PERSONA_SEED_SECRET) is empty")]
    EmptySecret,
    #[error(
        "the persona seed secret is the development fallback, which production mode refuses; set PERSONA_SEED_SECRET to the platform's secret"
    )]
    DevFallbackInProduction,
}

/// Derives `email`'s password from `secret`. In `production`, the development
/// fallback secret is refused.
pub fn derive(
    secret: &SecretString,
    email: &str,
    production: bool,
) -> Result<SecretString, PasswordError> {
    let key = secret.expose_secret();
    if key.is_empty() {
        return Err(PasswordError::EmptySecret);
    }
    if production && key == DEV_FALLBACK_SECRET {
        return Err(PasswordError::DevFallbackInProduction);
    }
    let password = derive_raw(key.as_bytes(), email);
    // A server may echo it back in an error body: see `crate::redact`.
    crate::redact::register(&password);
    Ok(SecretString::from(password))
}

/// The bare derivation, for tests and benchmarks. HMAC accepts keys of any
/// length (longer than the 64-byte block: hashed first, per RFC 2104).
pub fn derive_raw(key: &[u8], email: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(email.as_bytes());
    let digest = mac.finalize().into_bytes();
    base64::engine::general_purpose::STANDARD
        .encode(digest)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(PASSWORD_LEN)
        .collect()
}
