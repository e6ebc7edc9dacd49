//! The two LLM providers over real loopback HTTP: against the sandbox's
//! scripted LLM (conversations, faults, retries, caching accounting) and an
//! in-test capture server (the exact request bytes), plus the SSE decoders fed
//! recorded streams split at every byte boundary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mana_personas::http::RetryPolicy;
use mana_personas::llm::anthropic::{AnthropicClient, AnthropicConfig, DEFAULT_MODEL};
use mana_personas::llm::openai::{OpenAiClient, OpenAiConfig};
use mana_personas::llm::sse::{self, read_anthropic, read_openai};
use mana_personas::llm::{
    Block, ChatRequest, ChatResponse, LlmClient, LlmError, Message, Role, StopReason, ToolSpec,
    Usage,
};
use mana_sandbox::{Fault, FaultKind, RouteGroup, Sandbox, SandboxOptions};
use secrecy::SecretString;
use serde_json::{Value, json};

const KEY: &str = "sk-test-VERY-DISTINCTIVE-KEY-0c4f1e";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_total_wait: Duration::from_secs(2),
    }
}

fn http() -> reqwest::Client {
    mana_personas::http::client(Duration::from_secs(2), Duration::from_secs(10))
}

fn anthropic(base: &str, retry: RetryPolicy) -> AnthropicClient {
    AnthropicClient::new(
        http(),
        AnthropicConfig {
            base_url: base.to_string(),
            api_key: SecretString::from(KEY),
            model: DEFAULT_MODEL.to_string(),
            retry,
        },
    )
}

fn openai(base: &str, retry: RetryPolicy) -> OpenAiClient {
    OpenAiClient::new(
        http(),
        OpenAiConfig {
            base_url: format!("{base}/v1"),
            api_key: Some(SecretString::from(KEY)),
            model: "llama3.1".to_string(),
            retry,
        },
    )
}

fn clients(base: &str, retry: RetryPolicy) -> Vec<Box<dyn LlmClient>> {
    vec![
        Box::new(anthropic(base, retry)),
        Box::new(openai(base, retry)),
    ]
}

fn tool(name: &str, schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: format!("The {name} tool.").into(),
        input_schema: schema.into(),
    }
}

fn tools() -> Vec<ToolSpec> {
    vec![
        tool(
            "todo_create",
            json!({"type":"object","properties":{
                "title":{"type":"string","minLength":1,"maxLength":80},
                "priority":{"type":"integer","minimum":1,"maximum":5},
                "dueAt":{"type":"string","format":"date-time"}},
                "required":["title"]}),
        ),
        tool(
            "todo_list",
            json!({"type":"object","properties":{"limit":{"type":"integer","minimum":1,"maximum":50}}}),
        ),
        tool(
            "journal_add",
            json!({"type":"object","properties":{
                "text":{"type":"string","minLength":1},
                "mood":{"type":"string","enum":["good","ok","bad"]}},
                "required":["text"]}),
        ),
        tool(
            "calendar_create",
            json!({"type":"object","properties":{"title":{"type":"string"}},"required":["title"]}),
        ),
        tool("spaces_list", json!({"type":"object","properties":{}})),
    ]
}

fn first_request(system: &str) -> ChatRequest {
    ChatRequest {
        system: system.to_string(),
        messages: vec![Message::user_text(
            "Start your day. Today you care about todo and journal.",
        )],
        tools: tools(),
        max_tokens: 1024,
    }
}

fn tool_uses(r: &ChatResponse) -> Vec<(String, String, Value)> {
    r.content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some((id.clone(), name.clone(), input.clone())),
            _ => None,
        })
        .collect()
}

/// Plays the runner: feeds back one tool_result per tool_use until the model
/// stops asking. Returns every response.
async fn play(client: &dyn LlmClient, system: &str) -> Vec<ChatResponse> {
    let mut req = first_request(system);
    let mut out = Vec::new();
    for _ in 0..20 {
        let resp = client.complete(&req).await.expect("model call");
        let uses = tool_uses(&resp);
        req.messages.push(Message {
            role: Role::Assistant,
            content: resp.content.clone(),
        });
        let stop = resp.stop_reason.clone();
        out.push(resp);
        if stop != StopReason::ToolUse {
            break;
        }
        req.messages.push(Message {
            role: Role::User,
            content: uses
                .iter()
                .map(|(id, _, input)| Block::ToolResult {
                    tool_use_id: id.clone(),
                    content: format!("ok: {input}"),
                    is_error: false,
                })
                .collect(),
        });
    }
    out
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts")
}

#[tokio::test]
async fn conversations_reach_end_turn_with_three_to_eight_tool_calls() {
    let sb = sandbox().await;
    for client in clients(&sb.url(), fast_retry()) {
        for system in ["You are Ada, a busy nurse.", "You are Bo, a student."] {
            let turns = play(client.as_ref(), system).await;
            let last = turns.last().unwrap();
            assert_eq!(
                last.stop_reason,
                StopReason::EndTurn,
                "{}",
                client.provider()
            );
            assert!(
                last.content
                    .iter()
                    .any(|b| matches!(b, Block::Text { text } if !text.is_empty()))
            );
            let calls: Vec<_> = turns.iter().flat_map(tool_uses).collect();
            assert!(
                (3..=8).contains(&calls.len()),
                "{}: {} tool calls",
                client.provider(),
                calls.len()
            );
            // Mostly the modules the prompt names; a persona wanders now and then.
            let named = calls
                .iter()
                .filter(|(_, name, _)| name.starts_with("todo_") || name.starts_with("journal_"))
                .count();
            assert!(named * 2 > calls.len(), "{calls:?}");
            assert!(calls.iter().all(|(_, _, input)| input.is_object()));
            assert!(turns.iter().all(|t| t.usage.output > 0 && t.retries == 0));
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn same_seed_same_conversation() {
    let a = sandbox().await;
    let b = sandbox().await;
    let sys = "You are Cy.";
    let ta = play(&anthropic(&a.url(), fast_retry()), sys).await;
    let tb = play(&anthropic(&b.url(), fast_retry()), sys).await;
    let strip = |t: &[ChatResponse]| t.iter().map(|r| r.content.clone()).collect::<Vec<_>>();
    assert_eq!(strip(&ta), strip(&tb));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn parallel_error_directive_gives_two_tool_uses_in_one_turn() {
    let sb = sandbox().await;
    for client in clients(&sb.url(), fast_retry()) {
        let turns = play(client.as_ref(), "You are Di. [sandbox:parallel-error]").await;
        let first = tool_uses(&turns[0]);
        assert_eq!(first.len(), 2, "{}", client.provider());
        assert_eq!(turns[0].stop_reason, StopReason::ToolUse);
        // The second has the schema-violating argument (todo_create.title = "").
        let bad = &first[1].2;
        assert!(bad.as_object().unwrap().values().any(|v| v == ""));
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[1].stop_reason, StopReason::EndTurn);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn exact_tool_count_and_no_tools_directives() {
    let sb = sandbox().await;
    for client in clients(&sb.url(), fast_retry()) {
        let turns = play(client.as_ref(), "You are Ed. [sandbox:tools=5]").await;
        assert_eq!(turns.iter().flat_map(tool_uses).count(), 5);
        assert!(turns.iter().all(|t| tool_uses(t).len() <= 1));
        let turns = play(client.as_ref(), "You are Ed. [sandbox:no-tools]").await;
        assert_eq!(turns.len(), 1);
        assert_eq!(turns[0].stop_reason, StopReason::EndTurn);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn max_tokens_drops_the_truncated_tool_call() {
    let sb = sandbox().await;
    for client in clients(&sb.url(), fast_retry()) {
        let r = client
            .complete(&first_request("You are Flo. [sandbox:max-tokens]"))
            .await
            .unwrap();
        assert_eq!(
            r.stop_reason,
            StopReason::MaxTokens,
            "{}",
            client.provider()
        );
        assert!(tool_uses(&r).is_empty(), "{}", client.provider());
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn rating_turn_names_the_prompted_modules() {
    let sb = sandbox().await;
    for client in clients(&sb.url(), fast_retry()) {
        let req = ChatRequest {
            system: "You are Gus. [sandbox:rating-out-of-range]".into(),
            messages: vec![Message::user_text(
                "Rate these modules from 1 to 5: todo, journal, habits. Answer as JSON.",
            )],
            tools: vec![],
            max_tokens: 512,
        };
        let r = client.complete(&req).await.unwrap();
        let Block::Text { text } = &r.content[0] else {
            panic!("text expected")
        };
        for needle in ["todo", "journal", "habits", "invoices", "7", "3.6"] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }
    sb.shutdown().await;
}

fn status_fault(status: u16, retry_after: Option<u64>, count: u32) -> Fault {
    Fault {
        route: RouteGroup::Llm,
        kind: FaultKind::Status {
            status,
            retry_after,
        },
        count,
        path_contains: None,
    }
}

#[tokio::test]
async fn transient_failures_are_retried_and_counted() {
    let sb = sandbox().await;
    for client in clients(&sb.url(), fast_retry()) {
        let cases = [
            status_fault(503, None, 1),
            status_fault(429, Some(1), 1),
            status_fault(529, None, 1),
            Fault {
                route: RouteGroup::Llm,
                kind: FaultKind::SseError,
                count: 1,
                path_contains: None,
            },
            Fault {
                route: RouteGroup::Llm,
                kind: FaultKind::Drop,
                count: 1,
                path_contains: None,
            },
        ];
        for fault in cases {
            let label = format!("{} {:?}", client.provider(), fault.kind);
            let before = sb.faults().injected();
            sb.faults().push(fault);
            let r = client
                .complete(&first_request("You are Hal."))
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(r.retries, 1, "{label}");
            assert_eq!(sb.faults().injected(), before + 1, "{label}");
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_providers_message() {
    let sb = sandbox().await;
    for client in clients(&sb.url(), fast_retry()) {
        for status in [400u16, 401] {
            sb.faults().clear();
            sb.faults().push(status_fault(status, None, 5));
            let before = sb.faults().injected();
            let err = client
                .complete(&first_request("You are Ivy."))
                .await
                .unwrap_err();
            assert_eq!(sb.faults().injected(), before + 1, "not retried");
            match &err {
                LlmError::Status {
                    status: s, message, ..
                } => {
                    assert_eq!(*s, status);
                    assert!(message.contains(&format!("injected {status}")), "{message}");
                }
                other => panic!("unexpected {other:?}"),
            }
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("/chat/completions") || shown.contains("/v1/messages"));
            assert!(!shown.contains(KEY));
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn exhausted_budget_gives_retries_exhausted_without_the_key() {
    let sb = sandbox().await;
    let policy = RetryPolicy {
        max_attempts: 3,
        ..fast_retry()
    };
    for client in clients(&sb.url(), policy) {
        sb.faults().clear();
        sb.faults().push(status_fault(503, None, 10));
        let err = client
            .complete(&first_request("You are Jo."))
            .await
            .unwrap_err();
        match &err {
            LlmError::RetriesExhausted { attempts, last, .. } => {
                assert_eq!(*attempts, 3);
                assert!(matches!(**last, LlmError::Status { status: 503, .. }));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!format!("{err}").contains(KEY));
        assert!(!format!("{err:?}").contains(KEY));
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn unreachable_server_is_retried_then_exhausted() {
    // Bind and drop a listener so the port is (very likely) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = anthropic(&format!("http://127.0.0.1:{port}"), fast_retry());
    let err = client.complete(&first_request("x")).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::RetriesExhausted { attempts: 4, last, .. } if matches!(**last, LlmError::Connect { .. })),
        "{err:?}"
    );
    assert!(!format!("{err:?} {client:?}").contains(KEY));
}

// ------------------------------------------------------------------ caching

fn count_markers(v: &Value) -> usize {
    match v {
        Value::Object(o) => {
            o.contains_key("cache_control") as usize + o.values().map(count_markers).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(count_markers).sum(),
        _ => 0,
    }
}

const CANNED_END_TURN: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

#[tokio::test]
async fn anthropic_request_carries_at_most_four_cache_breakpoints_in_the_right_places() {
    type Seen = Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>;
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/messages",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Seen>,
                 headers: axum::http::HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    s.lock().unwrap().push((headers, body));
                    ([("content-type", "text/event-stream")], CANNED_END_TURN)
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = anthropic(&format!("http://{addr}"), RetryPolicy::NONE);

    let mut req = first_request("You are Kim.");
    let r1 = client.complete(&req).await.unwrap();
    assert_eq!(r1.stop_reason, StopReason::EndTurn);
    req.messages.push(Message {
        role: Role::Assistant,
        content: vec![
            Block::Text { text: "".into() },
            Block::ToolUse {
                id: "toolu_1".into(),
                name: "todo_list".into(),
                input: json!({}),
            },
        ],
    });
    req.messages.push(Message {
        role: Role::User,
        content: vec![
            Block::ToolResult {
                tool_use_id: "toolu_1".into(),
                content: "[]".into(),
                is_error: false,
            },
            Block::ToolResult {
                tool_use_id: "toolu_2".into(),
                content: "bad".into(),
                is_error: true,
            },
        ],
    });
    client.complete(&req).await.unwrap();
    server.abort();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (headers, body) in seen.iter() {
        assert_eq!(headers["x-api-key"], KEY);
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        assert_eq!(body["stream"], true);
        assert!(count_markers(body) <= 4);
        let tools = body["tools"].as_array().unwrap();
        assert!(tools.last().unwrap().get("cache_control").is_some());
        assert!(
            tools[..tools.len() - 1]
                .iter()
                .all(|t| t.get("cache_control").is_none())
        );
        assert!(tools[0].get("input_schema").is_some());
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
    }
    // Every turn: tools, system and the newest block (on turn 1 the day's
    // first user message, so turn 2 reads it from the cache).
    assert_eq!(count_markers(&seen[0].1), 3);
    assert!(
        seen[0].1["messages"][0]["content"][0]
            .get("cache_control")
            .is_some()
    );
    assert_eq!(count_markers(&seen[1].1), 3);
    let msgs = seen[1].1["messages"].as_array().unwrap();
    let last = msgs.last().unwrap()["content"].as_array().unwrap();
    assert!(last.last().unwrap().get("cache_control").is_some());
    assert_eq!(last.last().unwrap()["is_error"], true);
    assert_eq!(last[0]["type"], "tool_result");
    // The empty text block was not sent; the tool_use went back unchanged.
    assert_eq!(
        msgs[1]["content"],
        json!([{"type":"tool_use","id":"toolu_1","name":"todo_list","input":{}}])
    );
}

/// The platform's 21 tools as the runner offers them (dots become `_`).
fn platform_tools() -> Vec<ToolSpec> {
    let v: Value = serde_json::from_str(mana_sandbox::mcp::TOOLS_LIST_JSON).unwrap();
    v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| ToolSpec {
            name: t["name"].as_str().unwrap().replace('.', "_"),
            description: t["description"].as_str().unwrap().into(),
            input_schema: t["inputSchema"].clone().into(),
        })
        .collect()
}

#[tokio::test]
async fn a_small_prefix_is_never_cached() {
    // Five small tools and a one-line system prompt: far below the 1024
    // tokens a Sonnet-class model caches at the least.
    let sb = sandbox().await;
    let turns = play(
        &anthropic(&sb.url(), fast_retry()),
        "You are Lu. [sandbox:tools=2]",
    )
    .await;
    assert_eq!(turns.len(), 3);
    for t in &turns {
        assert_eq!(
            (t.usage.cache_read, t.usage.cache_write),
            (0, 0),
            "{:?}",
            t.usage
        );
        assert!(t.usage.input > 0);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn sandbox_accounts_cache_reads_from_turn_two() {
    let sb = sandbox().await;
    let client = anthropic(&sb.url(), fast_retry());
    let mut req = first_request("You are Lu. [sandbox:tools=3]");
    req.tools = platform_tools();
    let mut turns = Vec::new();
    loop {
        let resp = client.complete(&req).await.expect("model call");
        let uses = tool_uses(&resp);
        req.messages.push(Message {
            role: Role::Assistant,
            content: resp.content.clone(),
        });
        turns.push(resp);
        if uses.is_empty() {
            break;
        }
        req.messages.push(Message {
            role: Role::User,
            content: uses
                .iter()
                .map(|(id, _, _)| Block::ToolResult {
                    tool_use_id: id.clone(),
                    content: r#"{"ok":true}"#.into(),
                    is_error: false,
                })
                .collect(),
        });
    }
    assert_eq!(turns.len(), 4);
    let rows: Vec<(i64, i64, i64, i64)> = sb
        .db()
        .call(|c| {
            let mut st = c.prepare(
                "SELECT turn, cache_read, cache_write, cached_prefix_bytes FROM llm_requests
                 WHERE api = 'anthropic' ORDER BY id",
            )?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].0, 1);
    assert_eq!(rows[0].1, 0, "nothing cached before the first call");
    assert!(rows[0].2 > 0, "first call writes the tools+system prefix");
    for (i, r) in rows.iter().enumerate().skip(1) {
        assert!(r.1 > 0, "turn {} reads the cache: {r:?}", i + 1);
        assert!(r.3 >= rows[i - 1].3, "the cached prefix never shrinks");
    }
    assert!(rows[3].3 > rows[1].3, "the cached prefix grows: {rows:?}");
    // The provider reports what the server said.
    assert!(turns[1].usage.cache_read > 0);
    assert_eq!(turns[0].usage.cache_read, 0);
    sb.shutdown().await;
}

// ------------------------------------------------------------------ SSE decoding

/// wire-facts §1.9, verbatim.
const ANTHROPIC_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01EXAMPLE","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":412,"cache_creation_input_tokens":0,"cache_read_input_tokens":1880,"output_tokens":3}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type":"ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me open"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" that file."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01EXAMPLE","name":"read_file","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"src/"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"main.rs\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":58}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// wire-facts §2.5: two parallel tool calls and a final usage chunk.
const OPENAI_STREAM: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"read_file","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":\"src/"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"main.rs\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_B","type":"function","function":{"name":"list_dir","arguments":"{\"path\":\".\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1760000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":311,"completion_tokens":41,"total_tokens":352,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}

data: [DONE]

"#;

fn chunks(
    parts: Vec<Vec<u8>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Unpin {
    futures::stream::iter(parts.into_iter().map(Ok))
}

/// Every two-way split, plus one byte per chunk.
fn splits(s: &str) -> Vec<Vec<Vec<u8>>> {
    let b = s.as_bytes();
    let mut out: Vec<Vec<Vec<u8>>> = (0..=b.len())
        .map(|i| vec![b[..i].to_vec(), b[i..].to_vec()])
        .collect();
    out.push(b.iter().map(|x| vec![*x]).collect());
    out
}

#[tokio::test]
async fn anthropic_stream_parses_the_same_at_every_split() {
    let expected = ChatResponse {
        content: vec![
            Block::Text {
                text: "Let me open that file.".into(),
            },
            Block::ToolUse {
                id: "toolu_01EXAMPLE".into(),
                name: "read_file".into(),
                input: json!({"path": "src/main.rs"}),
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: Usage {
            input: 412,
            output: 58,
            cache_read: 1880,
            cache_write: 0,
        },
        retries: 0,
    };
    for parts in splits(ANTHROPIC_STREAM) {
        let got = read_anthropic(chunks(parts)).await.unwrap();
        assert_eq!(got, expected);
    }
    // CRLF line endings parse the same.
    let crlf = ANTHROPIC_STREAM.replace('\n', "\r\n");
    assert_eq!(
        read_anthropic(chunks(vec![crlf.into_bytes()]))
            .await
            .unwrap(),
        expected
    );
    // Cut before message_stop: an eof error, not a half response.
    let cut = &ANTHROPIC_STREAM[..ANTHROPIC_STREAM.find("event: message_delta").unwrap()];
    let err = read_anthropic(chunks(vec![cut.as_bytes().to_vec()]))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Stream { ref kind, .. } if kind == "eof"));
}

#[tokio::test]
async fn openai_stream_parses_the_same_at_every_split() {
    let expected = ChatResponse {
        content: vec![
            Block::ToolUse {
                id: "call_A".into(),
                name: "read_file".into(),
                input: json!({"path": "src/main.rs"}),
            },
            Block::ToolUse {
                id: "call_B".into(),
                name: "list_dir".into(),
                input: json!({"path": "."}),
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: Usage {
            input: 311,
            output: 41,
            cache_read: 0,
            cache_write: 0,
        },
        retries: 0,
    };
    for parts in splits(OPENAI_STREAM) {
        let got = read_openai(chunks(parts)).await.unwrap();
        assert_eq!(got, expected);
    }
}

/// Found by `fuzz/anthropic_sse` (minimised input: the three BOM bytes):
/// eventsource-stream 0.2.3 slices a leading U+FEFF as if it were one byte and
/// panicked. The SSE format allows one BOM; it must be dropped at any split,
/// and anything else that starts with one must fail cleanly.
#[tokio::test]
async fn a_leading_bom_is_dropped_at_every_split_and_never_panics() {
    const BOM: &str = "\u{feff}";
    let want_a = read_anthropic(chunks(vec![ANTHROPIC_STREAM.into()]))
        .await
        .unwrap();
    for parts in splits(&format!("{BOM}{ANTHROPIC_STREAM}")) {
        assert_eq!(read_anthropic(chunks(parts)).await.unwrap(), want_a);
    }
    let want_o = read_openai(chunks(vec![OPENAI_STREAM.into()]))
        .await
        .unwrap();
    for parts in splits(&format!("{BOM}{OPENAI_STREAM}")) {
        assert_eq!(read_openai(chunks(parts)).await.unwrap(), want_o);
    }
    // Only one BOM is the format's: a second one makes `event: message_start`
    // an unknown field. No panic, and the JSON `type` still names the event.
    let twice = format!("{BOM}{BOM}{ANTHROPIC_STREAM}");
    for parts in splits(&twice) {
        assert_eq!(read_anthropic(chunks(parts)).await.unwrap(), want_a);
    }
    // The fuzzer's input, and a BOM cut short: clean errors.
    for raw in [BOM.as_bytes().to_vec(), vec![0xEF, 0xBB]] {
        let err = read_anthropic(chunks(vec![raw.clone()])).await.unwrap_err();
        assert!(matches!(err, LlmError::Stream { .. }), "{err}");
        let err = read_openai(chunks(vec![raw])).await.unwrap_err();
        assert!(matches!(err, LlmError::Stream { .. }), "{err}");
    }
}

/// Found by `fuzz/anthropic_sse`: the error kind is the server's text too, and
/// a 150-character `type` made a 458-character error line. Kinds are cut like
/// messages; a blank one falls back to the default instead of being empty.
#[tokio::test]
async fn server_error_kinds_are_cut_and_never_blank() {
    let essay = "overloaded_error".repeat(300);
    let anthropic_err = |ty: &str| {
        format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": ty, "message": "Overloaded"}})
        )
    };
    let openai_err = |ty: &str, code: &str| {
        format!(
            "data: {}\n\n",
            json!({"error": {"type": ty, "code": code, "message": "Overloaded"}})
        )
    };
    let cases = [
        (
            read_anthropic(chunks(vec![anthropic_err(&essay).into()])).await,
            true,
        ),
        (
            read_anthropic(chunks(vec![anthropic_err("  ").into()])).await,
            false,
        ),
        (
            read_openai(chunks(vec![openai_err(&essay, "").into()])).await,
            true,
        ),
        (
            read_openai(chunks(vec![openai_err("", " ").into()])).await,
            false,
        ),
    ];
    for (got, long) in cases {
        let err = got.unwrap_err();
        let LlmError::Stream { ref kind, .. } = err else {
            panic!("{err:?}");
        };
        if long {
            assert_eq!(kind.chars().count(), sse::KIND_CHARS + 1, "{kind}");
            assert!(kind.starts_with("overloaded_error") && kind.ends_with('…'));
        } else {
            assert_eq!(kind, "api_error");
        }
        assert!(err.to_string().chars().count() < 450, "{err}");
    }
}

/// The same over real HTTP: a provider whose stream starts with a BOM is
/// read like any other.
#[tokio::test]
async fn anthropic_client_reads_a_bom_prefixed_stream_over_http() {
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(|| async {
            (
                [("content-type", "text/event-stream")],
                format!("\u{feff}{CANNED_END_TURN}"),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = anthropic(&format!("http://{addr}"), RetryPolicy::NONE);
    let r = client
        .complete(&first_request("You are Kim."))
        .await
        .unwrap();
    assert_eq!(r.stop_reason, StopReason::EndTurn);
    assert_eq!(r.content, vec![Block::Text { text: "ok".into() }]);
    server.abort();
}

#[tokio::test]
async fn sandbox_stream_bytes_decode_like_the_provider_sees_them() {
    // The raw SSE the sandbox sends, re-read one byte at a time.
    let sb = sandbox().await;
    let body = json!({
        "model": "m", "max_tokens": 100, "stream": true,
        "system": [{"type":"text","text":"You are Mo. [sandbox:parallel-error]"}],
        "tools": [{"name":"todo_create","description":"","input_schema":tools()[0].input_schema}],
        "messages": [{"role":"user","content":"todo time"}],
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", sb.url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let raw = resp
        .bytes_stream()
        .map(|b| b.unwrap().to_vec())
        .collect::<Vec<_>>()
        .await
        .concat();
    let whole = read_anthropic(chunks(vec![raw.clone()])).await.unwrap();
    let bytewise = read_anthropic(chunks(raw.iter().map(|x| vec![*x]).collect()))
        .await
        .unwrap();
    assert_eq!(whole, bytewise);
    assert_eq!(tool_uses(&whole).len(), 2);
    sb.shutdown().await;
}

/// A server that answers every request with a 200 SSE stream that never
/// ends: `head` once, then `chunk` forever. Counts the bytes it got out.
async fn endless_server(head: &'static str, chunk: &'static str) -> (String, Arc<Mutex<u64>>) {
    let sent = Arc::new(Mutex::new(0u64));
    let counter = sent.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            let body = futures::stream::once(async move { head.as_bytes().to_vec() })
                .chain(futures::stream::repeat_with(move || {
                    chunk.as_bytes().to_vec()
                }))
                .map(move |b| {
                    *counter.lock().unwrap() += b.len() as u64;
                    Ok::<_, std::io::Error>(b)
                });
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(axum::body::Body::from_stream(body))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), sent)
}

/// Issue 11.6: an endless stream — endless text deltas, and one event that
/// never ends (the SSE parser's own buffer) — fails as "answer too large"
/// once it passed the cap (8 MiB an answer, 1 MiB a line), not retried, with
/// the bytes read bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_stream_fails_as_answer_too_large() {
    let anthropic_head = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"x\",\"stop_reason\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}\n\n";
    let openai_delta = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},\"finish_reason\":null}]}\n\n";
    let no_end = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let cases: Vec<(&str, &'static str, &'static str, bool)> = vec![
        ("anthropic text deltas", anthropic_head, delta, false),
        (
            "anthropic endless event",
            "event: content_block_delta\ndata: ",
            no_end,
            false,
        ),
        ("openai text deltas", "", openai_delta, true),
        ("openai endless event", "data: ", no_end, true),
    ];
    for (what, head, chunk, is_openai) in cases {
        let (base, sent) = endless_server(head, chunk).await;
        // The cap, not the request timeout, must end the read: reading ~8 MiB
        // of small chunks on a loaded 2-core machine can take longer than the
        // other tests' 10 s, which then ended it as a retried transport error.
        let slow_ok = mana_personas::http::client(Duration::from_secs(2), Duration::from_secs(55));
        let client: Box<dyn LlmClient> = if is_openai {
            Box::new(OpenAiClient::new(
                slow_ok,
                OpenAiConfig {
                    base_url: format!("{base}/v1"),
                    api_key: Some(SecretString::from(KEY)),
                    model: "llama3.1".to_string(),
                    retry: fast_retry(),
                },
            ))
        } else {
            Box::new(AnthropicClient::new(
                slow_ok,
                AnthropicConfig {
                    base_url: base.to_string(),
                    api_key: SecretString::from(KEY),
                    model: DEFAULT_MODEL.to_string(),
                    retry: fast_retry(),
                },
            ))
        };
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            client.complete(&first_request("endless")),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: still reading after 60 s"));
        match r {
            Err(LlmError::Stream { kind, message, .. }) => {
                assert_eq!(kind, sse::TOO_LARGE, "{what}: {message}");
                assert!(message.contains("answer too large"), "{what}: {message}");
            }
            other => panic!("{what}: {other:?}"),
        }
        // One attempt (not retried), read to just past the cap: what the
        // server pushed beyond is what sat in socket buffers.
        // An endless line stops at the line cap, endless events at the
        // answer's.
        let n = *sent.lock().unwrap();
        let cap = sse::MAX_ANSWER_BYTES as u64;
        let limit = if what.contains("event") {
            mana_personas::sse::MAX_LINE_BYTES as u64
        } else {
            cap
        };
        assert!(
            n > limit && n < 4 * cap,
            "{what}: server sent {n} bytes (cap {limit})"
        );
    }
}
