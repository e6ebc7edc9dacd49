//! Anthropic Messages (`POST {base}/v1/messages`), streamed, with prompt
//! caching breakpoints placed so a persona's day re-reads its tools, system
//! prompt and history from the cache instead of paying for them every turn.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::transport::{self, Wire};
use super::{Block, ChatRequest, ChatResponse, LlmClient, LlmError, Role};
use crate::http::RetryPolicy;

/// A current Sonnet-class model: good tool use at a price a daily persona run
/// can afford.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

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
        let url = crate::platform::join(&cfg.base_url, "v1/messages");
        AnthropicClient { http, cfg, url }
    }

    fn request(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut key = reqwest::header::HeaderValue::from_str(self.cfg.api_key.expose_secret())
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid-key"));
        key.set_sensitive(true);
        self.http
            .post(&self.url)
            .header("x-api-key", key)
            .header("anthropic-version", API_VERSION)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(body)
    }
}

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

fn block_json(b: &Block) -> Option<Value> {
    match b {
        // The API rejects empty text blocks, and they carry nothing.
        Block::Text { text } if text.is_empty() => None,
        Block::Text { text } => Some(json!({"type": "text", "text": text})),
        Block::ToolUse { id, name, input } => {
            Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
        }
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut o =
                json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
            if *is_error {
                o["is_error"] = Value::Bool(true);
            }
            Some(o)
        }
    }
}

/// The request body for `req`, including cache breakpoints: the last tool,
/// the system block, and from turn 2 on the newest block of the last message
/// (three at most; the API allows four).
pub fn build_body(model: &str, req: &ChatRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    body.insert("stream".into(), json!(true));
    if !req.system.is_empty() {
        body.insert(
            "system".into(),
            json!([{"type": "text", "text": req.system, "cache_control": ephemeral()}]),
        );
    }
    if !req.tools.is_empty() {
        let mut tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
        if let Some(last) = tools.last_mut() {
            last["cache_control"] = ephemeral();
        }
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let content: Vec<Value> = m.content.iter().filter_map(block_json).collect();
            json!({"role": role, "content": content})
        })
        .collect();
    if messages.len() > 1
        && let Some(last_block) = messages
            .last_mut()
            .and_then(|m| m["content"].as_array_mut())
            .and_then(|c| c.last_mut())
    {
        last_block["cache_control"] = ephemeral();
    }
    body.insert("messages".into(), Value::Array(messages));
    Value::Object(body)
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
        let body = build_body(&self.cfg.model, req);
        transport::complete(
            super::sse::ANTHROPIC,
            &self.cfg.retry,
            &self.url,
            Wire::Anthropic,
            move || self.request(&body),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Message, ToolSpec};

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
                    input_schema: json!({"type":"object"}),
                },
                ToolSpec {
                    name: "b".into(),
                    description: "".into(),
                    input_schema: json!({"type":"object"}),
                },
            ],
            max_tokens: 100,
        }
    }

    #[test]
    fn first_turn_has_two_markers() {
        let b = build_body("m", &req(vec![Message::user_text("hi")]));
        assert_eq!(markers(&b), 2);
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
    fn secrets_stay_out_of_debug_and_errors() {
        let key = "sk-ant-DISTINCTIVE-7f3a9c";
        let client = AnthropicClient::new(
            reqwest::Client::new(),
            AnthropicConfig {
                base_url: "http://127.0.0.1:9".into(),
                api_key: SecretString::from(key),
                model: DEFAULT_MODEL.into(),
                retry: RetryPolicy::NONE,
            },
        );
        assert!(!format!("{client:?}").contains(key));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(client.complete(&req(vec![Message::user_text("hi")])))
            .unwrap_err();
        assert!(!format!("{err}").contains(key));
        assert!(!format!("{err:?}").contains(key));
    }
}
