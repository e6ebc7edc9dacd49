//! The runner's endpoints (apps/api, service key): a wrong key, the due list,
//! action and feedback batches and their idempotent resend, an empty batch,
//! an unknown persona.
//!
//! Idempotency is judged by what the platform stored, not by its answer
//! (`written` counts rows sent, not rows stored): after the resend, admin
//! show must list each row once.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::admin::fetch_show;
use super::{Cx, Exchange, Mismatch, Outcome, Runner, check, mismatch};
use crate::platform::internal::with_service_key;

pub async fn run(r: &mut Runner) {
    check!(r, "internal.bad_service_key", [], bad_service_key(&r.cx));
    check!(r, "internal.due", [], due(&r.cx));
    check!(r, "internal.actions", ["admin.upsert"], actions(&r.cx));
    check!(
        r,
        "internal.actions_idempotent",
        ["internal.actions", "admin.show"],
        actions_again(&r.cx)
    );
    check!(r, "internal.feedback", ["admin.upsert"], feedback(&r.cx));
    check!(
        r,
        "internal.feedback_idempotent",
        ["internal.feedback", "admin.show"],
        feedback_again(&r.cx)
    );
    check!(
        r,
        "internal.empty_batch",
        ["admin.upsert"],
        empty_batch(&r.cx)
    );
    check!(r, "internal.unknown_persona", [], unknown_persona(&r.cx));
}

fn user_id(cx: &Cx) -> &str {
    cx.found.user_id.as_deref().unwrap_or_default()
}

/// This run's actions: two rows, as a tick posts them.
fn action_rows(cx: &Cx) -> Value {
    json!({"actions": [
        {"tickId": cx.tick_id, "toolName": "todo.list", "inputHash": "44136fa355b3678a",
         "result": "ok", "latencyMs": 12},
        {"tickId": cx.tick_id, "toolName": "mood.today", "inputHash": "44136fa355b3678a",
         "result": "error", "errorMessage": "conformance probe", "latencyMs": 7},
    ]})
}

const ACTION_ROWS: usize = 2;

/// One feedback row: a second one for the same module would collide.
fn feedback_rows(cx: &Cx) -> Value {
    json!({"feedback": [
        {"tickId": cx.tick_id, "module": "todo", "rating": 3, "notes": "conformance probe"},
    ]})
}

async fn post(cx: &Cx, path: &str, key: &str, body: &Value) -> Result<Exchange, Mismatch> {
    let req = with_service_key(cx.probe.http.post(cx.internal_url(path)), key).json(body);
    cx.probe.send(req).await
}

/// `200 {"ok": true, "written": n}`.
fn written(ex: &Exchange, n: usize) -> Outcome {
    ex.expect_status(&[200])?;
    let v = ex.expect_json("{ok, written}")?;
    if v["ok"] == true && v["written"].as_u64() == Some(n as u64) {
        Ok(format!("written {n}"))
    } else {
        Err(mismatch(
            format!("200 {{\"ok\": true, \"written\": {n}}}"),
            ex.shown(),
        ))
    }
}

/// `GET /due` with `key`.
async fn get_due(cx: &Cx, key: &str) -> Result<Exchange, Mismatch> {
    let req = with_service_key(cx.probe.http.get(cx.internal_url("/due")), key);
    cx.probe.send(req).await
}

async fn bad_service_key(cx: &Cx) -> Outcome {
    let ex = get_due(cx, "conformance-wrong-key").await?;
    ex.expect_error(401, "{\"error\": \"Invalid service key\"}")
}

/// `{personas: [...], serverTime}`; the fresh persona (never active, daily)
/// is due.
async fn due(cx: &Cx) -> Outcome {
    let ex = get_due(cx, cx.settings.service_key.expose_secret()).await?;
    ex.expect_status(&[200])?;
    let v = ex.expect_json("{personas, serverTime}")?;
    let (Some(personas), Some(_)) = (v["personas"].as_array(), v["serverTime"].as_str()) else {
        return Err(mismatch(
            "{\"personas\": [...], \"serverTime\": \"…\"}",
            ex.shown(),
        ));
    };
    let bad = personas
        .iter()
        .find(|p| !(p["userId"].is_string() && p["email"].is_string()));
    if let Some(p) = bad {
        return Err(mismatch(
            "each due persona with `userId` and `email`",
            crate::http::cut(&p.to_string(), 300),
        ));
    }
    let ours = personas
        .iter()
        .any(|p| p["userId"].as_str() == Some(user_id(cx)));
    if cx.found.user_id.is_some() && !ours {
        return Err(mismatch(
            format!(
                "the new persona {} (daily, never active) among the due",
                user_id(cx)
            ),
            ex.shown(),
        ));
    }
    Ok(format!("{} due", personas.len()))
}

async fn actions(cx: &Cx) -> Outcome {
    let key = cx.settings.service_key.expose_secret();
    let path = format!("/{}/actions", user_id(cx));
    let ex = post(cx, &path, key, &action_rows(cx)).await?;
    written(&ex, ACTION_ROWS)
}

/// The same batch again: still 2xx, and each row stored once.
async fn actions_again(cx: &Cx) -> Outcome {
    let key = cx.settings.service_key.expose_secret();
    let path = format!("/{}/actions", user_id(cx));
    let ex = post(cx, &path, key, &action_rows(cx)).await?;
    ex.expect_status(&[200, 201, 202, 204])?;
    let (show, v) = fetch_show(cx).await?;
    // The persona is new: every row it has is one of ours.
    let stored = v["recentActions"].as_array().map_or(0, Vec::len);
    if stored != ACTION_ROWS {
        return Err(mismatch(
            format!(
                "{ACTION_ROWS} stored actions after resending the same batch (ids {{tickId}}-{{i}}-{{toolName}}, ON CONFLICT DO NOTHING)"
            ),
            format!("{stored} rows in {}", show.what),
        ));
    }
    Ok(format!(
        "{ACTION_ROWS} rows stored, not {}",
        2 * ACTION_ROWS
    ))
}

async fn feedback(cx: &Cx) -> Outcome {
    let key = cx.settings.service_key.expose_secret();
    let path = format!("/{}/feedback", user_id(cx));
    let ex = post(cx, &path, key, &feedback_rows(cx)).await?;
    written(&ex, 1)
}

/// The same feedback again: one row stored. admin show's `avgRating` is the
/// row count (a platform bug the contract records), so it must read 1.
async fn feedback_again(cx: &Cx) -> Outcome {
    let key = cx.settings.service_key.expose_secret();
    let path = format!("/{}/feedback", user_id(cx));
    let ex = post(cx, &path, key, &feedback_rows(cx)).await?;
    ex.expect_status(&[200, 201, 202, 204])?;
    let (show, v) = fetch_show(cx).await?;
    let todo = v["feedbackByModule"]
        .as_array()
        .and_then(|m| m.iter().find(|e| e["module"] == "todo"))
        .and_then(|e| e["avgRating"].as_f64());
    match todo {
        Some(1.0) => Ok("1 row stored".into()),
        other => Err(mismatch(
            "feedbackByModule todo with avgRating 1 (the platform's avgRating is the row count; one row after resending the same batch)",
            format!(
                "avgRating {} in {}",
                other.map_or("absent".to_string(), |n| n.to_string()),
                show.shown()
            ),
        )),
    }
}

async fn empty_batch(cx: &Cx) -> Outcome {
    let key = cx.settings.service_key.expose_secret();
    let path = format!("/{}/actions", user_id(cx));
    let ex = post(cx, &path, key, &json!({"actions": []})).await?;
    ex.expect_status(&[400])?;
    Ok(String::new())
}

async fn unknown_persona(cx: &Cx) -> Outcome {
    let key = cx.settings.service_key.expose_secret();
    let path = format!("/conformance-no-such-persona-{}/actions", &cx.tick_id);
    let ex = post(cx, &path, key, &action_rows(cx)).await?;
    ex.expect_status(&[404])?;
    Ok(String::new())
}
