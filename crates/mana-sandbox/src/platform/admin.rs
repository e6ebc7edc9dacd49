//! apps/api's persona admin (`/api/v1/personas/admin`, admin JWT): upsert,
//! list, detail, delete.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::create_user;
use super::{bearer, db_error, error, validation};
use crate::SandboxState;
use crate::db::now_iso;

/// `POST /` body, after validation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert {
    email: String,
    #[serde(default)]
    name: Option<String>,
    password: String,
    archetype: String,
    system_prompt: String,
    module_mix: BTreeMap<String, f64>,
    #[serde(default)]
    tick_cadence: Option<String>,
}

const CADENCES: [&str; 3] = ["daily", "weekdays", "hourly"];

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
            .and_then(|c| CADENCES.contains(&c).then_some(c))
            .is_none()
    {
        d.push("tickCadence must be daily, weekdays or hourly".to_string());
    }
    d
}

pub async fn upsert(
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
    let p: Upsert = match serde_json::from_value(body) {
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
             FROM personas p ORDER BY p.email",
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
        // The platform's bug, mirrored (contract): `avgRating` is `count()`,
        // the number of rows, not an average.
        let mut st = c.prepare(
            "SELECT module, COUNT(*) FROM persona_feedback WHERE persona_id = ?1 GROUP BY module ORDER BY module",
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
        Ok(None) => error(StatusCode::NOT_FOUND, "Persona not found"),
        Err(e) => db_error(e),
    }
}

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
