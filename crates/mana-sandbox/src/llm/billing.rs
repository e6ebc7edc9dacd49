//! What a request would be billed: tokens estimated from text length, and
//! Anthropic's prompt cache simulated the way the API documents it
//! (wire-facts §1.10), so the cost benchmark measures what caching buys
//! against the real rules:
//!
//! - the prefix order is tools → system → message blocks;
//! - a write happens only at a `cache_control` breakpoint, and only when the
//!   prefix up to it reaches the model's minimum cacheable length
//!   ([`min_cacheable_tokens`]); shorter prefixes are silently not cached;
//! - a read walks back from each breakpoint over at most 20 blocks to the
//!   longest prefix written before.
//!
//! Every answered or refused request is a row of `llm_requests`.

use rusqlite::params;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Api;
use crate::SandboxState;

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS llm_requests (
    id INTEGER PRIMARY KEY,
    at TEXT,
    api TEXT,
    kind TEXT,
    turn INTEGER,
    body_bytes INTEGER,
    cached_prefix_bytes INTEGER,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read INTEGER,
    cache_write INTEGER,
    status INTEGER
);
CREATE TABLE IF NOT EXISTS llm_cache_prefixes (hash TEXT PRIMARY KEY);
"#;

/// How far back from a breakpoint a cache read looks, in blocks.
const LOOKBACK: usize = 20;

/// The tool-use system prompt the API adds when `tools` are present
/// (Anthropic's pricing page: 346 tokens for `auto` on Claude 4 models).
/// Billed as input and part of the cached prefix.
const TOOL_PROMPT_TOKENS: u64 = 346;

/// Simulated token accounting for one request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tokens {
    /// Uncached input.
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Bytes of the request served from the cache (the benchmark's share).
    pub prefix_bytes: u64,
}

/// ~4 characters per token, the usual rule of thumb for English and JSON.
pub fn tokens_of(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// The minimum cacheable prefix by model name, as the prompt-caching docs
/// have listed it (wire-facts §1.10): 4096 for Opus 4.5–4.7 and Haiku 4.5,
/// 2048 for older Haiku, 1024 for Sonnet, older Opus and anything else.
/// Matched on the name because that is all the request says.
pub fn min_cacheable_tokens(model: &str) -> u64 {
    let m = model.to_ascii_lowercase().replace('.', "-");
    const FOUR_K: &[&str] = &[
        "opus-4-5",
        "opus-4-6",
        "opus-4-7",
        "haiku-4-5",
        "4-5-haiku",
        "4-5-opus",
    ];
    if FOUR_K.iter().any(|p| m.contains(p)) {
        4096
    } else if m.contains("haiku") {
        2048
    } else {
        1024
    }
}

fn without_cache_control(v: &Value) -> String {
    match v.as_object() {
        Some(o) if o.contains_key("cache_control") => {
            let mut o = o.clone();
            o.remove("cache_control");
            Value::Object(o).to_string()
        }
        _ => v.to_string(),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Usage of an Anthropic request (already validated) with `output` tokens.
pub fn anthropic(state: &SandboxState, body: &Value, output: u64) -> Tokens {
    // The cacheable blocks in prefix order; a plain-string system or message
    // content is one block that cannot carry a breakpoint.
    let mut blocks: Vec<&Value> = Vec::new();
    let tools = body["tools"].as_array().map_or(&[][..], Vec::as_slice);
    blocks.extend(tools);
    match &body["system"] {
        Value::Array(a) => blocks.extend(a),
        s @ Value::String(_) => blocks.push(s),
        _ => {}
    }
    for m in body["messages"].as_array().into_iter().flatten() {
        match &m["content"] {
            Value::Array(a) => blocks.extend(a),
            s => blocks.push(s),
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(body["model"].as_str().unwrap_or("").as_bytes());
    // Prefix sums: tokens and bytes up to and including block i.
    let mut cum_tokens = Vec::with_capacity(blocks.len());
    let mut cum_bytes = Vec::with_capacity(blocks.len());
    let mut hashes = Vec::with_capacity(blocks.len());
    let mut breakpoints = Vec::new();
    let (mut tokens, mut bytes) = (0u64, 0u64);
    if !tools.is_empty() {
        tokens += TOOL_PROMPT_TOKENS;
    }
    for (i, b) in blocks.iter().enumerate() {
        let s = without_cache_control(b);
        tokens += tokens_of(s.len());
        bytes += s.len() as u64;
        hasher.update(s.as_bytes());
        cum_tokens.push(tokens);
        cum_bytes.push(bytes);
        hashes.push(hex(&hasher.clone().finalize()));
        if b.get("cache_control").is_some() {
            breakpoints.push(i);
        }
    }
    // Each message's role and framing: a few tokens that are never cached
    // apart from their blocks.
    let framing = 4 * body["messages"].as_array().map_or(0, Vec::len) as u64;
    let total = tokens + framing;
    let min = min_cacheable_tokens(body["model"].as_str().unwrap_or(""));
    let cacheable: Vec<usize> = breakpoints
        .iter()
        .copied()
        .filter(|&b| cum_tokens[b] >= min)
        .collect();
    let Some(&last) = cacheable.last() else {
        return Tokens {
            input: total,
            output,
            ..Tokens::default()
        };
    };
    let seen = |h: &str| -> bool {
        state
            .db
            .call(|c| {
                c.query_row(
                    "SELECT 1 FROM llm_cache_prefixes WHERE hash = ?1",
                    params![h],
                    |_| Ok(()),
                )
            })
            .is_ok()
    };
    // The longest prefix written before, within the lookback of a breakpoint.
    let mut hit: Option<usize> = None;
    for &b in cacheable.iter().rev() {
        for j in (b.saturating_sub(LOOKBACK)..=b).rev() {
            if hit.is_some_and(|h| h >= j) {
                break;
            }
            if cum_tokens[j] >= min && seen(&hashes[j]) {
                hit = Some(j);
                break;
            }
        }
    }
    for &b in &cacheable {
        let h = hashes[b].clone();
        let _ = state.db.call(|c| {
            c.execute(
                "INSERT OR IGNORE INTO llm_cache_prefixes (hash) VALUES (?1)",
                params![h],
            )
        });
    }
    let read = hit.map_or(0, |j| cum_tokens[j]);
    Tokens {
        input: total - cum_tokens[last],
        output,
        cache_read: read,
        cache_write: cum_tokens[last] - read,
        prefix_bytes: hit.map_or(0, |j| cum_bytes[j]),
    }
}

/// Usage of an OpenAI request: no cache is simulated (OpenAI caches on its
/// own, without markers, so there is nothing for a client to get wrong).
pub fn openai(body_bytes: usize, output: u64) -> Tokens {
    Tokens {
        input: tokens_of(body_bytes),
        output,
        ..Tokens::default()
    }
}

/// One row of `llm_requests`.
pub fn record(
    state: &SandboxState,
    api: Api,
    kind: &str,
    turn: usize,
    body_bytes: usize,
    t: Tokens,
    status: u16,
) {
    let at = crate::db::now_iso();
    let r = state.db.call(|c| {
        c.execute(
            "INSERT INTO llm_requests (at, api, kind, turn, body_bytes, cached_prefix_bytes,
                input_tokens, output_tokens, cache_read, cache_write, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                at,
                api.label(),
                kind,
                turn as i64,
                body_bytes as i64,
                t.prefix_bytes as i64,
                t.input as i64,
                t.output as i64,
                t.cache_read as i64,
                t.cache_write as i64,
                status as i64
            ],
        )
    });
    if let Err(e) = r {
        tracing::warn!("sandbox llm: cannot record request: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_prefix_by_model_class() {
        assert_eq!(min_cacheable_tokens("claude-sonnet-4-5"), 1024);
        assert_eq!(min_cacheable_tokens("claude-opus-4-1"), 1024);
        assert_eq!(min_cacheable_tokens("claude-3-5-haiku-latest"), 2048);
        assert_eq!(min_cacheable_tokens("claude-haiku-4-5"), 4096);
        assert_eq!(min_cacheable_tokens("claude-opus-4.5"), 4096);
        assert_eq!(min_cacheable_tokens("some-local-model"), 1024);
    }
}
