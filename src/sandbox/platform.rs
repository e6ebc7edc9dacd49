//! mana-auth and the persona admin/internal endpoints (filled in next).
use axum::Router;

use super::SandboxState;

pub fn router(_state: SandboxState) -> Router {
    Router::new()
}
