//! Pure decoders for the two streaming wire formats: one state machine per
//! provider that is fed SSE events (`event` name, `data` text) and turned into a
//! [`ChatResponse`] at the end.
//!
//! Why pure and separate from the HTTP code: the decoders are where hostile or
//! odd streams hit us (split JSON, pings, unknown events, errors after a 200),
//! so they must be testable byte-for-byte and fuzzable without a server.
//! [`read_anthropic`] and [`read_openai`] run a byte stream through
//! eventsource-stream into them; the providers and the tests use those.

use std::collections::BTreeMap;
use std::fmt::Display;

use futures::{Stream, StreamExt};
use serde_json::{Map, Value};

use super::{Block, ChatResponse, LlmError, StopReason, Usage};

/// Provider labels used in errors and metrics.
pub const ANTHROPIC: &str = "anthropic";
/// See [`ANTHROPIC`].
pub const OPENAI: &str = "openai";

/// Error kinds a stream can end with that are worth another attempt: the
/// server said it is overloaded or failed internally, or the bytes stopped.
pub const RETRYABLE_STREAM_KINDS: &[&str] = &[
    "overloaded_error",
    "api_error",
    "server_error",
    "timeout_error",
    "transport",
    "eof",
];

fn decode_err(provider: &'static str, message: impl Into<String>) -> LlmError {
    LlmError::Stream {
        provider,
        kind: "decode".to_string(),
        message: crate::http::cut(&message.into(), crate::http::ERROR_BODY_CHARS),
    }
}

fn parse_json(provider: &'static str, data: &str) -> Result<Value, LlmError> {
    serde_json::from_str(data).map_err(|e| {
        decode_err(
            provider,
            format!("bad event JSON ({e}): {}", crate::http::cut(data, 200)),
        )
    })
}

/// Parses accumulated tool arguments: an empty buffer means "no arguments".
fn parse_args(buf: &str) -> Result<Value, serde_json::Error> {
    if buf.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(buf)
}

/// Longest error kind kept from a server. Kinds are short identifiers
/// (`overloaded_error`); one that is an essay must not make the error line
/// unbounded (the `anthropic_sse` fuzz target found a 150-char one).
pub const KIND_CHARS: usize = 64;

/// The `{type, message}` of an error object, whatever shape it came in; both
/// cut, since both come from the server. A blank type or code is no kind.
fn error_parts(err: &Value, default_kind: &str) -> (String, String) {
    let named = |key: &str| {
        err.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let kind = named("type")
        .or_else(|| named("code"))
        .unwrap_or(default_kind);
    let kind = crate::http::cut(kind, KIND_CHARS);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| err.as_str().map(str::to_string))
        .unwrap_or_else(|| err.to_string());
    (
        kind,
        crate::http::cut(&message, crate::http::ERROR_BODY_CHARS),
    )
}

fn u64_at(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

#[derive(Debug)]
enum AnthropicBlock {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
        /// Set at `content_block_stop`; `None` while the block is open.
        parsed: Option<Result<Value, String>>,
    },
    /// thinking, server tools, …: not ours to interpret.
    Other,
}

/// Anthropic Messages stream decoder (wire-facts §1.8).
///
/// Feed every SSE event with [`on_event`](Self::on_event), then call
/// [`finish`](Self::finish). Pings and unknown events/deltas are ignored; an
/// `error` event becomes [`LlmError::Stream`] with the error's type as `kind`.
#[derive(Debug, Default)]
pub struct AnthropicStreamState {
    blocks: BTreeMap<u64, AnthropicBlock>,
    usage: Usage,
    stop_reason: Option<String>,
    started: bool,
    stopped: bool,
}

impl AnthropicStreamState {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `message_stop` was seen (nothing more is expected).
    pub fn is_done(&self) -> bool {
        self.stopped
    }

    fn take_usage(&mut self, u: &Value) {
        if let Some(n) = u64_at(u, "input_tokens") {
            self.usage.input = n;
        }
        if let Some(n) = u64_at(u, "output_tokens") {
            self.usage.output = n;
        }
        if let Some(n) = u64_at(u, "cache_read_input_tokens") {
            self.usage.cache_read = n;
        }
        if let Some(n) = u64_at(u, "cache_creation_input_tokens") {
            self.usage.cache_write = n;
        }
    }

    /// Consumes one SSE event. `event` may be empty or `message` when the
    /// server sent no name; the JSON `type` decides then.
    pub fn on_event(&mut self, event: &str, data: &str) -> Result<(), LlmError> {
        if event == "ping" {
            return Ok(());
        }
        if data.trim().is_empty() {
            return Ok(());
        }
        let v = parse_json(ANTHROPIC, data)?;
        let ty = match event {
            "" | "message" => v.get("type").and_then(Value::as_str).unwrap_or(""),
            e => e,
        };
        match ty {
            "message_start" => {
                self.started = true;
                if let Some(u) = v.pointer("/message/usage") {
                    self.take_usage(u);
                }
            }
            "content_block_start" => {
                let index = u64_at(&v, "index")
                    .ok_or_else(|| decode_err(ANTHROPIC, "content_block_start without index"))?;
                let cb = v.get("content_block").unwrap_or(&Value::Null);
                let block = match cb.get("type").and_then(Value::as_str) {
                    Some("text") => AnthropicBlock::Text(
                        cb.get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ),
                    Some("tool_use") => AnthropicBlock::Tool {
                        id: cb
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        name: cb
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        json: String::new(),
                        parsed: None,
                    },
                    _ => AnthropicBlock::Other,
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let index = u64_at(&v, "index")
                    .ok_or_else(|| decode_err(ANTHROPIC, "content_block_delta without index"))?;
                let delta = v.get("delta").unwrap_or(&Value::Null);
                let dtype = delta.get("type").and_then(Value::as_str).unwrap_or("");
                match (self.blocks.get_mut(&index), dtype) {
                    (Some(AnthropicBlock::Text(t)), "text_delta") => {
                        t.push_str(delta.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    (Some(AnthropicBlock::Tool { json, .. }), "input_json_delta") => {
                        json.push_str(
                            delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                    }
                    (None, "text_delta" | "input_json_delta") => {
                        return Err(decode_err(
                            ANTHROPIC,
                            format!("delta for unopened block {index}"),
                        ));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = u64_at(&v, "index")
                    .ok_or_else(|| decode_err(ANTHROPIC, "content_block_stop without index"))?;
                if let Some(AnthropicBlock::Tool { json, parsed, .. }) = self.blocks.get_mut(&index)
                {
                    *parsed = Some(parse_args(json).map_err(|e| e.to_string()));
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
            }
            "message_stop" => self.stopped = true,
            "error" => {
                let (kind, message) =
                    error_parts(v.get("error").unwrap_or(&Value::Null), "api_error");
                return Err(LlmError::Stream {
                    provider: ANTHROPIC,
                    kind,
                    message,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The response, once the stream is over. A stream that ended before
    /// `message_stop` is an `eof` error; with `max_tokens` as the stop reason,
    /// tool_use blocks whose JSON is incomplete are dropped.
    pub fn finish(self) -> Result<ChatResponse, LlmError> {
        if !self.stopped {
            return Err(LlmError::Stream {
                provider: ANTHROPIC,
                kind: "eof".to_string(),
                message: if self.started {
                    "stream ended before message_stop".to_string()
                } else {
                    "stream ended before message_start".to_string()
                },
            });
        }
        let stop_reason = match self.stop_reason.as_deref() {
            Some("end_turn") => StopReason::EndTurn,
            Some("tool_use") => StopReason::ToolUse,
            Some("max_tokens") => StopReason::MaxTokens,
            Some(other) => StopReason::Other(other.to_string()),
            None => StopReason::Other("none".to_string()),
        };
        let truncated = stop_reason == StopReason::MaxTokens;
        let mut content = Vec::new();
        for (_, block) in self.blocks {
            match block {
                AnthropicBlock::Text(text) if !text.is_empty() => {
                    content.push(Block::Text { text })
                }
                AnthropicBlock::Text(_) | AnthropicBlock::Other => {}
                AnthropicBlock::Tool {
                    id,
                    name,
                    json,
                    parsed,
                } => {
                    let parsed = parsed.unwrap_or_else(|| {
                        // Never stopped: parse what we have, it decides.
                        parse_args(&json).map_err(|e| e.to_string())
                    });
                    match parsed {
                        Ok(input) => content.push(Block::ToolUse { id, name, input }),
                        Err(_) if truncated => {}
                        Err(e) => {
                            return Err(decode_err(
                                ANTHROPIC,
                                format!("tool_use {name} input is not JSON ({e})"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(ChatResponse {
            content,
            stop_reason,
            usage: self.usage,
            retries: 0,
        })
    }
}

#[derive(Debug, Default)]
struct ToolSlot {
    index: u64,
    id: String,
    name: String,
    args: String,
}

/// OpenAI-compatible chat-completions stream decoder (wire-facts §2.4).
///
/// Tool-call deltas are assembled by `index`; a new non-empty `id` at an index
/// already holding a different id opens a new slot (Ollama reuses index 0).
/// `data: [DONE]` ends the stream; a data object with an `error` key is an
/// error.
#[derive(Debug, Default)]
pub struct OpenAiStreamState {
    text: String,
    slots: Vec<ToolSlot>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl OpenAiStreamState {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `[DONE]` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Consumes one SSE event (OpenAI sends no event names; `error` is
    /// accepted as one because some compatible servers send it).
    pub fn on_event(&mut self, event: &str, data: &str) -> Result<(), LlmError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let v = parse_json(OPENAI, data)?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let (kind, message) = error_parts(err, "api_error");
            return Err(LlmError::Stream {
                provider: OPENAI,
                kind,
                message,
            });
        }
        if event == "error" {
            let (kind, message) = error_parts(&v, "api_error");
            return Err(LlmError::Stream {
                provider: OPENAI,
                kind,
                message,
            });
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            let prompt = u64_at(u, "prompt_tokens").unwrap_or(0);
            let cached = u
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            self.usage = Some(Usage {
                input: prompt.saturating_sub(cached),
                output: u64_at(u, "completion_tokens").unwrap_or(0),
                cache_read: cached,
                cache_write: 0,
            });
        }
        let Some(choice) = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Ok(());
        };
        if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(r.to_string());
        }
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(t) = delta.get("content").and_then(Value::as_str) {
            self.text.push_str(t);
        }
        for (pos, tc) in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = u64_at(tc, "index").unwrap_or(pos as u64);
            let id = tc.get("id").and_then(Value::as_str).unwrap_or("");
            let current = self.slots.iter().rposition(|s| s.index == index);
            let slot = match current {
                Some(i)
                    if id.is_empty() || self.slots[i].id.is_empty() || self.slots[i].id == id =>
                {
                    &mut self.slots[i]
                }
                _ => {
                    self.slots.push(ToolSlot {
                        index,
                        ..ToolSlot::default()
                    });
                    self.slots.last_mut().expect("just pushed")
                }
            };
            if slot.id.is_empty() && !id.is_empty() {
                slot.id = id.to_string();
            }
            if let Some(f) = tc.get("function") {
                if let Some(n) = f.get("name").and_then(Value::as_str)
                    && slot.name.is_empty()
                {
                    slot.name = n.to_string();
                }
                if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                    slot.args.push_str(a);
                }
            }
        }
        Ok(())
    }

    /// The response. `length` → MaxTokens (unparseable tool calls dropped),
    /// `tool_calls` → ToolUse, `stop` → EndTurn (ToolUse if calls are present:
    /// some compatible servers say `stop` after tool calls).
    pub fn finish(self) -> Result<ChatResponse, LlmError> {
        let Some(reason) = self.finish_reason else {
            return Err(LlmError::Stream {
                provider: OPENAI,
                kind: "eof".to_string(),
                message: "stream ended without a finish_reason".to_string(),
            });
        };
        let truncated = reason == "length";
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(Block::Text { text: self.text });
        }
        for (n, slot) in self.slots.into_iter().enumerate() {
            match parse_args(&slot.args) {
                Ok(input) => content.push(Block::ToolUse {
                    id: if slot.id.is_empty() {
                        format!("call_{n}")
                    } else {
                        slot.id
                    },
                    name: slot.name,
                    input,
                }),
                Err(_) if truncated => {}
                Err(e) => {
                    return Err(decode_err(
                        OPENAI,
                        format!("tool call {} arguments are not JSON ({e})", slot.name),
                    ));
                }
            }
        }
        let has_tools = content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
        let stop_reason = match reason.as_str() {
            "length" => StopReason::MaxTokens,
            "tool_calls" | "function_call" => StopReason::ToolUse,
            "stop" if has_tools => StopReason::ToolUse,
            "stop" => StopReason::EndTurn,
            other => StopReason::Other(other.to_string()),
        };
        Ok(ChatResponse {
            content,
            stop_reason,
            usage: self.usage.unwrap_or_default(),
            retries: 0,
        })
    }
}

/// Most bytes one model answer may take on the wire. An answer of
/// `max_tokens` 2048 is a few hundred KiB of SSE; a stream past this is not
/// an answer but a broken or hostile server, and fails as `too_large`
/// (never retried, and like a truncated tool_use: nothing of it runs).
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The error kind of an answer past [`MAX_ANSWER_BYTES`].
pub const TOO_LARGE: &str = "too_large";

fn transport_err<E: Display>(
    provider: &'static str,
    e: eventsource_stream::EventStreamError<crate::sse::Capped<E>>,
) -> LlmError {
    use crate::sse::Capped;
    use eventsource_stream::EventStreamError as S;
    match e {
        S::Transport(Capped::TooLarge(n)) => LlmError::Stream {
            provider,
            kind: TOO_LARGE.to_string(),
            message: format!("answer too large: more than {n} bytes; nothing of it was used"),
        },
        S::Transport(Capped::Inner(e)) => LlmError::Stream {
            provider,
            kind: "transport".to_string(),
            message: crate::http::cut(&e.to_string(), crate::http::ERROR_BODY_CHARS),
        },
        other => decode_err(provider, other.to_string()),
    }
}

/// Runs a byte stream (e.g. `reqwest::Response::bytes_stream`) through the SSE
/// parser into an [`AnthropicStreamState`]. Stops reading at `message_stop`,
/// or past [`MAX_ANSWER_BYTES`].
pub async fn read_anthropic<S, B, E>(bytes: S) -> Result<ChatResponse, LlmError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: Display,
{
    let mut events = std::pin::pin!(crate::sse::events(bytes, MAX_ANSWER_BYTES));
    let mut state = AnthropicStreamState::new();
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| transport_err(ANTHROPIC, e))?;
        state.on_event(&ev.event, &ev.data)?;
        if state.is_done() {
            break;
        }
    }
    state.finish()
}

/// Runs a byte stream through the SSE parser into an [`OpenAiStreamState`].
/// Stops reading at `data: [DONE]`.
pub async fn read_openai<S, B, E>(bytes: S) -> Result<ChatResponse, LlmError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: Display,
{
    let mut events = std::pin::pin!(crate::sse::events(bytes, MAX_ANSWER_BYTES));
    let mut state = OpenAiStreamState::new();
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| transport_err(OPENAI, e))?;
        state.on_event(&ev.event, &ev.data)?;
        if state.is_done() {
            break;
        }
    }
    state.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_error_event_keeps_type() {
        let mut s = AnthropicStreamState::new();
        let e = s
            .on_event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            )
            .unwrap_err();
        assert!(matches!(e, LlmError::Stream { ref kind, .. } if kind == "overloaded_error"));
    }

    #[test]
    fn anthropic_truncated_tool_dropped_on_max_tokens() {
        let mut s = AnthropicStreamState::new();
        for (e, d) in [
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"x","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\": \"b"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":9}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            s.on_event(e, d).unwrap();
        }
        let r = s.finish().unwrap();
        assert_eq!(r.stop_reason, StopReason::MaxTokens);
        assert!(r.content.is_empty());
        assert_eq!(r.usage.output, 9);
        assert_eq!(r.usage.input, 5);
    }

    #[test]
    fn anthropic_bad_json_without_max_tokens_is_error() {
        let mut s = AnthropicStreamState::new();
        s.on_event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"x","input":{}}}"#).unwrap();
        s.on_event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#).unwrap();
        s.on_event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        )
        .unwrap();
        s.on_event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":2}}"#).unwrap();
        s.on_event("message_stop", r#"{"type":"message_stop"}"#)
            .unwrap();
        assert!(matches!(s.finish(), Err(LlmError::Stream { ref kind, .. }) if kind == "decode"));
    }

    #[test]
    fn anthropic_eof_before_stop() {
        let s = AnthropicStreamState::new();
        assert!(matches!(s.finish(), Err(LlmError::Stream { ref kind, .. }) if kind == "eof"));
    }

    #[test]
    fn openai_new_id_at_same_index_opens_slot() {
        let mut s = OpenAiStreamState::new();
        s.on_event("", r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#).unwrap();
        s.on_event("", r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"{\"x\":1}"}}]},"finish_reason":"tool_calls"}]}"#).unwrap();
        s.on_event("", "[DONE]").unwrap();
        let r = s.finish().unwrap();
        assert_eq!(r.content.len(), 2);
        assert_eq!(r.stop_reason, StopReason::ToolUse);
    }

    #[test]
    fn openai_error_chunk() {
        let mut s = OpenAiStreamState::new();
        let e = s
            .on_event(
                "",
                r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#,
            )
            .unwrap_err();
        assert!(matches!(e, LlmError::Stream { ref kind, .. } if kind == "overloaded_error"));
    }

    #[test]
    fn openai_length_drops_bad_args_and_cached_usage() {
        let mut s = OpenAiStreamState::new();
        s.on_event("", r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]},"finish_reason":"length"}]}"#).unwrap();
        s.on_event("", r#"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":60}}}"#).unwrap();
        let r = s.finish().unwrap();
        assert_eq!(r.stop_reason, StopReason::MaxTokens);
        assert!(r.content.is_empty());
        assert_eq!(
            r.usage,
            Usage {
                input: 40,
                output: 7,
                cache_read: 60,
                cache_write: 0
            }
        );
    }
}
