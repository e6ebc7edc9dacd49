//! Turning tool calls into the platform's rows.

use sha2::{Digest, Sha256};

/// Error messages in action rows are cut to this many characters.
pub const ERROR_MESSAGE_CHARS: usize = 500;

/// First 16 hex chars of SHA-256 over the compact JSON of the arguments as the
/// LLM sent them (key order preserved: serde_json is built with
/// `preserve_order`).
pub fn input_hash(args: &serde_json::Value) -> String {
    let compact = serde_json::to_string(args).expect("a JSON value always serialises");
    let digest = Sha256::digest(compact.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Cuts a message to `max` characters without splitting one.
pub fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => s[..i].to_string(),
    }
}
