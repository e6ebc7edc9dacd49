//! The LLM twin: Anthropic Messages (`POST /v1/messages`) and OpenAI chat
//! completions (`POST /v1/chat/completions`), streamed or not, refusing what
//! the real APIs refuse and answering like a model playing a persona would.
//!
//! Why a faithful twin and not a lenient stub: a client bug that only the
//! real API notices (a `tool_use` left without its result, a fifth cache
//! breakpoint, an empty text block) must fail here first, with the status and
//! body the real API would send, so tests and the official SDKs see it.
//!
//! One module per concern: `anthropic` and `openai` check, read and encode
//! their API; `script` is the persona that answers; `args` makes up tool
//! arguments from the schemas; `billing` estimates tokens, simulates the
//! prompt cache and records every request in `llm_requests`.

mod anthropic;
mod args;
mod billing;
mod openai;
mod script;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::RngExt;
use rand::rngs::StdRng;
use serde_json::Value;

use super::SandboxState;
use super::faults::InjectSseError;
pub use billing::min_cacheable_tokens;
pub use script::MODULES;

/// The LLM routes. Creates the `llm_requests` table if needed.
pub fn router(state: SandboxState) -> Router {
    if let Err(e) = state.db.call(|c| c.execute_batch(billing::SCHEMA)) {
        tracing::error!("sandbox llm: cannot create llm_requests: {e}");
    }
    Router::new()
        .route("/v1/messages", post(anthropic_route))
        .route("/v1/chat/completions", post(openai_route))
        .with_state(state)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Api {
    Anthropic,
    OpenAi,
}

impl Api {
    fn label(self) -> &'static str {
        match self {
            Api::Anthropic => "anthropic",
            Api::OpenAi => "openai",
        }
    }

    /// The API of a request path, for error bodies built outside a handler
    /// (injected faults).
    pub fn of_path(path: &str) -> Api {
        if path.contains("/chat/completions") {
            Api::OpenAi
        } else {
            Api::Anthropic
        }
    }
}

/// A request the API refuses: the status and what the error body says, in
/// whichever shape the route answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    /// `error.type` in both APIs.
    pub kind: &'static str,
    pub message: String,
    /// OpenAI only: the offending parameter and a machine-readable code.
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl Refusal {
    pub fn new(status: StatusCode, kind: &'static str, message: &str) -> Refusal {
        Refusal {
            status,
            kind,
            message: message.to_string(),
            param: None,
            code: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn bad(message: String) -> Refusal {
        Refusal {
            message,
            ..Refusal::new(StatusCode::BAD_REQUEST, "invalid_request_error", "")
        }
    }

    fn param(mut self, p: &str) -> Refusal {
        self.param = Some(p.to_string());
        self
    }

    fn code(mut self, c: &'static str) -> Refusal {
        self.code = Some(c);
        self
    }

    /// The response in `api`'s shape, with its request-id header.
    pub fn into_response(self, api: Api) -> Response {
        let id = request_id();
        let (body, id_header) = match api {
            Api::Anthropic => (anthropic::error_body(&self, &id), "request-id"),
            Api::OpenAi => (openai::error_body(&self), "x-request-id"),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Ok(v) = header::HeaderValue::from_str(&id) {
            resp.headers_mut().insert(id_header, v);
        }
        resp
    }
}

/// The body of an injected fault on an LLM path, in that API's shape.
pub fn fault_body(path: &str, status: u16) -> Value {
    let (kind, message) = match status {
        529 => ("overloaded_error", "Overloaded (injected)".to_string()),
        429 => ("rate_limit_error", "Rate limited (injected)".to_string()),
        _ => ("api_error", format!("injected {status}")),
    };
    let r = Refusal::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        kind,
        &message,
    );
    match Api::of_path(path) {
        Api::Anthropic => anthropic::error_body(&r, &request_id()),
        Api::OpenAi => openai::error_body(&r),
    }
}

/// `req_` and 24 random characters, like the API's request ids.
fn request_id() -> String {
    let n: u128 = rand::rng().random();
    format!("req_sb{:024x}", n >> 32)
}

async fn anthropic_route(State(state): State<SandboxState>, req: Request) -> Response {
    handle(state, Api::Anthropic, req).await
}

async fn openai_route(State(state): State<SandboxState>, req: Request) -> Response {
    handle(state, Api::OpenAi, req).await
}

/// Checks in the order the APIs make them (key, headers, body), then the
/// scripted answer.
async fn handle(state: SandboxState, api: Api, req: Request) -> Response {
    let inject = req.extensions().get::<InjectSseError>().is_some();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 32 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            return Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &e.to_string(),
            )
            .into_response(api);
        }
    };
    let key = state.opts.llm_api_key.as_deref();
    let checked = match api {
        Api::Anthropic => anthropic::authenticate(&parts.headers, key),
        Api::OpenAi => openai::authenticate(&parts.headers, key),
    }
    .and_then(|()| match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Refusal::bad(
            "There was an issue with the formatting or structure of your request: the body is not a JSON object.".into(),
        )),
    })
    .and_then(|body| {
        match api {
            Api::Anthropic => anthropic::validate(&parts.headers, &body),
            Api::OpenAi => openai::validate(&body),
        }
        .map(|()| body)
    });
    let body = match checked {
        Ok(b) => b,
        Err(r) => {
            let status = r.status.as_u16();
            billing::record(
                &state,
                api,
                "refused",
                0,
                bytes.len(),
                billing::Tokens::default(),
                status,
            );
            return r.into_response(api);
        }
    };
    let convo = match api {
        Api::Anthropic => anthropic::parse(&body),
        Api::OpenAi => openai::parse(&body),
    };
    if state.opts.llm_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(state.opts.llm_latency_ms)).await;
    }
    let style = script::Style {
        seed: state.opts.seed,
        invalid_share: state.opts.llm_invalid_args_share,
    };
    let reply = if convo.tools.is_empty() {
        script::rating_turn(&convo, style.seed)
    } else {
        script::main_turn(api, &convo, style)
    };
    let output = reply.output_tokens();
    let tokens = match api {
        Api::Anthropic => billing::anthropic(&state, &body, output),
        Api::OpenAi => billing::openai(bytes.len(), output),
    };
    billing::record(
        &state,
        api,
        reply.kind,
        convo.assistant_turns + 1,
        bytes.len(),
        tokens,
        200,
    );
    let mut rng = script::rng_for(
        state.opts.seed,
        &[b"split", &(convo.message_count as u64).to_le_bytes()],
    );
    let mut resp = match (api, convo.stream) {
        (Api::Anthropic, true) => sse(anthropic::events(&convo, &reply, tokens, inject, &mut rng)),
        (Api::Anthropic, false) => {
            axum::Json(anthropic::message(&convo, &reply, tokens)).into_response()
        }
        (Api::OpenAi, true) => sse(openai::events(&convo, &reply, tokens, inject, &mut rng)),
        (Api::OpenAi, false) => axum::Json(openai::message(&convo, &reply, tokens)).into_response(),
    };
    let id_header = match api {
        Api::Anthropic => "request-id",
        Api::OpenAi => "x-request-id",
    };
    if let Ok(v) = header::HeaderValue::from_str(&request_id()) {
        resp.headers_mut().insert(id_header, v);
    }
    resp
}

/// One SSE frame per element, sent as separate chunks.
fn sse(frames: Vec<String>) -> Response {
    let stream = futures::stream::iter(
        frames
            .into_iter()
            .map(|f| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(f))),
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("static response parts")
}

/// `s` in 1–`max` pieces cut at random char boundaries.
fn split_random(s: &str, max: usize, rng: &mut StdRng) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 2 {
        return vec![s.to_string()];
    }
    let n = rng.random_range(1..=max.min(chars.len()));
    let mut cuts: Vec<usize> = (0..n - 1)
        .map(|_| rng.random_range(1..chars.len()))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([chars.len()]) {
        out.push(chars[prev..c].iter().collect());
        prev = c;
    }
    out
}

/// The truncated JSON of a tool call cut off by max_tokens: a prefix that
/// cannot parse.
fn cut_json(input: &Value) -> String {
    let s = input.to_string();
    let keep = (s.len() * 3 / 5).max(1);
    let mut end = keep.min(s.len().saturating_sub(1)).max(1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn truncated_json_never_parses() {
        let v = json!({"title": "abc", "n": 1});
        assert!(serde_json::from_str::<Value>(&cut_json(&v)).is_err());
    }

    #[test]
    fn split_random_keeps_text() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..50 {
            let parts = split_random("héllo wörld", 5, &mut rng);
            assert_eq!(parts.concat(), "héllo wörld");
        }
    }
}
