//! Clients of the platform's HTTP services. Each submodule owns the wire shapes
//! of its endpoints (the sandbox crate has its own, written from the contract):
//! - [`auth`]: mana-auth login and the persona's spaces;
//! - [`admin`]: seed, list, show, delete personas (admin JWT);
//! - [`internal`]: due personas, action and feedback batches (service key);
//! - [`budget`]: the pacer every apps/api request goes through.

pub mod admin;
pub mod auth;
pub mod budget;
pub mod internal;
pub mod jwt;

use std::sync::atomic::{AtomicU32, Ordering};

use serde::de::DeserializeOwned;

use self::budget::Budget;
use crate::http::{HttpError, RetryNotice, RetryPolicy, status_error};

/// Sends a request built by `build` and decodes a 2xx JSON body, retrying
/// transient failures per `policy`. `build` is called once per attempt so every
/// attempt sends the identical body. `on_retry` hears of each retry before
/// its wait ([`crate::http::log_retry`] when the caller has nothing better),
/// so a dead endpoint is never a silent wait.
pub(crate) async fn send_json<T: DeserializeOwned>(
    policy: &RetryPolicy,
    method: &str,
    url: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
    on_retry: impl FnMut(&RetryNotice<'_>),
) -> Result<T, HttpError> {
    send_json_if(
        policy,
        method,
        url,
        build,
        HttpError::is_transient,
        on_retry,
    )
    .await
}

/// [`send_json`] with the caller's rule for what is worth another try (a
/// login must not retry a 429 `ACCOUNT_LOCKED`, for one).
pub(crate) async fn send_json_if<T: DeserializeOwned>(
    policy: &RetryPolicy,
    method: &str,
    url: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
    retry_if: impl Fn(&HttpError) -> bool,
    on_retry: impl FnMut(&RetryNotice<'_>),
) -> Result<T, HttpError> {
    send_json_paced(None, policy, method, url, build, retry_if, on_retry).await
}

/// [`send_json_if`] through the request budget of apps/api: every attempt
/// waits for a slot, every answer's `X-RateLimit-*` headers feed the pacer,
/// and a 429 with the budget's headers waits for the window's reset and is
/// sent again without spending one of `policy`'s attempts (it is the
/// platform's pace, not a failure), at most [`budget::MAX_429_WAITS`] times
/// in a row.
pub(crate) async fn send_json_paced<T: DeserializeOwned>(
    budget: Option<&Budget>,
    policy: &RetryPolicy,
    method: &str,
    url: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
    retry_if: impl Fn(&HttpError) -> bool,
    on_retry: impl FnMut(&RetryNotice<'_>),
) -> Result<T, HttpError> {
    send_paced(
        budget,
        policy,
        method,
        url,
        build,
        retry_if,
        on_retry,
        |body| {
            let bytes = body.map_err(|e| match e {
                crate::http::BodyError::Transport(e) => HttpError::from_reqwest(method, url, &e),
                too_large => HttpError::decode(method, url, too_large.to_string()),
            })?;
            serde_json::from_slice::<T>(&bytes).map_err(|e| {
                HttpError::decode(
                    method,
                    url,
                    format!(
                        "{e} in {}",
                        crate::http::cut(&String::from_utf8_lossy(&bytes), 200)
                    ),
                )
            })
        },
    )
    .await
}

/// [`send_json_paced`] with the caller's reading of a 2xx body: `accept`
/// gets the body as read (or why it could not be read whole) and says what
/// the answer is. A writer for whom any 2xx means "taken" (the outbox) must
/// not turn an empty or non-JSON 2xx into a failure.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_paced<T>(
    budget: Option<&Budget>,
    policy: &RetryPolicy,
    method: &str,
    url: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
    retry_if: impl Fn(&HttpError) -> bool,
    mut on_retry: impl FnMut(&RetryNotice<'_>),
    accept: impl Fn(Result<Vec<u8>, crate::http::BodyError>) -> Result<T, HttpError>,
) -> Result<T, HttpError> {
    let send = || async {
        let mut waits = 0;
        loop {
            let slot = match budget {
                Some(b) => Some(b.acquire().await),
                None => None,
            };
            let resp = build()
                .send()
                .await
                .map_err(|e| HttpError::from_reqwest(method, url, &e))?;
            let Some(b) = budget else { return Ok(resp) };
            // Only the budget's own 429 (it carries X-RateLimit-Reset) is
            // waited out here; any other 429 (a proxy's) takes the retry path.
            if resp.status().as_u16() == 429
                && budget::parse_headers(resp.headers()).is_some()
                && waits < budget::MAX_429_WAITS
            {
                b.limited(resp.headers());
                waits += 1;
                drop(slot);
                continue;
            }
            b.observe(resp.headers());
            return Ok(resp);
        }
    };
    // Counted here (the policy counts too, but only tells at the end) so a
    // retry line can say which attempt comes next.
    let made = AtomicU32::new(0);
    let once = || {
        made.fetch_add(1, Ordering::Relaxed);
        async {
            let resp = send().await?;
            if !resp.status().is_success() {
                return Err(status_error(method, url, resp).await);
            }
            accept(crate::http::read_body(resp, crate::http::MAX_BODY_BYTES).await)
        }
    };
    let shown = crate::http::shown_url(url);
    policy
        .run(once, retry_if, HttpError::retry_after, |error, delay| {
            on_retry(&RetryNotice {
                method,
                url: &shown,
                attempt: made.load(Ordering::Relaxed) + 1,
                of: policy.max_attempts,
                delay,
                error,
            })
        })
        .await
        .map(|(v, _)| v)
        .map_err(|(e, _)| e)
}
