//! The platform half of the sandbox, one file per service as the platform has
//! them: [`auth`] (mana-auth: register, login, organization list), [`admin`]
//! (apps/api's persona admin, admin JWT) and [`internal`] (apps/api's runner
//! endpoints, service key); [`ratelimit`] is apps/api's request budget in
//! front of the last two (never in front of mana-auth's routes).
//!
//! Every shape here follows `contract/mana-platform.md` (vendored facts in the
//! doc comments), never the runner's client: the sandbox has its own wire
//! types so a renamed field on either side fails a test instead of passing.
//! Both path layouts are served (apps/api and the older mana-auth one), so a
//! configuration for either can be tested here.

pub mod admin;
pub mod auth;
pub mod internal;
pub mod jwt;
pub mod ratelimit;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::SandboxState;

/// mana-auth's paths.
pub const LOGIN_PATH: &str = "/api/v1/auth/login";
pub const REGISTER_PATH: &str = "/api/v1/auth/register";
pub const ORGANIZATIONS_PATH: &str = "/api/auth/organization/list";
/// apps/api's persona admin, and the older layout on mana-auth.
pub const ADMIN_PREFIX: &str = "/api/v1/personas/admin";
pub const LEGACY_ADMIN_PREFIX: &str = "/api/v1/admin/personas";
/// apps/api's runner endpoints, and the older layout on mana-auth.
pub const INTERNAL_PREFIX: &str = "/api/v1/personas/internal";
pub const LEGACY_INTERNAL_PREFIX: &str = "/api/v1/internal/personas";

pub fn router(state: SandboxState) -> Router {
    let admin_routes = || {
        Router::new()
            .route("/", get(admin::list).post(admin::upsert))
            .route("/{id}", get(admin::show).delete(admin::delete))
    };
    let internal_routes = || {
        Router::new()
            .route("/due", get(internal::due))
            .route("/{id}/actions", post(internal::actions))
            .route("/{id}/feedback", post(internal::feedback))
    };
    // apps/api's routes share one request budget (admin and internal alike).
    let api = Router::new()
        .nest(ADMIN_PREFIX, admin_routes())
        .nest(LEGACY_ADMIN_PREFIX, admin_routes())
        .nest(INTERNAL_PREFIX, internal_routes())
        .nest(LEGACY_INTERNAL_PREFIX, internal_routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ));
    Router::new()
        .route(LOGIN_PATH, post(auth::login))
        .route(REGISTER_PATH, post(auth::register))
        .route(ORGANIZATIONS_PATH, get(auth::organizations))
        .route("/__sandbox/ratelimit", get(ratelimit::report))
        .merge(api)
        .with_state(state)
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// The shape of apps/api's global handlers (auth middleware, error handler):
/// `{"error": ..., "status": n}`.
pub(crate) fn error_with_status(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": message, "status": status.as_u16()})),
    )
        .into_response()
}

/// apps/api's answer to anything that throws, a database error included:
/// `500 {"error":"Internal server error","status":500}`. The cause goes to
/// the sandbox's log, never to the client (the platform does not send it).
pub(crate) fn internal_error(cause: &dyn std::fmt::Display) -> Response {
    tracing::warn!(%cause, "sandbox: 500 Internal server error");
    error_with_status(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

pub(crate) fn db_error(e: rusqlite::Error) -> Response {
    internal_error(&e)
}

/// A user id as the platform's auth makes them: 32 alphanumerics.
pub(crate) fn new_user_id() -> String {
    use rand::RngExt;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// A space (organization) id: a 21-character nanoid, `_` and `-` included.
pub(crate) fn new_space_id() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8; 64] = b"useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";
    let mut rng = rand::rng();
    (0..21)
        .map(|_| char::from(ALPHABET[rng.random_range(0..64)]))
        .collect()
}

pub(crate) fn hash_password(pw: &str) -> String {
    let d = Sha256::digest(pw.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// `400 {"error": "ValidationError", "details": [...]}`.
pub(crate) fn validation(details: Vec<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "ValidationError", "details": details})),
    )
        .into_response()
}
