//! The runner's internal endpoints (service key): who is due, and where a
//! tick's action and feedback batches go.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::{send_json_paced, send_paced};
use crate::catalog::Cadence;
use crate::http::join;
use crate::http::{HttpError, RetryPolicy};

/// apps/api layout; the older mana-auth layout is `/api/v1/internal/personas`.
pub const DEFAULT_PREFIX: &str = "/api/v1/personas/internal";
pub const LEGACY_PREFIX: &str = "/api/v1/internal/personas";

/// The header apps/api's internal endpoints read the service key from.
pub const SERVICE_KEY_HEADER: &str = "x-service-key";

/// The server refuses an actions batch with more rows than this (the number
/// lives in `config`, which bounds `MAX_TOOL_CALLS` by it).
pub const MAX_ACTIONS_PER_BATCH: usize = crate::config::MAX_TOOL_CALLS_CEILING as usize;
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

/// `GET /due`'s answer. Each entry is read on its own: one malformed entry
/// (a `null`, a missing `userId`, a wrong type) is set aside in `malformed`
/// with its index instead of failing the whole list, and so the whole tick.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DueResponse {
    pub personas: Vec<DuePersona>,
    pub server_time: Option<String>,
    /// Entries that are not a persona: (index in the list, why).
    #[serde(skip)]
    pub malformed: Vec<(usize, String)>,
}

impl<'de> Deserialize<'de> for DueResponse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            personas: Vec<serde_json::Value>,
            #[serde(default)]
            server_time: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        let mut personas = Vec::with_capacity(raw.personas.len());
        let mut malformed = Vec::new();
        for (i, entry) in raw.personas.into_iter().enumerate() {
            match serde_json::from_value::<DuePersona>(entry) {
                Ok(p) => personas.push(p),
                Err(e) => malformed.push((i, e.to_string())),
            }
        }
        Ok(DueResponse {
            personas,
            server_time: raw.server_time,
            malformed,
        })
    }
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

/// The path below the internal prefix that takes a persona's `kind` batch
/// (`actions` or `feedback`); refused for a persona id that is not a plain
/// id (see [`crate::http::id_segment`]).
pub fn batch_path(user_id: &str, kind: &str) -> Result<String, HttpError> {
    Ok(format!(
        "/{}/{kind}",
        crate::http::id_segment("POST", user_id)?
    ))
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

    /// `req` with the service key, marked sensitive like every other secret
    /// header (the bearer, the LLM keys): `Debug` of the request or its
    /// headers then prints `Sensitive`, and HTTP/2 never puts the value in
    /// its compression table.
    fn keyed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        with_service_key(req, self.key.expose_secret())
    }

    pub async fn due(&self) -> Result<DueResponse, HttpError> {
        let url = format!("{}/due", self.root);
        send_json_paced(
            Some(&self.budget),
            &self.retry,
            "GET",
            &url,
            || self.keyed(self.http.get(&url)),
            HttpError::is_transient,
            crate::http::log_retry,
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
            &batch_path(user_id, "actions")?,
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
        mut on_retry: impl FnMut(&HttpError, Duration),
    ) -> Result<Option<WriteResponse>, HttpError> {
        let url = format!("{}{}", self.root, rest);
        let body = bytes::Bytes::from(body);
        send_paced(
            Some(&self.budget),
            &self.retry,
            "POST",
            &url,
            || {
                self.keyed(self.http.post(&url))
                    .header("content-type", "application/json")
                    .body(body.clone())
            },
            HttpError::is_transient,
            |n| on_retry(n.error, n.delay),
            |answer| Ok(answer.ok().and_then(|b| serde_json::from_slice(&b).ok())),
        )
        .await
    }
}

/// `req` with `key` in [`SERVICE_KEY_HEADER`], marked sensitive (for every
/// sender of the key: this client and the conformance probes).
pub fn with_service_key(req: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    match HeaderValue::from_str(key) {
        Ok(mut value) => {
            value.set_sensitive(true);
            req.header(SERVICE_KEY_HEADER, value)
        }
        // Not a header value: the builder keeps the error (without the
        // value) and the send reports it.
        Err(_) => req.header(SERVICE_KEY_HEADER, key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The service key never shows in a `Debug` of the request a client
    /// sends (a `?request` in a log line, a panic message).
    #[test]
    fn the_service_key_header_is_sensitive() {
        let key = "svc-KEY-3b9e-never-in-debug";
        let c = InternalClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            DEFAULT_PREFIX,
            SecretString::from(key),
            RetryPolicy::NONE,
        );
        let req = c
            .keyed(c.http.get("http://127.0.0.1:9/x"))
            .build()
            .expect("request builds");
        let header = req.headers().get(SERVICE_KEY_HEADER).expect("header set");
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), key, "the key is still sent");
        for shown in [format!("{req:?}"), format!("{:?}", req.headers())] {
            assert!(!shown.contains(key), "{shown}");
        }
    }

    #[test]
    fn a_malformed_due_entry_is_set_aside_with_its_index() {
        let body = serde_json::json!({"personas": [
            {"userId": "u1", "email": "a@x"},
            null,
            {"email": "b@x"},
            {"userId": 5, "email": "c@x"},
            {"userId": "u2", "email": "d@x", "moduleMix": {"todo": 1.0}},
        ]});
        let d: DueResponse = serde_json::from_value(body).unwrap();
        let ids: Vec<&str> = d.personas.iter().map(|p| p.user_id.as_str()).collect();
        assert_eq!(ids, ["u1", "u2"]);
        let idx: Vec<usize> = d.malformed.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, [1, 2, 3]);
        assert!(d.malformed[1].1.contains("userId"), "{:?}", d.malformed);
        // The list itself is still required.
        assert!(serde_json::from_value::<DueResponse>(serde_json::json!({})).is_err());
    }
}
