//! The sandbox MCP server, mana-mcp's twin: rmcp's Streamable HTTP service at
//! `/mcp` serving the platform's 21 tools, behind a gateway that makes the
//! transport look like mana-mcp's (the official TypeScript SDK's server plus
//! its auth rules).
//!
//! - [`gateway`]: bearer, `X-Mana-Space`, sessions bound at initialize to
//!   their user and space, 404/403 JSON bodies, DELETE 200, SSE framed as the
//!   TypeScript SDK frames it, priming only for ≥ 2025-11-25 sessions.
//! - [`catalog`]: the real `tools/list` (vendored fixture), one page.
//! - [`validate`]: zod-worded argument validation.
//! - [`policy`]: the optional 30-per-minute gate.
//! - [`handlers`] over [`store`]: what each tool does, per (user, space);
//!   every `tools/call` that reaches the server is logged (`mcp_calls`).
//!
//! Why rmcp underneath and not a hand-written server: the runner's client is
//! hand-written, so the sandbox serving through the official Rust SDK tests
//! it against an independent protocol implementation; the gateway only
//! changes what rmcp does differently from the TypeScript SDK (see its docs).

mod catalog;
mod gateway;
mod handlers;
mod policy;
mod store;
pub mod validate;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};
use serde_json::Value;

pub use catalog::TOOLS_LIST_JSON;
use policy::PolicyGate;

use super::SandboxState;

/// The (user, space) a session was opened for: put into the request
/// extensions by the gateway, read by the tool handlers through rmcp's
/// `http::request::Parts`.
#[derive(Debug, Clone, PartialEq)]
pub struct McpCaller {
    pub user_id: String,
    pub space_id: String,
}

/// `/mcp`: the rmcp service behind the gateway.
pub fn router(state: SandboxState) -> axum::Router {
    if let Err(e) = store::init(&state.db) {
        tracing::error!(error = %e, "sandbox MCP: cannot create mcp_items");
    }
    let handler = SandboxMcp {
        state: state.clone(),
        gate: PolicyGate::default(),
    };
    // SSE answers with stateful sessions, as the TypeScript SDK server runs
    // on the platform; no rmcp priming (the gateway primes where the SDK
    // would) and no keep-alive comments (the SDK sends none).
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(false)
        .with_sse_keep_alive(None)
        .with_sse_retry(None);
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.sse_retry = None;
    // The platform frees a session only on DELETE.
    sessions.session_config.keep_alive = None;
    let service: StreamableHttpService<SandboxMcp, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(handler.clone()), sessions.into(), config);
    gateway::wrap(state, axum::Router::new().nest_service("/mcp", service))
}

/// The rmcp handler: one per session, all sharing the sandbox state and the
/// policy gate.
#[derive(Clone)]
struct SandboxMcp {
    state: SandboxState,
    gate: PolicyGate,
}

/// A tool result with one text item.
fn text_result(text: String, is_error: bool) -> CallToolResponse {
    let content = vec![ContentBlock::text(text)];
    if is_error {
        CallToolResult::error(content).into()
    } else {
        CallToolResult::success(content).into()
    }
}

impl ServerHandler for SandboxMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("mana-sandbox-mcp", env!("CARGO_PKG_VERSION")),
        )
    }

    /// The whole list in one page, like mana-mcp; `SandboxOptions::mcp_page_size`
    /// pages it for tests of a client's `nextCursor` handling.
    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let all = catalog::tools();
        let page = self.state.opts.mcp_page_size.unwrap_or(all.len()).max(1);
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&n| n < all.len())
                .ok_or_else(|| ErrorData::invalid_params(format!("invalid cursor {c:?}"), None))?,
        };
        let end = (start + page).min(all.len());
        let mut result = ListToolsResult::with_all_items(all[start..end].to_vec());
        result.next_cursor = (end < all.len()).then(|| end.to_string());
        Ok(result)
    }

    /// mana-mcp's order: unknown tool, argument validation (the SDK), then
    /// inside the tool's callback the policy gate and the handler. Every
    /// failure is an `isError` result, never a JSON-RPC error.
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
        let name = request.name.as_ref();
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        store::log_call(&self.state.db, &caller, name, &args);
        let Some(schema) = catalog::input_schema(name) else {
            return Ok(text_result(
                format!("MCP error -32602: Tool {name} not found"),
                true,
            ));
        };
        let args = match validate::parse(schema, &args) {
            Ok(Value::Object(parsed)) => parsed,
            Ok(_) => unreachable!("an object schema parses to an object"),
            Err(issues) => {
                return Ok(text_result(
                    format!(
                        "MCP error -32602: Input validation error: Invalid arguments for tool {name}: {}",
                        validate::render(&issues)
                    ),
                    true,
                ));
            }
        };
        if self.state.opts.mcp_policy_gate
            && let Err(denied) = self.gate.admit(&caller.user_id, name)
        {
            return Ok(text_result(denied, true));
        }
        Ok(match handlers::call(&self.state.db, &caller, name, &args) {
            Ok(value) => text_result(
                serde_json::to_string_pretty(&value).unwrap_or_default(),
                false,
            ),
            Err(reason) => text_result(format!("Tool {name} failed: {reason}"), true),
        })
    }
}
