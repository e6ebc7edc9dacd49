//! The persona admin endpoints (admin JWT): upsert, list, show, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{join, send_json};
use crate::http::{HttpError, RetryPolicy};

/// apps/api layout; the older mana-auth layout is `/api/v1/admin/personas`.
pub const DEFAULT_PREFIX: &str = "/api/v1/personas/admin";
pub const LEGACY_PREFIX: &str = "/api/v1/admin/personas";

/// `POST /` body. `password` is the derived password, so this type has no Debug.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertPersona {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub password: String,
    pub archetype: String,
    pub system_prompt: String,
    pub module_mix: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_cadence: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertResponse {
    #[serde(default)]
    pub ok: bool,
    pub user_id: String,
    #[serde(default)]
    pub email: String,
}

/// One row of `GET /`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaSummary {
    pub user_id: String,
    pub email: String,
    #[serde(default)]
    pub archetype: String,
    #[serde(default)]
    pub tick_cadence: Option<String>,
    #[serde(default)]
    pub last_active_at: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub actions7d: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResponse {
    pub personas: Vec<PersonaSummary>,
}

/// `GET /:id`. The descriptor and recent rows are kept as JSON: `show` prints
/// them, nothing computes on them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaDetail {
    pub persona: Value,
    #[serde(default)]
    pub recent_actions: Vec<Value>,
    #[serde(default)]
    pub feedback_by_module: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteResponse {
    #[serde(default)]
    pub ok: bool,
    pub deleted: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    /// base URL + prefix, no trailing slash.
    root: String,
    jwt: SecretString,
    retry: RetryPolicy,
}

impl AdminClient {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        prefix: &str,
        jwt: SecretString,
        retry: RetryPolicy,
    ) -> Self {
        AdminClient {
            http,
            root: join(base, prefix).trim_end_matches('/').to_string(),
            jwt,
            retry,
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}{}", self.root, rest)
    }

    /// The collection itself (`POST /`, `GET /` in the contract) is the base
    /// WITHOUT a trailing slash: a router that mounts `/` under a prefix (Hono,
    /// axum `nest`) registers exactly the prefix, and strict routing answers
    /// 404 for `prefix/`.
    fn collection(&self) -> String {
        self.root.clone()
    }

    /// `POST /`: create or update by email. Retried on transient failures;
    /// `on_retry` lets the caller show the retry.
    pub async fn upsert(
        &self,
        persona: &UpsertPersona,
        on_retry: impl FnMut(&HttpError, Duration),
    ) -> Result<UpsertResponse, HttpError> {
        let url = self.collection();
        send_json(
            &self.retry,
            "POST",
            &url,
            || {
                self.http
                    .post(&url)
                    .bearer_auth(self.jwt.expose_secret())
                    .json(persona)
            },
            on_retry,
        )
        .await
    }

    pub async fn list(&self) -> Result<Vec<PersonaSummary>, HttpError> {
        let url = self.collection();
        let r: ListResponse = send_json(
            &self.retry,
            "GET",
            &url,
            || self.http.get(&url).bearer_auth(self.jwt.expose_secret()),
            |_, _| {},
        )
        .await?;
        Ok(r.personas)
    }

    pub async fn show(&self, user_id: &str) -> Result<PersonaDetail, HttpError> {
        let url = self.url(&format!("/{}", crate::http::id_segment("GET", user_id)?));
        send_json(
            &self.retry,
            "GET",
            &url,
            || self.http.get(&url).bearer_auth(self.jwt.expose_secret()),
            |_, _| {},
        )
        .await
    }

    /// `DELETE /:id`. Destructive; the CLI asks first.
    pub async fn delete(&self, user_id: &str) -> Result<DeleteResponse, HttpError> {
        let url = self.url(&format!("/{}", crate::http::id_segment("DELETE", user_id)?));
        send_json(
            &self.retry,
            "DELETE",
            &url,
            || self.http.delete(&url).bearer_auth(self.jwt.expose_secret()),
            |_, _| {},
        )
        .await
    }
}
