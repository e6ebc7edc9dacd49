//! mana-auth: register, login and the organization (space) list.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{bearer, db_error, error, hash_password};
use crate::SandboxState;
use crate::db::now_iso;

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

pub async fn login(State(s): State<SandboxState>, Json(req): Json<LoginBody>) -> Response {
    let found = s.db.call(|c| {
        c.query_row(
            "SELECT id, password_hash FROM users WHERE email = ?1",
            params![req.email],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
    });
    match found {
        Ok(Some((id, hash))) if hash == hash_password(&req.password) => {
            let token = format!("sbx.{}", uuid::Uuid::new_v4().simple());
            if let Err(e) = s.db.call(|c| {
                c.execute(
                    "INSERT INTO sessions (token, user_id) VALUES (?1, ?2)",
                    params![token, id],
                )
            }) {
                return db_error(e);
            }
            Json(json!({"token": token, "user": {"id": id, "email": req.email}})).into_response()
        }
        Ok(_) => error(StatusCode::UNAUTHORIZED, "Invalid email or password"),
        Err(e) => db_error(e),
    }
}

pub async fn organizations(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
    let Some(user) = bearer(&headers).and_then(|t| s.db.user_for_token(t)) else {
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
