//! The runner's internal endpoints (service key): who is due, and where a
//! tick's action and feedback batches go.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::{join, send_json_paced, send_paced};
use crate::catalog::Cadence;
use crate::http::{HttpError, RetryPolicy};

/// apps/api layout; the older mana-auth layout is `/api/v1/internal/personas`.
pub const DEFAULT_PREFIX: &str = "/api/v1/personas/internal";
pub const LEGACY_PREFIX: &str = "/api/v1/internal/personas";

/// The server refuses an actions batch with more rows than this.
pub const MAX_ACTIONS_PER_BATCH: usize = 500;
/// The server refuses a feedback batch with more rows than this.
pub const MAX_FEEDBACK_PER_BATCH: usize = 100;

/// One persona of `GET /due`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DuePersona {
    pub user_id: String,
    pub email: String,
    #[serde(default)]
    pub archetype: String,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default)]
    pub module_mix: BTreeMap<String, f64>,
    #[serde(default)]
    pub tick_cadence: Option<String>,
    #[serde(default)]
    pub last_active_at: Option<String>,
}

impl DuePersona {
    /// Unknown or missing cadences count as `daily`, the contract's default.
    pub fn cadence(&self) -> Cadence {
        self.tick_cadence
            .as_deref()
            .and_then(Cadence::parse)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DueResponse {
    pub personas: Vec<DuePersona>,
    #[serde(default)]
    pub server_time: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionResult {
    Ok,
    Error,
}

/// One tool call, as the platform stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRow {
    pub tick_id: String,
    /// The MCP name, with its dot.
    pub tool_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_hash: Option<String>,
    pub result: ActionResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionsBatch {
    pub actions: Vec<ActionRow>,
}

/// One module rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackRow {
    pub tick_id: String,
    pub module: String,
    pub rating: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackBatch {
    pub feedback: Vec<FeedbackRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteResponse {
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub written: u64,
}

#[derive(Clone)]
pub struct InternalClient {
    http: reqwest::Client,
    root: String,
    key: SecretString,
    retry: RetryPolicy,
    /// The process's pacer for this apps/api (shared by every client of it).
    budget: Budget,
}

impl InternalClient {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        prefix: &str,
        key: SecretString,
        retry: RetryPolicy,
    ) -> Self {
        InternalClient {
            http,
            root: join(base, prefix).trim_end_matches('/').to_string(),
            key,
            retry,
            budget: Budget::for_url(base),
        }
    }

    /// The request budget this client draws from.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub async fn due(&self) -> Result<DueResponse, HttpError> {
        let url = format!("{}/due", self.root);
        send_json_paced(
            Some(&self.budget),
            &self.retry,
            "GET",
            &url,
            || {
                self.http
                    .get(&url)
                    .header("x-service-key", self.key.expose_secret())
            },
            HttpError::is_transient,
            |_, _| {},
        )
        .await
    }

    /// Posts one tick's actions in one request. The body is serialised once and
    /// every retry sends the same bytes: same tickId, same order, so the
    /// server's `{tickId}-{index}-{tool}` ids make retries harmless.
    pub async fn post_actions(
        &self,
        user_id: &str,
        batch: &ActionsBatch,
        on_retry: impl FnMut(&HttpError, Duration),
    ) -> Result<Option<WriteResponse>, HttpError> {
        self.post_bytes(
            &format!("/{}/actions", crate::http::id_segment("POST", user_id)?),
            serde_json::to_vec(batch).expect("serialisable"),
            on_retry,
        )
        .await
    }

    pub async fn post_feedback(
        &self,
        user_id: &str,
        batch: &FeedbackBatch,
        on_retry: impl FnMut(&HttpError, Duration),
    ) -> Result<Option<WriteResponse>, HttpError> {
        self.post_bytes(
            &format!("/{}/feedback", crate::http::id_segment("POST", user_id)?),
            serde_json::to_vec(batch).expect("serialisable"),
            on_retry,
        )
        .await
    }

    /// Posts a body that is already serialised (the outbox stores bytes).
    ///
    /// Any 2xx is success: the platform took the batch, whatever its body
    /// says. The contract's `{"ok": true, "written": n}` comes back as
    /// `Some`; an empty, non-JSON or cut-off 2xx body as `None` — never as
    /// an error, which would dead-letter rows the platform already stored.
    pub async fn post_bytes(
        &self,
        rest: &str,
        body: Vec<u8>,
        on_retry: impl FnMut(&HttpError, Duration),
    ) -> Result<Option<WriteResponse>, HttpError> {
        let url = format!("{}{}", self.root, rest);
        let body = bytes::Bytes::from(body);
        send_paced(
            Some(&self.budget),
            &self.retry,
            "POST",
            &url,
            || {
                self.http
                    .post(&url)
                    .header("x-service-key", self.key.expose_secret())
                    .header("content-type", "application/json")
                    .body(body.clone())
            },
            HttpError::is_transient,
            on_retry,
            |answer| Ok(answer.ok().and_then(|b| serde_json::from_slice(&b).ok())),
        )
        .await
    }
}
