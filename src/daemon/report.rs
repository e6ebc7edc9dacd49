//! `/report` (HTML) and `/report.json`: the same report as `mana-personas
//! report`, live from the daemon's own ledger, with the same parameters
//! (`?since=28d&persona=EMAIL&archetype=A`).
//!
//! The ledger is read on a blocking thread through its own read-only
//! connection, so a report never holds up the runner's state connection (nor
//! the daemon's current-thread runtime).
//!
//! Why a cache ([`Cache`]): an operator refreshing the dashboard would
//! otherwise rebuild the report from every summary of the window each time.
//! A rendered page is kept until the ledger changes (SQLite's
//! `data_version`, bumped by any commit of the runner, e.g. a tick's
//! summaries) or [`FRESH_FOR`] has passed (the window ends at "now", so a
//! page may not age forever on a paused daemon). The response says which it
//! was in `Cache-Status` (RFC 9211): `mana-personas; hit` or
//! `mana-personas; fwd=miss`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::shared::Shared;
use crate::report::{self, Format};
use crate::state::summary::rows::Ledger;

/// How long a cached page is served while the ledger has not changed.
pub const FRESH_FOR: Duration = Duration::from_secs(60);
/// Pages kept at most (one per format and parameters); all are dropped when
/// the ledger changes or this many are kept, so odd parameters cannot grow it.
const MAX_PAGES: usize = 32;

#[derive(Debug, Deserialize)]
pub struct Params {
    since: Option<String>,
    persona: Option<String>,
    archetype: Option<String>,
}

/// A page's parameters: days, persona, archetype, format.
type Key = (u32, Option<String>, Option<String>, Format);

/// The rendered reports of one ledger and the `data_version` they were
/// built at.
struct Pages {
    dir: PathBuf,
    /// Open only to ask `data_version` (per connection, so it must stay open).
    watch: Ledger,
    version: i64,
    pages: HashMap<Key, (Instant, Bytes)>,
}

/// The daemon's last rendered reports. The lock is held while a page is
/// built, so a burst of refreshes builds it once and the rest wait for it.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Option<Pages>>,
}

impl Cache {
    /// The page for `key` over the ledger in `dir`: the cached one if the
    /// ledger has not changed since it was built and it is fresh, else one
    /// built by `build` (and kept). `true` when it came from the cache.
    /// Blocking: call it on a blocking thread.
    pub fn get_or_build(
        &self,
        dir: &Path,
        key: Key,
        build: impl FnOnce() -> String,
    ) -> (Bytes, bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // The version is read before building: a tick that commits during the
        // build changes it again, so its page is not served as current.
        let version = match inner.as_ref().filter(|p| p.dir == dir) {
            Some(p) => p.watch.data_version().ok(),
            None => None,
        };
        match version {
            Some(v) if inner.as_ref().is_some_and(|p| p.version == v) => {}
            Some(v) => {
                let p = inner.as_mut().expect("checked above");
                p.version = v;
                p.pages.clear();
            }
            None => {
                *inner = Ledger::open(dir).ok().and_then(|watch| {
                    Some(Pages {
                        version: watch.data_version().ok()?,
                        dir: dir.to_path_buf(),
                        watch,
                        pages: HashMap::new(),
                    })
                });
            }
        }
        if let Some((_, page)) = inner
            .as_ref()
            .and_then(|p| p.pages.get(&key))
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
        {
            return (page.clone(), true);
        }
        let page = Bytes::from(build());
        if let Some(p) = inner.as_mut() {
            if p.pages.len() >= MAX_PAGES {
                p.pages.clear();
            }
            p.pages.insert(key, (Instant::now(), page.clone()));
        }
        (page, false)
    }
}

/// Builds and renders the report (or serves the cached page); 400 on a bad
/// `since`.
pub async fn respond(shared: Arc<Shared>, Query(p): Query<Params>, format: Format) -> Response {
    let days = match report::model::parse_since(p.since.as_deref().unwrap_or("28d")) {
        Ok(d) => d,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let state = shared.runner().state.clone();
    let dir = state
        .path()
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    let persona = p.persona.filter(|s| !s.is_empty());
    let archetype = p.archetype.filter(|s| !s.is_empty());
    let key = (days, persona.clone(), archetype.clone(), format);
    let built = tokio::task::spawn_blocking(move || {
        shared.report_cache.get_or_build(&dir, key, || {
            let q = report::Query {
                until: chrono::Utc::now(),
                days,
                persona,
                archetype,
                ledgers: vec![dir.clone()],
            };
            report::render(&report::load(&q), format)
        })
    })
    .await;
    let Ok((body, hit)) = built else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let ct = match format {
        Format::Html => "text/html; charset=utf-8",
        Format::Json => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    let status = if hit {
        "mana-personas; hit"
    } else {
        "mana-personas; fwd=miss"
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::HeaderName::from_static("cache-status"), status),
        ],
        body,
    )
        .into_response()
}
