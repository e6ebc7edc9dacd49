//! The sandbox MCP server: rmcp's Streamable HTTP service at `/mcp`, with the
//! gateway rules mana-mcp enforces in front of the TypeScript SDK (bearer
//! token, `X-Mana-Space` membership, sessions bound to the user who opened
//! them) and the platform's dotted tool set over per-(user, space) SQLite data.
//!
//! Why rmcp here and not a hand-written server: the client is hand-written (see
//! `mcp::wire`), so serving with the official Rust SDK means the client is
//! tested against an independent implementation of the protocol, and the
//! recorded TypeScript-SDK exchanges cover the other side.

mod tools;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};

use super::SandboxState;

/// Tools per `tools/list` page: fewer than the tool count, so every client
/// run exercises `nextCursor`.
const PAGE_SIZE: usize = 8;

/// Who is calling, put into the request extensions by the gateway middleware
/// and read back by the tool handlers through rmcp's `http::request::Parts`.
#[derive(Debug, Clone)]
pub struct McpCaller {
    pub user_id: String,
    pub space_id: String,
}

/// Session id → the user who opened it, learned from initialize responses.
type Owners = Arc<Mutex<HashMap<String, String>>>;

/// `/mcp`: the rmcp service behind the gateway middleware.
pub fn router(state: SandboxState) -> Router {
    if let Err(e) = state.db.call(|c| c.execute_batch(tools::SCHEMA)) {
        tracing::error!(error = %e, "sandbox MCP: cannot create mcp_items");
    }
    let handler = SandboxMcp {
        state: state.clone(),
    };
    // Answers are SSE (json_response off), as the TypeScript SDK sends them,
    // with stateful sessions so the 404/403 session rules can be exercised.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(false)
        .with_sse_keep_alive(None);
    let service: StreamableHttpService<SandboxMcp, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(handler.clone()), Default::default(), config);
    let owners: Owners = Arc::default();
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            (state, owners),
            gateway,
        ))
}

fn deny(status: StatusCode, msg: &str) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// The gateway rules: 401 without a valid token or a space the user belongs
/// to, 403 for another user's session; unknown sessions fall through to rmcp,
/// which answers 404.
async fn gateway(
    State((state, owners)): State<(SandboxState, Owners)>,
    mut req: Request,
    next: Next,
) -> Response {
    // Owned copies: a borrow of the request (its body is not Sync) must not
    // live across the await below.
    let headers = req.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(token) = header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_string())
    }) else {
        return deny(StatusCode::UNAUTHORIZED, "missing bearer token");
    };
    let user_id = match crate::platform::auth::verify_access_token(&state, &token) {
        Ok(claims) => claims.sub,
        Err(refused) => return refused,
    };
    let Some(space_id) = header("x-mana-space").filter(|s| !s.trim().is_empty()) else {
        return deny(StatusCode::UNAUTHORIZED, "missing X-Mana-Space header");
    };
    if !state.db.is_member(&user_id, &space_id) {
        return deny(
            StatusCode::UNAUTHORIZED,
            "X-Mana-Space is not a space of this user",
        );
    }
    let session = header("mcp-session-id");
    if let Some(sid) = &session {
        let owner = owners.lock().unwrap().get(sid).cloned();
        if owner.is_some_and(|o| o != user_id) {
            return deny(
                StatusCode::FORBIDDEN,
                "this MCP session belongs to another user",
            );
        }
    }
    let is_delete = req.method() == Method::DELETE;
    req.extensions_mut().insert(McpCaller {
        user_id: user_id.clone(),
        space_id,
    });
    let resp = next.run(req).await;
    match (&session, resp.headers().get("mcp-session-id")) {
        (None, Some(new)) => {
            if let Ok(new) = new.to_str() {
                owners.lock().unwrap().insert(new.to_string(), user_id);
            }
        }
        (Some(sid), _) if is_delete && resp.status().is_success() => {
            owners.lock().unwrap().remove(sid);
        }
        _ => {}
    }
    resp
}

/// The rmcp handler: one per session, all sharing the sandbox state.
#[derive(Clone)]
struct SandboxMcp {
    state: SandboxState,
}

impl ServerHandler for SandboxMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("mana-sandbox-mcp", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let all = tools::definitions();
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&n| n < all.len())
                .ok_or_else(|| ErrorData::invalid_params(format!("invalid cursor {c:?}"), None))?,
        };
        let end = (start + PAGE_SIZE).min(all.len());
        let mut page = ListToolsResult::with_all_items(all[start..end].to_vec());
        page.next_cursor = (end < all.len()).then(|| end.to_string());
        Ok(page)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpCaller>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("no caller on the request", None))?;
        let args = request.arguments.unwrap_or_default();
        let result = match tools::call(&self.state.db, &caller, &request.name, &args) {
            Ok(value) => CallToolResult::success(vec![ContentBlock::text(
                serde_json::to_string_pretty(&value).unwrap_or_default(),
            )]),
            Err(msg) => CallToolResult::error(vec![ContentBlock::text(msg)]),
        };
        Ok(result.into())
    }
}
