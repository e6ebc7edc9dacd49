//! The optional `llm=URL` check: one minimal, non-streaming request in the
//! configured provider's format (`LLM_PROVIDER`), whose answer must parse.
//! `max_tokens` is tiny: the check costs a fraction of a cent.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{Cx, Outcome, Runner, check, mismatch};
use crate::config::Provider;

const PROMPT: &str = "Antworte nur mit: ok";

pub async fn run(r: &mut Runner) {
    check!(r, "llm.request", [], request(&r.cx));
}

fn model(cx: &Cx) -> String {
    cx.settings
        .llm_model
        .clone()
        .unwrap_or_else(|| match cx.settings.llm_provider {
            Provider::Anthropic => crate::llm::anthropic::DEFAULT_MODEL.to_string(),
            Provider::OpenAi => "gpt-4o-mini".to_string(),
        })
}

async fn request(cx: &Cx) -> Outcome {
    let base = cx.targets.llm.as_deref().unwrap_or_default();
    let model = model(cx);
    let key = cx
        .settings
        .llm_key
        .as_ref()
        .map(|k| k.expose_secret().to_string())
        .unwrap_or_default();
    let body = json!({"model": model, "max_tokens": 16,
        "messages": [{"role": "user", "content": PROMPT}]});
    let req = match cx.settings.llm_provider {
        Provider::Anthropic => cx
            .probe
            .http
            .post(crate::http::join(base, "/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", crate::llm::anthropic::API_VERSION)
            .json(&body),
        Provider::OpenAi => {
            let req = cx
                .probe
                .http
                .post(crate::http::join(base, "/chat/completions"))
                .json(&body);
            if key.is_empty() {
                req
            } else {
                req.bearer_auth(key)
            }
        }
    };
    let ex = cx.probe.send(req).await?;
    ex.expect_status(&[200])?;
    let v = ex.expect_json("a completion")?;
    let shape = match cx.settings.llm_provider {
        Provider::Anthropic => anthropic_ok(&v),
        Provider::OpenAi => openai_ok(&v),
    };
    match shape {
        Ok(text) => Ok(format!("{model}: {}", crate::http::cut(&text, 40))),
        Err(want) => Err(mismatch(want, ex.shown())),
    }
}

/// `{type: "message", content: [{type: "text", text}], stop_reason, usage}`.
fn anthropic_ok(v: &Value) -> Result<String, &'static str> {
    let text = v["content"]
        .as_array()
        .and_then(|c| c.iter().find_map(|b| b["text"].as_str()));
    match text {
        Some(t)
            if v["type"] == "message"
                && v["stop_reason"].is_string()
                && v["usage"]["input_tokens"].is_u64()
                && v["usage"]["output_tokens"].is_u64() =>
        {
            Ok(t.to_string())
        }
        _ => Err("a Messages answer: type \"message\", a text block, stop_reason, usage"),
    }
}

/// `{choices: [{message: {role: "assistant", content}, finish_reason}]}`.
fn openai_ok(v: &Value) -> Result<String, &'static str> {
    let choice = &v["choices"][0];
    match choice["message"]["content"].as_str() {
        Some(t)
            if choice["message"]["role"] == "assistant" && choice["finish_reason"].is_string() =>
        {
            Ok(t.to_string())
        }
        _ => Err("a chat completion: choices[0].message (assistant, content), finish_reason"),
    }
}
