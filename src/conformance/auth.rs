//! Login shapes, one wrong password, and the space list (mana-auth).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Cx, Outcome, Runner, check, is_jwt_shaped, jwt_claims, mismatch};
use crate::http::join;
use crate::platform::auth::{LOGIN_PATH, ORGANIZATIONS_PATH, space_type};

/// The contract's JWT lifetime, and how far a deployment's clock may drift
/// from ours before `exp` reads as wrong.
const JWT_TTL_SECS: i64 = 15 * 60;
const CLOCK_SLACK_SECS: i64 = 120;

pub async fn run(r: &mut Runner) {
    check!(r, "auth.login", ["admin.upsert"], login(&mut r.cx));
    check!(
        r,
        "auth.wrong_password",
        ["admin.upsert"],
        wrong_password(&r.cx)
    );
    check!(r, "auth.spaces", ["auth.login"], spaces(&mut r.cx));
}

async fn post_login(cx: &Cx, password: &str) -> Result<super::Exchange, super::Mismatch> {
    let body = json!({"email": cx.email, "password": password});
    let url = join(&cx.targets.auth, LOGIN_PATH);
    cx.probe.send(cx.probe.http.post(url).json(&body)).await
}

/// `200 {token: opaque, user: {id}, accessToken: JWT with exp ≈ 15 min,
/// refreshToken}`.
async fn login(cx: &mut Cx) -> Outcome {
    let password = cx.password()?;
    let ex = post_login(cx, password.expose_secret()).await?;
    ex.expect_status(&[200])?;
    let v = ex.expect_json("{token, user, accessToken, refreshToken}")?;
    // Tokens are secrets: a failure shows which field is wrong, not the body.
    let fail = |what: &str| {
        let keys: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        Err(mismatch(
            what.to_string(),
            format!("{} → HTTP 200 with fields [{}]", ex.what, keys.join(", ")),
        ))
    };
    let Some(access) = v["accessToken"].as_str().filter(|t| is_jwt_shaped(t)) else {
        return fail("`accessToken`: a JWT (three base64url parts)");
    };
    let exp = jwt_claims(access).and_then(|c| c["exp"].as_i64());
    let Some(exp) = exp else {
        return fail("`accessToken` claims with a numeric `exp`");
    };
    let left = exp - chrono::Utc::now().timestamp();
    if left <= 0 || left > JWT_TTL_SECS + CLOCK_SLACK_SECS {
        return Err(mismatch(
            "`accessToken` expiring within ~15 minutes",
            format!("exp {exp}: {left} s from now"),
        ));
    }
    let Some(token) = v["token"].as_str().filter(|t| !t.is_empty()) else {
        return fail("`token`: the opaque session token");
    };
    if is_jwt_shaped(token) {
        return fail("`token` opaque (not a JWT; the JWT is `accessToken`)");
    }
    let Some(uid) = v["user"]["id"].as_str().filter(|t| !t.is_empty()) else {
        return fail("`user.id`");
    };
    if v["refreshToken"].as_str().is_none_or(str::is_empty) {
        return fail("`refreshToken`");
    }
    if cx.found.user_id.as_deref().is_some_and(|id| id != uid) {
        return Err(mismatch(
            format!(
                "`user.id` = the admin upsert's userId {}",
                cx.found.user_id.as_deref().unwrap_or_default()
            ),
            format!("user.id {uid}"),
        ));
    }
    cx.found.jwt = Some(SecretString::from(access.to_string()));
    cx.found.session_token = Some(SecretString::from(token.to_string()));
    Ok(format!("JWT expires in {} min", left / 60))
}

/// One attempt only: five would lock the account for 30 minutes.
async fn wrong_password(cx: &Cx) -> Outcome {
    let ex = post_login(cx, "conformance-wrong-password").await?;
    ex.expect_status(&[401])?;
    match ex.json() {
        Some(v) if has_error(&v) => Ok(String::new()),
        _ => Err(mismatch(
            "401 with an error body (INVALID_CREDENTIALS)",
            ex.shown(),
        )),
    }
}

/// An error body: `error` (string or object), or `code`/`message`.
fn has_error(v: &Value) -> bool {
    ["error", "code", "message"].iter().any(|k| match &v[k] {
        Value::String(s) => !s.is_empty(),
        Value::Object(_) => true,
        _ => false,
    })
}

/// The org list with the JWT, then (on 401) the session token, as the
/// contract says; a `personal` space; metadata an object, a JSON string or
/// null.
async fn spaces(cx: &mut Cx) -> Outcome {
    let url = join(&cx.targets.auth, ORGANIZATIONS_PATH);
    let jwt = cx.found.jwt.clone().expect("auth.login passed");
    let mut bearer = "accessToken";
    let mut ex = cx
        .probe
        .send(cx.probe.http.get(&url).bearer_auth(jwt.expose_secret()))
        .await?;
    if ex.status == 401
        && let Some(session) = cx.found.session_token.clone()
    {
        bearer = "session token (after 401 with accessToken)";
        ex = cx
            .probe
            .send(cx.probe.http.get(&url).bearer_auth(session.expose_secret()))
            .await?;
    }
    ex.expect_status(&[200])?;
    let v = ex.expect_json("[{id, name, slug, metadata}, ...]")?;
    let Some(orgs) = v.as_array() else {
        return Err(mismatch("a JSON array of spaces", ex.shown()));
    };
    for o in orgs {
        let meta_ok = match &o["metadata"] {
            Value::Null | Value::Object(_) => true,
            Value::String(s) => serde_json::from_str::<Value>(s).is_ok_and(|m| m.is_object()),
            _ => false,
        };
        if o["id"].as_str().is_none_or(str::is_empty) || !meta_ok {
            return Err(mismatch(
                "each space: a string `id`, `metadata` an object, a string holding a JSON object, or null",
                format!("{} → {}", ex.what, crate::http::cut(&o.to_string(), 300)),
            ));
        }
    }
    let personal = orgs
        .iter()
        .find(|o| space_type(&o["metadata"]).as_deref() == Some("personal"));
    let Some(p) = personal else {
        return Err(mismatch(
            "a space whose metadata type is `personal`",
            ex.shown(),
        ));
    };
    let id = p["id"].as_str().unwrap_or_default().to_string();
    let meta_kind = match &p["metadata"] {
        Value::String(_) => "metadata as a JSON string",
        _ => "metadata as an object",
    };
    cx.found.space_id = Some(id.clone());
    Ok(format!(
        "{} spaces, personal {id} ({meta_kind}), bearer: {bearer}",
        orgs.len()
    ))
}
