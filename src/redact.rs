//! Secrets never leave the process in text: one registry of every secret the
//! process knows (configured keys and tokens, derived persona passwords,
//! sign-in tokens, URL passwords), and [`redact`], which replaces each of them
//! with `<redacted>` in a text.
//!
//! Why a registry and not "don't print the body": servers echo requests in
//! their error bodies (a 422 answering `{"received":{"password":…}}`), and an
//! error body is exactly what an operator needs to read. So a body is shown,
//! stored and served — after [`redact`]: where bodies are cut
//! ([`crate::http::status_error`], the LLM and MCP error bodies), on what goes
//! into `state.db` (run memory, ledger, outbox errors), and on what the daemon
//! serves.
//!
//! Secrets shorter than [`MIN_LEN`] are not registered: replacing a one-letter
//! test key everywhere would mangle every text, and a real credential is never
//! that short.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

/// What a secret becomes.
pub const MARK: &str = "<redacted>";

/// Shorter strings are not treated as secrets (see the module docs).
pub const MIN_LEN: usize = 8;

/// At most this many secrets are kept (oldest dropped first): sign-in tokens
/// rotate, and a daemon that runs for months must not grow without bound. The
/// secrets of one tick are far fewer.
const MAX_SECRETS: usize = 4096;

#[derive(Default)]
struct Registry {
    /// In registration order, for dropping the oldest.
    order: std::collections::VecDeque<String>,
    set: HashSet<String>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remembers `secret` (and its JSON-escaped form, which is how it appears in
/// an echoed JSON body or a stored transcript) for [`redact`].
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_LEN {
        return;
    }
    let escaped = serde_json::to_string(secret)
        .map(|s| s[1..s.len() - 1].to_string())
        .unwrap_or_default();
    let mut guard = registry();
    let reg = guard.get_or_insert_with(Registry::default);
    for form in [secret.to_string(), escaped] {
        if form.chars().count() >= MIN_LEN && reg.set.insert(form.clone()) {
            reg.order.push_back(form);
            if reg.order.len() > MAX_SECRETS
                && let Some(old) = reg.order.pop_front()
            {
                reg.set.remove(&old);
            }
        }
    }
}

/// `text` with every registered secret replaced by [`MARK`] (longest first,
/// so a secret that contains another is replaced whole).
pub fn redact(text: &str) -> String {
    let guard = registry();
    let Some(reg) = guard.as_ref() else {
        return text.to_string();
    };
    let mut hits: Vec<&String> = reg
        .order
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .collect();
    if hits.is_empty() {
        return text.to_string();
    }
    hits.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in hits {
        out = out.replace(s.as_str(), MARK);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_replaced_short_strings_are_not_secrets() {
        register("pw-ABCDEFGH-1234");
        register("with\"quote-XYZ");
        register("short");
        let body = r#"{"received":{"email":"a@b","password":"pw-ABCDEFGH-1234","x":"with\"quote-XYZ"}} short"#;
        let out = redact(body);
        assert!(
            !out.contains("ABCDEFGH") && !out.contains("quote-XYZ"),
            "{out}"
        );
        assert!(out.contains(r#""password":"<redacted>""#), "{out}");
        assert!(out.ends_with("short"), "{out}");
    }
}
