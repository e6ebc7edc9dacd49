//! One Streamable HTTP exchange: POST a JSON-RPC message, read the answer as
//! JSON or as SSE, classify failures.
//!
//! Why by hand on reqwest and not rmcp's `StreamableHttpClientTransport`: the
//! brief needs (a) the HTTP status *and* a cut body in errors — rmcp maps 401
//! and 403 to `AuthRequired`/`InsufficientScope` and other 4xx to strings, so a
//! caller cannot tell "401 wrong token" from a protocol error; (b) our own
//! `RetryPolicy` per request, with different rules for `tools/call` than for
//! `initialize`/`tools/list` — rmcp's worker has no per-request retry hook;
//! (c) a per-request timeout mapped to `McpError::Timeout`. The protocol part
//! is small (§3 of wire-facts.md), so owning it is cheaper than bending the
//! worker. rmcp still serves the sandbox side, and the recorded TypeScript-SDK
//! exchanges test this client against a non-rmcp server.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::McpError;
use crate::http::{ERROR_BODY_CHARS, cut, describe_reqwest, parse_retry_after};

/// Header names as the spec spells them (HTTP headers are case-insensitive).
pub const SESSION_HEADER: &str = "mcp-session-id";
pub const PROTOCOL_HEADER: &str = "mcp-protocol-version";
pub const SPACE_HEADER: &str = "x-mana-space";

/// What every request of one session carries.
pub struct Endpoint {
    pub http: reqwest::Client,
    pub url: String,
    pub path: String,
    pub jwt: SecretString,
    pub space: String,
}

/// The session headers of one request: none on initialize.
#[derive(Clone, Default)]
pub struct SessionHeaders {
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
}

/// A successful exchange.
pub enum Reply {
    /// 202: a notification was accepted.
    Accepted,
    /// The JSON-RPC response to our request, and the session id header if the
    /// server sent one.
    Message {
        message: Value,
        session_id: Option<String>,
    },
}

/// A failed exchange, with what the retry and re-init logic needs to decide.
pub struct Failure {
    pub error: McpError,
    /// 404 on a request that carried a session id: re-initialize.
    pub expired: bool,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// No answer at all (connection refused, reset).
    pub connection: bool,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub(super) fn plain(error: McpError) -> Self {
        Failure {
            error,
            expired: false,
            status: None,
            connection: false,
            retry_after: None,
        }
    }
}

impl Endpoint {
    fn request(
        &self,
        method: reqwest::Method,
        headers: &SessionHeaders,
    ) -> reqwest::RequestBuilder {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.jwt.expose_secret()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        auth.set_sensitive(true);
        let mut rb = self
            .http
            .request(method, &self.url)
            .header(AUTHORIZATION, auth)
            .header(SPACE_HEADER, &self.space)
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(id) = &headers.session_id {
            rb = rb.header(SESSION_HEADER, id);
        }
        if let Some(v) = &headers.protocol_version {
            rb = rb.header(PROTOCOL_HEADER, v);
        }
        rb
    }

    /// POSTs `body`; if it is a request (`expect_id`), waits for the response
    /// with that id. The whole exchange, body included, is bounded by `timeout`.
    pub async fn post(
        &self,
        op: &'static str,
        body: &Value,
        expect_id: Option<i64>,
        headers: &SessionHeaders,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        match tokio::time::timeout(timeout, self.post_inner(op, body, expect_id, headers)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::plain(McpError::Timeout { op, after: timeout })),
        }
    }

    async fn post_inner(
        &self,
        op: &'static str,
        body: &Value,
        expect_id: Option<i64>,
        headers: &SessionHeaders,
    ) -> Result<Reply, Failure> {
        let resp = self
            .request(reqwest::Method::POST, headers)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.transport(op, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(resp.headers());
            let text = crate::http::error_text(resp).await;
            return Err(Failure {
                error: McpError::Status {
                    op,
                    path: self.path.clone(),
                    status: status.as_u16(),
                    body: cut(&crate::redact::redact(&text), ERROR_BODY_CHARS),
                },
                expired: status == reqwest::StatusCode::NOT_FOUND && headers.session_id.is_some(),
                status: Some(status.as_u16()),
                connection: false,
                retry_after,
            });
        }
        let session_id = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(id) = expect_id else {
            // A notification: 202 (or any 2xx) with nothing we need to read.
            return Ok(Reply::Accepted);
        };
        if status == reqwest::StatusCode::ACCEPTED {
            return Err(self.bad(op, "HTTP 202 without a response to a request".into()));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let message = if content_type.starts_with("text/event-stream") {
            self.read_sse(op, resp, id).await?
        } else {
            let text = match crate::http::read_body(resp, crate::http::MAX_BODY_BYTES).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(crate::http::BodyError::Transport(e)) => return Err(self.transport(op, &e)),
                Err(too_large) => return Err(self.bad(op, too_large.to_string())),
            };
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                self.bad(
                    op,
                    format!(
                        "response is not JSON ({e}): {}",
                        cut(&text, ERROR_BODY_CHARS)
                    ),
                )
            })?;
            // A 2025-03-26 server may answer with a batch array.
            match v {
                Value::Array(items) => items
                    .into_iter()
                    .find(|m| is_response_to(m, id))
                    .ok_or_else(|| self.bad(op, format!("no response with id {id} in batch")))?,
                other if is_response_to(&other, id) => other,
                other => {
                    return Err(self.bad(
                        op,
                        format!(
                            "response does not answer id {id}: {}",
                            cut(&other.to_string(), ERROR_BODY_CHARS)
                        ),
                    ));
                }
            }
        };
        Ok(Reply::Message {
            message,
            session_id,
        })
    }

    /// Reads `event: message` frames (or frames without a name) until the one
    /// answering `id`. Empty data (the 2025-11-25 priming event), server
    /// notifications and requests on the stream are skipped.
    async fn read_sse(
        &self,
        op: &'static str,
        resp: reqwest::Response,
        id: i64,
    ) -> Result<Value, Failure> {
        let mut events = std::pin::pin!(crate::sse::events(
            resp.bytes_stream(),
            crate::http::MAX_BODY_BYTES
        ));
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| self.bad(op, format!("broken SSE stream: {e}")))?;
            if !(ev.event.is_empty() || ev.event == "message") || ev.data.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
                self.bad(
                    op,
                    format!(
                        "SSE data is not JSON ({e}): {}",
                        cut(&ev.data, ERROR_BODY_CHARS)
                    ),
                )
            })?;
            if is_response_to(&v, id) {
                return Ok(v);
            }
        }
        Err(self.bad(
            op,
            format!("SSE stream ended without a response to id {id}"),
        ))
    }

    /// DELETE the session; the status is returned for logging only.
    pub async fn delete(&self, headers: &SessionHeaders, timeout: Duration) -> Result<u16, String> {
        let send = self.request(reqwest::Method::DELETE, headers).send();
        match tokio::time::timeout(timeout, send).await {
            Err(_) => Err(format!("timed out after {timeout:?}")),
            Ok(Err(e)) => Err(describe_reqwest(&e)),
            Ok(Ok(r)) => Ok(r.status().as_u16()),
        }
    }

    fn transport(&self, op: &'static str, e: &reqwest::Error) -> Failure {
        Failure {
            error: McpError::Transport {
                op,
                path: self.path.clone(),
                message: describe_reqwest(e),
            },
            expired: false,
            status: None,
            // Without a status line the server cannot have run anything we
            // could see; `is_connect` tells refused-before-sending apart.
            connection: true,
            retry_after: None,
        }
    }

    fn bad(&self, op: &'static str, message: String) -> Failure {
        Failure::plain(McpError::Transport {
            op,
            path: self.path.clone(),
            message,
        })
    }
}

fn is_response_to(m: &Value, id: i64) -> bool {
    let same_id = match m.get("id") {
        Some(Value::Number(n)) => n.as_i64() == Some(id),
        Some(Value::String(s)) => s == &id.to_string(),
        _ => false,
    };
    same_id && (m.get("result").is_some() || m.get("error").is_some())
}
