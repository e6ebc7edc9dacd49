//! Shared by the two SSE targets: the fuzz input is the raw byte stream a
//! provider would send. It is decoded twice — once as one chunk, once cut into
//! small chunks at points derived from the input itself — because TCP may
//! split a stream anywhere (inside a UTF-8 character, between `\r` and `\n`)
//! and the result must not depend on where.

use std::convert::Infallible;

use futures::stream;
use mana_personas::llm::{Block, ChatResponse, LlmError};

/// Longest error message a decoder may produce: messages are cut to 300
/// characters plus the `…` mark (`crate::http::cut`).
pub const MAX_MESSAGE_CHARS: usize = 301;

/// Longest rendered error line: provider, kind and message together. Whatever
/// the server sends, an error line stays readable in a log.
pub const MAX_ERROR_LINE_CHARS: usize = 450;

/// A byte stream of the given chunks, as `reqwest::Response::bytes_stream`
/// would yield them (never an error: transport errors are not the input).
pub fn chunks(
    parts: Vec<Vec<u8>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, Infallible>> + Unpin {
    stream::iter(parts.into_iter().map(Ok))
}

/// Cuts `data` into chunks of 1..=24 bytes (with the odd empty chunk) at
/// points chosen by an xorshift generator seeded from the input, so a crash
/// reproduces from the input file alone.
pub fn pieces(data: &[u8]) -> Vec<Vec<u8>> {
    // FNV-1a of the input: every mutation moves the cut points.
    let mut seed = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if seed % 11 == 0 {
            out.push(Vec::new());
        }
        let end = (i + 1 + (seed % 24) as usize).min(data.len());
        out.push(data[i..end].to_vec());
        i = end;
    }
    out
}

/// Runs a decoder to completion on the current thread (the decoders never
/// wait on anything but the iterator).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// The comparable form of a result: `LlmError` has no `PartialEq`, its
/// rendered message is what operators see anyway.
pub fn comparable(r: &Result<ChatResponse, LlmError>) -> Result<ChatResponse, String> {
    match r {
        Ok(resp) => Ok(resp.clone()),
        Err(e) => Err(e.to_string()),
    }
}

/// What every decoded result must satisfy, whichever the provider.
pub fn check_common(r: &Result<ChatResponse, LlmError>, provider: &str) {
    match r {
        Ok(resp) => {
            assert_eq!(resp.retries, 0, "the decoder never retries");
            for b in &resp.content {
                match b {
                    Block::Text { text } => assert!(!text.is_empty(), "empty text block kept"),
                    Block::ToolUse { .. } => {}
                    Block::ToolResult { .. } => {
                        panic!("a model response never carries a tool_result")
                    }
                }
            }
        }
        Err(LlmError::Stream {
            provider: p,
            kind,
            message,
        }) => {
            assert_eq!(*p, provider);
            assert!(!kind.is_empty(), "stream error without a kind");
            assert!(
                message.chars().count() <= MAX_MESSAGE_CHARS,
                "error message not cut: {} chars",
                message.chars().count()
            );
            let line = r.as_ref().unwrap_err().to_string();
            assert!(
                line.chars().count() <= MAX_ERROR_LINE_CHARS,
                "error line not bounded: {} chars",
                line.chars().count()
            );
        }
        Err(other) => panic!("a byte decoder can only fail with LlmError::Stream, got {other:?}"),
    }
}
