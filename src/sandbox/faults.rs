//! Fault injection, per route group: the way tests (and the fault campaign)
//! make the sandbox misbehave like a real platform on a bad day.
//!
//! Rules are queued with [`Faults::push`] (from tests) or `POST /__sandbox/faults`
//! (from another process), and consumed in order by matching requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::SandboxState;

/// Which part of the platform a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteGroup {
    /// `/api/v1/auth/*`, `/api/auth/*`
    Auth,
    /// `…/personas/admin…`, `/api/v1/admin/personas…`
    Admin,
    /// `…/personas/internal…`, `/api/v1/internal/personas…`
    Internal,
    /// `/mcp`
    Mcp,
    /// `/v1/messages`, `/v1/chat/completions`
    Llm,
}

impl RouteGroup {
    pub fn of_path(path: &str) -> Option<RouteGroup> {
        if path.starts_with("/__sandbox") {
            None
        } else if path.starts_with("/mcp") {
            Some(RouteGroup::Mcp)
        } else if path.starts_with("/v1/") {
            Some(RouteGroup::Llm)
        } else if path.contains("/personas/admin") || path.contains("/admin/personas") {
            Some(RouteGroup::Admin)
        } else if path.contains("/personas/internal") || path.contains("/internal/personas") {
            Some(RouteGroup::Internal)
        } else if path.starts_with("/api/v1/auth") || path.starts_with("/api/auth") {
            Some(RouteGroup::Auth)
        } else {
            None
        }
    }
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status (and `retry-after` seconds if given) without
    /// touching the handler. 529 gets Anthropic's overloaded body.
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Sleep this long, then serve normally.
    Delay { ms: u64 },
    /// Close the connection without a response.
    Drop,
    /// LLM only: start a 200 stream, then send an `overloaded_error` event.
    SseError,
}

/// One queued rule: the next `count` matching requests get `kind`.
/// With `method`, only requests of that method match (e.g. `POST` on `/mcp`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Fault {
    pub route: RouteGroup,
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub path_contains: Option<String>,
}

fn one() -> u32 {
    1
}

/// Marker put into request extensions when an [`FaultKind::SseError`] matched;
/// the LLM handlers look for it.
#[derive(Debug, Clone, Copy)]
pub struct InjectSseError;

#[derive(Clone, Default)]
pub struct Faults {
    queue: Arc<Mutex<VecDeque<Fault>>>,
    injected: Arc<Mutex<u64>>,
}

impl Faults {
    pub fn push(&self, fault: Fault) {
        self.queue.lock().unwrap().push_back(fault);
    }

    /// Convenience: fail the next `count` requests of `route` with `status`.
    pub fn fail(&self, route: RouteGroup, status: u16, count: u32) {
        self.push(Fault {
            route,
            kind: FaultKind::Status {
                status,
                retry_after: None,
            },
            count,
            path_contains: None,
        });
    }

    pub fn clear(&self) {
        self.queue.lock().unwrap().clear();
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        *self.injected.lock().unwrap()
    }

    /// Takes one use of the first rule matching this request.
    pub fn take(&self, group: RouteGroup, path: &str) -> Option<FaultKind> {
        let mut q = self.queue.lock().unwrap();
        let pos = q.iter().position(|f| {
            f.route == group
                && f.count > 0
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        let rule = &mut q[pos];
        rule.count -= 1;
        let kind = rule.kind.clone();
        if rule.count == 0 {
            q.remove(pos);
        }
        *self.injected.lock().unwrap() += 1;
        Some(kind)
    }
}

/// The middleware in front of every route.
pub async fn inject(State(state): State<SandboxState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some(group) = RouteGroup::of_path(&path) else {
        return next.run(req).await;
    };
    match state.faults.take(group, &path) {
        None => next.run(req).await,
        Some(FaultKind::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(req).await
        }
        Some(FaultKind::SseError) => {
            req.extensions_mut().insert(InjectSseError);
            next.run(req).await
        }
        Some(FaultKind::Drop) => dropped_connection(),
        Some(FaultKind::Status {
            status,
            retry_after,
        }) => status_response(group, status, retry_after),
    }
}

fn status_response(group: RouteGroup, status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = match (group, status) {
        (RouteGroup::Llm, 529) => {
            serde_json::json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded (injected)"}})
        }
        (RouteGroup::Llm, 429) => {
            serde_json::json!({"type":"error","error":{"type":"rate_limit_error","message":"Rate limited (injected)"}})
        }
        (RouteGroup::Llm, _) => {
            serde_json::json!({"type":"error","error":{"type":"api_error","message":format!("injected {status}")}})
        }
        _ => serde_json::json!({"error": format!("injected fault: HTTP {status}")}),
    };
    let mut resp = (code, Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}

/// A response whose body fails at once: hyper then aborts the connection, so
/// the client sees a reset/incomplete message instead of an answer.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected drop",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    // Claim a body so the client waits for bytes that never come.
    resp.headers_mut()
        .insert("content-length", HeaderValue::from_static("1024"));
    resp
}

/// `POST /__sandbox/faults` (a [`Fault`] as JSON), `DELETE /__sandbox/faults`.
pub fn control_router(state: SandboxState) -> Router {
    async fn add(State(s): State<SandboxState>, Json(f): Json<Fault>) -> StatusCode {
        s.faults.push(f);
        StatusCode::NO_CONTENT
    }
    async fn clear(State(s): State<SandboxState>) -> StatusCode {
        s.faults.clear();
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/__sandbox/faults", post(add).delete(clear))
        .with_state(state)
}
