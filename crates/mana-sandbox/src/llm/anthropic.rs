//! Anthropic Messages, `POST /v1/messages`: the checks the real API makes
//! before it answers (wire-facts §1, with the wording its 400s are quoted
//! with in public reports), the request read into a [`Convo`], and the
//! answer as a message or as the SSE event sequence.
//!
//! Decisions where the sources disagree:
//! - tool names: `^[a-zA-Z0-9_-]{1,128}$`, the pattern the API quotes since
//!   2026 (it said `{1,64}` in 2025; the product's client keeps to 64, which
//!   both accept);
//! - `max_tokens: 0` is refused like any value below 1, as the API answered
//!   when the issue was filed; newer docs allow 0 to pre-warm the cache, which
//!   no client here does.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::script::{Call, Convo, Piece, Reply, Stop, text_of};
use super::{Refusal, split_random};
use crate::llm::billing::Tokens;

const NAME_PATTERN: &str = "^[a-zA-Z0-9_-]{1,128}$";
const MAX_BREAKPOINTS: usize = 4;

fn valid_name(n: &str) -> bool {
    (1..=128).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// 401 without a usable key: `x-api-key` (or the SDK's `Authorization:
/// Bearer`), which must be the configured one when the sandbox has one.
pub fn authenticate(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    let unauthorized = |m: &str| Refusal::new(StatusCode::UNAUTHORIZED, "authentication_error", m);
    match key.map(str::trim) {
        None => Err(unauthorized("x-api-key header is required")),
        Some("") => Err(unauthorized("invalid x-api-key")),
        Some(k) if expected.is_some_and(|e| e != k) => Err(unauthorized("invalid x-api-key")),
        Some(_) => Ok(()),
    }
}

/// The headers and body checks, first failure wins.
pub fn validate(headers: &HeaderMap, body: &Value) -> Result<(), Refusal> {
    let bad = |m: String| Err(Refusal::bad(m));
    if !headers.contains_key("anthropic-version") {
        return bad("anthropic-version: header is required".into());
    }
    if !body["model"].is_string() {
        return bad("model: Field required".into());
    }
    match &body["max_tokens"] {
        Value::Null => return bad("max_tokens: Field required".into()),
        v if !v.is_i64() && !v.is_u64() => {
            return bad("max_tokens: Input should be a valid integer".into());
        }
        v if v.as_i64().is_some_and(|n| n < 1) => {
            return bad("max_tokens: Input should be greater than or equal to 1".into());
        }
        _ => {}
    }
    let Some(messages) = body["messages"].as_array() else {
        return bad(match body["messages"] {
            Value::Null => "messages: Field required".into(),
            _ => "messages: Input should be a valid list".into(),
        });
    };
    if messages.is_empty() {
        return bad("messages: at least one message is required".into());
    }
    let tools = body["tools"].as_array().map_or(&[][..], Vec::as_slice);
    let mut names = std::collections::HashSet::new();
    for (i, t) in tools.iter().enumerate() {
        let name = t["name"].as_str().unwrap_or("");
        if !valid_name(name) {
            return bad(format!(
                "tools.{i}.custom.name: String should match pattern '{NAME_PATTERN}'"
            ));
        }
        if !t["input_schema"].is_object() {
            return bad(format!("tools.{i}.custom.input_schema: Field required"));
        }
        if !names.insert(name) {
            return bad("tools: Tool names must be unique.".into());
        }
    }
    let system = match &body["system"] {
        Value::Array(a) => a.as_slice(),
        _ => &[],
    };
    if system
        .iter()
        .any(|b| b["type"] == "text" && b["text"].as_str().is_some_and(str::is_empty))
    {
        return bad("system: text content blocks must be non-empty".into());
    }
    let blocks_of = |m: &Value| -> Vec<Value> {
        match &m["content"] {
            Value::Array(a) => a.clone(),
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            _ => Vec::new(),
        }
    };
    let mut markers = tools
        .iter()
        .chain(system)
        .filter(|b| b.get("cache_control").is_some())
        .count();
    let last = messages.len() - 1;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return bad(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        let blocks = blocks_of(m);
        if blocks.is_empty() && !(i == last && role == "assistant") {
            return bad(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            ));
        }
        for (j, b) in blocks.iter().enumerate() {
            markers += b.get("cache_control").is_some() as usize;
            if b["type"] == "text" {
                let text = b["text"].as_str().unwrap_or("");
                if text.is_empty() && b.get("cache_control").is_some() {
                    return bad(format!(
                        "messages.{i}.content.{j}.text: cache_control cannot be set for empty text blocks"
                    ));
                }
                if text.is_empty() {
                    return bad("messages: text content blocks must be non-empty".into());
                }
            }
        }
        // Every tool_result answers a tool_use of the message before it.
        let previous_uses: Vec<Value> = match i.checked_sub(1).map(|p| &messages[p]) {
            Some(p) if p["role"] == "assistant" => blocks_of(p)
                .into_iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| b["id"].clone())
                .collect(),
            _ => Vec::new(),
        };
        for (j, b) in blocks.iter().enumerate() {
            if b["type"] == "tool_result" && !previous_uses.contains(&b["tool_use_id"]) {
                return bad(format!(
                    "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                    b["tool_use_id"].as_str().unwrap_or("")
                ));
            }
        }
        // Every tool_use is answered in the message right after it.
        if role == "assistant" {
            let answered: Vec<Value> = messages
                .get(i + 1)
                .filter(|n| n["role"] == "user")
                .map(|n| {
                    blocks_of(n)
                        .into_iter()
                        .filter(|b| b["type"] == "tool_result")
                        .map(|b| b["tool_use_id"].clone())
                        .collect()
                })
                .unwrap_or_default();
            let missing: Vec<&str> = blocks
                .iter()
                .filter(|b| b["type"] == "tool_use" && !answered.contains(&b["id"]))
                .filter_map(|b| b["id"].as_str())
                .collect();
            if !missing.is_empty() {
                return bad(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    missing.join(", ")
                ));
            }
        }
    }
    if markers > MAX_BREAKPOINTS {
        return bad(format!(
            "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {markers}."
        ));
    }
    Ok(())
}

/// The request as the scripted model sees it.
pub fn parse(v: &Value) -> Convo {
    let mut c = Convo {
        model: v["model"].as_str().unwrap_or("claude-sandbox").to_string(),
        system: text_of(&v["system"]),
        stream: v["stream"].as_bool().unwrap_or(false),
        ..Convo::default()
    };
    for t in v["tools"].as_array().into_iter().flatten() {
        if let Some(n) = t["name"].as_str() {
            c.tools.push((n.to_string(), t["input_schema"].clone()));
        }
    }
    let msgs: &[Value] = v["messages"].as_array().map_or(&[], Vec::as_slice);
    c.message_count = msgs.len();
    for m in msgs {
        let blocks = m["content"].as_array().map_or(&[][..], Vec::as_slice);
        match m["role"].as_str() {
            Some("assistant") => {
                c.assistant_turns += 1;
                for b in blocks.iter().filter(|b| b["type"] == "tool_use") {
                    c.calls.push(Call {
                        id: b["id"].as_str().unwrap_or("").to_string(),
                        name: b["name"].as_str().unwrap_or("").to_string(),
                        input: b["input"].clone(),
                        ..Call::default()
                    });
                }
            }
            Some("user") => {
                for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
                    c.result(
                        b["tool_use_id"].as_str().unwrap_or(""),
                        text_of(&b["content"]),
                        b["is_error"].as_bool().unwrap_or(false),
                    );
                }
                c.user_text(text_of(&m["content"]));
            }
            _ => {}
        }
    }
    c
}

fn stop_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::EndTurn => "end_turn",
        Stop::ToolUse => "tool_use",
        Stop::MaxTokens => "max_tokens",
    }
}

fn msg_id(convo: &Convo) -> String {
    format!("msg_sandbox_{:04}", convo.message_count)
}

fn usage(t: Tokens, output: u64) -> Value {
    json!({
        "input_tokens": t.input,
        "cache_creation_input_tokens": t.cache_write,
        "cache_read_input_tokens": t.cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": t.cache_write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output,
        "service_tier": "standard",
    })
}

fn frame(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// The error body, `{"type":"error","error":{…},"request_id":…}`.
pub fn error_body(r: &Refusal, request_id: &str) -> Value {
    json!({"type": "error", "error": {"type": r.kind, "message": r.message}, "request_id": request_id})
}

/// The SSE events of `reply`; with `inject`, an in-stream overloaded error
/// after the first text delta.
pub fn events(
    convo: &Convo,
    reply: &Reply,
    t: Tokens,
    inject: bool,
    rng: &mut rand::rngs::StdRng,
) -> Vec<String> {
    use rand::RngExt;
    let mut out = vec![frame(
        "message_start",
        &json!({"type":"message_start","message":{
            "id": msg_id(convo), "type":"message", "role":"assistant", "model": convo.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage(t, 1),
        }}),
    )];
    if inject {
        out.push(frame(
            "content_block_start",
            &json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ));
        out.push(frame(
            "content_block_delta",
            &json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me"}}),
        ));
        out.push(frame(
            "error",
            &json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ));
        return out;
    }
    for (i, p) in reply.pieces.iter().enumerate() {
        match p {
            Piece::Text(text) => {
                out.push(frame(
                    "content_block_start",
                    &json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}}),
                ));
                for part in split_random(text, 4, rng) {
                    out.push(frame(
                        "content_block_delta",
                        &json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":part}}),
                    ));
                }
            }
            Piece::Tool {
                id,
                name,
                input,
                truncate,
            } => {
                out.push(frame(
                    "content_block_start",
                    &json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
                ));
                if rng.random_bool(0.5) {
                    out.push(frame("ping", &json!({"type":"ping"})));
                }
                let json_text = if *truncate {
                    super::cut_json(input)
                } else {
                    input.to_string()
                };
                for part in std::iter::once(String::new()).chain(split_random(&json_text, 5, rng)) {
                    out.push(frame(
                        "content_block_delta",
                        &json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":part}}),
                    ));
                }
            }
        }
        out.push(frame(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":i}),
        ));
    }
    out.push(frame(
        "message_delta",
        &json!({"type":"message_delta","delta":{"stop_reason": stop_reason(reply.stop),"stop_sequence":null},
                "usage": usage(t, t.output)}),
    ));
    out.push(frame("message_stop", &json!({"type":"message_stop"})));
    out
}

/// The non-streamed message of `reply`.
pub fn message(convo: &Convo, reply: &Reply, t: Tokens) -> Value {
    let content: Vec<Value> = reply
        .pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Text(text) => Some(json!({"type":"text","text":text})),
            Piece::Tool { truncate: true, .. } => None,
            Piece::Tool {
                id, name, input, ..
            } => Some(json!({"type":"tool_use","id":id,"name":name,"input":input})),
        })
        .collect();
    json!({
        "id": msg_id(convo), "type": "message", "role": "assistant", "model": convo.model,
        "content": content, "stop_reason": stop_reason(reply.stop),
        "stop_sequence": null, "usage": usage(t, t.output),
    })
}
