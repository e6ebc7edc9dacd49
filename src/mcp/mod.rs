//! The MCP client: one persona's session with the product's tools over
//! Streamable HTTP. This module is the only home of rmcp types; the rest of the
//! crate sees [`McpSession`], [`ToolInfo`] and [`ToolOutcome`].

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value};

/// Where and how to talk MCP.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// Base URL of mana-mcp; the endpoint is `{base}/mcp`.
    pub base_url: String,
    pub connect_timeout: Duration,
    /// Per request (initialize, tools/list page, tools/call).
    pub call_timeout: Duration,
    /// Tool results longer than this many bytes are cut before the LLM sees them.
    pub result_cap_bytes: usize,
}

/// A tool as the server lists it (MCP name, with dots).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// What one `tools/call` produced, ready to hand back to the LLM.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// `isError: true` from the server.
    pub is_error: bool,
    /// The text items joined with newlines (non-text items summarised), cut to
    /// the cap with a note saying so.
    pub text: String,
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP {op} at {path}: HTTP {status}: {body}")]
    Status {
        op: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    #[error("MCP {op} at {path}: {message}")]
    Transport {
        op: &'static str,
        path: String,
        message: String,
    },
    #[error("MCP {op}: timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("MCP {op}: JSON-RPC error {code}: {message}")]
    Rpc {
        op: &'static str,
        code: i64,
        message: String,
    },
}

/// An open session. Cheap to share by reference across concurrent tool calls.
pub struct McpSession {
    _private: (),
}

impl McpSession {
    /// initialize → `notifications/initialized`, carrying `Authorization: Bearer
    /// <jwt>` and `X-Mana-Space: <space_id>` on every request.
    pub async fn connect(
        _cfg: &McpConfig,
        _http: reqwest::Client,
        _jwt: &SecretString,
        _space_id: &str,
    ) -> Result<Self, McpError> {
        todo!("implemented by the MCP work")
    }

    /// Every tool, following `nextCursor` until it is absent.
    pub async fn list_tools(&self) -> Result<Vec<ToolInfo>, McpError> {
        todo!()
    }

    /// One `tools/call`. `Ok` with `is_error: true` is a tool failure the model
    /// should see; `Err` is a transport/protocol failure.
    pub async fn call_tool(
        &self,
        _name: &str,
        _args: Map<String, Value>,
    ) -> Result<ToolOutcome, McpError> {
        todo!()
    }

    /// DELETE the session. Errors are logged, never returned: closing is best effort.
    pub async fn close(self) {}
}
