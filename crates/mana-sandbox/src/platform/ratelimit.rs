//! apps/api's rate limit, as the contract measured it on the platform's code:
//! 200 requests per minute on all of `/api/*` (the persona admin and internal
//! routes together), counted per `X-Forwarded-For` / `X-Real-IP`, else in one
//! shared bucket; every answer carries `X-RateLimit-Limit`, `-Remaining` and
//! `-Reset` (epoch **seconds**); over the limit the answer is
//! `429 {"error":"Too many requests"}` with no `Retry-After`.
//!
//! A fixed window per key: it opens with the first request after the last one
//! ended and lasts `api_rate_window` (60 s on the platform; tests shorten it so
//! a 160-persona run stays fast). Every request counts, refused ones too.
//! `api_rate_limit: 0` switches it off (benchmarks that measure the runner,
//! not the budget). Requests and 429s are counted per route
//! ([`RateLimiter::stats`], `GET /__sandbox/ratelimit`) so a test can assert
//! the share of refused requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::SandboxState;
use crate::faults::{RouteGroup, normalise_path};

/// Requests and 429s of one endpoint (method and path, ids as `:id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LimitStats {
    pub requests: u64,
    pub limited: u64,
}

/// All endpoints together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LimitReport {
    pub requests: u64,
    pub limited: u64,
    pub by_endpoint: BTreeMap<String, LimitStats>,
}

impl LimitReport {
    /// The share of requests answered 429 (0 when there were none).
    pub fn limited_share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.limited as f64 / self.requests as f64
        }
    }
}

struct Bucket {
    count: u32,
    ends: Instant,
    /// `ends` as epoch seconds, rounded up: never earlier than the real end.
    reset_epoch: u64,
}

#[derive(Default)]
struct Inner {
    buckets: HashMap<String, Bucket>,
    report: LimitReport,
}

/// The limiter's buckets and tallies; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct RateLimiter {
    inner: Arc<Mutex<Inner>>,
}

/// What one request got.
struct Verdict {
    allowed: bool,
    limit: u32,
    remaining: u32,
    reset_epoch: u64,
}

fn epoch_ceil(at: Instant) -> u64 {
    let now_sys = SystemTime::now();
    let ahead = at.saturating_duration_since(Instant::now());
    let t = (now_sys + ahead)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    t.as_secs() + u64::from(t.subsec_nanos() > 0)
}

/// The client's address as the platform keys it.
fn key_of(headers: &HeaderMap) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    first("x-forwarded-for")
        .or_else(|| first("x-real-ip"))
        .unwrap_or_else(|| "shared".into())
}

impl RateLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests and 429s so far.
    pub fn report(&self) -> LimitReport {
        self.lock().report.clone()
    }

    fn check(&self, key: String, endpoint: String, limit: u32, window: Duration) -> Verdict {
        let mut inner = self.lock();
        let now = Instant::now();
        let b = inner.buckets.entry(key).or_insert_with(|| Bucket {
            count: 0,
            ends: now,
            reset_epoch: 0,
        });
        if now >= b.ends {
            b.count = 0;
            b.ends = now + window;
            b.reset_epoch = epoch_ceil(b.ends);
        }
        b.count = b.count.saturating_add(1);
        let v = Verdict {
            allowed: b.count <= limit,
            limit,
            remaining: limit.saturating_sub(b.count),
            reset_epoch: b.reset_epoch,
        };
        let r = &mut inner.report;
        r.requests += 1;
        let e = r.by_endpoint.entry(endpoint).or_default();
        e.requests += 1;
        if !v.allowed {
            r.limited += 1;
            e.limited += 1;
        }
        v
    }
}

/// The middleware on apps/api's routes (admin and internal, both layouts).
pub async fn limit(State(state): State<SandboxState>, req: Request, next: Next) -> Response {
    let limit = state.opts.api_rate_limit;
    if limit == 0 {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let group = RouteGroup::of_path(path);
    if !matches!(group, Some(RouteGroup::Admin | RouteGroup::Internal)) {
        return next.run(req).await;
    }
    let endpoint = format!("{} {}", req.method(), normalise_path(path));
    let v = state.ratelimit.check(
        key_of(req.headers()),
        endpoint,
        limit,
        state.opts.api_rate_window,
    );
    let mut resp = if v.allowed {
        next.run(req).await
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "Too many requests"})),
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(v.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(v.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(v.reset_epoch));
    resp
}

/// `GET /__sandbox/ratelimit`: the [`LimitReport`] so far.
pub async fn report(State(state): State<SandboxState>) -> Json<LimitReport> {
    Json(state.ratelimit.report())
}
