//! apps/api's runner endpoints (`/api/v1/personas/internal`, service key):
//! the due list, and the action and feedback batches with the platform's
//! row-id rules.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{db_error, error, validation};
use crate::SandboxState;
use crate::db::now_iso;

/// The platform's batch limits.
pub const MAX_ACTIONS_PER_BATCH: usize = 500;
pub const MAX_FEEDBACK_PER_BATCH: usize = 100;

/// One row of `{"actions": [...]}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Action {
    tick_id: String,
    tool_name: String,
    #[serde(default)]
    input_hash: Option<String>,
    result: String,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    latency_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Actions {
    actions: Vec<Action>,
}

/// One row of `{"feedback": [...]}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Feedback {
    tick_id: String,
    module: String,
    rating: i64,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Deserialize)]
struct Feedbacks {
    feedback: Vec<Feedback>,
}

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

pub async fn due(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
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
            let cadence: String = r.get(5)?;
            let last: Option<String> = r.get(6)?;
            Ok((cadence.clone(), last.clone(), json!({
                "userId": r.get::<_, String>(0)?,
                "email": r.get::<_, String>(1)?,
                "archetype": r.get::<_, String>(2)?,
                "systemPrompt": r.get::<_, String>(3)?,
                "moduleMix": serde_json::from_str::<Value>(&r.get::<_, String>(4)?).unwrap_or(json!({})),
                "tickCadence": cadence,
                "lastActiveAt": last,
            })))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    });
    match rows {
        Ok(all) => {
            let personas: Vec<Value> = all
                .into_iter()
                .filter(|(cadence, last, _)| is_due(cadence, last.as_deref(), now))
                .map(|(_, _, p)| p)
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

pub async fn actions(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = check_service_key(&s, &headers) {
        return r;
    }
    let batch: Actions = match serde_json::from_str(&body) {
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
        if a.result != "ok" && a.result != "error" {
            details.push(format!("actions[{i}].result must be ok or error"));
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
                    a.result,
                    a.error_message,
                    a.latency_ms,
                    now
                ],
            )?;
        }
        Ok(written)
    })
}

pub async fn feedback(
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
    let batch: Feedbacks = match serde_json::from_value(raw) {
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
