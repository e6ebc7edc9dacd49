//! OpenAI-compatible chat completions (`POST {base}/chat/completions`),
//! streamed: OpenAI itself, Ollama, vLLM, LM Studio and the like.
//!
//! The provider-neutral blocks map onto `tool_calls` on assistant messages and
//! one `role: "tool"` message per result.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::transport::{self, Wire};
use super::{Block, ChatRequest, ChatResponse, LlmClient, LlmError, Role};
use crate::http::RetryPolicy;

/// OpenAI-compatible settings. `max_tokens` comes with each [`ChatRequest`].
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Includes `/v1`, e.g. `http://localhost:11434/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; local servers often need none.
    pub api_key: Option<SecretString>,
    pub model: String,
    pub retry: RetryPolicy,
}

/// The OpenAI-compatible provider behind [`LlmClient`].
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    cfg: OpenAiConfig,
    url: String,
}

impl OpenAiClient {
    /// Takes the shared client (timeouts, pool) and the provider settings.
    pub fn new(http: reqwest::Client, cfg: OpenAiConfig) -> Self {
        let url = crate::http::join(&cfg.base_url, "chat/completions");
        OpenAiClient { http, cfg, url }
    }

    fn request(&self, body: bytes::Bytes) -> reqwest::RequestBuilder {
        let mut rb = self
            .http
            .post(&self.url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.cfg.api_key {
            let mut v =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .unwrap_or_else(|_| {
                        reqwest::header::HeaderValue::from_static("Bearer invalid-key")
                    });
            v.set_sensitive(true);
            rb = rb.header(reqwest::header::AUTHORIZATION, v);
        }
        rb
    }
}

/// The request body for `req`. Uses `max_tokens` (not
/// `max_completion_tokens`) because compatible servers such as Ollama and
/// vLLM understand it.
pub fn build_body(model: &str, req: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system}));
    }
    for m in &req.messages {
        let text: Vec<&str> = m
            .content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } if !text.is_empty() => Some(text.as_str()),
                _ => None,
            })
            .collect();
        match m.role {
            Role::User => {
                // Tool results first (they answer the previous assistant turn),
                // then any text as a user message.
                for b in &m.content {
                    if let Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } = b
                    {
                        let content = if *is_error {
                            format!("ERROR: {content}")
                        } else {
                            content.clone()
                        };
                        messages.push(
                            json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}),
                        );
                    }
                }
                if !text.is_empty() {
                    messages.push(json!({"role": "user", "content": text.join("\n\n")}));
                }
            }
            Role::Assistant => {
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input } => Some(json!({
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": input.to_string()},
                        })),
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({
                    "role": "assistant",
                    "content": if text.is_empty() { Value::Null } else { json!(text.join("\n\n")) },
                });
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
        }
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": req.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema,
                }})
            })
            .collect();
    }
    body
}

impl LlmClient for OpenAiClient {
    fn provider(&self) -> &'static str {
        super::sse::OPENAI
    }

    fn model(&self) -> &str {
        &self.cfg.model
    }

    fn complete<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        // Serialised once: the value is freed before the (long) wait on the
        // model, and retries resend the same bytes.
        let body: bytes::Bytes = serde_json::to_vec(&build_body(&self.cfg.model, req))
            .expect("a JSON value always serialises")
            .into();
        transport::complete(
            super::sse::OPENAI,
            &self.cfg.retry,
            &self.url,
            Wire::OpenAi,
            move || self.request(body.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;

    #[test]
    fn maps_tool_calls_and_results() {
        let req = ChatRequest {
            system: "sys".into(),
            messages: vec![
                Message::user_text("hi"),
                Message {
                    role: Role::Assistant,
                    content: vec![Block::ToolUse {
                        id: "c1".into(),
                        name: "f".into(),
                        input: json!({"b": 1, "a": 2}),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "c1".into(),
                        content: "boom".into(),
                        is_error: true,
                    }],
                },
            ],
            tools: vec![],
            max_tokens: 10,
        };
        let b = build_body("m", &req);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system");
        assert_eq!(
            msgs[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"b":1,"a":2}"#
        );
        assert_eq!(msgs[3]["role"], "tool");
        assert_eq!(msgs[3]["content"], "ERROR: boom");
        assert!(b.get("tools").is_none());
        assert_eq!(b["stream_options"]["include_usage"], true);
    }
}
