//! mana-mcp: the session life cycle (initialize, initialized, tools/list with
//! cursors, a tools/call, DELETE, the deleted session, the two 401s), the
//! tool list against the expected modules, and the shape of every tool's
//! answer.

use std::collections::BTreeSet;

use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Cx, Exchange, Mismatch, Outcome, Runner, check, mismatch};
use crate::mcp::{PROTOCOL_HEADER, SESSION_HEADER, SPACE_HEADER};

/// The protocol revision the checks speak (the TS SDK server's default).
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Modules with tools on the platform today (contract, "MCP").
pub const EXPECTED_MODULES: &[&str] = &[
    "todo", "journal", "notes", "mood", "habits", "spaces", "me", "augur",
];
/// A guard against a server whose cursor never ends.
const MAX_PAGES: usize = 50;

pub async fn run(r: &mut Runner) {
    check!(r, "mcp.initialize", ["auth.spaces"], initialize(&mut r.cx));
    check!(r, "mcp.initialized", ["mcp.initialize"], initialized(&r.cx));
    check!(
        r,
        "mcp.tools_list",
        ["mcp.initialized"],
        tools_list(&mut r.cx)
    );
    check!(r, "mcp.tools_call", ["mcp.tools_list"], tools_call(&r.cx));
    check!(
        r,
        "mcp.tool_modules",
        ["mcp.tools_list"],
        tool_modules(&r.cx)
    );
    check!(
        r,
        "mcp.tool_answers",
        ["mcp.tools_list"],
        tool_answers(&r.cx)
    );
    check!(r, "mcp.delete", ["mcp.initialize"], delete(&mut r.cx));
    check!(
        r,
        "mcp.deleted_session",
        ["mcp.initialize"],
        deleted_session(&r.cx)
    );
    check!(r, "mcp.missing_bearer", [], missing_bearer(&r.cx));
    check!(
        r,
        "mcp.session_token",
        ["auth.spaces"],
        session_token(&r.cx)
    );
}

fn endpoint(cx: &Cx) -> String {
    crate::http::join(&cx.targets.mcp, "/mcp")
}

/// A POST of one JSON-RPC message with the given bearer, space and session.
fn post(
    cx: &Cx,
    bearer: Option<&str>,
    space: Option<&str>,
    session: Option<&str>,
    msg: &Value,
) -> reqwest::RequestBuilder {
    let mut req = cx
        .probe
        .http
        .post(endpoint(cx))
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .json(msg);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(s) = space {
        req = req.header(SPACE_HEADER, s);
    }
    if let Some(s) = session {
        req = req.header(SESSION_HEADER, s).header(
            PROTOCOL_HEADER,
            cx.found
                .protocol_version
                .as_deref()
                .unwrap_or(PROTOCOL_VERSION),
        );
    }
    req
}

/// `DELETE /mcp` for session `sid` (also used by cleanup for a session a
/// failed check left open).
pub fn delete_request(
    cx: &Cx,
    sid: &str,
    jwt: &SecretString,
    space: &str,
) -> reqwest::RequestBuilder {
    cx.probe
        .http
        .delete(endpoint(cx))
        .bearer_auth(jwt.expose_secret())
        .header(SPACE_HEADER, space)
        .header(SESSION_HEADER, sid)
}

fn initialize_msg() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "mana-personas-conformance", "version": env!("CARGO_PKG_VERSION")}}})
}

fn jwt(cx: &Cx) -> &str {
    cx.found
        .jwt
        .as_ref()
        .map(|j| j.expose_secret())
        .unwrap_or_default()
}

fn space(cx: &Cx) -> &str {
    cx.found.space_id.as_deref().unwrap_or_default()
}

/// The JSON-RPC message answering request `id`, from a JSON or an SSE body
/// (other messages on the stream, and the empty priming event, are skipped).
async fn rpc_answer(ex: &Exchange, id: u64) -> Result<Value, Mismatch> {
    let is_sse = ex
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let messages: Vec<Value> = if is_sse {
        let chunk = futures::stream::iter([Ok::<_, std::convert::Infallible>(
            ex.body.clone().into_bytes(),
        )]);
        crate::sse::events(chunk, crate::http::MAX_BODY_BYTES)
            .filter_map(|e| async move { e.ok() })
            .filter_map(|e| async move { serde_json::from_str(&e.data).ok() })
            .collect()
            .await
    } else {
        ex.json().into_iter().collect()
    };
    messages
        .into_iter()
        .find(|m| {
            m["id"].as_u64() == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
        })
        .ok_or_else(|| mismatch(format!("a JSON-RPC answer to request {id}"), ex.shown()))
}

/// A request in the open session; its JSON-RPC answer.
async fn request(
    cx: &Cx,
    id: u64,
    method: &str,
    params: Value,
) -> Result<(Exchange, Value), Mismatch> {
    let sid = cx.found.mcp_session.as_deref();
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let ex = cx
        .probe
        .send(post(cx, Some(jwt(cx)), Some(space(cx)), sid, &msg))
        .await?;
    ex.expect_status(&[200])?;
    let answer = rpc_answer(&ex, id).await?;
    Ok((ex, answer))
}

async fn initialize(cx: &mut Cx) -> Outcome {
    let req = post(cx, Some(jwt(cx)), Some(space(cx)), None, &initialize_msg());
    let ex = cx.probe.send(req).await?;
    ex.expect_status(&[200])?;
    let answer = rpc_answer(&ex, 1).await?;
    let result = &answer["result"];
    let Some(version) = result["protocolVersion"].as_str() else {
        return Err(mismatch(
            "an InitializeResult with protocolVersion",
            ex.shown(),
        ));
    };
    if !result["serverInfo"]["name"].is_string() || !result["capabilities"]["tools"].is_object() {
        return Err(mismatch(
            "an InitializeResult with serverInfo.name and capabilities.tools",
            ex.shown(),
        ));
    }
    let Some(sid) = ex
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
    else {
        return Err(mismatch("an Mcp-Session-Id header", ex.shown()));
    };
    cx.found.mcp_session = Some(sid.to_string());
    cx.found.protocol_version = Some(version.to_string());
    Ok(format!("protocol {version}"))
}

async fn initialized(cx: &Cx) -> Outcome {
    let msg = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let sid = cx.found.mcp_session.as_deref();
    let ex = cx
        .probe
        .send(post(cx, Some(jwt(cx)), Some(space(cx)), sid, &msg))
        .await?;
    ex.expect_status(&[202])?;
    Ok(String::new())
}

async fn tools_list(cx: &mut Cx) -> Outcome {
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let (ex, answer) = request(cx, 10 + page as u64, "tools/list", params).await?;
        let Some(batch) = answer["result"]["tools"].as_array() else {
            return Err(mismatch("a tools/list result {tools: [...]}", ex.shown()));
        };
        if let Some(t) = batch
            .iter()
            .find(|t| !(t["name"].is_string() && t["inputSchema"].is_object()))
        {
            return Err(mismatch(
                "each tool with `name` and an `inputSchema` object",
                crate::http::cut(&t.to_string(), 300),
            ));
        }
        tools.extend(batch.iter().cloned());
        cursor = answer["result"]["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            let n = tools.len();
            cx.found.tools = tools;
            return Ok(format!("{n} tools in {} page(s)", page + 1));
        }
    }
    Err(mismatch(
        format!("a tool list that ends within {MAX_PAGES} pages"),
        "nextCursor on every page",
    ))
}

fn tool_name(t: &Value) -> &str {
    t["name"].as_str().unwrap_or_default()
}

/// Whether a tool takes no required argument (so `{}` is a valid call).
fn needs_nothing(t: &Value) -> bool {
    t["inputSchema"]["required"]
        .as_array()
        .is_none_or(|r| r.is_empty())
}

/// A harmless call: `todo.list`, else the first tool that needs no argument.
async fn tools_call(cx: &Cx) -> Outcome {
    let tool = cx
        .found
        .tools
        .iter()
        .find(|t| tool_name(t) == "todo.list")
        .or_else(|| cx.found.tools.iter().find(|t| needs_nothing(t)))
        .map(tool_name)
        .unwrap_or("todo.list");
    let (ex, answer) = request(
        cx,
        100,
        "tools/call",
        json!({"name": tool, "arguments": {}}),
    )
    .await?;
    answer_shape(&answer)
        .map(|kind| format!("{tool}: {kind}"))
        .map_err(|why| mismatch(format!("a tools/call result ({why})"), ex.shown()))
}

/// A CallToolResult with text `content`, data or `isError`; anything else
/// (a JSON-RPC error, no content) is the reason.
fn answer_shape(answer: &Value) -> Result<&'static str, String> {
    if let Some(e) = answer.get("error") {
        return Err(format!(
            "a result, not a JSON-RPC error: {}",
            crate::http::cut(&e.to_string(), 200)
        ));
    }
    let result = &answer["result"];
    let Some(content) = result["content"].as_array() else {
        return Err("`content` missing".into());
    };
    if content.is_empty() {
        return Err("`content` empty".into());
    }
    if let Some(c) = content
        .iter()
        .find(|c| !(c["type"] == "text" && c["text"].is_string()))
    {
        return Err(format!(
            "a non-text item {}",
            crate::http::cut(&c.to_string(), 100)
        ));
    }
    Ok(if result["isError"] == true {
        "isError result"
    } else {
        "result"
    })
}

async fn tool_modules(cx: &Cx) -> Outcome {
    let have: BTreeSet<&str> = cx
        .found
        .tools
        .iter()
        .map(|t| tool_name(t).split('.').next().unwrap_or_default())
        .collect();
    let want: BTreeSet<&str> = EXPECTED_MODULES.iter().copied().collect();
    let missing: Vec<&str> = want.difference(&have).copied().collect();
    let extra: Vec<&str> = have.difference(&want).copied().collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(want.into_iter().collect::<Vec<_>>().join(", "));
    }
    Err(mismatch(
        format!("tools for exactly {}", EXPECTED_MODULES.join(", ")),
        format!(
            "missing: [{}], extra: [{}]",
            missing.join(", "),
            extra.join(", ")
        ),
    ))
}

/// Every tool called with `{}` (tools that need arguments must refuse with an
/// `isError` result, those that need none answer with data), plus an unknown
/// tool. A deployment may refuse any call with `isError`; only a JSON-RPC
/// error or a result without text content breaks the contract.
async fn tool_answers(cx: &Cx) -> Outcome {
    let mut names: Vec<String> = cx
        .found
        .tools
        .iter()
        .map(|t| tool_name(t).to_string())
        .collect();
    names.push("conformance.nope".into());
    let (mut results, mut refused, mut wrong) = (0, 0, Vec::new());
    for (i, name) in names.iter().enumerate() {
        let (_, answer) = request(
            cx,
            200 + i as u64,
            "tools/call",
            json!({"name": name, "arguments": {}}),
        )
        .await?;
        match answer_shape(&answer) {
            Ok("result") => results += 1,
            Ok(_) => refused += 1,
            Err(why) => wrong.push(format!("{name}: {why}")),
        }
    }
    if wrong.is_empty() {
        return Ok(format!(
            "{} calls: {results} results, {refused} isError",
            names.len()
        ));
    }
    Err(mismatch(
        "every tools/call answered with a result holding text content (isError allowed)",
        crate::http::cut(&wrong.join("; "), 300),
    ))
}

/// DELETE answers 200 (the TS SDK server; 204 is acceptable, 202 is not).
async fn delete(cx: &mut Cx) -> Outcome {
    let sid = cx.found.mcp_session.clone().expect("mcp.initialize passed");
    let jwt = cx.found.jwt.clone().expect("auth.login passed");
    let ex = cx
        .probe
        .send(delete_request(cx, &sid, &jwt, space(cx)))
        .await?;
    // Any 2xx ended the session, whether or not its status is the right one:
    // cleanup must not DELETE it again, and the next check probes it.
    if ex.status < 300 {
        cx.found.mcp_session = None;
        cx.found.deleted_session = Some(sid);
    }
    ex.expect_status(&[200, 204])?;
    Ok(String::new())
}

/// A request on the deleted session: 404 (re-initialize).
async fn deleted_session(cx: &Cx) -> Outcome {
    let Some(sid) = cx.found.deleted_session.as_deref() else {
        return Err(mismatch(
            "a session ended by DELETE",
            "the DELETE was not accepted (see mcp.delete)",
        ));
    };
    let msg = json!({"jsonrpc": "2.0", "id": 900, "method": "tools/list", "params": {}});
    let ex = cx
        .probe
        .send(post(cx, Some(jwt(cx)), Some(space(cx)), Some(sid), &msg))
        .await?;
    ex.expect_status(&[404])?;
    Ok(String::new())
}

async fn missing_bearer(cx: &Cx) -> Outcome {
    let space = cx.found.space_id.as_deref().unwrap_or("conformance-space");
    let ex = cx
        .probe
        .send(post(cx, None, Some(space), None, &initialize_msg()))
        .await?;
    ex.expect_status(&[401])?;
    Ok(String::new())
}

/// The opaque session token where the JWT belongs: 401.
async fn session_token(cx: &Cx) -> Outcome {
    let Some(token) = cx.found.session_token.as_ref() else {
        return Err(mismatch("a session token from auth.login", "none"));
    };
    let req = post(
        cx,
        Some(token.expose_secret()),
        Some(space(cx)),
        None,
        &initialize_msg(),
    );
    let ex = cx.probe.send(req).await?;
    ex.expect_status(&[401])?;
    Ok(String::new())
}
