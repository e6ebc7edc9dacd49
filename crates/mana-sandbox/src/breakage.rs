//! Test-only knobs that make the sandbox break ONE contract behaviour on
//! purpose, so a test can prove that `mana-personas conformance` notices and
//! names the check. Never for anything but tests: a sandbox with a breakage
//! set is, by design, not the platform's twin any more.
//!
//! Why a middleware and not flags in the handlers: the breakages rewrite what
//! goes in or out at the edge, so the handlers (which mirror the platform)
//! stay free of test switches, and one file holds every knob.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::SandboxState;
use crate::platform::LOGIN_PATH;

/// One behaviour to break (`SandboxOptions::breakage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// The login answer has no `accessToken` (renamed to `access_token`).
    LoginWithoutAccessToken,
    /// `DELETE /mcp` answers 202 instead of 200.
    McpDelete202,
    /// Every actions/feedback POST gets a fresh tickId suffix, so a resent
    /// batch stores its rows again instead of colliding.
    NoIdempotency,
}

/// Bodies the rewrites buffer are small JSON; this only bounds them.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The middleware: passes everything through unless a breakage applies.
pub async fn apply(State(state): State<SandboxState>, req: Request, next: Next) -> Response {
    let on = |b| state.opts.breakage.contains(&b);
    if on(Breakage::NoIdempotency)
        && req.method() == Method::POST
        && (req.uri().path().ends_with("/actions") || req.uri().path().ends_with("/feedback"))
    {
        return match fresh_tick_ids(req).await {
            Ok(req) => next.run(req).await,
            Err(resp) => resp,
        };
    }
    let login = req.method() == Method::POST && req.uri().path() == LOGIN_PATH;
    let mcp_delete = req.method() == Method::DELETE && req.uri().path().starts_with("/mcp");
    let resp = next.run(req).await;
    if on(Breakage::McpDelete202) && mcp_delete && resp.status() == StatusCode::OK {
        let (mut parts, body) = resp.into_parts();
        parts.status = StatusCode::ACCEPTED;
        return Response::from_parts(parts, body);
    }
    if on(Breakage::LoginWithoutAccessToken) && login && resp.status() == StatusCode::OK {
        return rename_access_token(resp).await;
    }
    resp
}

/// Appends a per-request suffix to every row's `tickId`.
async fn fresh_tick_ids(req: Request) -> Result<Request, Response> {
    let (mut parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        // Not JSON: the handler answers it as the platform would.
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    for key in ["actions", "feedback"] {
        for row in v[key].as_array_mut().into_iter().flatten() {
            if let Some(t) = row["tickId"].as_str() {
                row["tickId"] = Value::String(format!("{t}-{}", &suffix[..8]));
            }
        }
    }
    let out = serde_json::to_vec(&v).expect("a JSON value serialises");
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, Body::from(out)))
}

async fn rename_access_token(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut()
        && let Some(t) = obj.remove("accessToken")
    {
        obj.insert("access_token".into(), t);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&v).unwrap_or_default()),
    )
}
