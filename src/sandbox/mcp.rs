//! The sandbox MCP server (filled in by the MCP work).
use axum::Router;

use super::SandboxState;

pub fn router(_state: SandboxState) -> Router {
    Router::new()
}
