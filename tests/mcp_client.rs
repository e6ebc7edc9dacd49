//! The MCP client against real servers on loopback: the sandbox (rmcp's
//! Streamable HTTP server behind the gateway rules), and an in-test server that
//! replays the exchanges recorded from the TypeScript SDK's server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use mana_personas::http::RetryPolicy;
use mana_personas::mcp::{McpConfig, McpError, McpSession};
use mana_sandbox::{Fault, FaultKind, RouteGroup, Sandbox, SandboxOptions};
use rusqlite::params;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

const JWT: &str = "persona-jwt-do-not-leak";
const SPACE: &str = "space-1";

fn cfg(base_url: &str) -> McpConfig {
    McpConfig {
        base_url: base_url.to_string(),
        connect_timeout: Duration::from_secs(5),
        call_timeout: Duration::from_secs(5),
        result_cap_bytes: 20_480,
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_total_wait: Duration::from_secs(1),
        },
    }
}

fn http() -> reqwest::Client {
    mana_personas::http::client(Duration::from_secs(5), Duration::from_secs(30))
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

/// A user with a bearer token, member of `space`.
fn seed_user(sb: &Sandbox, user: &str, token: &str, space: &str) {
    sb.db()
        .call(|c| {
            c.execute(
                "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?1, ?2, ?1, 'x', 'now')",
                params![user, format!("{user}@example.test")],
            )?;
            c.execute(
                "INSERT INTO sessions (token, user_id) VALUES (?1, ?2)",
                params![token, user],
            )?;
            c.execute(
                "INSERT OR IGNORE INTO spaces (id, name, metadata, seq) VALUES (?1, ?1, NULL, 1)",
                params![space],
            )?;
            c.execute(
                "INSERT INTO members (space_id, user_id) VALUES (?1, ?2)",
                params![space, user],
            )
        })
        .expect("seed user");
}

async fn sandbox() -> Sandbox {
    let sb = Sandbox::start(SandboxOptions::default()).await.unwrap();
    seed_user(&sb, "u1", JWT, SPACE);
    sb
}

async fn connect(c: &McpConfig, jwt: &str, space: &str) -> Result<McpSession, McpError> {
    McpSession::connect(c, http(), &SecretString::from(jwt.to_string()), space).await
}

#[tokio::test]
async fn sandbox_session_lists_and_calls_tools() {
    let sb = sandbox().await;
    let s = connect(&cfg(&sb.url()), JWT, SPACE).await.unwrap();
    assert!(!format!("{s:?}").contains(JWT));

    // 11 tools over two pages (the sandbox pages by 8).
    let tools = s.list_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 11, "{names:?}");
    for n in ["todo.create", "notes.search", "mood.log", "spaces.list"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let create = tools.iter().find(|t| t.name == "todo.create").unwrap();
    assert_eq!(create.input_schema["required"], json!(["title"]));

    let ok = s
        .call_tool("todo.create", args(json!({"title": "Einkaufen"})))
        .await
        .unwrap();
    assert!(!ok.is_error, "{}", ok.text);
    let v: Value = serde_json::from_str(&ok.text).unwrap();
    assert_eq!(v["todo"]["title"], "Einkaufen");
    let id = v["todo"]["id"].as_str().unwrap().to_string();

    let done = s
        .call_tool("todo.complete", args(json!({"id": id})))
        .await
        .unwrap();
    assert!(!done.is_error, "{}", done.text);

    let bad = s
        .call_tool("todo.create", args(json!({"title": ""})))
        .await
        .unwrap();
    assert!(bad.is_error);
    assert!(
        bad.text.starts_with("Input validation error:"),
        "{}",
        bad.text
    );

    let bad = s
        .call_tool("mood.log", args(json!({"value": 11})))
        .await
        .unwrap();
    assert!(bad.is_error, "{}", bad.text);

    let unknown = s.call_tool("teleport.now", Map::new()).await.unwrap();
    assert!(unknown.is_error);
    assert!(
        unknown.text.contains("Tool teleport.now not found"),
        "{}",
        unknown.text
    );

    let missing = s
        .call_tool("todo.complete", args(json!({"id": "nope"})))
        .await
        .unwrap();
    assert!(missing.is_error);
    assert!(missing.text.contains("Todo not found: nope"));

    // Concurrent calls share one session.
    let calls =
        (0..5).map(|i| s.call_tool("habits.create", args(json!({"name": format!("h{i}")}))));
    for r in futures::future::join_all(calls).await {
        assert!(!r.unwrap().is_error);
    }
    let habits = s.call_tool("habits.list", Map::new()).await.unwrap();
    let habits: Value = serde_json::from_str(&habits.text).unwrap();
    assert_eq!(habits["habits"].as_array().unwrap().len(), 5);

    let spaces = s.call_tool("spaces.list", Map::new()).await.unwrap();
    assert!(spaces.text.contains(SPACE), "{}", spaces.text);
    s.close().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn sandbox_rejects_bad_credentials_with_401_naming_the_path() {
    let sb = sandbox().await;
    let c = cfg(&sb.url());
    for (jwt, space, why) in [
        ("wrong-token", SPACE, "wrong token"),
        (JWT, "", "missing space"),
        (JWT, "someone-elses-space", "foreign space"),
    ] {
        let e = connect(&c, jwt, space).await.expect_err(why);
        match &e {
            McpError::Status {
                status, path, op, ..
            } => {
                assert_eq!(*status, 401, "{why}: {e}");
                assert_eq!(path, "/mcp");
                assert_eq!(*op, "initialize");
            }
            other => panic!("{why}: expected a 401 status error, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.contains("401") && msg.contains("/mcp"), "{msg}");
        assert!(!msg.contains(JWT), "{msg}");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn sandbox_binds_sessions_to_their_user() {
    let sb = sandbox().await;
    seed_user(&sb, "u2", "other-jwt", SPACE);
    let url = format!("{}/mcp", sb.url());
    let post = |token: &str, session: Option<&str>, body: Value| {
        let mut rb = http()
            .post(&url)
            .bearer_auth(token)
            .header("x-mana-space", SPACE)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            rb = rb
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-06-18");
        }
        rb.send()
    };
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}});
    let r = post(JWT, None, init).await.unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}});
    let r = post("other-jwt", Some(&sid), list.clone()).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string());
    let r = post(JWT, Some("no-such-session"), list).await.unwrap();
    assert_eq!(r.status(), 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn sandbox_data_is_per_space_and_results_are_capped() {
    let sb = sandbox().await;
    let mut c = cfg(&sb.url());
    c.result_cap_bytes = 2_000;
    let s = connect(&c, JWT, SPACE).await.unwrap();
    let long = "needle ".repeat(200);
    for i in 0..5 {
        let r = s
            .call_tool(
                "notes.create",
                args(json!({"title": format!("n{i}"), "content": long})),
            )
            .await
            .unwrap();
        assert!(!r.is_error, "{}", r.text);
    }
    let found = s
        .call_tool("notes.search", args(json!({"query": "NEEDLE"})))
        .await
        .unwrap();
    assert!(found.truncated);
    assert!(!found.is_error);
    let (shown, note) = found
        .text
        .split_once("\n[… result cut: ")
        .expect("cut note");
    assert_eq!(shown.len(), 2_000);
    assert!(
        note.starts_with("2000 of ") && note.ends_with(" bytes shown]"),
        "{note}"
    );

    // The same user in another space sees none of it.
    seed_user_space(&sb, "u1", "space-2");
    let s2 = connect(&c, JWT, "space-2").await.unwrap();
    let none = s2
        .call_tool("notes.search", args(json!({"query": "needle"})))
        .await
        .unwrap();
    assert!(!none.truncated);
    assert_eq!(
        serde_json::from_str::<Value>(&none.text).unwrap(),
        json!({"notes": []})
    );
    s.close().await;
    s2.close().await;
    sb.shutdown().await;
}

fn seed_user_space(sb: &Sandbox, user: &str, space: &str) {
    sb.db()
        .call(|c| {
            c.execute(
                "INSERT INTO spaces (id, name, metadata, seq) VALUES (?1, ?1, NULL, 2)",
                params![space],
            )?;
            c.execute(
                "INSERT INTO members (space_id, user_id) VALUES (?1, ?2)",
                params![space, user],
            )
        })
        .unwrap();
}

#[tokio::test]
async fn sandbox_503s_are_survived_and_slow_calls_time_out() {
    let sb = sandbox().await;
    let mut c = cfg(&sb.url());
    // On connect (initialize).
    sb.faults().fail(RouteGroup::Mcp, 503, 2);
    let s = connect(&c, JWT, SPACE).await.unwrap();
    assert_eq!(sb.faults().injected(), 2);
    // On tools/list and on tools/call.
    sb.faults().fail(RouteGroup::Mcp, 503, 2);
    assert_eq!(s.list_tools().await.unwrap().len(), 11);
    sb.faults().fail(RouteGroup::Mcp, 503, 2);
    let r = s.call_tool("habits.list", Map::new()).await.unwrap();
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(sb.faults().injected(), 6);

    // More 503s than attempts: a Status error naming the op, path and status.
    sb.faults().fail(RouteGroup::Mcp, 503, 10);
    let e = s.call_tool("habits.list", Map::new()).await.unwrap_err();
    assert!(
        matches!(
            &e,
            McpError::Status {
                status: 503,
                op: "tools/call",
                ..
            }
        ),
        "{e:?}"
    );
    sb.faults().clear();

    // A 500 is not retried on tools/call (the server may have run it).
    sb.faults().fail(RouteGroup::Mcp, 500, 1);
    let before = sb.faults().injected();
    let e = s.call_tool("habits.list", Map::new()).await.unwrap_err();
    assert!(matches!(&e, McpError::Status { status: 500, .. }), "{e:?}");
    assert_eq!(sb.faults().injected(), before + 1);
    s.close().await;

    c.call_timeout = Duration::from_millis(200);
    let s = connect(&c, JWT, SPACE).await.unwrap();
    sb.faults().push(Fault {
        route: RouteGroup::Mcp,
        kind: FaultKind::Delay { ms: 1_000 },
        count: 1,
        path_contains: None,
    });
    let e = s.call_tool("habits.list", Map::new()).await.unwrap_err();
    assert!(
        matches!(
            &e,
            McpError::Timeout {
                op: "tools/call",
                ..
            }
        ),
        "{e:?}"
    );
    s.close().await;
    sb.shutdown().await;
}

// ---------------------------------------------------------------------------
// Replay of the TypeScript SDK server's recorded exchanges.

const RECORDED_SESSION: &str = "b8fead3e-b618-474a-8c14-19c6add2b48d";
const SECOND_SESSION: &str = "second-session-0001";

struct Recorded {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn fixture(name: &str) -> Recorded {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/mcp-ts-sdk")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.split('\n').skip_while(|l| !l.starts_with("HTTP/1.1 "));
    let status_line = lines.next().expect("status line");
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let body = lines.collect::<Vec<_>>().join("\n");
    Recorded {
        status,
        headers,
        body,
    }
}

#[derive(Default)]
struct Replay {
    /// (HTTP method, JSON-RPC method or "", session id sent)
    seen: Vec<(String, String, Option<String>)>,
    problems: Vec<String>,
    initializes: u32,
    /// Answer the first tools/call with 404 (session expired).
    expire_first_call: bool,
    expired_once: bool,
    /// Answer requests with `application/json` instead of SSE.
    json_answers: bool,
    /// Put a 2025-11-25 priming event (id, empty data) before SSE answers.
    priming: bool,
    /// Start SSE answers with a UTF-8 byte order mark (SSE allows one).
    bom: bool,
}

type Shared = Arc<Mutex<Replay>>;

async fn replay(
    State(st): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let rpc = msg["method"].as_str().unwrap_or("").to_string();
    let mut st = st.lock().unwrap();
    if h("authorization").as_deref() != Some(&format!("Bearer {JWT}")) {
        st.problems.push(format!(
            "{method} {rpc}: bad authorization {:?}",
            h("authorization")
        ));
    }
    if h("x-mana-space").as_deref() != Some(SPACE) {
        st.problems
            .push(format!("{method} {rpc}: bad x-mana-space"));
    }
    let current = if st.initializes >= 2 {
        SECOND_SESSION
    } else {
        RECORDED_SESSION
    };
    let session = h("mcp-session-id");
    if rpc == "initialize" {
        if session.is_some() {
            st.problems.push("initialize carried a session id".into());
        }
    } else {
        if session.as_deref() != Some(current) {
            st.problems.push(format!(
                "{method} {rpc}: session id {session:?}, want {current}"
            ));
        }
        if h("mcp-protocol-version").as_deref() != Some("2025-06-18") {
            st.problems
                .push(format!("{method} {rpc}: bad mcp-protocol-version"));
        }
    }
    st.seen
        .push((method.to_string(), rpc.clone(), session.clone()));

    if rpc == "tools/call" && st.expire_first_call && !st.expired_once {
        st.expired_once = true;
        return Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"error":"unknown session"}"#))
            .unwrap();
    }
    if msg["params"]["name"] == "rpc.error" {
        // A server that reports unknown tools as protocol errors.
        let err = json!({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32602, "message": "Tool rpc.error not found"}});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(err.to_string()))
            .unwrap();
    }
    let file = if method == Method::DELETE {
        "10-delete-session.http"
    } else {
        match rpc.as_str() {
            "initialize" => {
                st.initializes += 1;
                "01-initialize.http"
            }
            "notifications/initialized" => "02-initialized.http",
            "tools/list" => "03-tools-list.http",
            "tools/call" => match msg["params"]["name"].as_str() {
                Some("todo.create") if msg["params"]["arguments"]["title"] == "" => {
                    "05-call-invalid-input.http"
                }
                Some("todo.create") => "04-call-ok.http",
                Some("todo.complete") => "06-call-handler-error.http",
                _ => "07-call-unknown-tool.http",
            },
            _ => {
                st.problems.push(format!("unexpected {method} {rpc}"));
                return Response::builder().status(400).body(Body::empty()).unwrap();
            }
        }
    };
    let rec = fixture(file);
    let session_out = if st.initializes >= 2 {
        SECOND_SESSION
    } else {
        RECORDED_SESSION
    };
    let mut resp = Response::builder().status(StatusCode::from_u16(rec.status).unwrap());
    for (k, v) in &rec.headers {
        match k.as_str() {
            "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "date" => {}
            "mcp-session-id" => resp = resp.header(k, session_out),
            _ => resp = resp.header(k, v),
        }
    }
    // Answer with the id the client used; everything else as recorded.
    let mut body = rec
        .body
        .split('\n')
        .map(|line| match line.strip_prefix("data: ") {
            Some(data) => {
                let mut v: Value = serde_json::from_str(data).unwrap();
                v["id"] = msg["id"].clone();
                format!("data: {v}")
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let is_sse = rec
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v == "text/event-stream");
    if is_sse && st.json_answers {
        let data = body.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        body = data.to_string();
        // The recorded content-type was already copied; replace it.
        let mut r = resp.body(Body::from(body)).unwrap();
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return r;
    }
    if is_sse && st.priming {
        body = format!("id: prime-0\ndata:\n\n{body}");
    }
    if is_sse && st.bom {
        body = format!("\u{feff}{body}");
    }
    resp.body(Body::from(body)).unwrap()
}

async fn replay_server(replay_state: Replay) -> (String, Shared) {
    let st: Shared = Arc::new(Mutex::new(replay_state));
    let app = Router::new()
        .route("/mcp", axum::routing::any(replay))
        .with_state(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), st)
}

#[tokio::test]
async fn typescript_sdk_recording_is_understood() {
    let (url, st) = replay_server(Replay::default()).await;
    let s = connect(&cfg(&url), JWT, SPACE).await.unwrap();
    let tools = s.list_tools().await.unwrap();
    assert_eq!(tools.len(), 10);
    assert!(tools.iter().any(|t| t.name == "habits.list"));

    let ok = s
        .call_tool("todo.create", args(json!({"title": "Einkaufen"})))
        .await
        .unwrap();
    assert!(!ok.is_error);
    assert!(ok.text.contains(r#""title":"Einkaufen""#), "{}", ok.text);

    let invalid = s
        .call_tool("todo.create", args(json!({"title": ""})))
        .await
        .unwrap();
    assert!(invalid.is_error);
    assert!(
        invalid.text.contains("Input validation error"),
        "{}",
        invalid.text
    );

    let handler = s
        .call_tool(
            "todo.complete",
            args(json!({"id": "00000000-0000-4000-8000-000000000000"})),
        )
        .await
        .unwrap();
    assert!(handler.is_error);
    assert!(handler.text.starts_with("Todo not found"));

    let unknown = s.call_tool("teleport.now", Map::new()).await.unwrap();
    assert!(unknown.is_error);
    assert!(unknown.text.contains("Tool teleport.now not found"));

    s.close().await;
    let st = st.lock().unwrap();
    assert!(st.problems.is_empty(), "{:#?}", st.problems);
    let calls: Vec<(&str, &str)> = st
        .seen
        .iter()
        .map(|(m, r, _)| (m.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "initialize"),
            ("POST", "notifications/initialized"),
            ("POST", "tools/list"),
            ("POST", "tools/call"),
            ("POST", "tools/call"),
            ("POST", "tools/call"),
            ("POST", "tools/call"),
            ("DELETE", ""),
        ]
    );
    assert_eq!(st.seen.last().unwrap().2.as_deref(), Some(RECORDED_SESSION));
}

#[tokio::test]
async fn expired_session_is_reinitialized_and_the_call_retried_once() {
    let (url, st) = replay_server(Replay {
        expire_first_call: true,
        priming: true,
        ..Default::default()
    })
    .await;
    let s = connect(&cfg(&url), JWT, SPACE).await.unwrap();
    let ok = s
        .call_tool("todo.create", args(json!({"title": "Einkaufen"})))
        .await
        .unwrap();
    assert!(!ok.is_error, "{}", ok.text);
    s.close().await;
    let st = st.lock().unwrap();
    assert!(st.problems.is_empty(), "{:#?}", st.problems);
    let calls: Vec<(&str, &str, Option<&str>)> = st
        .seen
        .iter()
        .map(|(m, r, s)| (m.as_str(), r.as_str(), s.as_deref()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "initialize", None),
            ("POST", "notifications/initialized", Some(RECORDED_SESSION)),
            ("POST", "tools/call", Some(RECORDED_SESSION)),
            ("POST", "initialize", None),
            ("POST", "notifications/initialized", Some(SECOND_SESSION)),
            ("POST", "tools/call", Some(SECOND_SESSION)),
            ("DELETE", "", Some(SECOND_SESSION)),
        ]
    );
}

#[tokio::test]
async fn json_answers_are_understood_too() {
    let (url, st) = replay_server(Replay {
        json_answers: true,
        ..Default::default()
    })
    .await;
    let s = connect(&cfg(&url), JWT, SPACE).await.unwrap();
    assert_eq!(s.list_tools().await.unwrap().len(), 10);
    let bad = s.call_tool("teleport.now", Map::new()).await.unwrap();
    assert!(bad.is_error);
    // A JSON-RPC error on tools/call is a tool failure the model sees.
    let rpc = s.call_tool("rpc.error", Map::new()).await.unwrap();
    assert!(rpc.is_error);
    assert_eq!(rpc.text, "MCP error -32602: Tool rpc.error not found");
    s.close().await;
    let st = st.lock().unwrap();
    assert!(st.problems.is_empty(), "{:#?}", st.problems);
    assert_eq!(st.seen.len(), 6);
}

/// A server whose SSE answers start with a byte order mark: the SSE reader
/// shared with the LLM clients strips it (eventsource-stream alone panics on
/// one: found by fuzzing the LLM parsers).
#[tokio::test]
async fn sse_answers_with_a_byte_order_mark_are_understood() {
    let (url, st) = replay_server(Replay {
        bom: true,
        ..Default::default()
    })
    .await;
    let s = connect(&cfg(&url), JWT, SPACE).await.unwrap();
    assert_eq!(s.list_tools().await.unwrap().len(), 10);
    s.close().await;
    let st = st.lock().unwrap();
    assert!(st.problems.is_empty(), "{:#?}", st.problems);
}

/// Issue 11.11: `initialize` and `tools/list` answered 500 are retried (they
/// change nothing on the server), like the transient failures of a tool call;
/// the attempts are counted by the sandbox.
#[tokio::test]
async fn initialize_and_tools_list_answered_500_are_retried() {
    let sb = sandbox().await;
    let c = cfg(&sb.url());
    let mcp_posts = |sb: &Sandbox| -> u64 {
        sb.faults()
            .stats()
            .iter()
            .filter(|s| s.endpoint == "POST /mcp")
            .map(|s| s.requests)
            .sum()
    };
    sb.faults().fail(RouteGroup::Mcp, 500, 2);
    let session = connect(&c, JWT, SPACE)
        .await
        .expect("initialize is retried past two 500s");
    // initialize ×3 (two 500s), notifications/initialized ×1.
    assert_eq!(mcp_posts(&sb), 4);
    // tools/list may take several pages: two 500s cost two requests more
    // than a clean listing.
    let before = mcp_posts(&sb);
    session.list_tools().await.unwrap();
    let clean = mcp_posts(&sb) - before;
    sb.faults().fail(RouteGroup::Mcp, 500, 2);
    let before = mcp_posts(&sb);
    let tools = session
        .list_tools()
        .await
        .expect("tools/list is retried past two 500s");
    assert!(!tools.is_empty());
    assert_eq!(mcp_posts(&sb) - before, clean + 2);
    // A 500 on tools/call is not retried: the call may have run.
    sb.faults().fail(RouteGroup::Mcp, 500, 1);
    let name = tools[0].name.clone();
    let before = mcp_posts(&sb);
    let _ = session.call_tool(&name, Map::new()).await;
    assert_eq!(mcp_posts(&sb) - before, 1);
}
