//! The scripted LLM (filled in by the LLM work).
use axum::Router;

use super::SandboxState;

pub fn router(_state: SandboxState) -> Router {
    Router::new()
}
