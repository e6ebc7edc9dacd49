//! The OpenAI-compatible chat-completions stream assembler
//! (`llm::sse::read_openai`: eventsource-stream plus our `OpenAiStreamState`),
//! fed the raw bytes a server would send.
//!
//! Invariants: no panic; the same result however the bytes are chunked; every
//! assembled tool call has a non-empty id; text comes first and once;
//! `EndTurn` never comes with tool calls (some servers say `stop` after
//! them); errors are `Stream` errors with a kind and a bounded message.

#![no_main]

#[path = "../common/stream.rs"]
mod stream;

use libfuzzer_sys::fuzz_target;
use mana_personas::llm::sse::read_openai;
use mana_personas::llm::{Block, StopReason};

fuzz_target!(|data: &[u8]| {
    let whole = stream::block_on(read_openai(stream::chunks(vec![data.to_vec()])));
    let split = stream::block_on(read_openai(stream::chunks(stream::pieces(data))));
    stream::check_common(&whole, "openai");
    if let Ok(resp) = &whole {
        let tools = resp
            .content
            .iter()
            .filter(|b| matches!(b, Block::ToolUse { .. }))
            .count();
        for b in &resp.content {
            if let Block::ToolUse { id, .. } = b {
                assert!(!id.is_empty(), "tool call without an id");
            }
        }
        // Text, if any, comes first and only once.
        let texts = resp
            .content
            .iter()
            .filter(|b| matches!(b, Block::Text { .. }))
            .count();
        assert!(texts <= 1);
        if texts == 1 {
            assert!(matches!(resp.content[0], Block::Text { .. }));
        }
        if resp.stop_reason == StopReason::EndTurn {
            assert_eq!(tools, 0, "end_turn reported while tool calls are present");
        }
    }
    assert_eq!(
        stream::comparable(&whole),
        stream::comparable(&split),
        "result depends on how the bytes were chunked"
    );
});
