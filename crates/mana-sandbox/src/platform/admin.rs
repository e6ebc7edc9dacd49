//! apps/api's persona admin (`/api/v1/personas/admin`, admin JWT): upsert,
//! list, detail, delete — with the platform's answers, quirks included
//! (`contract/mana-platform.md`, "Admin endpoints").
//!
//! Who is an admin: the configured admin JWT. A persona's own bearer is a
//! valid token of a non-admin user (403); anything else is not a token the
//! platform would accept (401).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::auth::create_user;
use super::{bearer, db_error, error, validation};
use crate::SandboxState;
use crate::db::now_iso;

const CADENCES: [&str; 3] = ["daily", "weekdays", "hourly"];

/// apps/api's auth middleware, then the routes' own role check.
#[allow(clippy::result_large_err)] // handlers return the Response as is
fn check_admin(s: &SandboxState, headers: &HeaderMap) -> Result<(), Response> {
    // The configured development token, or an admin account's JWT; a valid
    // JWT without the admin role is 403, anything else (expired, forged) 401.
    if bearer(headers).is_some_and(|t| t == s.opts.admin_jwt) {
        return Ok(());
    }
    match super::auth::verify_api_bearer(s, headers)? {
        c if c.role == "admin" => Ok(()),
        _ => Err((
            StatusCode::FORBIDDEN,
            Json(json!({"error": "Forbidden", "message": "Admin access required"})),
        )
            .into_response()),
    }
}

/// What the server itself checks on `POST /`, every problem at once, in the
/// platform's words. Nothing more: `@mana.test` and the prompt's minimum
/// length are the client's policy, and a twin that refused them would hide a
/// client that forgot to.
fn validate_upsert(v: &Value) -> Vec<String> {
    let mut d = Vec::new();
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    if s("email").is_none_or(|e| !e.contains('@')) {
        d.push("email required".to_string());
    }
    // JavaScript's `length`: UTF-16 code units.
    if s("password").is_none_or(|p| p.encode_utf16().count() < 8) {
        d.push("password ≥ 8 chars required".to_string());
    }
    if s("archetype").is_none_or(str::is_empty) {
        d.push("archetype required".to_string());
    }
    if s("systemPrompt").is_none_or(str::is_empty) {
        d.push("systemPrompt required".to_string());
    }
    // `typeof x === 'object'`: an array passes too, weights are not looked at.
    if !v
        .get("moduleMix")
        .is_some_and(|m| m.is_object() || m.is_array())
    {
        d.push("moduleMix object required".to_string());
    }
    // A falsy cadence (absent, null, "") means the default.
    if let Some(c) = v.get("tickCadence")
        && !is_falsy(c)
        && c.as_str().is_none_or(|c| !CADENCES.contains(&c))
    {
        d.push(format!(
            "tickCadence must be one of {}",
            CADENCES.join(", ")
        ));
    }
    d
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

pub async fn upsert(State(s): State<SandboxState>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = check_admin(&s, &headers) {
        return r;
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON body");
    };
    let details = validate_upsert(&body);
    if !details.is_empty() {
        return validation(details);
    }
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let (email, password) = (text("email"), text("password"));
    let (archetype, prompt) = (text("archetype"), text("systemPrompt"));
    // Register's name: the given one, else the email's local part.
    let name = body["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
    let cadence = body["tickCadence"]
        .as_str()
        .filter(|c| !c.is_empty())
        .unwrap_or("daily")
        .to_string();
    let mix = body["moduleMix"].to_string();
    let r = s.db.call(|c| {
        let tx = c.transaction()?;
        let existing: Option<String> =
            tx.query_row("SELECT id FROM users WHERE email = ?1", params![email], |r| r.get(0)).optional()?;
        // An existing user keeps its account (and password); only the descriptor is upserted.
        let id = match existing {
            Some(id) => id,
            None => create_user(&tx, &email, Some(&name), &password)?,
        };
        tx.execute(
            "INSERT INTO personas (user_id, email, archetype, system_prompt, module_mix, tick_cadence, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(user_id) DO UPDATE SET email = excluded.email, archetype = excluded.archetype,
               system_prompt = excluded.system_prompt, module_mix = excluded.module_mix, tick_cadence = excluded.tick_cadence",
            params![id, email, archetype, prompt, mix, cadence, now_iso()],
        )?;
        tx.commit()?;
        Ok(id)
    });
    match r {
        Ok(id) => Json(json!({"ok": true, "userId": id, "email": email})).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "Sign-up failed", "detail": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /`: newest first, no `name` (apps/api's table has none).
pub async fn list(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
    if let Err(r) = check_admin(&s, &headers) {
        return r;
    }
    let week_ago = (Utc::now() - chrono::Duration::days(7))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rows = s.db.call(|c| {
        let mut st = c.prepare(
            "SELECT p.user_id, p.email, p.archetype, p.tick_cadence, p.last_active_at, p.created_at,
                    (SELECT COUNT(*) FROM persona_actions a WHERE a.persona_id = p.user_id AND a.created_at >= ?1)
             FROM personas p ORDER BY p.created_at DESC, p.rowid DESC",
        )?;
        let rows = st.query_map(params![week_ago], |r| {
            Ok(json!({
                "userId": r.get::<_, String>(0)?,
                "email": r.get::<_, String>(1)?,
                "archetype": r.get::<_, String>(2)?,
                "tickCadence": r.get::<_, String>(3)?,
                "lastActiveAt": r.get::<_, Option<String>>(4)?,
                "createdAt": r.get::<_, String>(5)?,
                "actions7d": r.get::<_, i64>(6)?,
            }))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    });
    match rows {
        Ok(personas) => Json(json!({"personas": personas})).into_response(),
        Err(e) => db_error(e),
    }
}

/// `GET /:id`: the descriptor (no `name`), the 20 newest raw action rows and
/// the feedback per module — whose `avgRating` is a row COUNT on the
/// platform (it selects `count()` under that name). Mirrored, so a client
/// that prints it as an average is caught here.
pub async fn show(
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
                "SELECT user_id, email, archetype, system_prompt, module_mix, tick_cadence, last_active_at, created_at
                 FROM personas WHERE user_id = ?1",
                params![id],
                |r| {
                    Ok(json!({
                        "userId": r.get::<_, String>(0)?, "email": r.get::<_, String>(1)?,
                        "archetype": r.get::<_, String>(2)?, "systemPrompt": r.get::<_, String>(3)?,
                        "moduleMix": serde_json::from_str::<Value>(&r.get::<_, String>(4)?).unwrap_or(Value::Null),
                        "tickCadence": r.get::<_, String>(5)?, "lastActiveAt": r.get::<_, Option<String>>(6)?,
                        "createdAt": r.get::<_, String>(7)?,
                    }))
                },
            )
            .optional()?;
        let Some(persona) = persona else { return Ok(None) };
        let mut st = c.prepare(
            "SELECT id, persona_id, tick_id, tool_name, input_hash, result, error_message, latency_ms, created_at
             FROM persona_actions WHERE persona_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 20",
        )?;
        let actions = st
            .query_map(params![id], |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?, "personaId": r.get::<_, String>(1)?,
                    "tickId": r.get::<_, String>(2)?, "toolName": r.get::<_, String>(3)?,
                    "inputHash": r.get::<_, Option<String>>(4)?, "result": r.get::<_, String>(5)?,
                    "errorMessage": r.get::<_, Option<String>>(6)?, "latencyMs": r.get::<_, Option<i64>>(7)?,
                    "createdAt": r.get::<_, String>(8)?,
                }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = c.prepare(
            "SELECT module, COUNT(*) FROM persona_feedback WHERE persona_id = ?1 GROUP BY module",
        )?;
        let feedback = st
            .query_map(params![id], |r| {
                Ok(json!({"module": r.get::<_, String>(0)?, "avgRating": r.get::<_, i64>(1)?}))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(json!({"persona": persona, "recentActions": actions, "feedbackByModule": feedback})))
    });
    match r {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "Not found"),
        Err(e) => db_error(e),
    }
}

/// `DELETE /:id`: only a persona (a user without a persona row is 404), with
/// its rows, its user and the spaces only it belonged to.
pub async fn delete(
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
        Ok(false) => error(StatusCode::NOT_FOUND, "Not found"),
        Err(e) => db_error(e),
    }
}
