//! What both providers share on the wire: one streamed POST per attempt, the
//! provider's own error message out of a non-2xx body, and the retry loop that
//! decides which failures are worth another attempt.
//!
//! Why shared: the two APIs differ in body and stream shape, not in how a
//! 529, a reset connection or an `overloaded_error` after a 200 must be
//! handled; one copy of that logic keeps them from drifting apart.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::sse::RETRYABLE_STREAM_KINDS;
use super::{ChatResponse, LlmError};
use crate::http::{ERROR_BODY_CHARS, RetryPolicy, cut, describe_reqwest, is_transient_status};

/// One failed attempt plus the server's `retry-after`, which [`LlmError`]
/// does not carry (the runner has no use for it after the retries).
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub err: LlmError,
    pub retry_after: Option<Duration>,
}

impl From<LlmError> for AttemptError {
    fn from(err: LlmError) -> Self {
        AttemptError {
            err,
            retry_after: None,
        }
    }
}

/// Connection failures, transient statuses and mid-stream overload/API errors
/// (and cut streams) are retried; everything else fails at once.
pub(crate) fn is_retryable(e: &LlmError) -> bool {
    match e {
        LlmError::Connect { .. } => true,
        LlmError::Status { status, .. } => is_transient_status(*status),
        LlmError::Stream { kind, .. } => RETRYABLE_STREAM_KINDS.contains(&kind.as_str()),
        LlmError::RetriesExhausted { .. } => false,
    }
}

/// The provider's own message from an error body: `error.message` (both
/// APIs), else `message`, else `error` as a string, else the raw body; cut.
pub(crate) fn provider_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let msg = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .and_then(Value::as_str)
            .or_else(|| v.get("message").and_then(Value::as_str))
            .or_else(|| v.get("error").and_then(Value::as_str))
            .map(str::to_string)
    });
    let msg = msg.unwrap_or_else(|| body.to_string());
    if msg.trim().is_empty() {
        "(empty body)".to_string()
    } else {
        cut(&crate::redact::redact(&msg), ERROR_BODY_CHARS)
    }
}

/// Which stream decoder reads a 2xx body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wire {
    Anthropic,
    OpenAi,
}

/// One attempt: send, check the status, decode the stream.
async fn attempt(
    provider: &'static str,
    url: &str,
    wire: Wire,
    req: reqwest::RequestBuilder,
) -> Result<ChatResponse, AttemptError> {
    let resp = req.send().await.map_err(|e| LlmError::Connect {
        provider,
        url: crate::http::redact_url(url),
        message: describe_reqwest(&e),
    })?;
    let status = resp.status();
    if !status.is_success() {
        let retry_after = crate::http::parse_retry_after(resp.headers());
        let body = crate::http::error_text(resp).await;
        return Err(AttemptError {
            err: LlmError::Status {
                provider,
                path: crate::http::path_of(url),
                status: status.as_u16(),
                message: provider_message(&body),
            },
            retry_after,
        });
    }
    let bytes = resp.bytes_stream();
    let out = match wire {
        Wire::Anthropic => super::sse::read_anthropic(bytes).await,
        Wire::OpenAi => super::sse::read_openai(bytes).await,
    };
    out.map_err(AttemptError::from)
}

/// Runs attempts per `policy`. `build` makes a fresh request each time (same
/// body). Success reports the retries in [`ChatResponse::retries`]; a
/// retryable failure that outlived the budget is [`LlmError::RetriesExhausted`].
pub(crate) fn complete<'a>(
    provider: &'static str,
    policy: &'a RetryPolicy,
    url: &'a str,
    wire: Wire,
    build: impl Fn() -> reqwest::RequestBuilder + Send + Sync + 'a,
) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
    Box::pin(async move {
        let result = policy
            .run(
                || attempt(provider, url, wire, build()),
                |e: &AttemptError| is_retryable(&e.err),
                |e: &AttemptError| e.retry_after,
                |e, d| tracing::warn!(provider, error = %e.err, delay_ms = d.as_millis() as u64, "LLM call failed, retrying"),
            )
            .await;
        match result {
            Ok((mut resp, attempts)) => {
                resp.retries = attempts.saturating_sub(1);
                Ok(resp)
            }
            Err((e, attempts)) if is_retryable(&e.err) => Err(LlmError::RetriesExhausted {
                provider,
                attempts,
                last: Box::new(e.err),
            }),
            Err((e, _)) => Err(e.err),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_message_shapes() {
        assert_eq!(
            provider_message(r#"{"type":"error","error":{"type":"x","message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(provider_message(r#"{"error":"nope"}"#), "nope");
        assert_eq!(provider_message("plain text"), "plain text");
        assert_eq!(provider_message(""), "(empty body)");
        assert!(provider_message(&"x".repeat(1000)).chars().count() <= ERROR_BODY_CHARS + 1);
    }
}
