//! SSE framing shared by the LLM and MCP clients: bytes in, events out, with
//! the two guards every SSE reader here needs (see [`events`]).

use std::fmt;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

/// The events of an SSE byte stream (e.g. `reqwest::Response::bytes_stream`),
/// at most `max_bytes` of it. Every SSE reader in the crate goes through
/// here, so none can miss the BOM guard or the cap below.
///
/// Why a cap on the bytes of the whole answer: a server that streams forever
/// (an endless text delta, an event that never ends) would otherwise grow
/// the parser's buffer and ours without bound. Every buffer of one answer is
/// at most the answer's bytes, so one limit bounds them all; past it the
/// stream ends with [`Capped::TooLarge`].
pub fn events<S, B, E>(
    bytes: S,
    max_bytes: usize,
) -> impl Stream<Item = Result<Event, EventStreamError<Capped<E>>>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    without_bom(capped(bytes, max_bytes)).eventsource()
}

/// A byte stream's error, or the cap of [`events`] reached.
#[derive(Debug)]
pub enum Capped<E> {
    Inner(E),
    /// More than this many bytes.
    TooLarge(usize),
}

impl<E: fmt::Display> fmt::Display for Capped<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capped::Inner(e) => e.fmt(f),
            Capped::TooLarge(n) => write!(f, "answer too large: more than {n} bytes"),
        }
    }
}

/// A chunk for the SSE parser: one from the stream as it came, or several
/// joined (see [`capped`]).
pub enum Piece<B> {
    Whole(B),
    Joined(Vec<u8>),
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for Piece<B> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Piece::Whole(b) => b.as_ref(),
            Piece::Joined(v) => v,
        }
    }
}

/// Chunks without a line end are joined up to this size before the parser
/// sees them: eventsource-stream parses its whole buffered line again on
/// every chunk, so an endless line in small chunks costs quadratic time.
/// Holding bytes back until a line end delays no event (an event ends only
/// at a blank line).
const JOIN_BYTES: usize = 64 * 1024;

/// Longest line (one `data:` field) of a stream. Every event of the LLM
/// APIs is a few KiB at most and an MCP answer (a `tools/list`, a tool's
/// result) far below this; a line past it is a broken or hostile stream, and
/// parsing it would cost time growing with the square of its length.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Passes chunks through until more than `max` bytes went by, or one line
/// grew past [`MAX_LINE_BYTES`], then yields [`Capped::TooLarge`] once and
/// ends (the rest is never read). Chunks without a line end are joined (see
/// [`JOIN_BYTES`]).
fn capped<S, B, E>(bytes: S, max: usize) -> impl Stream<Item = Result<Piece<B>, Capped<E>>> + Unpin
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    Box::pin(futures::stream::unfold(
        (bytes, (0usize, 0usize), Vec::new(), false),
        move |(mut bytes, (mut seen, mut line), mut pending, done)| async move {
            if done {
                return None;
            }
            loop {
                match bytes.next().await {
                    None if pending.is_empty() => return None,
                    None => {
                        return Some((
                            Ok(Piece::Joined(pending)),
                            (bytes, (seen, line), Vec::new(), true),
                        ));
                    }
                    Some(Err(e)) => {
                        return Some((
                            Err(Capped::Inner(e)),
                            (bytes, (seen, line), pending, false),
                        ));
                    }
                    Some(Ok(b)) => {
                        let chunk = b.as_ref();
                        seen = seen.saturating_add(chunk.len());
                        let last_end = chunk.iter().rposition(|&c| c == b'\n' || c == b'\r');
                        line = match last_end {
                            Some(i) => chunk.len() - i - 1,
                            None => line.saturating_add(chunk.len()),
                        };
                        if seen > max || line > MAX_LINE_BYTES {
                            let limit = if seen > max { max } else { MAX_LINE_BYTES };
                            return Some((
                                Err(Capped::TooLarge(limit)),
                                (bytes, (seen, line), Vec::new(), true),
                            ));
                        }
                        let line_end = last_end.is_some();
                        if pending.is_empty() && line_end {
                            return Some((
                                Ok(Piece::Whole(b)),
                                (bytes, (seen, line), pending, false),
                            ));
                        }
                        pending.extend_from_slice(chunk);
                        if line_end || pending.len() >= JOIN_BYTES {
                            let out = std::mem::take(&mut pending);
                            return Some((
                                Ok(Piece::Joined(out)),
                                (bytes, (seen, line), pending, false),
                            ));
                        }
                    }
                }
            }
        },
    ))
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
