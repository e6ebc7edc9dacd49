//! mana-auth: persona login and the persona's spaces.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{join, send_json};
use crate::http::{HttpError, RetryPolicy};

pub const LOGIN_PATH: &str = "/api/v1/auth/login";
pub const REGISTER_PATH: &str = "/api/v1/auth/register";
pub const ORGANIZATIONS_PATH: &str = "/api/auth/organization/list";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginUser {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `200 {"token", "user": {"id", ...}}`. Both fields are optional here so a
/// response without them is reported as the contract violation it is.
#[derive(Deserialize, Serialize)]
pub struct LoginResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub user: Option<LoginUser>,
}

/// One entry of the organization list. `metadata` is an object, a string that
/// holds JSON, or null.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub metadata: Value,
}

/// A logged-in persona. The JWT is a secret: no Debug shows it.
pub struct Session {
    pub user_id: String,
    pub jwt: SecretString,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("jwt", &"<redacted>")
            .finish()
    }
}

/// The space a persona writes into.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Space {
    pub id: String,
    pub name: String,
    /// `personal`, `team`, … or `None` when the metadata had no type.
    pub kind: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("login failed: {0}")]
    Http(#[from] HttpError),
    #[error("login for {email}: the response has no {missing}")]
    Incomplete {
        email: String,
        missing: &'static str,
    },
    #[error("{email} has no space at all (GET {ORGANIZATIONS_PATH} returned an empty list)")]
    NoSpace { email: String },
}

#[derive(Clone)]
pub struct AuthClient {
    http: reqwest::Client,
    base: String,
    retry: RetryPolicy,
}

impl AuthClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>, retry: RetryPolicy) -> Self {
        AuthClient {
            http,
            base: base.into(),
            retry,
        }
    }

    /// `POST /api/v1/auth/login`.
    pub async fn login(&self, email: &str, password: &SecretString) -> Result<Session, AuthError> {
        let url = join(&self.base, LOGIN_PATH);
        let body = serde_json::json!({"email": email, "password": password.expose_secret()});
        let resp: LoginResponse = send_json(
            &self.retry,
            "POST",
            &url,
            || self.http.post(&url).json(&body),
            |_, _| {},
        )
        .await?;
        let token = resp
            .token
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Incomplete {
                email: email.to_string(),
                missing: "token",
            })?;
        let user = resp
            .user
            .filter(|u| !u.id.is_empty())
            .ok_or(AuthError::Incomplete {
                email: email.to_string(),
                missing: "user.id",
            })?;
        crate::redact::register(&token);
        Ok(Session {
            user_id: user.id,
            jwt: SecretString::from(token),
        })
    }

    /// `GET /api/auth/organization/list`, then [`personal_space`].
    pub async fn personal_space(&self, email: &str, session: &Session) -> Result<Space, AuthError> {
        let url = join(&self.base, ORGANIZATIONS_PATH);
        let orgs: Vec<Organization> = send_json(
            &self.retry,
            "GET",
            &url,
            || self.http.get(&url).bearer_auth(session.jwt.expose_secret()),
            |_, _| {},
        )
        .await?;
        personal_space(&orgs).ok_or_else(|| AuthError::NoSpace {
            email: email.to_string(),
        })
    }
}

/// Why a persona could not sign in: its password could not be derived, or
/// mana-auth refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Password(#[from] crate::password::PasswordError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl AuthClient {
    /// What a tick, `login` and `/diag/login` all do first: derive the
    /// persona's password (the platform's own scheme), log in, and find the
    /// space it writes to.
    pub async fn sign_in(
        &self,
        seed_secret: &SecretString,
        email: &str,
        production: bool,
    ) -> Result<(Session, Space), SignInError> {
        let password = crate::password::derive(seed_secret, email, production)?;
        let session = self.login(email, &password).await?;
        let space = self.personal_space(email, &session).await?;
        Ok((session, space))
    }
}

/// The type in an organization's metadata, whether the metadata is an object
/// or a string holding JSON (mana-auth sends the latter).
pub fn space_type(metadata: &Value) -> Option<String> {
    let obj = match metadata {
        Value::Object(_) => metadata.clone(),
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        _ => return None,
    };
    obj.get("type")?.as_str().map(str::to_string)
}

/// The contract's rule: the first `personal` space; if none has that type, the
/// first space; `None` for an empty list.
pub fn personal_space(orgs: &[Organization]) -> Option<Space> {
    let to_space = |o: &Organization| Space {
        id: o.id.clone(),
        name: o.name.clone(),
        kind: space_type(&o.metadata),
    };
    orgs.iter()
        .map(to_space)
        .find(|s| s.kind.as_deref() == Some("personal"))
        .or_else(|| orgs.first().map(to_space))
}
