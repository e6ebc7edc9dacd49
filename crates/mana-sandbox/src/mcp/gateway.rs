//! mana-mcp's gateway in front of the MCP service, and the places where the
//! TypeScript SDK's transport (the platform's) differs from rmcp's (ours).
//!
//! The gateway's rules (contract, "MCP"): every request needs
//! `Authorization: Bearer <JWT>` and `X-Mana-Space` (else 401 with the
//! platform's texts); a session is bound at initialize to the user and space
//! given then (later requests are only checked to come from the same user,
//! 403 otherwise, and their space header is ignored); an unknown or deleted
//! session is `404 {"error":"Session not found"}`.
//!
//! The transport differences rewritten here:
//! - DELETE answers 200 (rmcp: 202, which official SDK clients warn about);
//! - rmcp's plain-text 404 becomes the gateway's JSON one;
//! - SSE events are framed `event: message` + `data:`, without rmcp's event
//!   ids, and every POST answer carries `mcp-session-id`;
//! - a request outside a session that is not `initialize` (a 2026-07-28
//!   client's `server/discover` probe) is a 400, as from the SDK, not served
//!   statelessly as rmcp would;
//! - the empty priming event (`id: …` + empty `data`) is sent only on POST
//!   streams of clients speaking ≥ 2025-11-25, whose messages then carry
//!   ids too — older clients choke on empty data (wire-facts §3.2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::McpCaller;
use crate::SandboxState;

/// The first revision whose clients accept the empty priming event.
const PRIMING_SINCE: &str = "2025-11-25";
/// What a request without `MCP-Protocol-Version` speaks (spec, and the SDK's
/// `DEFAULT_NEGOTIATED_PROTOCOL_VERSION`).
const DEFAULT_PROTOCOL: &str = "2025-03-26";
/// Initialize bodies are small; this only bounds what the gateway buffers.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Live sessions: id → who opened it, for which space.
type Sessions = Arc<Mutex<HashMap<String, McpCaller>>>;

#[derive(Clone)]
struct Gateway {
    state: SandboxState,
    sessions: Sessions,
}

/// Puts the gateway in front of `mcp` (the rmcp service at `/mcp`).
pub fn wrap(state: SandboxState, mcp: axum::Router) -> axum::Router {
    let gw = Gateway {
        state,
        sessions: Arc::default(),
    };
    mcp.layer(axum::middleware::from_fn_with_state(gw, gateway))
}

fn deny(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

fn session_not_found() -> Response {
    deny(StatusCode::NOT_FOUND, "Session not found")
}

async fn gateway(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    // Owned: a borrow of the request (its body is not Sync) must not live
    // across the awaits below.
    let headers = req.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let bearer = header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    });
    let space = header("x-mana-space").filter(|s| !s.trim().is_empty());
    let session = header("mcp-session-id");
    let protocol_header = header("mcp-protocol-version");
    let Some(token) = bearer else {
        return deny(
            StatusCode::UNAUTHORIZED,
            "Missing or malformed Authorization header",
        );
    };
    // The platform verifies a JWT here: a session token, a forged or an
    // expired JWT is `401 {"error":"Invalid token: …"}`.
    let user_id = match crate::platform::auth::verify_access_token(&gw.state, &token) {
        Ok(claims) => claims.sub,
        Err(refused) => return refused,
    };
    let Some(space_id) = space else {
        return deny(
            StatusCode::UNAUTHORIZED,
            "Missing X-Mana-Space header (set to the active Space ID)",
        );
    };
    let is_delete = req.method() == Method::DELETE;
    let is_post = req.method() == Method::POST;

    let (mut req, caller, protocol) = match &session {
        Some(sid) => {
            let bound = gw.sessions.lock().unwrap().get(sid).cloned();
            match bound {
                None => return session_not_found(),
                Some(b) if b.user_id != user_id => {
                    return deny(StatusCode::FORBIDDEN, "Session belongs to a different user");
                }
                // Bound at initialize: this request's space is ignored.
                Some(b) => (
                    req,
                    b,
                    protocol_header.unwrap_or_else(|| DEFAULT_PROTOCOL.into()),
                ),
            }
        }
        None => {
            if !gw.state.db.is_member(&user_id, &space_id) {
                return deny(
                    StatusCode::UNAUTHORIZED,
                    "X-Mana-Space is not a space of this user",
                );
            }
            // The version the client asks for on initialize decides priming
            // for this first answer, as in the SDK.
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
                return deny(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
            };
            let msg = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
            // The platform's SDK speaks the handshake revisions only: a
            // request outside a session that is not `initialize` (e.g. a
            // 2026-07-28 client's `server/discover` probe, after which the
            // client falls back to initialize) is refused as the SDK does.
            if is_post && msg["method"] != "initialize" {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"jsonrpc": "2.0", "error": {"code": -32000,
                        "message": "Bad Request: Server not initialized"}, "id": null})),
                )
                    .into_response();
            }
            let asked = msg["params"]["protocolVersion"]
                .as_str()
                .map(str::to_string)
                .or(protocol_header)
                .unwrap_or_else(|| DEFAULT_PROTOCOL.into());
            let caller = McpCaller {
                user_id: user_id.clone(),
                space_id,
            };
            (Request::from_parts(parts, Body::from(bytes)), caller, asked)
        }
    };
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;

    let new_session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match (&session, new_session) {
        (None, Some(new)) => {
            gw.sessions.lock().unwrap().insert(new, caller);
        }
        (Some(sid), _) if resp.status() == StatusCode::NOT_FOUND => {
            // rmcp lost it (it never expires sessions here, so: closed).
            gw.sessions.lock().unwrap().remove(sid);
            return session_not_found();
        }
        (Some(sid), _) if is_delete && resp.status().is_success() => {
            gw.sessions.lock().unwrap().remove(sid);
            return StatusCode::OK.into_response();
        }
        _ => {}
    }
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return resp;
    }
    let prime = is_post && protocol.as_str() >= PRIMING_SINCE;
    let (mut parts, body) = resp.into_parts();
    if let Some(sid) = &session
        && let Ok(v) = HeaderValue::from_str(sid)
    {
        parts.headers.insert("mcp-session-id", v);
    }
    parts.headers.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-transform"),
    );
    parts.headers.remove("content-length");
    Response::from_parts(parts, reframe(body, prime))
}

/// Re-emits rmcp's SSE events the TypeScript SDK's way: `event: message`,
/// the data, and (when priming) a leading empty event plus ids
/// `<stream>_<n>`; rmcp's own ids and empty events are dropped. rmcp ends
/// every line with `\n` and every event with an empty line.
fn reframe(body: Body, prime: bool) -> Body {
    let stream_id = uuid::Uuid::new_v4().simple().to_string();
    let priming =
        prime.then(|| Ok::<_, axum::Error>(Bytes::from(format!("id: {stream_id}_0\ndata: \n\n"))));
    let mut buf: Vec<u8> = Vec::new();
    let mut n = 0u64;
    let events = body.into_data_stream().map(move |chunk| {
        buf.extend_from_slice(&chunk?);
        let mut out = String::new();
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if data.concat().is_empty() {
                continue;
            }
            out.push_str("event: message\n");
            if prime {
                n += 1;
                out.push_str(&format!("id: {stream_id}_{n}\n"));
            }
            for line in data {
                out.push_str(&format!("data: {line}\n"));
            }
            out.push('\n');
        }
        Ok::<_, axum::Error>(Bytes::from(out))
    });
    Body::from_stream(futures::stream::iter(priming).chain(events))
}
