//! The MCP client: one persona's session with the product's tools over
//! Streamable HTTP. This module is the only home of rmcp types; the rest of the
//! crate sees [`McpSession`], [`ToolInfo`] and [`ToolOutcome`].

mod result;
mod shared;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::http::RetryPolicy;
use wire::{Endpoint, Failure, Reply, SessionHeaders};
/// The header names, for `conformance`'s raw probes.
pub use wire::{PROTOCOL_HEADER, SESSION_HEADER, SPACE_HEADER};

/// Where and how to talk MCP.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// Base URL of mana-mcp; the endpoint is `{base}/mcp`.
    pub base_url: String,
    /// Bounds the whole handshake (initialize + initialized, retries
    /// included), at connect and at every re-initialization.
    pub connect_timeout: Duration,
    /// Per request (initialize, tools/list page, tools/call).
    pub call_timeout: Duration,
    /// Tool results longer than this many bytes are cut before the LLM sees them.
    pub result_cap_bytes: usize,
    /// Backoff for transient failures: on initialize and tools/list every
    /// transient one (connection errors, 408, 429, 5xx, 529); on tools/call
    /// only answers that say the server did not run the call (429, 502, 503,
    /// 504, 529).
    pub retry: RetryPolicy,
}

/// A tool as the server lists it (MCP name, with dots).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    /// Shared by every persona that listed the same tool ([`shared`]).
    pub description: Arc<str>,
    pub input_schema: Arc<Value>,
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

/// Why an MCP operation failed. Tool failures are not here: they are
/// `Ok(ToolOutcome { is_error: true, .. })` because the model must see them.
/// No variant ever carries the JWT.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The server answered with a non-2xx status (body cut to ~300 chars).
    #[error("MCP {op} at {path}: HTTP {status}: {body}")]
    Status {
        op: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    /// No usable answer: connection failed, or the body was not MCP.
    #[error("MCP {op} at {path}: {message}")]
    Transport {
        op: &'static str,
        path: String,
        message: String,
    },
    /// The op did not finish within its configured time.
    #[error("MCP {op}: timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    /// A JSON-RPC error on initialize or tools/list (on tools/call it is a
    /// tool failure instead).
    #[error("MCP {op}: JSON-RPC error {code}: {message}")]
    Rpc {
        op: &'static str,
        code: i64,
        message: String,
    },
}

impl McpError {
    /// HTTP 401: the server refused the bearer (an expired or rejected JWT).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, McpError::Status { status: 401, .. })
    }
}

/// The protocol revision we ask for; the recorded TypeScript SDK server and
/// rmcp both speak it, and it is the newest one with sessions and `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Revisions whose wire format this client handles (answers to initialize).
const KNOWN_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// A server that keeps handing out cursors is broken; stop after this many pages.
const MAX_PAGES: usize = 100;

/// Statuses that say "the server did not run this"; safe to send again.
fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504 | 529)
}

/// Which failures a request may be retried on.
#[derive(Clone, Copy)]
enum Retry {
    /// initialize, initialized, tools/list: idempotent, so connection errors too.
    Idempotent,
    /// tools/call: only answers that prove the call did not run.
    CallSafe,
}

impl Retry {
    fn allows(self, f: &Failure) -> bool {
        match self {
            // Sending these again changes nothing on the server, so every
            // transient status is worth another try — 500 included (a gateway
            // or a restarting server answers it for a moment).
            Retry::Idempotent => {
                f.status.is_some_and(crate::http::is_transient_status) || f.connection
            }
            Retry::CallSafe => f.status.is_some_and(is_retryable_status),
        }
    }
}

/// The session headers, and a generation that counts re-initializations so
/// concurrent calls that all saw the same 404 re-initialize only once.
struct SessionState {
    headers: SessionHeaders,
    generation: u64,
}

/// An open session. Cheap to share by reference across concurrent tool calls.
pub struct McpSession {
    ep: Endpoint,
    cfg: McpConfig,
    state: tokio::sync::Mutex<SessionState>,
    next_id: AtomicI64,
}

impl std::fmt::Debug for McpSession {
    /// Shows where and which space, never the JWT.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("url", &crate::http::redact_url(&self.ep.url))
            .field("space", &self.ep.space)
            .finish_non_exhaustive()
    }
}

impl McpSession {
    /// initialize → `notifications/initialized`, carrying `Authorization: Bearer
    /// <jwt>` and `X-Mana-Space: <space_id>` on every request.
    pub async fn connect(
        cfg: &McpConfig,
        http: reqwest::Client,
        jwt: &SecretString,
        space_id: &str,
    ) -> Result<Self, McpError> {
        let url = crate::http::join(&cfg.base_url, "/mcp");
        let session = McpSession {
            ep: Endpoint {
                http,
                path: crate::http::path_of(&url),
                url,
                jwt: jwt.clone(),
                space: space_id.to_string(),
            },
            cfg: cfg.clone(),
            state: tokio::sync::Mutex::new(SessionState {
                headers: SessionHeaders::default(),
                generation: 0,
            }),
            next_id: AtomicI64::new(1),
        };
        let headers = session.handshake().await?;
        session.state.lock().await.headers = headers;
        Ok(session)
    }

    /// Every tool, following `nextCursor` until it is absent.
    pub async fn list_tools(&self) -> Result<Vec<ToolInfo>, McpError> {
        let op = "tools/list";
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let msg = self
                .request(op, "tools/list", params, Retry::Idempotent)
                .await?;
            let result = rpc_result(op, &msg)?;
            for t in result
                .get("tools")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let Some(name) = t.get("name").and_then(Value::as_str) else {
                    tracing::warn!(path = %self.ep.path, "tools/list: a tool without a name was skipped");
                    continue;
                };
                let (description, input_schema) = shared::intern(t);
                tools.push(ToolInfo {
                    name: name.to_string(),
                    description,
                    input_schema,
                });
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_string()),
                Some(_) => {
                    return Err(McpError::Transport {
                        op,
                        path: self.ep.path.clone(),
                        message: "server repeated the same nextCursor".into(),
                    });
                }
                None => return Ok(tools),
            }
        }
        Err(McpError::Transport {
            op,
            path: self.ep.path.clone(),
            message: format!("more than {MAX_PAGES} pages of tools"),
        })
    }

    /// One `tools/call`. `Ok` with `is_error: true` is a tool failure the model
    /// should see; `Err` is a transport/protocol failure.
    pub async fn call_tool(
        &self,
        name: &str,
        args: Map<String, Value>,
    ) -> Result<ToolOutcome, McpError> {
        let params = json!({ "name": name, "arguments": Value::Object(args) });
        let msg = self
            .request("tools/call", "tools/call", params, Retry::CallSafe)
            .await?;
        let cap = self.cfg.result_cap_bytes;
        if let Some(err) = msg.get("error") {
            let (code, message) = rpc_error_parts(err);
            return Ok(result::outcome_from_rpc_error(code, &message, cap));
        }
        Ok(result::outcome_from_result(
            msg.get("result").unwrap_or(&Value::Null),
            cap,
        ))
    }

    /// DELETE the session. Errors are logged, never returned: closing is best
    /// effort. By reference: a persona-tick holds its sessions shared with
    /// the tool calls, and closes each once they are done.
    pub async fn close(&self) {
        match self.end().await {
            Ok(None) => {} // a stateless server: nothing to end
            Ok(Some(s)) if (200..300).contains(&s) || s == 404 || s == 405 => {
                tracing::debug!(path = %self.ep.path, status = s, "MCP session closed");
            }
            Ok(Some(s)) => {
                tracing::warn!(path = %self.ep.path, status = s, "MCP session DELETE refused")
            }
            Err(e) => tracing::warn!(path = %self.ep.path, error = %e, "MCP session DELETE failed"),
        }
    }

    /// DELETE the session and say how the server answered: `None` when the
    /// server gave no session id (stateless), else the status (`doctor`
    /// shows it; [`McpSession::close`] only logs it).
    pub async fn end(&self) -> Result<Option<u16>, String> {
        let headers = self.state.lock().await.headers.clone();
        if headers.session_id.is_none() {
            return Ok(None);
        }
        self.ep
            .delete(&headers, self.cfg.call_timeout)
            .await
            .map(Some)
    }

    fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// initialize (no session header) → `notifications/initialized` with the
    /// new session's headers, all within `connect_timeout`.
    async fn handshake(&self) -> Result<SessionHeaders, McpError> {
        let after = self.cfg.connect_timeout;
        match tokio::time::timeout(after, self.handshake_inner()).await {
            Ok(r) => r,
            Err(_) => Err(McpError::Timeout {
                op: "initialize",
                after,
            }),
        }
    }

    async fn handshake_inner(&self) -> Result<SessionHeaders, McpError> {
        let op = "initialize";
        let none = SessionHeaders::default();
        let (reply, _) = self
            .with_retry(op, Retry::Idempotent, || {
                let body = json!({
                    "jsonrpc": "2.0",
                    "id": self.next_id(),
                    "method": "initialize",
                    "params": {
                        "protocolVersion": PROTOCOL_VERSION,
                        "capabilities": {},
                        "clientInfo": {"name": "mana-personas", "version": env!("CARGO_PKG_VERSION")},
                    },
                });
                let id = body["id"].as_i64();
                let none = &none;
                async move {
                    self.ep
                        .post(op, &body, id, none, self.cfg.call_timeout)
                        .await
                }
            })
            .await?;
        let Reply::Message {
            message,
            session_id,
        } = reply
        else {
            unreachable!("post with an id returns a message or fails")
        };
        let result = rpc_result(op, &message)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(PROTOCOL_VERSION);
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(McpError::Transport {
                op,
                path: self.ep.path.clone(),
                message: format!(
                    "server chose protocol version {version}, which this client does not speak"
                ),
            });
        }
        let headers = SessionHeaders {
            session_id,
            protocol_version: Some(version.to_string()),
        };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.with_retry("notifications/initialized", Retry::Idempotent, || {
            self.ep.post(
                "notifications/initialized",
                &note,
                None,
                &headers,
                self.cfg.call_timeout,
            )
        })
        .await?;
        Ok(headers)
    }

    /// Runs `attempt` under the configured retry policy, logging each retry.
    async fn with_retry<T, F, Fut>(
        &self,
        op: &'static str,
        rule: Retry,
        attempt: F,
    ) -> Result<(T, u32), McpError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        self.cfg
            .retry
            .run(
                attempt,
                |f: &Failure| rule.allows(f),
                |f: &Failure| f.retry_after,
                |f: &Failure, wait| {
                    tracing::warn!(op, path = %self.ep.path, error = %f.error, ?wait, "MCP request failed; retrying");
                },
            )
            .await
            .map_err(|(f, _)| f.error)
    }

    /// One JSON-RPC request with retries; a 404 on a stale session
    /// re-initializes and sends the request once more.
    async fn request(
        &self,
        op: &'static str,
        method: &str,
        params: Value,
        rule: Retry,
    ) -> Result<Value, McpError> {
        let (msg, _) = self
            .with_retry(op, rule, || self.request_once(op, method, &params))
            .await?;
        Ok(msg)
    }

    async fn request_once(
        &self,
        op: &'static str,
        method: &str,
        params: &Value,
    ) -> Result<Value, Failure> {
        let (headers, generation) = {
            let st = self.state.lock().await;
            (st.headers.clone(), st.generation)
        };
        match self.send(op, method, params, &headers).await {
            Err(f) if f.expired => {
                tracing::info!(op, path = %self.ep.path, "MCP session expired (HTTP 404); re-initializing");
                let headers = self
                    .reinitialize(generation)
                    .await
                    .map_err(Failure::plain)?;
                self.send(op, method, params, &headers).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        op: &'static str,
        method: &str,
        params: &Value,
        headers: &SessionHeaders,
    ) -> Result<Value, Failure> {
        let id = self.next_id();
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        match self
            .ep
            .post(op, &body, Some(id), headers, self.cfg.call_timeout)
            .await?
        {
            Reply::Message { message, .. } => Ok(message),
            Reply::Accepted => unreachable!("post with an id returns a message or fails"),
        }
    }

    /// Re-initializes unless another call already did since `seen_generation`;
    /// returns the headers to use now.
    async fn reinitialize(&self, seen_generation: u64) -> Result<SessionHeaders, McpError> {
        let mut st = self.state.lock().await;
        if st.generation == seen_generation {
            st.headers = self.handshake().await?;
            st.generation += 1;
        }
        Ok(st.headers.clone())
    }
}

/// The `result` of a response, or its JSON-RPC error as [`McpError::Rpc`].
fn rpc_result<'a>(op: &'static str, msg: &'a Value) -> Result<&'a Value, McpError> {
    if let Some(err) = msg.get("error") {
        let (code, message) = rpc_error_parts(err);
        return Err(McpError::Rpc { op, code, message });
    }
    Ok(msg.get("result").unwrap_or(&Value::Null))
}

fn rpc_error_parts(err: &Value) -> (i64, String) {
    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    (
        code,
        crate::http::cut(message, crate::http::ERROR_BODY_CHARS),
    )
}
