//! Turning a `CallToolResult` (or a JSON-RPC error) into the text the model
//! sees. Kept apart from the transport so the cutting rules are testable
//! without a server.

use serde_json::Value;

use super::ToolOutcome;

/// Builds the outcome of a `tools/call` result object: text items joined with
/// newlines, other items summarised, the whole cut to `cap` bytes.
///
/// Why summarise instead of dropping: the model should know an image came
/// back even though we do not forward its bytes.
pub fn outcome_from_result(result: &Value, cap: usize) -> ToolOutcome {
    let is_error = result
        .get("isError")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut parts: Vec<String> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(describe_item).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        // A server that only sends structuredContent still said something.
        if let Some(s) = result.get("structuredContent").filter(|v| !v.is_null()) {
            parts.push(s.to_string());
        }
    }
    let (text, truncated) = cap_text(&parts.join("\n"), cap);
    ToolOutcome {
        is_error,
        text,
        truncated,
    }
}

/// A JSON-RPC error on `tools/call` as a tool failure, worded like the
/// TypeScript SDK words the same failure inside a result.
pub fn outcome_from_rpc_error(code: i64, message: &str, cap: usize) -> ToolOutcome {
    let (text, truncated) = cap_text(&format!("MCP error {code}: {message}"), cap);
    ToolOutcome {
        is_error: true,
        text,
        truncated,
    }
}

fn describe_item(item: &Value) -> String {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mime = item
        .get("mimeType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    match kind {
        "text" => compact_json(item.get("text").and_then(Value::as_str).unwrap_or_default()),
        "image" | "audio" => {
            let data = item.get("data").and_then(Value::as_str).unwrap_or_default();
            format!("[{kind} {mime}, {} bytes]", base64_decoded_len(data))
        }
        "resource" => {
            let res = item.get("resource").unwrap_or(&Value::Null);
            let uri = res.get("uri").and_then(Value::as_str).unwrap_or("?");
            match (res.get("text").and_then(Value::as_str), res.get("blob")) {
                (Some(t), _) => t.to_string(),
                (None, Some(Value::String(b))) => {
                    let mime = res
                        .get("mimeType")
                        .and_then(Value::as_str)
                        .unwrap_or("application/octet-stream");
                    format!("[resource {uri} {mime}, {} bytes]", base64_decoded_len(b))
                }
                _ => format!("[resource {uri}]"),
            }
        }
        "resource_link" => {
            let uri = item.get("uri").and_then(Value::as_str).unwrap_or("?");
            format!("[resource_link {uri}]")
        }
        other => format!("[{other} content]"),
    }
}

/// A text item that is pretty-printed JSON (mana-mcp answers with
/// `JSON.stringify(x, null, 2)`), compacted; any other text as it is.
///
/// Why: a tool result stays in the conversation and is read again from the
/// prompt cache on every later turn, so its indentation is paid for on every
/// turn; the model reads compact JSON as well as indented. Same keys in the
/// same order (serde_json's `preserve_order`), same values.
fn compact_json(text: &str) -> String {
    let t = text.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && text.contains('\n')
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return v.to_string();
    }
    text.to_string()
}

/// Byte length a base64 string decodes to, without decoding it.
fn base64_decoded_len(data: &str) -> usize {
    let trimmed = data.trim_end_matches('=');
    trimmed.len() * 3 / 4
}

/// Cuts `text` to at most `cap` bytes on a char boundary and appends a note
/// that says how much was shown, so the model knows it saw a part.
pub fn cap_text(text: &str, cap: usize) -> (String, bool) {
    if text.len() <= cap {
        return (text.to_string(), false);
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (
        format!(
            "{}\n[… result cut: {end} of {} bytes shown]",
            &text[..end],
            text.len()
        ),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn joins_text_and_summarises_images() {
        let r = json!({"content":[
            {"type":"text","text":"a"},
            {"type":"image","data":"AAAA","mimeType":"image/png"},
            {"type":"text","text":"b"}
        ]});
        let o = outcome_from_result(&r, 1000);
        assert_eq!(o.text, "a\n[image image/png, 3 bytes]\nb");
        assert!(!o.is_error && !o.truncated);
    }

    #[test]
    fn pretty_printed_json_reaches_the_model_compact_and_other_text_as_is() {
        let pretty = "{\n  \"spaces\": [\n    {\n      \"id\": \"s1\",\n      \"name\": \"Änna\"\n    }\n  ],\n  \"n\": 1.5\n}";
        let o = outcome_from_result(&json!({"content":[{"type":"text","text":pretty}]}), 1000);
        assert_eq!(o.text, r#"{"spaces":[{"id":"s1","name":"Änna"}],"n":1.5}"#);
        for plain in [
            "Tool todo.create failed: title required",
            "{not json\n}",
            "[1, 2]",
        ] {
            let o = outcome_from_result(&json!({"content":[{"type":"text","text":plain}]}), 1000);
            assert_eq!(o.text, plain);
        }
    }

    #[test]
    fn cut_is_utf8_safe_and_says_so() {
        let (t, cut) = cap_text("ääää", 3);
        assert!(cut);
        assert_eq!(t, "ä\n[… result cut: 2 of 8 bytes shown]");
        assert_eq!(cap_text("abc", 3), ("abc".to_string(), false));
    }

    #[test]
    fn missing_is_error_means_false_and_rpc_error_is_tool_error() {
        let o = outcome_from_result(&json!({"content":[],"isError":true}), 10);
        assert!(o.is_error);
        let o = outcome_from_rpc_error(-32602, "Tool x not found", 100);
        assert!(o.is_error);
        assert_eq!(o.text, "MCP error -32602: Tool x not found");
    }
}
