//! mana-auth: register, login and the organization (space) list; and the
//! token checks of the services that take a persona's bearer.
//!
//! Login answers like the platform's auth service: an opaque 32-character
//! session `token` (also the `refreshToken`) and a JWT `accessToken` that
//! expires after `SandboxOptions::jwt_ttl`. mana-mcp and apps/api accept only
//! that JWT ([`verify_access_token`], [`verify_api_bearer`]); the organization
//! list takes the session token (Better Auth's bearer plugin) or, with
//! [`OrgsBearer::Jwt`], only the JWT. Wrong passwords count toward the
//! platform's lockout: five in a row lock the account for 30 minutes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rand::RngExt;
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};

use super::jwt::{self, Claims};
use super::{bearer, db_error, error, hash_password};
use crate::db::now_iso;
use crate::{OrgsBearer, SandboxState};

/// Wrong passwords in a row that lock an account.
pub const MAX_LOGIN_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_DURATION: Duration = Duration::from_secs(30 * 60);

/// `POST /api/v1/auth/login` body.
#[derive(Deserialize)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

/// Creates a user with two spaces: a team space first, then the personal one,
/// so clients that take "the first space" pick the wrong one.
pub(crate) fn create_user(
    c: &rusqlite::Connection,
    email: &str,
    name: Option<&str>,
    password: &str,
) -> rusqlite::Result<String> {
    let id = super::new_user_id();
    let now = now_iso();
    c.execute(
        "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, email, name, hash_password(password), now],
    )?;
    let seq: i64 = c.query_row("SELECT COALESCE(MAX(seq), 0) FROM spaces", [], |r| r.get(0))?;
    let team = super::new_space_id();
    let personal = super::new_space_id();
    c.execute(
        "INSERT INTO spaces (id, name, metadata, seq) VALUES (?1, 'Sandbox Team', '{\"type\":\"team\"}', ?2)",
        params![team, seq + 1],
    )?;
    c.execute(
        "INSERT INTO spaces (id, name, metadata, seq) VALUES (?1, ?2, '{\"type\":\"personal\"}', ?3)",
        params![personal, format!("{} (persönlich)", name.unwrap_or(email)), seq + 2],
    )?;
    for s in [&team, &personal] {
        c.execute(
            "INSERT INTO members (space_id, user_id) VALUES (?1, ?2)",
            params![s, id],
        )?;
    }
    Ok(id)
}

pub async fn register(State(s): State<SandboxState>, Json(body): Json<Value>) -> Response {
    let (Some(email), Some(password)) = (body["email"].as_str(), body["password"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "email and password required");
    };
    let name = body["name"].as_str();
    match s.db.call(|c| {
        let exists: Option<String> = c
            .query_row(
                "SELECT id FROM users WHERE email = ?1",
                params![email],
                |r| r.get(0),
            )
            .optional()?;
        match exists {
            Some(_) => Ok(None),
            None => create_user(c, email, name, password).map(Some),
        }
    }) {
        Ok(Some(id)) => (
            StatusCode::OK,
            Json(json!({"user": {"id": id, "email": email}})),
        )
            .into_response(),
        Ok(None) => error(StatusCode::CONFLICT, "User already exists"),
        Err(e) => db_error(e),
    }
}

/// Signs a JWT for `user_id`, valid for `ttl` from now (`ZERO`: already
/// expired).
pub fn issue_access_token(
    s: &SandboxState,
    user_id: &str,
    email: &str,
    role: &str,
    ttl: Duration,
) -> String {
    let now = Utc::now().timestamp();
    jwt::sign(
        &s.jwt_key[..],
        &Claims {
            sub: user_id.to_string(),
            email: email.to_string(),
            role: role.to_string(),
            aud: jwt::AUDIENCE.to_string(),
            iat: now,
            exp: now + ttl.as_secs() as i64,
        },
    )
}

fn verify(s: &SandboxState, token: &str) -> Result<Claims, jwt::Invalid> {
    jwt::verify(&s.jwt_key[..], token, Utc::now().timestamp())
}

/// mana-mcp's bearer check: a valid, unexpired JWT, else 401 with the
/// platform's `Invalid token: …` body (the session token gets
/// `Invalid Compact JWS`).
#[allow(clippy::result_large_err)] // the Response is the answer, as is
pub fn verify_access_token(s: &SandboxState, token: &str) -> Result<Claims, Response> {
    verify(s, token).map_err(|why| {
        error(
            StatusCode::UNAUTHORIZED,
            format!("Invalid token: {}", why.jose_message()),
        )
    })
}

/// apps/api's bearer check: a valid, unexpired JWT, else
/// `401 {"error":"Invalid or expired token","status":401}`.
#[allow(clippy::result_large_err)]
pub fn verify_api_bearer(s: &SandboxState, headers: &HeaderMap) -> Result<Claims, Response> {
    bearer(headers)
        .and_then(|t| verify(s, t).ok())
        .ok_or_else(|| {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "Invalid or expired token", "status": 401})),
            )
                .into_response()
        })
}

/// How a login ended, as recorded in `login_attempts`.
enum Attempt {
    Ok { id: String, name: Option<String> },
    Invalid,
    Locked { retry_after: u64 },
    NotVerified,
}

impl Attempt {
    fn label(&self) -> &'static str {
        match self {
            Attempt::Ok { .. } => "ok",
            Attempt::Invalid => "invalid_credentials",
            Attempt::Locked { .. } => "account_locked",
            Attempt::NotVerified => "email_not_verified",
        }
    }
}

/// Checks the lock, the password and the verification, counts the failure
/// or clears the count, and records the attempt: one transaction.
fn attempt(c: &mut rusqlite::Connection, req: &LoginBody) -> rusqlite::Result<Attempt> {
    let tx = c.transaction()?;
    let now = Utc::now();
    let locked_until: Option<String> = tx
        .query_row(
            "SELECT locked_until FROM login_locks WHERE email = ?1",
            params![req.email],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let locked = locked_until
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t > now);
    let outcome = if let Some(until) = locked {
        let ms = (until - now).num_milliseconds().max(0) as u64;
        Attempt::Locked {
            retry_after: ms.div_ceil(1000).max(1),
        }
    } else {
        let user: Option<(String, String, Option<String>)> = tx
            .query_row(
                "SELECT id, password_hash, name FROM users WHERE email = ?1",
                params![req.email],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        match user {
            Some((id, hash, name)) if hash == hash_password(&req.password) => {
                tx.execute(
                    "DELETE FROM login_locks WHERE email = ?1",
                    params![req.email],
                )?;
                let unverified = tx
                    .query_row(
                        "SELECT 1 FROM unverified_emails WHERE email = ?1",
                        params![req.email],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if unverified {
                    Attempt::NotVerified
                } else {
                    Attempt::Ok { id, name }
                }
            }
            _ => {
                let failures: i64 = tx.query_row(
                    "INSERT INTO login_locks (email, failures) VALUES (?1, 1)
                     ON CONFLICT(email) DO UPDATE SET failures = failures + 1 RETURNING failures",
                    params![req.email],
                    |r| r.get(0),
                )?;
                if failures >= MAX_LOGIN_FAILURES {
                    let until = now + chrono::Duration::from_std(LOCK_DURATION).expect("fits");
                    tx.execute(
                        "UPDATE login_locks SET failures = 0, locked_until = ?2 WHERE email = ?1",
                        params![
                            req.email,
                            until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        ],
                    )?;
                }
                Attempt::Invalid
            }
        }
    };
    tx.execute(
        "INSERT INTO login_attempts (email, at, outcome) VALUES (?1, ?2, ?3)",
        params![req.email, now_iso(), outcome.label()],
    )?;
    tx.commit()?;
    Ok(outcome)
}

/// An opaque session token: 32 alphanumerics, never JWT-shaped.
fn session_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// A login refusal with the platform's `error`/`code` pair.
fn refused(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "code": code, "message": message, "status": status.as_u16()})),
    )
        .into_response()
}

pub async fn login(State(s): State<SandboxState>, Json(req): Json<LoginBody>) -> Response {
    let (id, name) = match s.db.call(|c| attempt(c, &req)) {
        Err(e) => return db_error(e),
        Ok(Attempt::Ok { id, name }) => (id, name),
        Ok(Attempt::Invalid) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "Invalid email or password",
            );
        }
        Ok(Attempt::Locked { retry_after }) => {
            let mut resp = refused(
                StatusCode::TOO_MANY_REQUESTS,
                "ACCOUNT_LOCKED",
                "Too many failed login attempts. Try again later.",
            );
            resp.headers_mut().insert(
                "retry-after",
                retry_after.to_string().parse().expect("digits"),
            );
            return resp;
        }
        Ok(Attempt::NotVerified) => {
            return refused(
                StatusCode::FORBIDDEN,
                "EMAIL_NOT_VERIFIED",
                "Email not verified",
            );
        }
    };
    let token = session_token();
    if let Err(e) = s.db.call(|c| {
        c.execute(
            "INSERT INTO sessions (token, user_id) VALUES (?1, ?2)",
            params![token, id],
        )
    }) {
        return db_error(e);
    }
    let access = issue_access_token(&s, &id, &req.email, "user", s.opts.jwt_ttl);
    Json(json!({
        "redirect": false,
        "token": token,
        "user": {"id": id, "email": req.email, "name": name.unwrap_or_default(),
                 "kind": "persona", "role": "user"},
        "accessToken": access,
        "refreshToken": token,
    }))
    .into_response()
}

pub async fn organizations(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
    let user = bearer(&headers).and_then(|t| match s.opts.orgs_bearer {
        OrgsBearer::Session => s.db.user_for_token(t),
        OrgsBearer::Jwt => verify(&s, t).ok().map(|c| c.sub),
    });
    let Some(user) = user else {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let rows = s.db.call(|c| {
        let mut st = c.prepare(
            "SELECT s.id, s.name, s.metadata FROM spaces s JOIN members m ON m.space_id = s.id WHERE m.user_id = ?1 ORDER BY s.seq",
        )?;
        let rows = st.query_map(params![user], |r| {
            Ok(json!({"id": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?, "metadata": r.get::<_, Option<String>>(2)?}))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    });
    match rows {
        Ok(v) => Json(Value::Array(v)).into_response(),
        Err(e) => db_error(e),
    }
}
