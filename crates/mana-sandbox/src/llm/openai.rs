//! OpenAI chat completions, `POST /v1/chat/completions`: the checks the
//! real API makes (wire-facts §2, wording as its 400/401s are quoted), the
//! request read into a [`Convo`], and the answer as a completion or as
//! `data:` chunks ending in `[DONE]`. Errors have OpenAI's shape,
//! `{"error":{"message","type","param","code"}}`.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::script::{Call, Convo, Piece, Reply, Stop, text_of};
use super::{Refusal, cut_json, split_random};
use crate::llm::billing::Tokens;

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// 401 without `Authorization: Bearer`, or with a key the sandbox was not
/// configured with.
pub fn authenticate(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match key {
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
        )),
        Some(k) if expected.is_some_and(|e| e != k) => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            &format!(
                "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                masked(k)
            ),
        )
        .code("invalid_api_key")),
        Some(_) => Ok(()),
    }
}

/// A key as OpenAI echoes it: the first three and last four characters.
fn masked(k: &str) -> String {
    let chars: Vec<char> = k.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The body checks, first failure wins.
pub fn validate(body: &Value) -> Result<(), Refusal> {
    if !body["model"].is_string() {
        return Err(Refusal::bad("you must provide a model parameter".into()));
    }
    let Some(messages) = body["messages"].as_array() else {
        return Err(
            Refusal::bad("Missing required parameter: 'messages'.".into())
                .param("messages")
                .code("missing_required_parameter"),
        );
    };
    if messages.is_empty() {
        return Err(Refusal::bad(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".into(),
        )
        .param("messages")
        .code("empty_array"));
    }
    for (i, t) in body["tools"].as_array().into_iter().flatten().enumerate() {
        let name = t["function"]["name"].as_str().unwrap_or("");
        let param = format!("tools[{i}].function.name");
        if !valid_name(name) {
            return Err(Refusal::bad(format!(
                "Invalid '{param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
            ))
            .param(&param)
            .code("invalid_value"));
        }
        if name.len() > 64 {
            return Err(Refusal::bad(format!(
                "Invalid '{param}': string too long. Expected a string with maximum length 64, but got a string with length {} instead.",
                name.len()
            ))
            .param(&param)
            .code("string_above_max_length"));
        }
    }
    // The assistant message whose tool calls are still to be answered.
    let mut pending: Option<(usize, Vec<String>)> = None;
    let unanswered = |i: usize, ids: &[String]| {
        Refusal::bad(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            ids.join(", ")
        ))
        .param(&format!("messages.[{i}].role"))
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if !ROLES.contains(&role) {
            return Err(Refusal::bad(format!(
                "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
            ))
            .param(&format!("messages[{i}].role"))
            .code("invalid_value"));
        }
        if role == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or("");
            match &mut pending {
                Some((_, ids)) if ids.iter().any(|x| x == id) => ids.retain(|x| x != id),
                _ => {
                    return Err(Refusal::bad(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.".into(),
                    )
                    .param(&format!("messages.[{i}].role")));
                }
            }
            continue;
        }
        if let Some((at, ids)) = pending.take()
            && !ids.is_empty()
        {
            return Err(unanswered(at, &ids));
        }
        if role == "assistant"
            && let Some(calls) = m["tool_calls"].as_array()
            && !calls.is_empty()
        {
            let ids = calls
                .iter()
                .filter_map(|c| c["id"].as_str().map(String::from))
                .collect();
            pending = Some((i, ids));
        }
    }
    if let Some((at, ids)) = pending
        && !ids.is_empty()
    {
        return Err(unanswered(at, &ids));
    }
    Ok(())
}

/// The request as the scripted model sees it.
pub fn parse(v: &Value) -> Convo {
    let mut c = Convo {
        model: v["model"].as_str().unwrap_or("gpt-sandbox").to_string(),
        stream: v["stream"].as_bool().unwrap_or(false),
        include_usage: v["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false),
        ..Convo::default()
    };
    for t in v["tools"].as_array().into_iter().flatten() {
        if let Some(n) = t["function"]["name"].as_str() {
            c.tools
                .push((n.to_string(), t["function"]["parameters"].clone()));
        }
    }
    let msgs: &[Value] = v["messages"].as_array().map_or(&[], Vec::as_slice);
    let mut systems = Vec::new();
    for m in msgs {
        match m["role"].as_str() {
            Some("system") | Some("developer") => systems.push(text_of(&m["content"])),
            Some("assistant") => {
                c.message_count += 1;
                c.assistant_turns += 1;
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    c.calls.push(Call {
                        id: call["id"].as_str().unwrap_or("").to_string(),
                        name: call["function"]["name"].as_str().unwrap_or("").to_string(),
                        input: serde_json::from_str(args).unwrap_or(Value::Null),
                        ..Call::default()
                    });
                }
            }
            Some("user") => {
                c.message_count += 1;
                c.user_text(text_of(&m["content"]));
            }
            // Tool results belong to the user turn after an assistant turn;
            // the API has no error flag, so the text is all there is.
            Some("tool") => {
                let text = text_of(&m["content"]);
                let is_error = serde_json::from_str::<Value>(&text).is_err();
                c.result(m["tool_call_id"].as_str().unwrap_or(""), text, is_error);
            }
            _ => {}
        }
    }
    c.system = systems.join("\n");
    c
}

/// The error body, `{"error":{"message","type","param","code"}}`.
pub fn error_body(r: &Refusal) -> Value {
    json!({"error": {"message": r.message, "type": r.kind, "param": r.param, "code": r.code}})
}

fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::EndTurn => "stop",
        Stop::ToolUse => "tool_calls",
        Stop::MaxTokens => "length",
    }
}

fn usage(t: Tokens) -> Value {
    let prompt = t.input + t.cache_read + t.cache_write;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": t.output,
        "total_tokens": prompt + t.output,
        "prompt_tokens_details": {"cached_tokens": t.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

fn completion_id(convo: &Convo) -> String {
    format!("chatcmpl-sandbox-{}", convo.message_count)
}

fn chunk(convo: &Convo, delta: Value, finish: Option<&str>) -> String {
    let v = json!({
        "id": completion_id(convo),
        "object": "chat.completion.chunk", "created": 1_760_000_000u64, "model": convo.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        "usage": null,
    });
    format!("data: {v}\n\n")
}

/// The `data:` chunks of `reply`; with `inject`, an in-stream error object
/// after the first content delta.
pub fn events(
    convo: &Convo,
    reply: &Reply,
    t: Tokens,
    inject: bool,
    rng: &mut rand::rngs::StdRng,
) -> Vec<String> {
    let mut out = vec![chunk(convo, json!({"role":"assistant","content":""}), None)];
    if inject {
        out.push(chunk(convo, json!({"content":"Let me"}), None));
        out.push(format!(
            "data: {}\n\n",
            json!({"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":null}})
        ));
        return out;
    }
    let mut tool_index = 0;
    for p in &reply.pieces {
        match p {
            Piece::Text(text) => {
                for part in split_random(text, 4, rng) {
                    out.push(chunk(convo, json!({"content": part}), None));
                }
            }
            Piece::Tool {
                id,
                name,
                input,
                truncate,
            } => {
                out.push(chunk(
                    convo,
                    json!({"tool_calls":[{"index":tool_index,"id":id,"type":"function","function":{"name":name,"arguments":""}}]}),
                    None,
                ));
                let args = if *truncate {
                    cut_json(input)
                } else {
                    input.to_string()
                };
                for part in split_random(&args, 5, rng) {
                    out.push(chunk(
                        convo,
                        json!({"tool_calls":[{"index":tool_index,"function":{"arguments":part}}]}),
                        None,
                    ));
                }
                tool_index += 1;
            }
        }
    }
    out.push(chunk(convo, json!({}), Some(finish_reason(reply.stop))));
    if convo.include_usage {
        let v = json!({
            "id": completion_id(convo),
            "object": "chat.completion.chunk", "created": 1_760_000_000u64, "model": convo.model,
            "choices": [], "usage": usage(t),
        });
        out.push(format!("data: {v}\n\n"));
    }
    out.push("data: [DONE]\n\n".to_string());
    out
}

/// The non-streamed completion of `reply`.
pub fn message(convo: &Convo, reply: &Reply, t: Tokens) -> Value {
    let text: String = reply
        .pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ");
    let calls: Vec<Value> = reply
        .pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Tool {
                id,
                name,
                input,
                truncate,
            } => Some(json!({"id": id, "type": "function", "function": {
                "name": name,
                "arguments": if *truncate { cut_json(input) } else { input.to_string() },
            }})),
            _ => None,
        })
        .collect();
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": completion_id(convo),
        "object": "chat.completion", "created": 1_760_000_000u64, "model": convo.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(reply.stop), "logprobs": null}],
        "usage": usage(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_echoed_masked() {
        assert_eq!(masked("sk-abcdefghijklmn"), "sk-**********klmn");
        assert_eq!(masked("short"), "*****");
    }
}
