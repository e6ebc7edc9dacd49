//! Fault injection, per route group: the way tests (and the fault campaign)
//! make the sandbox misbehave like a real platform on a bad day.
//!
//! Rules are queued with [`Faults::push`] (from tests) or `POST /__sandbox/faults`
//! (from another process), and consumed in order by matching requests. Most
//! rules hit the next `count` matching requests; a [`FaultKind::Random`] rule
//! hits each of them with a probability, from its own seeded RNG, so a whole
//! campaign can run at a known fault rate and replay the same dice.
//!
//! Every request that reaches the middleware is counted per endpoint, with the
//! faults it got ([`Faults::stats`], `GET /__sandbox/faults`): a campaign can
//! prove the rate it claims instead of assuming it.

use std::collections::{BTreeMap, VecDeque};
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
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::SandboxState;

/// Which part of the platform a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// Every group, for reports that must show the ones nothing reached too.
    pub const ALL: [RouteGroup; 5] = [
        RouteGroup::Auth,
        RouteGroup::Admin,
        RouteGroup::Internal,
        RouteGroup::Mcp,
        RouteGroup::Llm,
    ];

    /// The group of a request path; `None` for the sandbox's own control
    /// routes and unknown paths (never faulted).
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
    /// Run the handler (the server does the work and commits it), then lose
    /// the answer: the client sees the connection close mid-body. The nastiest
    /// fault for a writer, because a retry is a second delivery of work that
    /// already happened.
    DropAfter,
    /// Answer with `status` and `{"received": <the request's JSON body>}`
    /// without touching the handler: the validation error of a server that
    /// echoes what it was sent (passwords included), as some frameworks do.
    Echo { status: u16 },
    /// Answer with `status` and exactly `body` (JSON) without touching the
    /// handler: a platform whose answer the test writes itself (a due list
    /// with a hostile entry).
    Respond {
        status: u16,
        body: serde_json::Value,
    },
    /// Run the handler (the work is done and committed), then answer with
    /// its status but exactly `body` as plain text — empty, or not JSON: a
    /// platform (or a proxy in front of it) whose 2xx says nothing usable.
    Rebody {
        #[serde(default)]
        body: String,
    },
    /// Each matching request, with probability `rate`, gets one of `of`
    /// (chosen uniformly; repeat an entry to weight it); the others go on to
    /// later rules. The dice come from an RNG seeded with `seed`, one per rule.
    /// The rule's `count` counts the requests it *rolled for*, so
    /// `count: u32::MAX` keeps it standing for a whole run.
    Random {
        rate: f64,
        of: Vec<FaultKind>,
        #[serde(default)]
        seed: u64,
    },
}

impl FaultKind {
    /// A short name for tallies: the status code, or the kind's name.
    pub fn label(&self) -> String {
        match self {
            FaultKind::Status { status, .. } => status.to_string(),
            FaultKind::Delay { .. } => "delay".into(),
            FaultKind::Drop => "drop".into(),
            FaultKind::SseError => "sse_error".into(),
            FaultKind::DropAfter => "drop_after".into(),
            FaultKind::Echo { .. } => "echo".into(),
            FaultKind::Respond { .. } => "respond".into(),
            FaultKind::Rebody { .. } => "rebody".into(),
            FaultKind::Random { .. } => "random".into(),
        }
    }
}

/// One queued rule: the next `count` matching requests get `kind` (for
/// [`FaultKind::Random`]: are rolled for). With `path_contains`, only paths
/// containing that text match.
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

/// What the middleware saw on one endpoint (method and path, ids replaced by
/// `:id`), for a campaign's tallies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub route: RouteGroup,
    /// `POST /api/v1/personas/internal/:id/actions`.
    pub endpoint: String,
    /// Requests that reached the middleware.
    pub requests: u64,
    /// Faults injected, by [`FaultKind::label`].
    pub injected: BTreeMap<String, u64>,
}

impl EndpointStats {
    /// All faults injected on this endpoint.
    pub fn faulted(&self) -> u64 {
        self.injected.values().sum()
    }
}

/// A queued rule and, for a random one, its dice.
struct Rule {
    fault: Fault,
    rng: Option<StdRng>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Rule>,
    injected: u64,
    stats: BTreeMap<(RouteGroup, String), EndpointStats>,
}

/// The fault queue and its tallies; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a rule behind the ones already queued.
    pub fn push(&self, fault: Fault) {
        let rng = match &fault.kind {
            FaultKind::Random { seed, .. } => Some(StdRng::seed_from_u64(*seed)),
            _ => None,
        };
        self.lock().queue.push_back(Rule { fault, rng });
    }

    /// Convenience: a standing rule that fails each request of `route` with
    /// probability `rate`, in one of the ways `of`, for the rest of the run
    /// (until [`Faults::clear`]).
    pub fn random(&self, route: RouteGroup, rate: f64, of: Vec<FaultKind>, seed: u64) {
        self.push(Fault {
            route,
            kind: FaultKind::Random { rate, of, seed },
            count: u32::MAX,
            path_contains: None,
        });
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

    /// Drops every queued rule (the tallies stay).
    pub fn clear(&self) {
        self.lock().queue.clear();
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// Per endpoint: requests seen and faults injected so far.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.lock().stats.values().cloned().collect()
    }

    /// Takes one use of the first rule matching this request (a random rule
    /// that rolls "no" lets later rules have their turn), counted in the
    /// endpoint's tallies. The middleware's path, and the tests' too.
    pub fn take_for(&self, group: RouteGroup, method: &str, path: &str) -> Option<FaultKind> {
        let mut inner = self.lock();
        let kind = take_locked(&mut inner.queue, group, path);
        if kind.is_some() {
            inner.injected += 1;
        }
        let endpoint = format!("{method} {}", normalise_path(path));
        let st = inner
            .stats
            .entry((group, endpoint.clone()))
            .or_insert_with(|| EndpointStats {
                route: group,
                endpoint,
                requests: 0,
                injected: BTreeMap::new(),
            });
        st.requests += 1;
        if let Some(k) = &kind {
            *st.injected.entry(k.label()).or_insert(0) += 1;
        }
        kind
    }
}

fn take_locked(q: &mut VecDeque<Rule>, group: RouteGroup, path: &str) -> Option<FaultKind> {
    let mut pos = 0;
    while pos < q.len() {
        let rule = &mut q[pos];
        let f = &rule.fault;
        if f.route != group
            || f.count == 0
            || !f.path_contains.as_deref().is_none_or(|p| path.contains(p))
        {
            pos += 1;
            continue;
        }
        rule.fault.count -= 1;
        let hit = match &rule.fault.kind {
            FaultKind::Random { rate, of, .. } => {
                let rng = rule.rng.get_or_insert_with(|| StdRng::seed_from_u64(0));
                roll(rng, *rate, of)
            }
            other => Some(other.clone()),
        };
        if rule.fault.count == 0 {
            q.remove(pos);
        } else {
            pos += 1;
        }
        if hit.is_some() {
            return hit;
        }
    }
    None
}

/// One roll of a random rule: `None` (no fault), or one of `of` (a nested
/// random kind rolls again with the same dice).
fn roll(rng: &mut StdRng, rate: f64, of: &[FaultKind]) -> Option<FaultKind> {
    if of.is_empty() || !rng.random_bool(rate.clamp(0.0, 1.0)) {
        return None;
    }
    match &of[rng.random_range(0..of.len())] {
        FaultKind::Random { rate, of, .. } => roll(rng, *rate, of),
        k => Some(k.clone()),
    }
}

/// A path with its id segments (UUIDs and the like) replaced by `:id`, so
/// every persona's `/…/actions` lands on one endpoint.
pub(crate) fn normalise_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let idish = seg.len() >= 16
                && seg.chars().any(|c| c.is_ascii_digit())
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if idish { ":id" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The middleware in front of every route.
pub async fn inject(State(state): State<SandboxState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some(group) = RouteGroup::of_path(&path) else {
        return next.run(req).await;
    };
    match state.faults.take_for(group, req.method().as_str(), &path) {
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
        Some(FaultKind::DropAfter) => {
            // The handler's work is done (and committed); its answer is lost.
            drop(next.run(req).await);
            dropped_connection()
        }
        // `take_for` resolves random rules; a bare one left here serves normally.
        Some(FaultKind::Random { .. }) => next.run(req).await,
        Some(FaultKind::Status {
            status,
            retry_after,
        }) => status_response(group, &path, status, retry_after),
        Some(FaultKind::Echo { status }) => {
            let body = axum::body::to_bytes(req.into_body(), 1024 * 1024)
                .await
                .unwrap_or_default();
            let received: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into());
            json_response(status, serde_json::json!({ "received": received }))
        }
        Some(FaultKind::Respond { status, body }) => json_response(status, body),
        Some(FaultKind::Rebody { body }) => {
            let status = next.run(req).await.status();
            let mut resp = (status, body).into_response();
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/plain"));
            resp
        }
    }
}

fn json_response(status: u16, body: serde_json::Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

fn status_response(
    group: RouteGroup,
    path: &str,
    status: u16,
    retry_after: Option<u64>,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = match group {
        // Each LLM API's own error shape.
        RouteGroup::Llm => crate::llm::fault_body(path, status),
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

/// `POST /__sandbox/faults` (a [`Fault`] as JSON), `DELETE /__sandbox/faults`
/// (drop the queue), `GET /__sandbox/faults` (the [`EndpointStats`] so far).
pub fn control_router(state: SandboxState) -> Router {
    async fn add(State(s): State<SandboxState>, Json(f): Json<Fault>) -> StatusCode {
        s.faults.push(f);
        StatusCode::NO_CONTENT
    }
    async fn clear(State(s): State<SandboxState>) -> StatusCode {
        s.faults.clear();
        StatusCode::NO_CONTENT
    }
    async fn stats(State(s): State<SandboxState>) -> Json<Vec<EndpointStats>> {
        Json(s.faults.stats())
    }
    Router::new()
        .route("/__sandbox/faults", post(add).delete(clear).get(stats))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> FaultKind {
        FaultKind::Status {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn counted_rules_keep_their_order_and_count() {
        let f = Faults::default();
        f.fail(RouteGroup::Llm, 529, 2);
        f.fail(RouteGroup::Llm, 503, 1);
        let got: Vec<_> = (0..4)
            .map(|_| f.take_for(RouteGroup::Llm, "GET", "/v1/messages"))
            .collect();
        assert_eq!(
            got,
            vec![
                Some(status(529)),
                Some(status(529)),
                Some(status(503)),
                None
            ]
        );
        assert_eq!(f.injected(), 3);
        assert_eq!(
            f.take_for(RouteGroup::Auth, "GET", "/api/v1/auth/login"),
            None
        );
    }

    #[test]
    fn random_rule_hits_about_its_rate_and_replays_with_its_seed() {
        let run = |seed| {
            let f = Faults::default();
            f.random(
                RouteGroup::Mcp,
                0.3,
                vec![status(503), FaultKind::Drop],
                seed,
            );
            (0..10_000)
                .map(|_| f.take_for(RouteGroup::Mcp, "POST", "/mcp"))
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7), "same seed, same dice");
        assert_ne!(a, run(8));
        let hits = a.iter().filter(|k| k.is_some()).count();
        assert!(
            (2_700..=3_300).contains(&hits),
            "{hits} of 10000 at rate 0.3"
        );
        let drops = a.iter().filter(|k| **k == Some(FaultKind::Drop)).count();
        assert!(
            drops > hits / 3 && drops < 2 * hits / 3,
            "{drops} drops of {hits}"
        );
    }

    #[test]
    fn random_rule_that_rolls_no_lets_later_rules_match_and_counts_rolls() {
        let f = Faults::default();
        f.push(Fault {
            route: RouteGroup::Internal,
            kind: FaultKind::Random {
                rate: 0.0,
                of: vec![status(503)],
                seed: 1,
            },
            count: 3,
            path_contains: None,
        });
        f.fail(RouteGroup::Internal, 429, 1);
        assert_eq!(
            f.take_for(RouteGroup::Internal, "GET", "/x/due"),
            Some(status(429))
        );
        assert_eq!(f.take_for(RouteGroup::Internal, "GET", "/x/due"), None);
        assert_eq!(f.take_for(RouteGroup::Internal, "GET", "/x/due"), None);
        // Three rolls used the random rule up.
        assert!(f.lock().queue.is_empty());
    }

    #[test]
    fn stats_count_requests_and_faults_per_endpoint() {
        let f = Faults::default();
        f.fail(RouteGroup::Internal, 503, 1);
        let p = "/api/v1/personas/internal/6f1c9a52-8a4e-4a8e-9d39-2f1f0a6b7c11/actions";
        f.take_for(RouteGroup::Internal, "POST", p);
        f.take_for(RouteGroup::Internal, "POST", p);
        let s = f.stats();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].endpoint, "POST /api/v1/personas/internal/:id/actions");
        assert_eq!(s[0].requests, 2);
        assert_eq!(s[0].faulted(), 1);
        assert_eq!(s[0].injected.get("503"), Some(&1));
    }

    #[test]
    fn rebody_kind_parses_with_and_without_a_body() {
        let e: Fault = serde_json::from_str(r#"{"route":"internal","kind":"rebody"}"#).unwrap();
        assert_eq!(
            e.kind,
            FaultKind::Rebody {
                body: String::new()
            }
        );
        let t: Fault =
            serde_json::from_str(r#"{"route":"internal","kind":"rebody","body":"OK"}"#).unwrap();
        assert_eq!(t.kind, FaultKind::Rebody { body: "OK".into() });
    }

    #[test]
    fn echo_and_respond_kinds_parse() {
        let e: Fault =
            serde_json::from_str(r#"{"route":"auth","kind":"echo","status":422}"#).unwrap();
        assert_eq!(e.kind, FaultKind::Echo { status: 422 });
        let r: Fault = serde_json::from_str(
            r#"{"route":"internal","kind":"respond","status":200,"body":{"personas":[]}}"#,
        )
        .unwrap();
        assert_eq!(
            r.kind,
            FaultKind::Respond {
                status: 200,
                body: serde_json::json!({"personas": []})
            }
        );
    }

    #[test]
    fn control_api_json_old_and_new_shapes_parse() {
        let old: Fault =
            serde_json::from_str(r#"{"route":"llm","kind":"status","status":529,"retry_after":1}"#)
                .unwrap();
        assert_eq!(old.count, 1);
        assert_eq!(
            old.kind,
            FaultKind::Status {
                status: 529,
                retry_after: Some(1)
            }
        );
        let new: Fault = serde_json::from_str(
            r#"{"route":"mcp","kind":"random","rate":0.25,"seed":9,"count":4294967295,
                "of":[{"kind":"drop"},{"kind":"drop_after"},{"kind":"delay","ms":5},
                      {"kind":"status","status":429,"retry_after":0}]}"#,
        )
        .unwrap();
        assert_eq!(new.count, u32::MAX);
        match new.kind {
            FaultKind::Random { rate, of, seed } => {
                assert_eq!((rate, seed, of.len()), (0.25, 9, 4));
                assert_eq!(of[1], FaultKind::DropAfter);
            }
            k => panic!("{k:?}"),
        }
    }
}
