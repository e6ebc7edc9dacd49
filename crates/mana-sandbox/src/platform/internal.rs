//! apps/api's runner endpoints (`/api/v1/personas/internal`, service key):
//! the due list, and the action and feedback batches with the platform's
//! row-id rules.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::{db_error, error, error_with_status, internal_error};
use crate::SandboxState;
use crate::db::now_iso;

/// The platform's batch limits.
pub const MAX_ACTIONS_PER_BATCH: usize = 500;
pub const MAX_FEEDBACK_PER_BATCH: usize = 100;

#[allow(clippy::result_large_err)] // handlers return the Response as is
fn check_service_key(s: &SandboxState, headers: &HeaderMap) -> Result<(), Response> {
    match headers.get("x-service-key").and_then(|v| v.to_str().ok()) {
        Some(k) if k == s.opts.service_key => Ok(()),
        _ => Err(error_with_status(
            StatusCode::UNAUTHORIZED,
            "Invalid service key",
        )),
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

/// One of the two batch endpoints: its body key, its limit, its required
/// fields and the columns Postgres types.
struct Batch {
    /// `actions` / `feedback`: the body's key.
    key: &'static str,
    /// `action` / `feedback`: as the platform's "One or more … rows" says it.
    noun: &'static str,
    max: usize,
    /// The platform's row check: only the required fields.
    valid: fn(&Map<String, Value>) -> bool,
    /// Optional text columns and integer columns, checked by the database.
    text: &'static [&'static str],
    int: &'static [&'static str],
}

const ACTIONS: Batch = Batch {
    key: "actions",
    noun: "action",
    max: MAX_ACTIONS_PER_BATCH,
    valid: |r| {
        r.get("tickId").is_some_and(Value::is_string)
            && r.get("toolName").is_some_and(Value::is_string)
            && matches!(
                r.get("result").and_then(Value::as_str),
                Some("ok" | "error")
            )
    },
    text: &["inputHash", "errorMessage"],
    int: &["latencyMs"],
};

const FEEDBACK: Batch = Batch {
    key: "feedback",
    noun: "feedback",
    max: MAX_FEEDBACK_PER_BATCH,
    // `typeof rating === 'number'` and 1..5: 3.5 passes here (and fails in
    // the database).
    valid: |r| {
        r.get("tickId").is_some_and(Value::is_string)
            && r.get("module").is_some_and(Value::is_string)
            && r.get("rating")
                .and_then(Value::as_f64)
                .is_some_and(|x| (1.0..=5.0).contains(&x))
    },
    text: &["notes"],
    int: &["rating"],
};

impl Batch {
    /// The platform's order after the 404: parse, array, size, rows. `Ok`
    /// holds the rows the handler may write.
    #[allow(clippy::result_large_err)] // handlers return the Response as is
    fn accept(&self, body: &str) -> Result<Vec<Map<String, Value>>, Response> {
        let bad = |m: String| Err(error(StatusCode::BAD_REQUEST, m));
        let Ok(body) = serde_json::from_str::<Value>(body) else {
            return bad("Invalid JSON".into());
        };
        let rows = match body.get(self.key).and_then(Value::as_array) {
            Some(rows) if !rows.is_empty() => rows,
            _ => return bad(format!("`{}` array required", self.key)),
        };
        if rows.len() > self.max {
            return bad(format!("`{}` batch size must be ≤ {}", self.key, self.max));
        }
        let rows: Option<Vec<_>> = rows
            .iter()
            .map(|r| r.as_object().filter(|r| (self.valid)(r)).cloned())
            .collect();
        match rows {
            Some(rows) => Ok(rows),
            None => bad(format!("One or more {} rows failed validation", self.noun)),
        }
    }

    /// What Postgres refuses once validation let a row through: a non-string
    /// in an optional text column, a non-integer (or one beyond `integer`'s
    /// 32 bits) in an integer column. The platform answers that with its
    /// generic 500, and the whole batch is lost: one INSERT for all rows.
    fn column_problem(&self, rows: &[Map<String, Value>]) -> Option<String> {
        rows.iter().enumerate().find_map(|(i, r)| {
            let text = self
                .text
                .iter()
                .find(|&&k| r.get(k).is_some_and(|v| !v.is_null() && !v.is_string()));
            let int = self.int.iter().find(|&&k| {
                r.get(k)
                    .is_some_and(|v| !v.is_null() && pg_integer(v).is_none())
            });
            text.or(int).map(|k| {
                format!(
                    "{}[{i}].{k}: invalid input for its column: {}",
                    self.key, r[*k]
                )
            })
        })
    }
}

/// A JSON number as Postgres' `integer` takes it (`12.0` is 12; `12.5`,
/// `"12"`-the-string-from-JSON-types aside, is refused).
fn pg_integer(v: &Value) -> Option<i32> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .and_then(|n| i32::try_from(n).ok())
}

/// The platform's id rule: cut to 255 characters (JavaScript's `slice`,
/// so UTF-16 code units; a surrogate pair is not split here).
fn cut_255(id: String) -> String {
    let mut units = 0;
    id.chars()
        .take_while(|c| {
            units += c.len_utf16();
            units <= 255
        })
        .collect()
}

/// The platform's row id: `{tickId}-{i}-{toolName}`, cut to 255.
pub fn action_row_id(tick_id: &str, index: usize, tool: &str) -> String {
    cut_255(format!("{tick_id}-{index}-{tool}"))
}

/// The platform's feedback id: `{tickId}-{module}`, cut to 255.
pub fn feedback_row_id(tick_id: &str, module: &str) -> String {
    cut_255(format!("{tick_id}-{module}"))
}

const INSERT_ACTION: &str = "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, input_hash, result, error_message, latency_ms, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(id) DO NOTHING";

const INSERT_FEEDBACK: &str =
    "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING";

/// Both batch endpoints: service key, 404 for an unknown persona before the
/// body is read, the platform's 400s, its 500 for a row the database
/// refuses, then one transaction: `insert` each row (ON CONFLICT DO
/// NOTHING) and, for actions, move lastActiveAt — however many rows were
/// new. `written` is the number of rows SENT, as on the platform.
fn post_batch(
    s: &SandboxState,
    headers: &HeaderMap,
    id: &str,
    body: &str,
    batch: &Batch,
    insert: impl Fn(&rusqlite::Transaction, &str, usize, &Map<String, Value>) -> rusqlite::Result<usize>,
) -> Response {
    if let Err(r) = check_service_key(s, headers) {
        return r;
    }
    match persona_exists(s, id) {
        Ok(true) => {}
        Ok(false) => return error(StatusCode::NOT_FOUND, "Persona not found"),
        Err(e) => return db_error(e),
    }
    let rows = match batch.accept(body) {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    if let Some(problem) = batch.column_problem(&rows) {
        return internal_error(&problem);
    }
    let touch_last_active = batch.key == ACTIONS.key;
    let r = s.db.call(|c| {
        let tx = c.transaction()?;
        let now = now_iso();
        for (i, row) in rows.iter().enumerate() {
            insert(&tx, &now, i, row)?;
        }
        if touch_last_active {
            tx.execute(
                "UPDATE personas SET last_active_at = ?1 WHERE user_id = ?2",
                params![now, id],
            )?;
        }
        tx.commit()
    });
    match r {
        Ok(()) => Json(json!({"ok": true, "written": rows.len()})).into_response(),
        Err(e) => db_error(e),
    }
}

/// A row's string field (validated or column-checked before).
fn text<'a>(row: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

pub async fn actions(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    post_batch(&s, &headers, &id, &body, &ACTIONS, |tx, now, i, a| {
        let (tick, tool) = (
            text(a, "tickId").unwrap_or_default(),
            text(a, "toolName").unwrap_or_default(),
        );
        tx.execute(
            INSERT_ACTION,
            params![
                action_row_id(tick, i, tool),
                id,
                tick,
                tool,
                text(a, "inputHash"),
                text(a, "result"),
                text(a, "errorMessage"),
                a.get("latencyMs").and_then(pg_integer),
                now
            ],
        )
    })
}

pub async fn feedback(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    post_batch(&s, &headers, &id, &body, &FEEDBACK, |tx, now, _, f| {
        let (tick, module) = (
            text(f, "tickId").unwrap_or_default(),
            text(f, "module").unwrap_or_default(),
        );
        tx.execute(
            INSERT_FEEDBACK,
            params![
                feedback_row_id(tick, module),
                id,
                tick,
                module,
                f.get("rating").and_then(pg_integer),
                text(f, "notes"),
                now
            ],
        )
    })
}
