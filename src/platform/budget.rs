//! The platform's request budget: one pacer for every apps/api request of the
//! process (seed, due, actions, feedback, admin list/show/delete).
//!
//! apps/api allows a fixed number of requests per window (200 per minute) on
//! all of `/api/*`, counted per client address, and answers every response
//! with `X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch **seconds**); over
//! the limit it answers `429 {"error":"Too many requests"}` without
//! `Retry-After`. So a request first takes a slot from [`Budget::acquire`]
//! (waiting for the next window when none is left), and every answer feeds its
//! headers back through [`Budget::observe`]: the server's count wins over ours
//! (other processes share the address), its `Reset` tells when the window
//! turns, and its `Limit` replaces the configured prior
//! (`API_RATE_LIMIT_PER_MIN`) when that is lower. A 429 parks every request
//! until `Reset` ([`Budget::limited`]); it is not a failure and not a retry.
//!
//! Why hand-written and not `governor`: governor's GCRA meters a rate it
//! computes itself and cannot be told "the server says 12 left until 10:04:07";
//! the platform's limiter is a fixed window whose state only the server knows,
//! so the pacer is a fixed-window counter that the headers keep in step.
//!
//! Why a registry keyed by origin: the platform counts per client address over
//! all of `/api/*`, so every client of one apps/api origin must draw from one
//! counter, whoever built it (commands, the runner, a daemon reload, tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use reqwest::header::HeaderMap;
use serde::Serialize;

/// The platform's window, used until the server's `Reset` says otherwise.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The platform's budget per window, the default of `API_RATE_LIMIT_PER_MIN`.
pub const DEFAULT_PER_WINDOW: u32 = 200;
/// A `Reset` further ahead than this is not believed (clock skew, a hostile
/// header): no request parks longer than this at once.
const MAX_WAIT: Duration = Duration::from_secs(90);
/// After a 429 whose `Reset` is already past, wait at least this long.
const MIN_429_WAIT: Duration = Duration::from_millis(250);
/// A request answered 429 this many times in a row gives up (the error is
/// transient: the outbox keeps a batch for the next tick).
pub const MAX_429_WAITS: u32 = 20;

/// What the server said last (for `doctor` and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds.
    pub reset: u64,
}

/// Counters since the start of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests that took a slot.
    pub requests: u64,
    /// Answers that were 429.
    pub limited: u64,
    /// Times a request had to wait for a slot.
    pub waits: u64,
}

type Notifier = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
struct Window {
    /// `API_RATE_LIMIT_PER_MIN`; 0 = do not pace (429s are still waited out).
    configured: u32,
    /// The server's `X-RateLimit-Limit`.
    server_limit: Option<u32>,
    /// Slots left in the current window, as far as we know.
    remaining: u32,
    /// When the current window ends; `None` before the first request.
    ends: Option<Instant>,
    /// The server's `Reset` of the window we are in, and whether an answer
    /// from that window has been seen since we opened it.
    server_reset: Option<u64>,
    synced: bool,
    /// Requests holding a slot whose answer is not in yet.
    in_flight: u32,
    /// Set by a 429: nobody sends before this.
    blocked_until: Option<Instant>,
    /// The end of the last wait announced, so concurrent waiters say it once.
    announced: Option<Instant>,
    last: Option<Snapshot>,
    stats: Stats,
}

impl Window {
    /// Slots per window: the configured budget, capped by the server's
    /// `Limit`; 0 (configured off) stays off whatever the server says.
    fn per_window(&self) -> u32 {
        match self.server_limit {
            Some(s) => s.min(self.configured),
            None => self.configured,
        }
    }
}

/// The pacer of one apps/api origin; cheap to clone (shared).
#[derive(Clone)]
pub struct Budget {
    origin: Arc<str>,
    window: Arc<Mutex<Window>>,
    notify: Arc<Mutex<Option<Notifier>>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("origin", &self.origin)
            .finish()
    }
}

/// Held while a request is in flight; dropping it frees the in-flight count.
pub struct Slot {
    budget: Budget,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut w = self.budget.lock();
        w.in_flight = w.in_flight.saturating_sub(1);
    }
}

/// The scheme, host and port of `url` (the key of the registry).
fn origin_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => url.to_string(),
    }
}

fn registry() -> &'static Mutex<HashMap<String, Budget>> {
    static R: OnceLock<Mutex<HashMap<String, Budget>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// `Instant` of an epoch-seconds timestamp, clamped to `now ..= now + MAX_WAIT`.
fn instant_of(epoch_secs: u64) -> Instant {
    let now = Instant::now();
    let target = UNIX_EPOCH + Duration::from_secs(epoch_secs);
    match target.duration_since(SystemTime::now()) {
        Ok(d) => now + d.min(MAX_WAIT),
        Err(_) => now,
    }
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset`, when all three are there.
pub fn parse_headers(h: &HeaderMap) -> Option<Snapshot> {
    Some(Snapshot {
        limit: header_u64(h, "x-ratelimit-limit")?.min(u32::MAX as u64) as u32,
        remaining: header_u64(h, "x-ratelimit-remaining")?.min(u32::MAX as u64) as u32,
        reset: header_u64(h, "x-ratelimit-reset")?,
    })
}

/// "waiting 12 s for the platform's request budget (200/min)".
pub fn wait_message(wait: Duration, per_window: u32) -> String {
    format!(
        "waiting {} s for the platform's request budget ({per_window}/min)",
        wait.as_secs_f64().ceil() as u64
    )
}

impl Budget {
    /// The process's pacer for the apps/api at `base_url` (any URL of that
    /// origin). Created with the default budget on first use.
    pub fn for_url(base_url: &str) -> Budget {
        let origin = origin_of(base_url);
        let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
        r.entry(origin.clone())
            .or_insert_with(|| Budget::standalone(&origin, DEFAULT_PER_WINDOW))
            .clone()
    }

    /// A pacer outside the registry (unit tests).
    pub fn standalone(origin: &str, per_window: u32) -> Budget {
        Budget {
            origin: origin.into(),
            window: Arc::new(Mutex::new(Window {
                configured: per_window,
                ..Window::default()
            })),
            notify: Arc::new(Mutex::new(None)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the configured budget per window (`API_RATE_LIMIT_PER_MIN`; 0 =
    /// do not pace). The server's `Limit` still caps it.
    pub fn configure(&self, per_window: u32) -> &Budget {
        self.lock().configured = per_window;
        self
    }

    /// Where waits are announced (a progress bar's line); by default they are
    /// logged at info.
    pub fn on_wait(&self, f: impl Fn(&str) + Send + Sync + 'static) {
        *self.notify.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
    }

    /// What the server said last, if it said anything.
    pub fn last_seen(&self) -> Option<Snapshot> {
        self.lock().last
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    fn announce(&self, wait: Duration, per_window: u32) {
        let msg = wait_message(wait, per_window);
        let n = self
            .notify
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match n {
            Some(f) => f(&msg),
            None => {
                tracing::info!(origin = %self.origin, wait_ms = wait.as_millis() as u64, "{msg}")
            }
        }
    }

    /// Takes a slot, waiting for the next window when the current one is used
    /// up (or a 429 said to wait).
    pub async fn acquire(&self) -> Slot {
        let mut counted_wait = false;
        loop {
            let until = {
                let mut w = self.lock();
                let now = Instant::now();
                let until = match w.blocked_until {
                    Some(b) if now < b => Some(b),
                    _ => {
                        w.blocked_until = None;
                        let per_window = w.per_window();
                        if per_window == 0 {
                            None
                        } else {
                            if w.ends.is_none_or(|e| now >= e) {
                                // A new window, as far as we can tell; the
                                // first answer from it sets the real end.
                                w.remaining = per_window;
                                w.ends = Some(now + DEFAULT_WINDOW);
                                w.synced = false;
                            }
                            if w.remaining > 0 {
                                w.remaining -= 1;
                                None
                            } else {
                                w.ends
                            }
                        }
                    }
                };
                let until = until.map(|until| {
                    let fresh = w
                        .announced
                        .is_none_or(|a| a + Duration::from_millis(500) < until);
                    if fresh {
                        w.announced = Some(until);
                    }
                    if !counted_wait {
                        w.stats.waits += 1;
                    }
                    (until, fresh, w.per_window())
                });
                if until.is_none() {
                    w.in_flight += 1;
                    w.stats.requests += 1;
                }
                until
            };
            match until {
                None => {
                    return Slot {
                        budget: self.clone(),
                    };
                }
                Some((until, fresh, per_window)) => {
                    counted_wait = true;
                    if fresh {
                        self.announce(until.saturating_duration_since(Instant::now()), per_window);
                    }
                    tokio::time::sleep_until(until).await;
                }
            }
        }
    }

    /// Feeds an answer's `X-RateLimit-*` headers back (any status).
    pub fn observe(&self, headers: &HeaderMap) {
        let Some(s) = parse_headers(headers) else {
            return;
        };
        let mut w = self.lock();
        w.last = Some(s);
        w.server_limit = Some(s.limit);
        // Slots other requests took that this answer's count may not include.
        let others = w.in_flight.saturating_sub(1);
        let left = s.remaining.saturating_sub(others);
        match w.server_reset {
            // An answer from a window that is over.
            Some(known) if s.reset < known || (s.reset == known && !w.synced) => return,
            Some(known) if s.reset == known => {
                w.remaining = w.remaining.min(s.remaining);
                return;
            }
            // The server is in a newer window than the one we knew.
            Some(_) if w.synced => w.remaining = left.min(w.per_window()),
            _ => w.remaining = w.remaining.min(left),
        }
        w.server_reset = Some(s.reset);
        w.synced = true;
        w.ends = Some(instant_of(s.reset));
    }

    /// A 429: nobody sends until the server's `Reset` (at least a moment).
    pub fn limited(&self, headers: &HeaderMap) {
        let reset = parse_headers(headers).map(|s| s.reset);
        let mut w = self.lock();
        w.stats.limited += 1;
        let now = Instant::now();
        let until = reset
            .map(instant_of)
            .unwrap_or(now + DEFAULT_WINDOW.min(MAX_WAIT))
            .max(now + MIN_429_WAIT);
        w.blocked_until = Some(w.blocked_until.map_or(until, |b| b.max(until)));
        w.remaining = 0;
        w.ends = Some(until);
        if let Some(r) = reset {
            w.server_reset = Some(r);
        }
        // The next window starts fresh when `until` passes.
        w.synced = true;
        if let Some(s) = parse_headers(headers) {
            w.last = Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(limit: u32, remaining: u32, reset: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(reset));
        h
    }

    fn epoch_in(secs: u64) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + secs
    }

    /// Runs on paused time (as do the other waits below): the test sees the
    /// exact moment the pacer lets the request go, and takes no real time.
    #[tokio::test(start_paused = true)]
    async fn a_used_up_window_waits_for_the_next() {
        let b = Budget::standalone("http://x", 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(b.acquire().await);
        }
        assert_eq!(
            t0.elapsed(),
            Duration::ZERO,
            "three slots in a window of three"
        );
        drop(b.acquire().await);
        assert_eq!(
            t0.elapsed(),
            DEFAULT_WINDOW,
            "the fourth goes exactly when the window ends"
        );
        assert_eq!(b.stats().waits, 1);
        assert_eq!(b.stats().requests, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_servers_count_wins_over_ours() {
        let b = Budget::standalone("http://x", 200);
        let reset = epoch_in(30);
        let t0 = Instant::now();
        let s = b.acquire().await;
        b.observe(&headers(200, 0, reset));
        drop(s);
        // Nothing left until the server's reset (whole epoch seconds: 29-30 s
        // from now, depending on where in its second the clock was).
        drop(b.acquire().await);
        let waited = t0.elapsed();
        assert!(
            (Duration::from_secs(29)..=Duration::from_secs(31)).contains(&waited),
            "a slot was handed out after {waited:?} with Remaining: 0 and Reset in 30 s"
        );
        assert_eq!(
            b.last_seen(),
            Some(Snapshot {
                limit: 200,
                remaining: 0,
                reset
            })
        );
    }

    #[tokio::test]
    async fn a_lower_server_limit_caps_the_configured_one() {
        let b = Budget::standalone("http://x", 200);
        let s = b.acquire().await;
        b.observe(&headers(5, 4, epoch_in(30)));
        drop(s);
        assert_eq!(b.lock().per_window(), 5);
        b.configure(3);
        assert_eq!(b.lock().per_window(), 3);
        b.configure(0);
        assert_eq!(
            b.lock().per_window(),
            0,
            "0 is off, whatever the server says"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_everyone_until_reset() {
        let b = Budget::standalone("http://x", 0);
        let t0 = Instant::now();
        let s = b.acquire().await;
        b.limited(&headers(200, 0, epoch_in(20)));
        drop(s);
        drop(b.acquire().await);
        let waited = t0.elapsed();
        assert!(
            (Duration::from_secs(19)..=Duration::from_secs(21)).contains(&waited),
            "sent {waited:?} after a 429 whose reset was 20 s away"
        );
        assert_eq!(b.stats().limited, 1);
    }

    #[tokio::test]
    async fn stale_answers_from_an_old_window_are_ignored() {
        let b = Budget::standalone("http://x", 200);
        let reset = epoch_in(30);
        let s = b.acquire().await;
        b.observe(&headers(200, 150, reset));
        b.observe(&headers(200, 0, reset - 60));
        drop(s);
        assert_eq!(b.lock().remaining, 150);
    }

    #[test]
    fn the_wait_message_names_the_budget() {
        assert_eq!(
            wait_message(Duration::from_millis(11_200), 200),
            "waiting 12 s for the platform's request budget (200/min)"
        );
    }

    #[test]
    fn one_pacer_per_origin() {
        let a = Budget::for_url("http://127.0.0.1:9/api/v1/personas/admin");
        let b = Budget::for_url("http://127.0.0.1:9/api/v1/personas/internal");
        assert!(Arc::ptr_eq(&a.window, &b.window));
        let c = Budget::for_url("http://127.0.0.1:10/");
        assert!(!Arc::ptr_eq(&a.window, &c.window));
    }
}
