//! The LLM seam: one provider-neutral conversation model and one trait, with two
//! hand-written providers (`anthropic`, `openai`) that stream over
//! reqwest + eventsource-stream.
//!
//! Why hand-written: no maintained Anthropic crate shares our reqwest major, and
//! owning the wire types keeps the protocol in one place (the sandbox has its own, so
//! the two sides check each other).
//! The runner only ever sees the types in this file; wire shapes live in the
//! provider modules.

pub mod anthropic;
pub mod models;
pub mod openai;
pub mod pricing;
pub mod sse;
mod transport;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool as the LLM sees it. `name` is already LLM-safe
/// (`^[a-zA-Z0-9_-]{1,64}$`); mapping to and from MCP names is the runner's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    /// Shared, like the schema: every persona offers the same tools
    /// (`mcp::shared`), and each holds them while it waits.
    pub description: Arc<str>,
    /// JSON Schema object (`{"type":"object", ...}`), passed through unchanged.
    pub input_schema: Arc<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One content block of a message. Mirrors Anthropic's block model because it is
/// the richer of the two; the OpenAI provider maps it onto `tool_calls` and
/// `role: "tool"` messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![Block::Text { text: text.into() }],
        }
    }
}

/// One model call. Providers add caching markers themselves (Anthropic: the last
/// tool, the system prompt, and the newest message block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub system: String,
    pub messages: Vec<Message>,
    /// Empty for the rating turn.
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    /// The output was cut. Tool calls of such a response are never run.
    MaxTokens,
    Other(String),
}

/// Token usage. `input` counts only the uncached part (Anthropic semantics); the
/// OpenAI provider reports `prompt_tokens - cached_tokens` there and
/// `cached_tokens` as `cache_read`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
    }
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text and tool_use blocks in the order the model produced them.
    pub content: Vec<Block>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// How many retries this call needed (for metrics and the ledger).
    pub retries: u32,
}

/// Why a model call failed, after retries. Messages never contain the API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{provider}: HTTP {status} from {path}: {message}")]
    Status {
        provider: &'static str,
        path: String,
        status: u16,
        /// The provider's own message, cut to ~300 chars.
        message: String,
    },
    #[error("{provider}: cannot reach {url}: {message}")]
    Connect {
        provider: &'static str,
        url: String,
        message: String,
    },
    #[error("{provider}: stream error ({kind}): {message}")]
    Stream {
        provider: &'static str,
        /// e.g. `overloaded_error`, `api_error`, `decode`, `eof`.
        kind: String,
        message: String,
    },
    #[error("{provider}: gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        provider: &'static str,
        attempts: u32,
        last: Box<LlmError>,
    },
}

impl LlmError {
    /// The metrics label of a failed call: the HTTP status, `connect`, or
    /// `stream` (bounded, so a label set cannot grow without limit).
    pub fn status_label(&self) -> String {
        match self {
            LlmError::Status { status, .. } => status.to_string(),
            LlmError::Connect { .. } => "connect".into(),
            LlmError::Stream { .. } => "stream".into(),
            LlmError::RetriesExhausted { last, .. } => last.status_label(),
        }
    }

    /// Retries spent before giving up.
    pub fn retries(&self) -> u32 {
        match self {
            LlmError::RetriesExhausted { attempts, .. } => attempts.saturating_sub(1),
            _ => 0,
        }
    }
}

/// The one seam between the runner and a model. Object-safe so the runner can
/// hold `Arc<dyn LlmClient>` chosen at start-up from configuration.
pub trait LlmClient: Send + Sync {
    /// `anthropic` or `openai` (metrics label, ledger).
    fn provider(&self) -> &'static str;
    /// The model id sent on the wire.
    fn model(&self) -> &str;
    /// One model call, streamed, retried on transient failures per the provider's
    /// [`crate::http::RetryPolicy`].
    fn complete<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>>;
}
