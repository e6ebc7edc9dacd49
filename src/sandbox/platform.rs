//! The platform half of the sandbox: mana-auth (register, login, organization
//! list) and the persona admin and internal endpoints, with the platform's
//! paths, validation, status codes, due rules and row-id rules.
//!
//! Both path layouts are served (apps/api and the older mana-auth one), so a
//! configuration for either can be tested here.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::SandboxState;
use super::db::now_iso;
use crate::platform::admin::{self, PersonaSummary, UpsertPersona};
use crate::platform::auth::{self, LoginRequest};
use crate::platform::internal::{
    self, ActionResult, ActionsBatch, DuePersona, FeedbackBatch, MAX_ACTIONS_PER_BATCH,
    MAX_FEEDBACK_PER_BATCH,
};

pub fn router(state: SandboxState) -> Router {
    let admin_routes = || {
        Router::new()
            .route("/", get(admin_list).post(admin_upsert))
            .route("/{id}", get(admin_show).delete(admin_delete))
    };
    let internal_routes = || {
        Router::new()
            .route("/due", get(internal_due))
            .route("/{id}/actions", post(internal_actions))
            .route("/{id}/feedback", post(internal_feedback))
    };
    Router::new()
        .route(auth::LOGIN_PATH, post(login))
        .route(auth::REGISTER_PATH, post(register))
        .route(auth::ORGANIZATIONS_PATH, get(organizations))
        .nest(admin::DEFAULT_PREFIX, admin_routes())
        .nest(admin::LEGACY_PREFIX, admin_routes())
        .nest(internal::DEFAULT_PREFIX, internal_routes())
        .nest(internal::LEGACY_PREFIX, internal_routes())
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn db_error(e: rusqlite::Error) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "database error", "detail": e.to_string()})),
    )
        .into_response()
}

fn hash_password(pw: &str) -> String {
    let d = Sha256::digest(pw.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

// ---------------------------------------------------------------- mana-auth

/// Creates a user with two spaces: a team space first, then the personal one,
/// so clients that take "the first space" pick the wrong one.
fn create_user(
    c: &rusqlite::Connection,
    email: &str,
    name: Option<&str>,
    password: &str,
) -> rusqlite::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_iso();
    c.execute(
        "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, email, name, hash_password(password), now],
    )?;
    let seq: i64 = c.query_row("SELECT COALESCE(MAX(seq), 0) FROM spaces", [], |r| r.get(0))?;
    let team = uuid::Uuid::new_v4().to_string();
    let personal = uuid::Uuid::new_v4().to_string();
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

async fn register(State(s): State<SandboxState>, Json(body): Json<Value>) -> Response {
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

async fn login(State(s): State<SandboxState>, Json(req): Json<LoginRequest>) -> Response {
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

async fn organizations(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
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

// ---------------------------------------------------------------- admin

#[allow(clippy::result_large_err)] // handlers return the Response as is
fn check_admin(s: &SandboxState, headers: &HeaderMap) -> Result<(), Response> {
    match bearer(headers) {
        None => Err(error(StatusCode::UNAUTHORIZED, "Unauthorized")),
        Some(t) if t == s.opts.admin_jwt => Ok(()),
        Some(_) => Err((
            StatusCode::FORBIDDEN,
            Json(json!({"error": "Forbidden", "message": "admin role required"})),
        )
            .into_response()),
    }
}

/// The platform's validation of `POST /`, every problem at once.
fn validate_upsert(v: &Value) -> Vec<String> {
    let mut d = Vec::new();
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    match s("email") {
        None | Some("") => d.push("email required".to_string()),
        Some(e) if !e.ends_with("@mana.test") || !e.contains('@') => {
            d.push("email must end with @mana.test".to_string())
        }
        _ => {}
    }
    if s("password").is_none_or(|p| p.len() < 8) {
        d.push("password required (at least 8 characters)".to_string());
    }
    if s("archetype").is_none_or(str::is_empty) {
        d.push("archetype required".to_string());
    }
    if s("systemPrompt").is_none_or(|p| p.chars().count() < 20) {
        d.push("systemPrompt must be at least 20 characters".to_string());
    }
    match v.get("moduleMix").and_then(Value::as_object) {
        None => d.push("moduleMix must be an object".to_string()),
        Some(m) => {
            for (k, w) in m {
                if w.as_f64().is_none_or(|w| !w.is_finite() || w < 0.0) {
                    d.push(format!("moduleMix.{k} must be a number >= 0"));
                }
            }
        }
    }
    if let Some(c) = v.get("tickCadence")
        && !c.is_null()
        && c.as_str()
            .and_then(crate::catalog::Cadence::parse)
            .is_none()
    {
        d.push("tickCadence must be daily, weekdays or hourly".to_string());
    }
    d
}

async fn admin_upsert(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = check_admin(&s, &headers) {
        return r;
    }
    let details = validate_upsert(&body);
    if !details.is_empty() {
        return validation(details);
    }
    let p: UpsertPersona = match serde_json::from_value(body) {
        Ok(p) => p,
        Err(e) => return validation(vec![e.to_string()]),
    };
    let cadence = p.tick_cadence.clone().unwrap_or_else(|| "daily".into());
    let mix = serde_json::to_string(&p.module_mix).unwrap_or_else(|_| "{}".into());
    let r = s.db.call(|c| {
        let tx = c.transaction()?;
        let existing: Option<String> =
            tx.query_row("SELECT id FROM users WHERE email = ?1", params![p.email], |r| r.get(0)).optional()?;
        // An existing user keeps its account (and password); only the descriptor is upserted.
        let id = match existing {
            Some(id) => id,
            None => create_user(&tx, &p.email, p.name.as_deref(), &p.password)?,
        };
        tx.execute(
            "INSERT INTO personas (user_id, email, name, archetype, system_prompt, module_mix, tick_cadence, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(user_id) DO UPDATE SET name = excluded.name, archetype = excluded.archetype,
               system_prompt = excluded.system_prompt, module_mix = excluded.module_mix, tick_cadence = excluded.tick_cadence",
            params![id, p.email, p.name, p.archetype, p.system_prompt, mix, cadence, now_iso()],
        )?;
        tx.commit()?;
        Ok(id)
    });
    match r {
        Ok(id) => Json(json!({"ok": true, "userId": id, "email": p.email})).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "upsert failed", "detail": e.to_string()})),
        )
            .into_response(),
    }
}

async fn admin_list(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
    if let Err(r) = check_admin(&s, &headers) {
        return r;
    }
    let week_ago = (Utc::now() - chrono::Duration::days(7))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rows = s.db.call(|c| {
        let mut st = c.prepare(
            "SELECT p.user_id, p.email, p.archetype, p.tick_cadence, p.last_active_at, p.created_at,
                    (SELECT COUNT(*) FROM persona_actions a WHERE a.persona_id = p.user_id AND a.created_at >= ?1)
             FROM personas p ORDER BY p.email",
        )?;
        let rows = st.query_map(params![week_ago], |r| {
            Ok(PersonaSummary {
                user_id: r.get(0)?,
                email: r.get(1)?,
                archetype: r.get(2)?,
                tick_cadence: r.get(3)?,
                last_active_at: r.get(4)?,
                created_at: r.get(5)?,
                actions7d: r.get(6)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    });
    match rows {
        Ok(personas) => Json(admin::ListResponse { personas }).into_response(),
        Err(e) => db_error(e),
    }
}

async fn admin_show(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = check_admin(&s, &headers) {
        return r;
    }
    let r = s.db.call(|c| {
        let persona = c
            .query_row(
                "SELECT user_id, email, name, archetype, system_prompt, module_mix, tick_cadence, last_active_at, created_at
                 FROM personas WHERE user_id = ?1",
                params![id],
                |r| {
                    Ok(json!({
                        "userId": r.get::<_, String>(0)?, "email": r.get::<_, String>(1)?, "name": r.get::<_, Option<String>>(2)?,
                        "archetype": r.get::<_, String>(3)?, "systemPrompt": r.get::<_, String>(4)?,
                        "moduleMix": serde_json::from_str::<Value>(&r.get::<_, String>(5)?).unwrap_or(Value::Null),
                        "tickCadence": r.get::<_, String>(6)?, "lastActiveAt": r.get::<_, Option<String>>(7)?,
                        "createdAt": r.get::<_, String>(8)?,
                    }))
                },
            )
            .optional()?;
        let Some(persona) = persona else { return Ok(None) };
        let mut st = c.prepare(
            "SELECT tick_id, tool_name, result, error_message, latency_ms, created_at FROM persona_actions
             WHERE persona_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 20",
        )?;
        let actions = st
            .query_map(params![id], |r| {
                Ok(json!({"tickId": r.get::<_, String>(0)?, "toolName": r.get::<_, String>(1)?, "result": r.get::<_, String>(2)?,
                          "errorMessage": r.get::<_, Option<String>>(3)?, "latencyMs": r.get::<_, Option<i64>>(4)?,
                          "createdAt": r.get::<_, String>(5)?}))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = c.prepare(
            "SELECT module, COUNT(*), AVG(rating) FROM persona_feedback WHERE persona_id = ?1 GROUP BY module ORDER BY module",
        )?;
        let feedback = st
            .query_map(params![id], |r| {
                Ok(json!({"module": r.get::<_, String>(0)?, "count": r.get::<_, i64>(1)?, "avgRating": r.get::<_, f64>(2)?}))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(json!({"persona": persona, "recentActions": actions, "feedbackByModule": feedback})))
    });
    match r {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "Persona not found"),
        Err(e) => db_error(e),
    }
}

async fn admin_delete(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = check_admin(&s, &headers) {
        return r;
    }
    let r = s.db.call(|c| {
        let tx = c.transaction()?;
        let n = tx.execute("DELETE FROM personas WHERE user_id = ?1", params![id])?;
        if n == 0 {
            return Ok(false);
        }
        // Spaces only this user belonged to go with the user.
        tx.execute(
            "DELETE FROM spaces WHERE id IN (SELECT space_id FROM members WHERE user_id = ?1)
               AND id NOT IN (SELECT space_id FROM members WHERE user_id != ?1)",
            params![id],
        )?;
        tx.execute("DELETE FROM users WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(true)
    });
    match r {
        Ok(true) => Json(json!({"ok": true, "deleted": id})).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "Persona not found"),
        Err(e) => db_error(e),
    }
}

// ---------------------------------------------------------------- internal

#[allow(clippy::result_large_err)] // handlers return the Response as is
fn check_service_key(s: &SandboxState, headers: &HeaderMap) -> Result<(), Response> {
    match headers.get("x-service-key").and_then(|v| v.to_str().ok()) {
        Some(k) if k == s.opts.service_key => Ok(()),
        Some(_) => Err(error(StatusCode::FORBIDDEN, "Invalid service key")),
        None => Err(error(StatusCode::UNAUTHORIZED, "Missing X-Service-Key")),
    }
}

/// The server's due rules: hourly ≥ 1 h, daily ≥ 24 h, weekdays like daily but
/// only Monday–Friday (UTC); never active counts as due.
pub fn is_due(cadence: &str, last_active: Option<&str>, now: DateTime<Utc>) -> bool {
    let weekday_ok = !matches!(now.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
    if cadence == "weekdays" && !weekday_ok {
        return false;
    }
    let Some(last) = last_active.and_then(|l| DateTime::parse_from_rfc3339(l).ok()) else {
        return true;
    };
    let age = now - last.with_timezone(&Utc);
    match cadence {
        "hourly" => age >= chrono::Duration::hours(1),
        _ => age >= chrono::Duration::hours(24),
    }
}

async fn internal_due(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
    if let Err(r) = check_service_key(&s, &headers) {
        return r;
    }
    let now = Utc::now();
    let rows = s.db.call(|c| {
        let mut st = c.prepare(
            "SELECT user_id, email, archetype, system_prompt, module_mix, tick_cadence, last_active_at
             FROM personas ORDER BY last_active_at IS NOT NULL, last_active_at, email",
        )?;
        let rows = st.query_map([], |r| {
            Ok(DuePersona {
                user_id: r.get(0)?,
                email: r.get(1)?,
                archetype: r.get(2)?,
                system_prompt: r.get(3)?,
                module_mix: serde_json::from_str::<BTreeMap<String, f64>>(&r.get::<_, String>(4)?).unwrap_or_default(),
                tick_cadence: r.get(5)?,
                last_active_at: r.get(6)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    });
    match rows {
        Ok(all) => {
            let personas: Vec<DuePersona> = all
                .into_iter()
                .filter(|p| {
                    is_due(
                        p.tick_cadence.as_deref().unwrap_or("daily"),
                        p.last_active_at.as_deref(),
                        now,
                    )
                })
                .collect();
            Json(json!({"personas": personas, "serverTime": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}))
                .into_response()
        }
        Err(e) => db_error(e),
    }
}

fn persona_exists(s: &SandboxState, id: &str) -> rusqlite::Result<bool> {
    s.db.call(|c| {
        c.query_row(
            "SELECT 1 FROM personas WHERE user_id = ?1",
            params![id],
            |_| Ok(()),
        )
        .optional()
        .map(|o| o.is_some())
    })
}

/// 404 for an unknown persona, else inserts in one transaction (`insert`
/// returns how many rows were new) and, for actions, moves lastActiveAt: the
/// only thing that does.
fn write_rows(
    s: &SandboxState,
    id: &str,
    touch_last_active: bool,
    insert: impl FnOnce(&rusqlite::Transaction, &str) -> rusqlite::Result<usize>,
) -> Response {
    match persona_exists(s, id) {
        Ok(true) => {}
        Ok(false) => return error(StatusCode::NOT_FOUND, "Persona not found"),
        Err(e) => return db_error(e),
    }
    let r = s.db.call(|c| {
        let tx = c.transaction()?;
        let now = now_iso();
        let written = insert(&tx, &now)?;
        if touch_last_active {
            tx.execute(
                "UPDATE personas SET last_active_at = ?1 WHERE user_id = ?2",
                params![now, id],
            )?;
        }
        tx.commit()?;
        Ok(written)
    });
    match r {
        Ok(written) => Json(json!({"ok": true, "written": written})).into_response(),
        Err(e) => db_error(e),
    }
}

fn validation(details: Vec<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "ValidationError", "details": details})),
    )
        .into_response()
}

/// The platform's rule for both batches: not empty, not above the limit.
fn size_problem(kind: &str, len: usize, max: usize) -> Option<String> {
    match len {
        0 => Some(format!("{kind} must not be empty")),
        n if n > max => Some(format!("at most {max} {kind} rows per request")),
        _ => None,
    }
}

const INSERT_ACTION: &str = "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, input_hash, result, error_message, latency_ms, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(id) DO NOTHING";

const INSERT_FEEDBACK: &str =
    "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING";

/// The platform's row id: `{tickId}-{i}-{toolName}`, cut to 255 characters.
pub fn action_row_id(tick_id: &str, index: usize, tool: &str) -> String {
    format!("{tick_id}-{index}-{tool}")
        .chars()
        .take(255)
        .collect()
}

async fn internal_actions(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = check_service_key(&s, &headers) {
        return r;
    }
    let batch: ActionsBatch = match serde_json::from_str(&body) {
        Ok(b) => b,
        Err(e) => return validation(vec![format!("invalid body: {e}")]),
    };
    let mut details: Vec<String> =
        size_problem("actions", batch.actions.len(), MAX_ACTIONS_PER_BATCH)
            .into_iter()
            .collect();
    for (i, a) in batch.actions.iter().enumerate() {
        if a.tick_id.is_empty() {
            details.push(format!("actions[{i}].tickId required"));
        }
        if a.tool_name.is_empty() {
            details.push(format!("actions[{i}].toolName required"));
        }
    }
    if !details.is_empty() {
        return validation(details);
    }
    write_rows(&s, &id, true, |tx, now| {
        let mut written = 0;
        for (i, a) in batch.actions.iter().enumerate() {
            written += tx.execute(
                INSERT_ACTION,
                params![
                    action_row_id(&a.tick_id, i, &a.tool_name),
                    id,
                    a.tick_id,
                    a.tool_name,
                    a.input_hash,
                    match a.result {
                        ActionResult::Ok => "ok",
                        ActionResult::Error => "error",
                    },
                    a.error_message,
                    a.latency_ms.map(|l| l as i64),
                    now
                ],
            )?;
        }
        Ok(written)
    })
}

async fn internal_feedback(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = check_service_key(&s, &headers) {
        return r;
    }
    let raw: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return validation(vec![format!("invalid body: {e}")]),
    };
    let rows = raw["feedback"].as_array().cloned().unwrap_or_default();
    let mut details: Vec<String> = size_problem("feedback", rows.len(), MAX_FEEDBACK_PER_BATCH)
        .into_iter()
        .collect();
    for (i, r) in rows.iter().enumerate() {
        if r["rating"]
            .as_f64()
            .is_none_or(|x| !(1.0..=5.0).contains(&x) || x.fract() != 0.0)
        {
            details.push(format!(
                "feedback[{i}].rating must be an integer from 1 to 5"
            ));
        }
        if r["module"].as_str().is_none_or(str::is_empty) {
            details.push(format!("feedback[{i}].module required"));
        }
        if r["tickId"].as_str().is_none_or(str::is_empty) {
            details.push(format!("feedback[{i}].tickId required"));
        }
    }
    if !details.is_empty() {
        return validation(details);
    }
    let batch: FeedbackBatch = match serde_json::from_value(raw) {
        Ok(b) => b,
        Err(e) => return validation(vec![format!("invalid body: {e}")]),
    };
    write_rows(&s, &id, false, |tx, now| {
        let mut written = 0;
        for f in &batch.feedback {
            written += tx.execute(
                INSERT_FEEDBACK,
                params![
                    format!("{}-{}", f.tick_id, f.module),
                    id,
                    f.tick_id,
                    f.module,
                    f.rating,
                    f.notes,
                    now
                ],
            )?;
        }
        Ok(written)
    })
}
