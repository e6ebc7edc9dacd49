//! The sandbox's LLM routes refuse what the real APIs refuse, with their
//! status and error body: every case of `tests/sdk/llm_refusals.json` over
//! raw HTTP (the official SDKs replay the same list in `tests/sdk_llm.rs`),
//! and the prompt cache keeps the real minimum prefix.

use mana_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};

const CASES: &str = include_str!("sdk/llm_refusals.json");

fn cases() -> Value {
    serde_json::from_str(CASES).expect("tests/sdk/llm_refusals.json parses")
}

async fn sandbox(key: &str) -> Sandbox {
    Sandbox::start(SandboxOptions {
        llm_api_key: Some(key.to_string()),
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

/// Sends `body` to `api`'s route with the headers an SDK would send, minus
/// `omit`, with `key`.
async fn send(
    sb: &Sandbox,
    api: &str,
    key: Option<&str>,
    omit: &[&str],
    body: &Value,
) -> reqwest::Response {
    let http = reqwest::Client::new();
    let rb = match api {
        "anthropic" => {
            let mut rb = http.post(format!("{}/v1/messages", sb.url()));
            if let Some(k) = key {
                rb = rb.header("x-api-key", k);
            }
            if !omit.contains(&"anthropic-version") {
                rb = rb.header("anthropic-version", "2023-06-01");
            }
            rb
        }
        _ => {
            let mut rb = http.post(format!("{}/v1/chat/completions", sb.url()));
            if let Some(k) = key {
                rb = rb.bearer_auth(k);
            }
            rb
        }
    };
    rb.json(body).send().await.expect("request")
}

#[tokio::test]
async fn every_malformed_request_gets_the_real_apis_status_and_body() {
    let all = cases();
    let good = all["good_key"].as_str().unwrap();
    let bad = all["bad_key"].as_str().unwrap();
    let sb = sandbox(good).await;
    let cases = all["cases"].as_array().unwrap();
    assert!(cases.len() >= 21, "the issue's list: {}", cases.len());
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let api = c["api"].as_str().unwrap();
        let key = match c["key"].as_str() {
            Some("good") => Some(good),
            Some("bad") => Some(bad),
            _ => None,
        };
        let omit: Vec<&str> = c["omit_headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let resp = send(&sb, api, key, &omit, &c["body"]).await;
        let label = format!("{api}: {name}");
        assert_eq!(resp.status().as_u16() as u64, c["status"], "{label}");
        let id_header = if api == "anthropic" {
            "request-id"
        } else {
            "x-request-id"
        };
        assert!(resp.headers().contains_key(id_header), "{label}");
        let body: Value = resp.json().await.expect("a JSON error body");
        if api == "anthropic" {
            assert_eq!(body["type"], "error", "{label}: {body}");
            assert_eq!(body["error"]["type"], c["type"], "{label}: {body}");
            assert_eq!(body["error"]["message"], c["message"], "{label}: {body}");
            assert!(
                body["request_id"].as_str().unwrap().starts_with("req_"),
                "{label}"
            );
        } else {
            let e = &body["error"];
            let mut keys: Vec<_> = e.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(
                keys,
                ["code", "message", "param", "type"],
                "{label}: OpenAI's shape, not Anthropic's: {body}"
            );
            assert_eq!(e["type"], c["type"], "{label}");
            assert_eq!(e["message"], c["message"], "{label}");
            assert_eq!(e["param"], c["param"], "{label}");
            assert_eq!(e["code"], c["code"], "{label}");
        }
    }
    // None of them reached the scripted model: all recorded as refused.
    let (refused, answered): (i64, i64) = sb
        .db()
        .call(|c| {
            c.query_row(
                "SELECT SUM(kind = 'refused'), SUM(kind != 'refused') FROM llm_requests",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    assert_eq!((refused as usize, answered), (cases.len(), 0));
    sb.shutdown().await;
}

/// The well-formed versions of the tool-use cases are answered: the checks
/// refuse the mistake, not the conversation.
#[tokio::test]
async fn well_formed_tool_conversations_are_answered() {
    let sb = sandbox("k").await;
    let tools = json!([{"name":"todo_list","input_schema":{"type":"object","properties":{}}}]);
    let anthropic = json!({"model":"claude-sonnet-4-5","max_tokens":100,"tools":tools,"messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":[{"type":"text","text":"Looking."},{"type":"tool_use","id":"toolu_a","name":"todo_list","input":{}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_a","content":"{\"tasks\":[]}"},{"type":"text","text":"go on"}]},
        {"role":"assistant","content":[]}
    ]});
    let r = send(&sb, "anthropic", Some("k"), &[], &anthropic).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let openai = json!({"model":"gpt-4o-mini","tools":[{"type":"function","function":{"name":"todo_list","parameters":{"type":"object"}}}],"messages":[
        {"role":"system","content":"You are Ada."},
        {"role":"user","content":"hi"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"todo_list","arguments":"{}"}},
                                                          {"id":"call_b","type":"function","function":{"name":"todo_list","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_b","content":"{}"},
        {"role":"tool","tool_call_id":"call_a","content":"{}"}
    ]});
    let r = send(&sb, "openai", Some("k"), &[], &openai).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    sb.shutdown().await;
}

/// An injected fault on the OpenAI route has OpenAI's error shape.
#[tokio::test]
async fn injected_faults_use_each_apis_error_shape() {
    use mana_sandbox::{Fault, FaultKind, RouteGroup};
    let sb = sandbox("k").await;
    let body = json!({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]});
    for api in ["anthropic", "openai"] {
        sb.faults().push(Fault {
            route: RouteGroup::Llm,
            kind: FaultKind::Status {
                status: 529,
                retry_after: None,
            },
            count: 1,
            path_contains: None,
        });
        let r = send(&sb, api, Some("k"), &[], &body).await;
        assert_eq!(r.status(), 529);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error", "{api}: {v}");
        assert_eq!(v.get("type").is_some(), api == "anthropic", "{api}: {v}");
        assert_eq!(
            v["error"].get("code").is_some(),
            api == "openai",
            "{api}: {v}"
        );
    }
    sb.shutdown().await;
}

/// The prompt cache caches nothing below the model's minimum prefix, and a
/// prefix above it is written once and read on the next turn.
#[tokio::test]
async fn nothing_is_cached_below_the_models_minimum_prefix() {
    let sb = sandbox("k").await;
    let cc = json!({"type": "ephemeral"});
    // ~110 tokens of system prompt: below Sonnet's 1024.
    let short = "You are Ada, a nurse who keeps lists. ".repeat(12);
    // ~1500 tokens: above Sonnet's 1024, below Haiku 4.5's 4096.
    let long = "You are Ada, a nurse who keeps lists. ".repeat(160);
    let usage = |r: &Value| {
        (
            r["usage"]["cache_creation_input_tokens"].as_u64().unwrap(),
            r["usage"]["cache_read_input_tokens"].as_u64().unwrap(),
            r["usage"]["input_tokens"].as_u64().unwrap(),
        )
    };
    let ask = |model: &str, system: &str| {
        json!({"model": model, "max_tokens": 50,
               "system": [{"type":"text","text": system, "cache_control": cc}],
               "messages": [{"role":"user","content":"hi"}]})
    };
    for (model, system, cached) in [
        ("claude-sonnet-4-5", &short, false),
        ("claude-sonnet-4-5", &long, true),
        ("claude-haiku-4-5", &long, false),
    ] {
        let b = ask(model, system);
        let first: Value = send(&sb, "anthropic", Some("k"), &[], &b)
            .await
            .json()
            .await
            .unwrap();
        let second: Value = send(&sb, "anthropic", Some("k"), &[], &b)
            .await
            .json()
            .await
            .unwrap();
        let (w1, r1, i1) = usage(&first);
        let (w2, r2, _) = usage(&second);
        let label = format!("{model}, {} chars", system.len());
        if cached {
            assert!(w1 >= 1024 && r1 == 0, "{label}: first writes {first}");
            assert_eq!((w2, r2), (0, w1), "{label}: second reads what was written");
        } else {
            assert_eq!((w1, r1, w2, r2), (0, 0, 0, 0), "{label}: never cached");
            assert!(i1 > 0, "{label}: billed as plain input");
        }
    }
    sb.shutdown().await;
}
