//! SSE framing shared by the LLM and MCP clients: bytes in, events out, with
//! the one guard every SSE reader here needs (see [`events`]).

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

/// The events of an SSE byte stream (e.g. `reqwest::Response::bytes_stream`).
/// Every SSE reader in the crate goes through here, so none can miss the BOM
/// guard below.
pub fn events<S, B, E>(bytes: S) -> impl Stream<Item = Result<Event, EventStreamError<E>>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    without_bom(bytes).eventsource()
}

/// The UTF-8 byte order mark, which the SSE format lets a stream start with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A chunk handed to eventsource-stream: the re-assembled start of the stream,
/// or a later chunk passed through untouched (no copy).
enum Chunk<B> {
    Head(Vec<u8>),
    Rest(B),
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for Chunk<B> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Chunk::Head(v) => v,
            Chunk::Rest(b) => b.as_ref(),
        }
    }
}

/// Guards eventsource-stream 0.2.3, which drops a leading BOM with
/// `&s[1..]` although U+FEFF is three bytes in UTF-8: any stream that starts
/// with one panicked (upstream jpopesculian/eventsource-stream#10, unmerged;
/// found by `fuzz/anthropic_sse`). This strips the one BOM the SSE format
/// allows, however the bytes are chunked, and starts the stream with an empty
/// line — a no-op in SSE — so the crate never sees a BOM as its first
/// character, even when a second one follows.
fn without_bom<S, B, E>(bytes: S) -> impl Stream<Item = Result<Chunk<B>, E>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    // `Some(head so far)` until the head went out.
    futures::stream::unfold(
        (bytes.fuse(), Some(Vec::new())),
        |(mut bytes, head)| async move {
            let Some(mut head) = head else {
                let item = bytes.next().await?;
                return Some((item.map(Chunk::Rest), (bytes, None)));
            };
            // Collect until the first bytes can no longer be the start of a BOM.
            while head.len() < BOM.len() && BOM.starts_with(&head) {
                match bytes.next().await {
                    Some(Ok(b)) => head.extend_from_slice(b.as_ref()),
                    Some(Err(e)) => return Some((Err(e), (bytes, None))),
                    None => break,
                }
            }
            let body = head.strip_prefix(BOM).unwrap_or(&head);
            let mut out = Vec::with_capacity(body.len() + 1);
            out.push(b'\n');
            out.extend_from_slice(body);
            Some((Ok(Chunk::Head(out)), (bytes, None)))
        },
    )
}
