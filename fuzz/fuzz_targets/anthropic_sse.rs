//! The Anthropic Messages stream decoder (`llm::sse::read_anthropic`: the SSE
//! framing of eventsource-stream plus our `AnthropicStreamState`), fed the raw
//! bytes a server would send.
//!
//! Invariants: no panic; the same result however the bytes are chunked; a
//! successful response holds only non-empty text and tool_use blocks; errors
//! are `Stream` errors with a kind and a bounded message.

#![no_main]

#[path = "../common/stream.rs"]
mod stream;

use libfuzzer_sys::fuzz_target;
use mana_personas::llm::sse::read_anthropic;

fuzz_target!(|data: &[u8]| {
    let whole = stream::block_on(read_anthropic(stream::chunks(vec![data.to_vec()])));
    let split = stream::block_on(read_anthropic(stream::chunks(stream::pieces(data))));
    stream::check_common(&whole, "anthropic");
    assert_eq!(
        stream::comparable(&whole),
        stream::comparable(&split),
        "result depends on how the bytes were chunked"
    );
});
