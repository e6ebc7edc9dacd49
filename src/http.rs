//! What every HTTP client in the crate shares: one way to build a
//! `reqwest::Client`, one error shape that names method, URL (redacted),
//! status and a cut body or the root cause in plain words, one retry policy
//! (exponential backoff with jitter, `retry-after` honoured, bounded in
//! attempts *and* in total wait so a retry loop can never burn money or hang
//! a tick), and one line that says a retry is coming ([`RetryNotice`]).

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

/// Idle connections kept per host. Each costs ~25-30 KiB of buffers and
/// state; personas sign in and open MCP sessions in a burst, then wait on
/// the LLM, so without a cap every persona in flight kept an idle auth and
/// MCP connection it would not use for seconds (BENCHMARKS.md §3). With up
/// to 64 personas in flight every connection opened is still reused; above
/// that, the surplus is closed once idle and reopened when needed.
pub const MAX_IDLE_PER_HOST: usize = 64;

/// Builds the shared client: explicit connect and request timeouts, no proxy
/// surprises for loopback, `tcp_nodelay` for small JSON requests, at most
/// [`MAX_IDLE_PER_HOST`] idle connections.
pub fn client(connect_timeout: Duration, request_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
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
/// which reqwest sends as basic auth) replaced by `<redacted>@`, and the
/// value of every query parameter whose name says secret (`key`, `token`,
/// `password`, `sig`, …) replaced by `<redacted>`. Works on text that does
/// not parse as a URL too: whatever sits between `://` and the last `@` of
/// the authority goes.
pub fn redact_url(url: &str) -> String {
    let (head, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (base, query) = match head.find('?') {
        Some(i) => (&head[..i], Some(&head[i + 1..])),
        None => (head, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&redact_query(q));
    }
    out.push_str(fragment);
    out
}

fn redact_userinfo(url: &str) -> String {
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

/// Query parameter names (lower-cased, `-` as `_`) whose values are secrets:
/// API keys (`?key=` is how Gemini takes one), tokens, signatures.
const SECRET_QUERY_WORDS: [&str; 9] = [
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "signature",
    "auth",
];

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    name.split('_')
        .any(|w| SECRET_QUERY_WORDS.contains(&w) || w == "apikey" || w == "credential")
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && is_secret_param(k) => {
                format!("{k}={}", crate::redact::MARK)
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
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
    #[error("{method} {url} → HTTP {status}: {body}")]
    Status {
        method: String,
        /// The URL as [`redact_url`] prints it: the host names the service.
        url: String,
        status: u16,
        /// At most [`ERROR_BODY_CHARS`] characters of the body.
        body: String,
        /// `retry-after` if the server sent one.
        #[source]
        retry_after: Option<RetryAfter>,
    },
    /// No answer: connection refused, reset, timed out, DNS, TLS.
    #[error("{method} {url} → {message}")]
    Transport {
        method: String,
        url: String,
        /// The root cause in plain words ([`describe_reqwest`]).
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
    #[error("{method} {url} → unexpected response: {message}")]
    Decode {
        method: String,
        url: String,
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
            url: shown_url(url),
            message: describe_reqwest(e),
            timeout: e.is_timeout(),
        }
    }

    /// A 2xx body that is not what was expected.
    pub fn decode(method: &str, url: &str, message: String) -> Self {
        HttpError::Decode {
            method: method.to_string(),
            url: shown_url(url),
            message,
        }
    }

    /// What went wrong without the request it went wrong for: "connection
    /// refused", "HTTP 503: busy" (for a retry line that names the request
    /// itself).
    pub fn cause(&self) -> String {
        match self {
            HttpError::Status { status, body, .. } if body.is_empty() => format!("HTTP {status}"),
            HttpError::Status { status, body, .. } => format!("HTTP {status}: {body}"),
            HttpError::Transport { message, .. } => message.clone(),
            HttpError::Decode { message, .. } => format!("unexpected response: {message}"),
            HttpError::BadId { .. } => self.to_string(),
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

/// A URL as errors and logs show it: [`redact_url`], then every registered
/// secret masked (a token that ended up in a path).
pub fn shown_url(url: &str) -> String {
    crate::redact::redact(&redact_url(url))
}

/// The root cause of a reqwest error in plain words — "connection refused",
/// "connection reset", "timed out", "DNS failure: …", "TLS: …" — instead of
/// reqwest's own text, which repeats the URL (with its secrets) and hides the
/// cause behind "error sending request".
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s);
        source = s.source();
    }
    let root = chain.last().map(|s| s.to_string());
    let io_kind = chain
        .iter()
        .find_map(|s| s.downcast_ref::<std::io::Error>())
        .map(|io| io.kind());
    let said = |needle: &str| {
        chain
            .iter()
            .any(|s| s.to_string().to_ascii_lowercase().contains(needle))
    };
    use std::io::ErrorKind as K;
    let msg = if e.is_timeout() || io_kind == Some(K::TimedOut) {
        "timed out".to_string()
    } else if io_kind == Some(K::ConnectionRefused) {
        "connection refused".to_string()
    } else if io_kind == Some(K::ConnectionReset) {
        "connection reset".to_string()
    } else if io_kind == Some(K::ConnectionAborted) {
        "connection aborted".to_string()
    } else if io_kind == Some(K::HostUnreachable) {
        "host unreachable".to_string()
    } else if io_kind == Some(K::NetworkUnreachable) {
        "network unreachable".to_string()
    } else if said("dns error") {
        with_root("DNS failure", root)
    } else if said("certificate")
        || said("tls")
        || said("handshake")
        // TCP worked (every TCP failure is named above), so on https what
        // failed is the TLS handshake (rustls says "received corrupt
        // message" to a plain-HTTP server).
        || (e.is_connect() && e.url().is_some_and(|u| u.scheme() == "https"))
    {
        with_root("TLS", root)
    } else if e.is_connect() {
        with_root("connection failed", root)
    } else if e.is_body() || e.is_decode() {
        with_root("the answer broke off", root)
    } else {
        with_root("request failed", root)
    };
    crate::redact::redact(&msg)
}

fn with_root(what: &str, root: Option<String>) -> String {
    match root {
        Some(r) => format!("{what}: {r}"),
        None => what.to_string(),
    }
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
        url: shown_url(url),
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

/// The `tracing` target of retry lines: the command line enables it at info
/// while its other logs stay at warn (see `cli::logging`), so a dead
/// endpoint is never a silent wait.
pub const RETRY_TARGET: &str = "mana_personas::retry";

/// One retry about to happen, as the operator reads it:
/// "retrying GET http://127.0.0.1:1/api/v1/personas/admin (2/5) in 1.2 s:
/// connection refused". The URL is [`shown_url`]: the host, never
/// credentials or query secrets.
#[derive(Debug, Clone, Copy)]
pub struct RetryNotice<'a> {
    pub method: &'a str,
    /// Already shown-safe ([`shown_url`]).
    pub url: &'a str,
    /// The attempt about to be made, counting the first as 1.
    pub attempt: u32,
    /// Attempts in all ([`RetryPolicy::max_attempts`]).
    pub of: u32,
    pub delay: Duration,
    pub error: &'a HttpError,
}

impl std::fmt::Display for RetryNotice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "retrying {} {} ({}/{}) in {:.1} s: {}",
            self.method,
            self.url,
            self.attempt,
            self.of,
            self.delay.as_secs_f64(),
            self.error.cause()
        )
    }
}

/// The default way to make a retry visible: one info line on
/// [`RETRY_TARGET`] (stderr; JSON under `--log-format json`). The message
/// carries everything, so a terminal line is not doubled by fields.
pub fn log_retry(n: &RetryNotice<'_>) {
    tracing::info!(target: RETRY_TARGET, "{n}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_userinfo_and_query_secrets_and_keeps_the_rest() {
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:1/api/v1/x?limit=5&api_key=k1&Token=t&sig=s#frag"),
            "http://<redacted>@127.0.0.1:1/api/v1/x?limit=5&api_key=<redacted>&Token=<redacted>&sig=<redacted>#frag"
        );
        assert_eq!(
            redact_url("https://g.example/v1/models?key=AIza-secret"),
            "https://g.example/v1/models?key=<redacted>"
        );
        // Words that merely contain a secret word are not secrets.
        assert_eq!(
            redact_url("http://h/p?monkey=1&keyboard=2&persona=a@b"),
            "http://h/p?monkey=1&keyboard=2&persona=a@b"
        );
        assert_eq!(redact_url("127.0.0.1:3070"), "127.0.0.1:3070");
    }

    async fn transport_error(client: reqwest::Client, url: &str) -> HttpError {
        let e = client.get(url).send().await.expect_err("no answer");
        HttpError::from_reqwest("GET", url, &e)
    }

    /// The error names method, URL (host, no userinfo) and the root cause in
    /// plain words, not reqwest's "error sending request for url (…)".
    #[tokio::test]
    async fn a_refused_connection_reads_as_such() {
        let e = transport_error(
            client(Duration::from_secs(2), Duration::from_secs(2)),
            "http://u:pw-SECRET@127.0.0.1:1/api/v1/personas/admin",
        )
        .await;
        assert_eq!(
            e.to_string(),
            "GET http://<redacted>@127.0.0.1:1/api/v1/personas/admin → connection refused"
        );
        assert_eq!(e.cause(), "connection refused");
    }

    /// A server that takes the connection and never answers: "timed out".
    #[tokio::test]
    async fn a_silent_server_reads_as_timed_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let e = transport_error(
            client(Duration::from_secs(2), Duration::from_millis(200)),
            &url,
        )
        .await;
        assert_eq!(e.to_string(), format!("GET {url} → timed out"));
        drop(listener);
    }

    #[test]
    fn a_retry_notice_names_request_attempt_wait_and_cause() {
        let error = HttpError::Status {
            method: "POST".into(),
            url: "http://h:1/p".into(),
            status: 503,
            body: "busy".into(),
            retry_after: None,
        };
        let n = RetryNotice {
            method: "POST",
            url: "http://h:1/p",
            attempt: 2,
            of: 5,
            delay: Duration::from_millis(1240),
            error: &error,
        };
        assert_eq!(
            n.to_string(),
            "retrying POST http://h:1/p (2/5) in 1.2 s: HTTP 503: busy"
        );
    }
}
