//! The persona admin endpoints (admin JWT): upsert, list, show, delete. A
//! 401 re-reads the JWT file once (admin JWTs expire after 15 minutes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::budget::Budget;
use super::send_json_paced;
use crate::http::{HttpError, RetryNotice, RetryPolicy, join, log_retry};

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

/// What an operator does about a refused admin JWT; printed when a 401
/// survives the re-read of the JWT file.
pub const EXPIRED_JWT_HINT: &str = "the admin JWT was refused (HTTP 401: expired or invalid). Admin JWTs expire after 15 minutes: log in with an admin account (POST $MANA_AUTH_URL/api/v1/auth/login) and write its `accessToken` into the file named by --jwt-file or MANA_ADMIN_JWT_FILE (re-read on every 401), then run the command again";

/// Whether `e` is the admin JWT being refused (after the re-read).
pub fn is_jwt_refused(e: &HttpError) -> bool {
    e.status() == Some(401)
}

#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    /// base URL + prefix, no trailing slash.
    root: String,
    /// The JWT in use; replaced when a 401 makes us re-read `jwt_file`.
    jwt: Arc<RwLock<SecretString>>,
    /// Where the JWT came from, when it came from a file.
    jwt_file: Option<PathBuf>,
    retry: RetryPolicy,
    /// The process's pacer for this apps/api (shared by every client of it).
    budget: Budget,
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
            jwt: Arc::new(RwLock::new(jwt)),
            jwt_file: None,
            retry,
            budget: Budget::for_url(base),
        }
    }

    /// The request budget this client draws from.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The JWT came from `path`: on a 401 it is read again, and the request
    /// repeated once if the file now holds another token. Admin JWTs expire
    /// after 15 minutes, and a long seed outlives one.
    pub fn with_jwt_file(mut self, path: Option<PathBuf>) -> Self {
        self.jwt_file = path;
        self
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

    fn current_jwt(&self) -> SecretString {
        self.jwt.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After a 401 with `used`: the file's token if it differs (and keeps it
    /// for later requests); `None` when there is no file or nothing new in it.
    fn reread(&self, used: &SecretString) -> Option<SecretString> {
        let path = self.jwt_file.as_ref()?;
        let fresh = match crate::config::read_secret_file(path) {
            Ok(t) => t.trim().to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the admin JWT file");
                return None;
            }
        };
        if fresh.is_empty() || fresh == used.expose_secret() {
            return None;
        }
        tracing::info!(path = %path.display(), "admin JWT refused; using the token now in the file");
        let fresh = SecretString::from(fresh);
        *self.jwt.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Some(fresh)
    }

    /// One admin request with the current JWT; a 401 re-reads the JWT file
    /// once and repeats the request with the new token.
    async fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        url: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        mut on_retry: impl FnMut(&RetryNotice<'_>),
    ) -> Result<T, HttpError> {
        let used = self.current_jwt();
        let first = send_json_paced(
            Some(&self.budget),
            &self.retry,
            method,
            url,
            || build(used.expose_secret()),
            HttpError::is_transient,
            &mut on_retry,
        )
        .await;
        match first {
            Err(e) if is_jwt_refused(&e) => match self.reread(&used) {
                Some(fresh) => {
                    send_json_paced(
                        Some(&self.budget),
                        &self.retry,
                        method,
                        url,
                        || build(fresh.expose_secret()),
                        HttpError::is_transient,
                        &mut on_retry,
                    )
                    .await
                }
                None => Err(e),
            },
            other => other,
        }
    }

    /// `POST /`: create or update by email. Retried on transient failures;
    /// `on_retry` lets the caller show the retry (with the persona it is
    /// for; [`log_retry`] otherwise).
    pub async fn upsert(
        &self,
        persona: &UpsertPersona,
        on_retry: impl FnMut(&RetryNotice<'_>),
    ) -> Result<UpsertResponse, HttpError> {
        let url = self.collection();
        self.send(
            "POST",
            &url,
            |jwt| self.http.post(&url).bearer_auth(jwt).json(persona),
            on_retry,
        )
        .await
    }

    pub async fn list(&self) -> Result<Vec<PersonaSummary>, HttpError> {
        let url = self.collection();
        let r: ListResponse = self
            .send(
                "GET",
                &url,
                |jwt| self.http.get(&url).bearer_auth(jwt),
                log_retry,
            )
            .await?;
        Ok(r.personas)
    }

    pub async fn show(&self, user_id: &str) -> Result<PersonaDetail, HttpError> {
        let url = self.url(&format!("/{}", crate::http::id_segment("GET", user_id)?));
        self.send(
            "GET",
            &url,
            |jwt| self.http.get(&url).bearer_auth(jwt),
            log_retry,
        )
        .await
    }

    /// `DELETE /:id`. Destructive; the CLI asks first.
    pub async fn delete(&self, user_id: &str) -> Result<DeleteResponse, HttpError> {
        let url = self.url(&format!("/{}", crate::http::id_segment("DELETE", user_id)?));
        self.send(
            "DELETE",
            &url,
            |jwt| self.http.delete(&url).bearer_auth(jwt),
            log_retry,
        )
        .await
    }
}
