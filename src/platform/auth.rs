//! mana-auth: persona login and the persona's spaces.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{send_json, send_json_if};
use crate::http::join;
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

/// `200 {"redirect", "token", "user", "accessToken", "refreshToken"}`. Every
/// field is optional here so a response without one is reported as the
/// contract violation it is.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Better Auth's opaque session token (not a JWT on the platform).
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub user: Option<LoginUser>,
    /// The JWT apps/api and mana-mcp accept; expires after 15 minutes.
    #[serde(default)]
    pub access_token: Option<String>,
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

/// Which login field the persona's bearer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BearerField {
    /// `accessToken`, as the platform answers.
    #[serde(rename = "accessToken")]
    AccessToken,
    /// `token`, only when `accessToken` is absent and `token` is JWT-shaped.
    #[serde(rename = "token")]
    Token,
}

impl BearerField {
    pub fn as_str(self) -> &'static str {
        match self {
            BearerField::AccessToken => "accessToken",
            BearerField::Token => "token",
        }
    }
}

/// Which bearer the organization list accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SpacesBearer {
    /// The JWT (a gateway in front of mana-auth).
    Jwt,
    /// The session token, after the JWT got 401 (Better Auth's bearer plugin).
    SessionToken,
}

impl SpacesBearer {
    pub fn as_str(self) -> &'static str {
        match self {
            SpacesBearer::Jwt => "the JWT",
            SpacesBearer::SessionToken => "the session token",
        }
    }
}

/// A logged-in persona. The tokens are secrets: no Debug shows them.
pub struct Session {
    pub user_id: String,
    /// The bearer for apps/api and mana-mcp (a JWT).
    pub jwt: SecretString,
    pub bearer: BearerField,
    /// The opaque session token, when the login gave one besides the JWT.
    pub session_token: Option<SecretString>,
    /// The JWT's `iat` and `exp`, as read from it (not verified).
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("jwt", &"<redacted>")
            .field("bearer", &self.bearer)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Session {
    /// Whether the JWT should be renewed before the next call: it has less
    /// than a minute left (see [`super::jwt::renewal_margin`]). A token
    /// without `exp` never is; a 401 still is handled.
    pub fn renewal_due(&self, now: DateTime<Utc>) -> bool {
        self.expires_at
            .is_some_and(|exp| exp - now < super::jwt::renewal_margin(self.issued_at, exp))
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

/// What signing a persona in yields.
#[derive(Debug)]
pub struct SignedIn {
    pub session: Session,
    pub space: Space,
    pub spaces_bearer: SpacesBearer,
}

/// How long a locked account waits when the 429 has no `Retry-After`: the
/// platform's lock lasts 30 minutes.
pub const LOCK_DEFAULT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("login failed: {0}")]
    Http(#[source] HttpError),
    #[error("spaces of {email}: {error}")]
    Spaces {
        email: String,
        #[source]
        error: HttpError,
    },
    #[error("login for {email}: the response has no {missing}")]
    Incomplete {
        email: String,
        missing: &'static str,
    },
    /// 401: never retried, five of them lock the account.
    #[error(
        "login for {email} refused ({http}): wrong PERSONA_SEED_SECRET or the persona was seeded with another secret; not retried, because five failures lock the account for 30 minutes"
    )]
    WrongPassword { email: String, http: HttpError },
    /// 429 `ACCOUNT_LOCKED`.
    #[error(
        "login for {email} refused ({http}): ACCOUNT_LOCKED after failed logins; backing off for {}s as the platform asks (Retry-After)", retry_after.as_secs()
    )]
    Locked {
        email: String,
        retry_after: Duration,
        http: HttpError,
    },
    /// 403 `EMAIL_NOT_VERIFIED`.
    #[error(
        "login for {email} refused ({http}): EMAIL_NOT_VERIFIED, the account is not stamped as a persona; re-seed this persona (mana-personas seed --only {email})"
    )]
    NotVerified { email: String, http: HttpError },
    #[error("{email} has no space at all (GET {ORGANIZATIONS_PATH} returned an empty list)")]
    NoSpace { email: String },
}

impl AuthError {
    /// How long the platform asked us to stay away (a locked account).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Locked { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The platform refused this persona's credentials (401/403/429): trying
    /// again soon cannot help and may lock the account.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AuthError::WrongPassword { .. }
                | AuthError::Locked { .. }
                | AuthError::NotVerified { .. }
        )
    }

    /// Reads a failed login's status and body into the variant it means.
    fn from_login(email: &str, e: HttpError) -> AuthError {
        let email = email.to_string();
        match &e {
            HttpError::Status { status: 401, .. } => AuthError::WrongPassword { email, http: e },
            HttpError::Status {
                status: 429, body, ..
            } if body.contains("ACCOUNT_LOCKED") => AuthError::Locked {
                email,
                retry_after: e.retry_after().unwrap_or(LOCK_DEFAULT),
                http: e,
            },
            HttpError::Status {
                status: 403, body, ..
            } if body.contains("EMAIL_NOT_VERIFIED") => AuthError::NotVerified { email, http: e },
            _ => AuthError::Http(e),
        }
    }
}

/// Only transport errors and 5xx are worth another login: a 401 counts
/// toward the lockout, a 429 is the lockout.
fn login_retryable(e: &HttpError) -> bool {
    match e {
        HttpError::Transport { .. } => true,
        HttpError::Status { status, .. } => *status >= 500,
        HttpError::Decode { .. } | HttpError::BadId { .. } => false,
    }
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

    /// `POST /api/v1/auth/login`. The bearer is `accessToken`; `token` only
    /// when `accessToken` is absent and `token` is JWT-shaped.
    pub async fn login(&self, email: &str, password: &SecretString) -> Result<Session, AuthError> {
        let url = join(&self.base, LOGIN_PATH);
        let body = serde_json::json!({"email": email, "password": password.expose_secret()});
        let resp: LoginResponse = send_json_if(
            &self.retry,
            "POST",
            &url,
            || self.http.post(&url).json(&body),
            login_retryable,
            crate::http::log_retry,
        )
        .await
        .map_err(|e| AuthError::from_login(email, e))?;
        let incomplete = |missing| AuthError::Incomplete {
            email: email.to_string(),
            missing,
        };
        let user = resp
            .user
            .filter(|u| !u.id.is_empty())
            .ok_or(incomplete("user.id"))?;
        let token = resp.token.filter(|t| !t.is_empty());
        let (jwt, bearer, session_token) = match resp.access_token.filter(|t| !t.is_empty()) {
            Some(a) => (a, BearerField::AccessToken, token),
            None => match token {
                Some(t) if super::jwt::is_jwt_shaped(&t) => (t, BearerField::Token, None),
                Some(_) => {
                    return Err(incomplete(
                        "accessToken (and its `token` is an opaque session token, not a JWT)",
                    ));
                }
                None => return Err(incomplete("accessToken (nor a JWT-shaped `token`)")),
            },
        };
        let (issued_at, expires_at) = super::jwt::times(&jwt);
        crate::redact::register(&jwt);
        if let Some(t) = &session_token {
            crate::redact::register(t);
        }
        Ok(Session {
            user_id: user.id,
            jwt: SecretString::from(jwt),
            bearer,
            session_token: session_token.map(SecretString::from),
            issued_at,
            expires_at,
        })
    }

    async fn organizations(&self, bearer: &SecretString) -> Result<Vec<Organization>, HttpError> {
        let url = join(&self.base, ORGANIZATIONS_PATH);
        send_json(
            &self.retry,
            "GET",
            &url,
            || self.http.get(&url).bearer_auth(bearer.expose_secret()),
            crate::http::log_retry,
        )
        .await
    }

    /// `GET /api/auth/organization/list` with the JWT, on 401 once more with
    /// the session token (deployments differ); then [`personal_space`].
    pub async fn personal_space(
        &self,
        email: &str,
        session: &Session,
    ) -> Result<(Space, SpacesBearer), AuthError> {
        let (orgs, used) = match self.organizations(&session.jwt).await {
            Ok(o) => (o, SpacesBearer::Jwt),
            Err(e) if e.status() == Some(401) => match &session.session_token {
                Some(t) => (
                    self.organizations(t)
                        .await
                        .map_err(|error| AuthError::Spaces {
                            email: email.to_string(),
                            error,
                        })?,
                    SpacesBearer::SessionToken,
                ),
                None => {
                    return Err(AuthError::Spaces {
                        email: email.to_string(),
                        error: e,
                    });
                }
            },
            Err(error) => {
                return Err(AuthError::Spaces {
                    email: email.to_string(),
                    error,
                });
            }
        };
        let space = personal_space(&orgs).ok_or_else(|| AuthError::NoSpace {
            email: email.to_string(),
        })?;
        Ok((space, used))
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

impl SignInError {
    /// See [`AuthError::retry_after`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SignInError::Auth(e) => e.retry_after(),
            SignInError::Password(_) => None,
        }
    }

    /// See [`AuthError::is_refusal`].
    pub fn is_refusal(&self) -> bool {
        matches!(self, SignInError::Auth(e) if e.is_refusal())
    }
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
    ) -> Result<SignedIn, SignInError> {
        let password = crate::password::derive(seed_secret, email, production)?;
        let session = self.login(email, &password).await?;
        let (space, spaces_bearer) = self.personal_space(email, &session).await?;
        Ok(SignedIn {
            session,
            space,
            spaces_bearer,
        })
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
