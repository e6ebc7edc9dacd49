//! Admin round-trip (apps/api, admin JWT): creating the throw-away persona,
//! idempotent upsert, list, show, validation, a bad JWT, and the final delete.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{Cx, Exchange, Mismatch, Outcome, Runner, check, mismatch};

/// The throw-away persona's descriptor, with its derived password.
fn descriptor(cx: &Cx) -> Result<Value, Mismatch> {
    Ok(json!({
        "email": cx.email,
        "name": "Conformance Probe",
        "password": cx.password()?.expose_secret(),
        "archetype": "conformance",
        "systemPrompt": "Du bist eine Testperson der Konformitätsprüfung; sie wird gleich wieder gelöscht.",
        "moduleMix": {"todo": 1},
        "tickCadence": "daily",
    }))
}

/// `POST` (create-or-update by email) with `body`.
async fn post(cx: &Cx, body: &Value) -> Result<Exchange, Mismatch> {
    let req = cx
        .probe
        .http
        .post(cx.admin_url(""))
        .bearer_auth(cx.settings.admin_jwt.expose_secret())
        .json(body);
    cx.probe.send(req).await
}

async fn upsert(cx: &Cx) -> Result<Exchange, Mismatch> {
    post(cx, &descriptor(cx)?).await
}

/// `200 {"ok": true, "userId", "email"}` → the user id.
fn upsert_answer(cx: &Cx, ex: &Exchange) -> Result<String, Mismatch> {
    ex.expect_status(&[200])?;
    let v = ex.expect_json("{ok, userId, email}")?;
    let user_id = v["userId"].as_str().filter(|s| !s.is_empty());
    match (v["ok"].as_bool(), user_id, v["email"].as_str()) {
        (Some(true), Some(id), Some(e)) if e.eq_ignore_ascii_case(&cx.email) => Ok(id.to_string()),
        _ => Err(mismatch(
            format!(
                "200 {{\"ok\": true, \"userId\": …, \"email\": \"{}\"}}",
                cx.email
            ),
            ex.shown(),
        )),
    }
}

/// The first check: everything after it works on this persona.
pub async fn create(r: &mut Runner) {
    check!(r, "admin.upsert", [], create_persona(&mut r.cx));
}

async fn create_persona(cx: &mut Cx) -> Outcome {
    let ex = upsert(cx).await?;
    let id = upsert_answer(cx, &ex)?;
    cx.found.user_id = Some(id.clone());
    Ok(format!("{} → userId {id}", cx.email))
}

pub async fn run(r: &mut Runner) {
    check!(
        r,
        "admin.upsert_idempotent",
        ["admin.upsert"],
        upsert_again(&r.cx)
    );
    check!(r, "admin.list", ["admin.upsert"], list(&r.cx));
    check!(r, "admin.show", ["admin.upsert"], show(&r.cx));
    check!(r, "admin.validation", [], validation(&r.cx));
    check!(r, "admin.bad_jwt", [], bad_jwt(&r.cx));
}

fn user_id(cx: &Cx) -> &str {
    cx.found.user_id.as_deref().unwrap_or_default()
}

async fn upsert_again(cx: &Cx) -> Outcome {
    let ex = upsert(cx).await?;
    let id = upsert_answer(cx, &ex)?;
    if id != user_id(cx) {
        return Err(mismatch(
            format!(
                "the same userId {} (create-or-update by email)",
                user_id(cx)
            ),
            ex.shown(),
        ));
    }
    Ok("same userId".into())
}

/// `GET` → `{"personas": [...]}`.
async fn fetch_list(cx: &Cx) -> Result<(Exchange, Vec<Value>), Mismatch> {
    let req = cx
        .probe
        .http
        .get(cx.admin_url(""))
        .bearer_auth(cx.settings.admin_jwt.expose_secret());
    let ex = cx.probe.send(req).await?;
    ex.expect_status(&[200])?;
    let v = ex.expect_json("{personas: [...]}")?;
    match v["personas"].as_array() {
        Some(p) => Ok((ex, p.clone())),
        None => Err(mismatch("{\"personas\": [...]}", ex.shown())),
    }
}

async fn list(cx: &Cx) -> Outcome {
    let (ex, personas) = fetch_list(cx).await?;
    let ours = personas
        .iter()
        .find(|p| p["userId"].as_str() == Some(user_id(cx)));
    match ours {
        Some(p) if p["email"].is_string() && p["archetype"].is_string() => {
            Ok(format!("{} personas, ours among them", personas.len()))
        }
        Some(p) => Err(mismatch(
            "our entry with userId, email, archetype",
            format!("{} → {}", ex.what, crate::http::cut(&p.to_string(), 300)),
        )),
        None => Err(mismatch(
            format!("an entry with userId {}", user_id(cx)),
            ex.shown(),
        )),
    }
}

/// `GET /:id` → `{persona, recentActions, feedbackByModule}` (also used by the
/// idempotency checks, which count the rows it shows).
pub async fn fetch_show(cx: &Cx) -> Result<(Exchange, Value), Mismatch> {
    let req = cx
        .probe
        .http
        .get(cx.admin_url(&format!("/{}", user_id(cx))))
        .bearer_auth(cx.settings.admin_jwt.expose_secret());
    let ex = cx.probe.send(req).await?;
    ex.expect_status(&[200])?;
    let v = ex.expect_json("{persona, recentActions, feedbackByModule}")?;
    if !(v["persona"].is_object()
        && v["recentActions"].is_array()
        && v["feedbackByModule"].is_array())
    {
        return Err(mismatch(
            "{\"persona\": {…}, \"recentActions\": [...], \"feedbackByModule\": [...]}",
            ex.shown(),
        ));
    }
    Ok((ex, v))
}

async fn show(cx: &Cx) -> Outcome {
    let (_, v) = fetch_show(cx).await?;
    Ok(format!(
        "{} recent actions, {} modules rated",
        v["recentActions"].as_array().map_or(0, Vec::len),
        v["feedbackByModule"].as_array().map_or(0, Vec::len)
    ))
}

/// A body the server's own validation refuses (it creates nothing).
async fn validation(cx: &Cx) -> Outcome {
    let body = json!({
        "email": "not-an-email", "password": "short", "archetype": "",
        "systemPrompt": "", "moduleMix": "none",
    });
    let ex = post(cx, &body).await?;
    ex.expect_status(&[400])?;
    let v = ex.expect_json("{error: \"ValidationError\", details}")?;
    match v["details"].as_array() {
        Some(d) if v["error"] == "ValidationError" && !d.is_empty() => {
            Ok(format!("{} details", d.len()))
        }
        _ => Err(mismatch(
            "400 {\"error\": \"ValidationError\", \"details\": [...]}",
            ex.shown(),
        )),
    }
}

async fn bad_jwt(cx: &Cx) -> Outcome {
    let req = cx
        .probe
        .http
        .get(cx.admin_url(""))
        .bearer_auth("conformance.invalid.jwt");
    let ex = cx.probe.send(req).await?;
    ex.expect_error(401, "{\"error\": \"Invalid or expired token\"}")
}

/// Deletes the throw-away persona: always runs, its own line.
pub async fn cleanup(r: &mut Runner) {
    let cx = &mut r.cx;
    // A session a failed MCP check left open is freed first (sessions are
    // only freed by DELETE); not a check of its own.
    if let (Some(sid), Some(jwt), Some(space)) = (
        cx.found.mcp_session.take(),
        cx.found.jwt.as_ref(),
        cx.found.space_id.as_ref(),
    ) {
        let req = super::mcp::delete_request(cx, &sid, jwt, space);
        let _ = cx.probe.send(req).await;
    }
    if cx.found.user_id.is_none() {
        let started = std::time::Instant::now();
        // The create may have happened even though its answer was wrong.
        let outcome = match find_by_email(cx).await {
            Ok(Some(id)) => {
                cx.found.user_id = Some(id);
                delete(cx).await
            }
            Ok(None) => Ok("nothing to delete".into()),
            Err(m) => Err(m),
        };
        r.finish("cleanup.delete_persona", started, outcome);
        return;
    }
    check!(r, "cleanup.delete_persona", [], delete(&r.cx));
}

/// Our persona's id from the admin list, if it is there.
async fn find_by_email(cx: &Cx) -> Result<Option<String>, Mismatch> {
    let (_, personas) = fetch_list(cx).await?;
    Ok(personas
        .iter()
        .find(|p| {
            p["email"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(&cx.email))
        })
        .and_then(|p| p["userId"].as_str().map(str::to_string)))
}

/// `DELETE /:id` → `{ok: true, deleted: id}`, then `GET /:id` → 404.
async fn delete(cx: &Cx) -> Outcome {
    let id = user_id(cx);
    let url = cx.admin_url(&format!("/{id}"));
    let jwt = cx.settings.admin_jwt.expose_secret();
    let ex = cx
        .probe
        .send(cx.probe.http.delete(&url).bearer_auth(jwt))
        .await?;
    ex.expect_status(&[200])?;
    let v = ex.expect_json("{ok, deleted}")?;
    if v["ok"] != true || v["deleted"].as_str() != Some(id) {
        return Err(mismatch(
            format!("200 {{\"ok\": true, \"deleted\": \"{id}\"}}"),
            ex.shown(),
        ));
    }
    let after = cx
        .probe
        .send(cx.probe.http.get(&url).bearer_auth(jwt))
        .await?;
    after.expect_status(&[404])?;
    let warning = v["warning"]
        .as_str()
        .map(|w| format!(" (warning: {w})"))
        .unwrap_or_default();
    Ok(format!("{} deleted{warning}", cx.email))
}
