//! What every HTTP client in the crate shares: one way to build a
//! `reqwest::Client`, one error shape that names method, path, status and a cut
//! body, and one retry policy (exponential backoff with jitter, `retry-after`
//! honoured, bounded in attempts *and* in total wait so a retry loop can never
//! burn money or hang a tick).

use std::time::Duration;

use reqwest::header::HeaderMap;

/// Bodies in error messages are cut to this many characters.
pub const ERROR_BODY_CHARS: usize = 300;

/// Most bytes of a JSON answer read into memory (a due list of thousands of
/// personas is a few MiB). A server that sends more — or never stops — gets
/// "answer too large" instead of our memory.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Most bytes of an error body read: only [`ERROR_BODY_CHARS`] are shown.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    Transport(reqwest::Error),
    /// More than this many bytes.
    TooLarge(usize),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Transport(e) => f.write_str(&describe_reqwest(e)),
            BodyError::TooLarge(n) => write!(f, "answer too large: more than {n} bytes"),
        }
    }
}

/// Reads a body chunk by chunk, at most `limit` bytes; the rest is never
/// read.
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The start of an error body as text (at most [`MAX_ERROR_BODY_BYTES`];
/// what a broken connection leaves is the empty string): it is cut for
/// display anyway.
pub async fn error_text(mut resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ERROR_BODY_BYTES - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds the shared client: explicit connect and request timeouts, no proxy
/// surprises for loopback, `tcp_nodelay` for small JSON requests.
pub fn client(connect_timeout: Duration, request_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("mana-personas/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("reqwest client with static settings always builds")
}

/// Cuts `s` to at most `max` characters (not bytes), marking the cut.
pub fn cut(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// Path and query of a URL, for error messages: the host is in the config the
/// operator already knows, the path says which endpoint failed.
pub fn path_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{}", u.path(), q),
            None => u.path().to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// `url` as it may be printed or stored: its userinfo (`user:password@`,
/// which reqwest sends as basic auth) replaced by `<redacted>@`. Works on
/// text that does not parse as a URL too: whatever sits between `://` and
/// the last `@` of the authority goes.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}{}", &url[..start], crate::redact::MARK, &rest[at..]),
        None => url.to_string(),
    }
}

/// Registers the userinfo of `url` (user and password) as secrets, so a
/// message that quotes the URL anyway is redacted (see [`crate::redact`]).
pub fn register_url_secrets(url: &str) {
    if let Ok(u) = reqwest::Url::parse(url) {
        if let Some(p) = u.password() {
            crate::redact::register(p);
        }
        if !u.username().is_empty() {
            crate::redact::register(u.username());
        }
    }
}

/// Whether `id` is a plain platform id (the platform's are 32 alphanumerics):
/// 1 to 64 of `A-Z a-z 0-9 _ -`. Only such an id is put into a URL path.
pub fn is_plain_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `id` as one URL path segment: refused unless [`is_plain_id`] (percent
/// encoding alone is not enough: `%2E%2E` is still `..` to a URL parser),
/// then percent-encoded all the same, so a wider id rule can never open a
/// path again.
pub fn id_segment(method: &str, id: &str) -> Result<String, HttpError> {
    if !is_plain_id(id) {
        return Err(HttpError::BadId {
            method: method.to_string(),
            id: cut(id, 80),
        });
    }
    Ok(id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect())
}

/// A failed HTTP exchange, as an operator needs to read it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// The server answered with a non-2xx status.
    #[error("{method} {path} → HTTP {status}: {body}")]
    Status {
        method: String,
        path: String,
        status: u16,
        /// At most [`ERROR_BODY_CHARS`] characters of the body.
        body: String,
        /// `retry-after` if the server sent one.
        #[source]
        retry_after: Option<RetryAfter>,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("{method} {path} → {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
        timeout: bool,
    },
    /// Refused before sending: a user id that is not a plain id would change
    /// the path it is put into (`../admin/…`).
    #[error(
        "{method} not sent: user id {id:?} is not a plain id (1 to 64 of A-Z, a-z, 0-9, _ and -)"
    )]
    BadId { method: String, id: String },
    /// A 2xx whose body is not what the contract says.
    #[error("{method} {path} → unexpected response: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
}

/// Carrier for a server's `retry-after`, so it can ride inside [`HttpError`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("retry after {0:?}")]
pub struct RetryAfter(pub Duration);

impl HttpError {
    pub fn from_reqwest(method: &str, url: &str, e: &reqwest::Error) -> Self {
        HttpError::Transport {
            method: method.to_string(),
            path: path_of(url),
            message: describe_reqwest(e),
            timeout: e.is_timeout(),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Connection errors, 408, 429 and 5xx (incl. 529) are worth another try;
    /// every other 4xx and every decode error is final.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => is_transient_status(*status),
            HttpError::Transport { .. } => true,
            HttpError::Decode { .. } | HttpError::BadId { .. } => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status {
                retry_after: Some(RetryAfter(d)),
                ..
            } => Some(*d),
            _ => None,
        }
    }
}

pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// The innermost cause of a reqwest error in one line ("connection refused",
/// "operation timed out"), instead of a stack of wrappers.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(l) = last {
        msg.push_str(": ");
        msg.push_str(&l);
    }
    crate::redact::redact(&msg)
}

/// `retry-after-ms`, else `retry-after` in seconds (HTTP dates are treated as
/// absent: the backoff schedule is then used).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_millis(ms as u64));
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_millis((s * 1000.0) as u64))
}

/// Reads a non-2xx response into [`HttpError::Status`]; the body is
/// redacted (servers echo requests, passwords included) before it is cut.
pub async fn status_error(method: &str, url: &str, resp: reqwest::Response) -> HttpError {
    let status = resp.status().as_u16();
    let retry_after = parse_retry_after(resp.headers()).map(RetryAfter);
    let body = error_text(resp).await;
    HttpError::Status {
        method: method.to_string(),
        path: path_of(url),
        status,
        body: cut(&crate::redact::redact(&body), ERROR_BODY_CHARS),
        retry_after,
    }
}

/// Bounded exponential backoff with full jitter.
///
/// Why bounded twice: `max_attempts` stops a fast-failing loop, `max_total_wait`
/// stops a slow one (a server that keeps saying `retry-after: 60`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Sum of all sleeps; a retry that would exceed it is not made.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_total_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries (for `--no-retry`-like uses and some tests).
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        max_total_wait: Duration::ZERO,
    };

    fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_total_delay(Some(self.max_total_wait))
    }

    /// Runs `op` until it succeeds, fails permanently, or the budget is spent,
    /// returning the last error and how many attempts were made.
    ///
    /// Backoff and jitter come from `backon`; what we add is the server's
    /// `retry-after` (which wins over the schedule, capped by `max_delay` so a
    /// hostile header cannot park a tick for an hour) and the attempt count.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut op: F,
        is_transient: impl Fn(&E) -> bool,
        retry_after: impl Fn(&E) -> Option<Duration>,
        mut on_retry: impl FnMut(&E, Duration),
    ) -> Result<(T, u32), (E, u32)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        use backon::Retryable;
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let max_delay = self.max_delay;
        let result = (|| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            op()
        })
        .retry(self.backoff())
        .when(|e| is_transient(e))
        .adjust(|e, planned| planned.map(|p| retry_after(e).map_or(p, |ra| ra.min(max_delay))))
        .notify(|e, d| on_retry(e, d))
        .await;
        let n = attempts.load(std::sync::atomic::Ordering::Relaxed);
        result.map(|v| (v, n)).map_err(|e| (e, n))
    }
}

/// Joins a base URL and a path without doubling or losing slashes. Here, not
/// in `platform`: the LLM and MCP clients build their URLs with it too, and
/// clients do not import each other.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}
