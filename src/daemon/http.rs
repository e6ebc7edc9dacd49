//! The daemon's HTTP side: `/health`, `/metrics`, the diag endpoints (not in
//! production), the pause control (loopback + service key) and the report
//! (`/report`, `/report.json`, see `daemon::report`).
//!
//! Why axum: it is already here for the sandbox, it serves on the tokio
//! runtime we run on, and `ConnectInfo` gives the peer address the control
//! endpoints check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::pause::{self, Switch};
use super::scheduler::Command;
use super::shared::Shared;
use crate::platform::auth::SignInError;
use crate::runner::tick::read_outbox_counts;

/// The header the control endpoints read: the one the platform's internal
/// endpoints use for the service key (defined once, with the client that sends it).
pub use crate::platform::internal::SERVICE_KEY_HEADER;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

/// The routes, ready to serve with `ConnectInfo<SocketAddr>`.
pub fn router(shared: Arc<Shared>, commands: mpsc::Sender<Command>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/diag/login", get(diag_login))
        .route("/diag/tick", post(diag_tick))
        .route("/control/pause", post(control_pause))
        .route("/control/resume", post(control_resume))
        .route(
            "/report",
            get(
                |State(app): State<App>, q: Query<super::report::Params>| async move {
                    super::report::respond(app.shared, q, crate::report::Format::Html).await
                },
            ),
        )
        .route(
            "/report.json",
            get(
                |State(app): State<App>, q: Query<super::report::Params>| async move {
                    super::report::respond(app.shared, q, crate::report::Format::Json).await
                },
            ),
        )
        .with_state(App { shared, commands })
}

async fn health(State(app): State<App>) -> Response {
    let s = &app.shared;
    let live = s.live();
    let failing = s.due_failing_too_long();
    let status = if failing.is_some() {
        "failing"
    } else if s.is_stopping() {
        "stopping"
    } else if s.is_paused() {
        "paused"
    } else {
        "ok"
    };
    // Dead batches are rows that never reached the platform: never hidden.
    let (outbox, dead, cached) = outbox_counts(&app.shared).await;
    let unsaved = app.shared.runner().unsaved.len();
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "paused": s.is_paused(),
        "tickIntervalMs": live.tick_interval.as_millis() as u64,
        "concurrency": live.concurrency,
        "inFlight": s.metrics.in_flight(),
        "lastTick": s.last_tick(),
        "outboxPending": outbox,
        "outboxPendingCached": cached,
        "outboxDead": dead,
        "outboxUnsaved": unsaved,
    });
    if cached {
        body["stateDb"] = json!(format!(
            "state.db did not answer within {} ms (another process may hold its lock); outboxPending is the last count read",
            HEALTH_DB_WAIT.as_millis()
        ));
    }
    if let Some(d) = failing {
        // Said from the last failure itself: a rotated service key or a
        // locked state.db fails ticks too, not only an unreachable due list.
        let last = s
            .last_tick()
            .and_then(|t| t.error)
            .unwrap_or_else(|| "unknown".into());
        body["reason"] = json!(format!(
            "every tick has failed for {} s (more than 3 intervals); the last: {}",
            d.as_secs(),
            crate::redact::redact(&crate::http::cut(&last, 300))
        ));
    }
    let code = if failing.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

/// How long `/health` waits for `state.db` before it answers with the last
/// outbox count read.
const HEALTH_DB_WAIT: Duration = Duration::from_millis(250);

/// The outbox's pending and dead counts for `/health`, and whether they are
/// the last ones read rather than fresh ones. `/health` is what a supervisor
/// probes: it must answer at once even while another process holds
/// `state.db`'s lock, so the fresh read (off the runtime, one at a time) is
/// waited for [`HEALTH_DB_WAIT`] at most; a read that ends later still
/// updates the counts (kept in the metrics).
async fn outbox_counts(shared: &Arc<Shared>) -> (u64, u64, bool) {
    let last = |m: &crate::metrics::Metrics| (m.outbox_pending(), m.outbox_dead(), true);
    if shared.outbox_read.swap(true, Ordering::SeqCst) {
        return last(&shared.metrics);
    }
    /// Lets the next probe read again however this read ends: done,
    /// panicked, or dropped unrun by a runtime shutting down.
    struct ReadDone(Arc<Shared>);
    impl Drop for ReadDone {
        fn drop(&mut self) {
            self.0.outbox_read.store(false, Ordering::SeqCst);
        }
    }
    let done = ReadDone(shared.clone());
    match read_outbox_counts(&shared.runner(), HEALTH_DB_WAIT, done).await {
        Some((pending, dead)) => (pending, dead, false),
        None => last(&shared.metrics),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.shared.metrics.encode(),
    )
        .into_response()
}

/// Diag endpoints do not exist in production: the same 404 as any unknown path.
fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// An error answer; its text is redacted (it may quote a server's body).
fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    let msg = crate::redact::redact(&msg.into());
    (code, Json(json!({"ok": false, "error": msg}))).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    email: Option<String>,
}

/// Logs in as one persona with its derived password and names its space:
/// proves the seed secret and the auth service agree. Never returns the JWT.
async fn diag_login(State(app): State<App>, Query(q): Query<LoginQuery>) -> Response {
    if app.shared.live().production {
        return not_found();
    }
    let Some(email) = q.email.filter(|e| !e.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing query parameter `email`");
    };
    let r = app.shared.runner();
    match r
        .auth
        .sign_in(&r.settings.seed_secret, &email, r.settings.production)
        .await
    {
        Ok(s) => Json(json!({
            "ok": true, "email": email, "userId": s.session.user_id,
            "bearer": s.session.bearer.as_str(), "spacesBearer": s.spaces_bearer,
            "spaceId": s.space.id, "spaceName": s.space.name,
        }))
        .into_response(),
        Err(SignInError::Password(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// Starts a tick now (202), or says why not (409).
async fn diag_tick(State(app): State<App>) -> Response {
    if app.shared.live().production {
        return not_found();
    }
    if app.shared.is_stopping() {
        return error(StatusCode::CONFLICT, "the daemon is stopping");
    }
    let (tx, rx) = oneshot::channel();
    if app.commands.send(Command::TickNow(tx)).await.is_err() {
        return error(StatusCode::CONFLICT, "the daemon is stopping");
    }
    match rx.await {
        Ok(Ok(())) => (
            StatusCode::ACCEPTED,
            Json(json!({"ok": true, "started": true})),
        )
            .into_response(),
        Ok(Err(why)) => error(StatusCode::CONFLICT, why),
        Err(_) => error(StatusCode::CONFLICT, "the daemon is stopping"),
    }
}

/// Constant-time comparison, so the key cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Only from loopback, only with the service key.
fn authorize(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, &'static str)> {
    if !peer.ip().is_loopback() {
        return Err((
            StatusCode::FORBIDDEN,
            "control endpoints answer only on loopback",
        ));
    }
    let Some(key) = app.shared.live().service_key else {
        return Err((
            StatusCode::FORBIDDEN,
            "control endpoints need MANA_SERVICE_KEY to be configured",
        ));
    };
    let given = headers
        .get(SERVICE_KEY_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if given.is_empty() || !same(given, key.expose_secret().as_bytes()) {
        return Err((StatusCode::UNAUTHORIZED, "missing or wrong X-Service-Key"));
    }
    Ok(())
}

async fn set_switch(app: App, switch: Switch) -> Response {
    let file = app.shared.pause_file.clone();
    if let Err(e) = pause::write(&file, switch, "POST /control") {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the pause switch: {e}"),
        );
    }
    // The scheduler applies (and logs) it; answer once it has.
    let (tx, rx) = oneshot::channel();
    let _ = app.commands.send(Command::Refresh(tx)).await;
    let paused = rx.await.unwrap_or(switch == Switch::Paused);
    Json(json!({"ok": true, "paused": paused})).into_response()
}

async fn control_pause(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match authorize(&app, peer, &headers) {
        Ok(()) => set_switch(app, Switch::Paused).await,
        Err((code, why)) => error(code, why),
    }
}

async fn control_resume(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match authorize(&app, peer, &headers) {
        Ok(()) => set_switch(app, Switch::Running).await,
        Err((code, why)) => error(code, why),
    }
}
