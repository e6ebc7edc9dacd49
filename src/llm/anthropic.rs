//! Anthropic Messages (`POST {base}/v1/messages`), streamed, with prompt
//! caching breakpoints placed so a persona's day re-reads its tools, system
//! prompt and history from the cache instead of paying for them every turn.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use super::transport::{self, Wire};
use super::{Block, ChatRequest, ChatResponse, LlmClient, LlmError, Role};
use crate::http::RetryPolicy;

/// A current Sonnet-class model (not on [`super::models`]' retirement list):
/// good tool use at a price a daily persona run
/// can afford.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";

/// The API version header every request carries (the only stable one).
pub const API_VERSION: &str = "2023-06-01";

/// Anthropic settings. `max_tokens` comes with each [`ChatRequest`].
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// e.g. `https://api.anthropic.com`, without `/v1`.
    pub base_url: String,
    /// Sent as `x-api-key`; never logged or formatted.
    pub api_key: SecretString,
    pub model: String,
    pub retry: RetryPolicy,
}

/// The Anthropic provider behind [`LlmClient`].
#[derive(Debug, Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    cfg: AnthropicConfig,
    url: String,
}

impl AnthropicClient {
    /// Takes the shared client (timeouts, pool) and the provider settings.
    pub fn new(http: reqwest::Client, cfg: AnthropicConfig) -> Self {
        let url = crate::http::join(&cfg.base_url, "v1/messages");
        AnthropicClient { http, cfg, url }
    }

    fn request(&self, body: bytes::Bytes) -> reqwest::RequestBuilder {
        let mut key = reqwest::header::HeaderValue::from_str(self.cfg.api_key.expose_secret())
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid-key"));
        key.set_sensitive(true);
        self.http
            .post(&self.url)
            .header("x-api-key", key)
            .header("anthropic-version", API_VERSION)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }
}

/// The `cache_control` marker of a breakpoint.
#[derive(Serialize)]
struct Ephemeral {
    #[serde(rename = "type")]
    kind: &'static str,
}

const EPHEMERAL: Ephemeral = Ephemeral { kind: "ephemeral" };

/// The request body as borrowed wire structs: serialised straight to bytes,
/// it costs no copy of the tools' schemas or the history per turn (building a
/// `Value` first was a tenth of a persona-tick's CPU; BENCHMARKS.md).
/// Field order is the JSON key order.
#[derive(Serialize)]
struct WireBody<'a> {
    model: &'a str,
    max_tokens: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<[WireBlock<'a>; 1]>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: Vec<WireTool<'a>>,
    messages: Vec<WireMessage<'a>>,
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<Ephemeral>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<WireBlock<'a>>,
}

/// Every block kind in one struct: each kind sets its own fields, in the
/// order the API documents them.
#[derive(Serialize, Default)]
struct WireBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_use_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<Ephemeral>,
}

fn wire_block(b: &Block) -> Option<WireBlock<'_>> {
    Some(match b {
        // The API rejects empty text blocks, and they carry nothing.
        Block::Text { text } if text.is_empty() => return None,
        Block::Text { text } => WireBlock {
            kind: "text",
            text: Some(text),
            ..WireBlock::default()
        },
        Block::ToolUse { id, name, input } => WireBlock {
            kind: "tool_use",
            id: Some(id),
            name: Some(name),
            input: Some(input),
            ..WireBlock::default()
        },
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => WireBlock {
            kind: "tool_result",
            tool_use_id: Some(tool_use_id),
            content: Some(content),
            is_error: is_error.then_some(true),
            ..WireBlock::default()
        },
    })
}

/// The cache breakpoints: the last tool, the system block, and the newest
/// block of the last message (three; the API allows four). The last one is
/// set on turn 1 too: the day's first user message is then written once
/// (1.25×) and read on turn 2 (0.1×), instead of billed uncached on turn 1
/// and written on turn 2 (2.25× in all; BENCHMARKS.md §5). A prefix below the
/// model's minimum, such as the rating turn's, is simply not cached, at no
/// charge.
fn wire_body<'a>(model: &'a str, req: &'a ChatRequest) -> WireBody<'a> {
    let system = (!req.system.is_empty()).then(|| {
        [WireBlock {
            kind: "text",
            text: Some(&req.system),
            cache_control: Some(EPHEMERAL),
            ..WireBlock::default()
        }]
    });
    let mut tools: Vec<WireTool<'a>> = req
        .tools
        .iter()
        .map(|t| WireTool {
            name: &t.name,
            description: &t.description,
            input_schema: &t.input_schema,
            cache_control: None,
        })
        .collect();
    if let Some(last) = tools.last_mut() {
        last.cache_control = Some(EPHEMERAL);
    }
    let mut messages: Vec<WireMessage<'a>> = req
        .messages
        .iter()
        .map(|m| WireMessage {
            role: match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
            content: m.content.iter().filter_map(wire_block).collect(),
        })
        .collect();
    if let Some(last_block) = messages.last_mut().and_then(|m| m.content.last_mut()) {
        last_block.cache_control = Some(EPHEMERAL);
    }
    WireBody {
        model,
        max_tokens: req.max_tokens,
        stream: true,
        system,
        tools,
        messages,
    }
}

/// The request body for `req`, serialised once: retries resend these bytes.
pub fn body_bytes(model: &str, req: &ChatRequest) -> bytes::Bytes {
    serde_json::to_vec(&wire_body(model, req))
        .expect("the wire body is plain JSON")
        .into()
}

impl LlmClient for AnthropicClient {
    fn provider(&self) -> &'static str {
        super::sse::ANTHROPIC
    }

    fn model(&self) -> &str {
        &self.cfg.model
    }

    fn complete<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        let body = body_bytes(&self.cfg.model, req);
        transport::complete(
            super::sse::ANTHROPIC,
            &self.cfg.retry,
            &self.url,
            Wire::Anthropic,
            move || self.request(body.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Message, ToolSpec};
    use serde_json::json;

    fn markers(v: &Value) -> usize {
        match v {
            Value::Object(o) => {
                o.contains_key("cache_control") as usize + o.values().map(markers).sum::<usize>()
            }
            Value::Array(a) => a.iter().map(markers).sum(),
            _ => 0,
        }
    }

    fn req(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            system: "sys".into(),
            messages,
            tools: vec![
                ToolSpec {
                    name: "a".into(),
                    description: "".into(),
                    input_schema: json!({"type":"object"}).into(),
                },
                ToolSpec {
                    name: "b".into(),
                    description: "".into(),
                    input_schema: json!({"type":"object"}).into(),
                },
            ],
            max_tokens: 100,
        }
    }

    /// The body as JSON, parsed from the bytes that go on the wire.
    fn build_body(model: &str, req: &ChatRequest) -> Value {
        serde_json::from_slice(&body_bytes(model, req)).unwrap()
    }

    #[test]
    fn first_turn_marks_tools_system_and_the_user_message() {
        let b = build_body("m", &req(vec![Message::user_text("hi")]));
        assert_eq!(markers(&b), 3);
        assert!(
            b["messages"][0]["content"][0]
                .get("cache_control")
                .is_some()
        );
        assert!(b["tools"][1].get("cache_control").is_some());
        assert!(b["tools"][0].get("cache_control").is_none());
        assert!(b["system"][0].get("cache_control").is_some());
    }

    #[test]
    fn later_turn_marks_newest_non_empty_block() {
        let b = build_body(
            "m",
            &req(vec![
                Message::user_text("hi"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Block::ToolUse {
                            id: "t".into(),
                            name: "a".into(),
                            input: json!({}),
                        },
                        Block::Text { text: "".into() },
                    ],
                },
            ]),
        );
        assert_eq!(markers(&b), 3);
        let last = &b["messages"][1]["content"];
        assert_eq!(last.as_array().unwrap().len(), 1, "empty text dropped");
        assert!(last[0].get("cache_control").is_some());
    }

    #[test]
    fn bytes_on_the_wire_keep_the_documented_key_order() {
        let r = req(vec![
            Message::user_text("hi"),
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolUse {
                    id: "t1".into(),
                    name: "a".into(),
                    input: json!({"z": 1, "a": 2}),
                }],
            },
            Message {
                role: Role::User,
                content: vec![Block::ToolResult {
                    tool_use_id: "t1".into(),
                    content: "bad".into(),
                    is_error: true,
                }],
            },
        ]);
        let text = String::from_utf8(body_bytes("m", &r).to_vec()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"model":"m","max_tokens":100,"stream":true,"#,
                r#""system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],"#,
                r#""tools":[{"name":"a","description":"","input_schema":{"type":"object"}},"#,
                r#"{"name":"b","description":"","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],"#,
                r#""messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},"#,
                r#"{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"a","input":{"z":1,"a":2}}]},"#,
                r#"{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"bad","is_error":true,"cache_control":{"type":"ephemeral"}}]}]}"#,
            )
        );
    }
}
