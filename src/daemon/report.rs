//! `/report` (HTML) and `/report.json`: the same report as `mana-personas
//! report`, live from the daemon's own ledger, with the same parameters
//! (`?since=28d&persona=EMAIL&archetype=A`).
//!
//! The ledger is read on a blocking thread through its own read-only
//! connection, so a report never holds up the runner's state connection.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::shared::Shared;
use crate::report::{self, Format};

#[derive(Debug, Deserialize)]
pub struct Params {
    since: Option<String>,
    persona: Option<String>,
    archetype: Option<String>,
}

/// Builds and renders the report; 400 on a bad `since`.
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
    let q = report::Query {
        until: chrono::Utc::now(),
        days,
        persona: p.persona.filter(|s| !s.is_empty()),
        archetype: p.archetype.filter(|s| !s.is_empty()),
        ledgers: vec![dir],
    };
    let built = tokio::task::spawn_blocking(move || {
        let r = report::load(&q);
        report::render(&r, format)
    })
    .await;
    let Ok(body) = built else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let ct = match format {
        Format::Html => "text/html; charset=utf-8",
        Format::Json => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}
