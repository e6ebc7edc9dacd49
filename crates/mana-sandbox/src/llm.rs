//! The scripted LLM: Anthropic Messages (`POST /v1/messages`) and OpenAI chat
//! completions (`POST /v1/chat/completions`), streamed or not, answering like
//! a model playing a persona would — a handful of tool calls with arguments
//! made up from each tool's schema, sometimes two at once, sometimes a wrong
//! one, then a short summary; and on the rating turn a JSON verdict in one of
//! several framings.
//!
//! Why scripted rather than canned: the runner must cope with what real models
//! do (parallel calls, bad arguments, prose around JSON, cut-off output), and
//! tests must be repeatable. Everything is derived from `opts.seed` and the
//! request, so the same conversation replays the same way. Directives in the
//! system prompt (`[sandbox:…]`) pin behaviour exactly for tests.
//!
//! Every request is recorded in `llm_requests` with simulated token usage and
//! prompt-cache reads/writes, so benchmarks can check what caching buys.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::params;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::SandboxState;
use super::faults::InjectSseError;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS llm_requests (
    id INTEGER PRIMARY KEY,
    at TEXT,
    api TEXT,
    kind TEXT,
    turn INTEGER,
    body_bytes INTEGER,
    cached_prefix_bytes INTEGER,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read INTEGER,
    cache_write INTEGER,
    status INTEGER
);
CREATE TABLE IF NOT EXISTS llm_cache_prefixes (hash TEXT PRIMARY KEY);
"#;

/// The Mana modules the rating turn looks for in the prompt.
pub const MODULES: &[&str] = &[
    "todo",
    "journal",
    "notes",
    "mood",
    "habits",
    "calendar",
    "contacts",
    "articles",
    "dreams",
    "library",
    "goals",
    "newsResearch",
    "invoices",
    "spaces",
];

/// The LLM routes. Creates the `llm_requests` table if needed.
pub fn router(state: SandboxState) -> Router {
    if let Err(e) = state.db.call(|c| c.execute_batch(SCHEMA)) {
        tracing::error!("sandbox llm: cannot create llm_requests: {e}");
    }
    Router::new()
        .route("/v1/messages", post(anthropic))
        .route("/v1/chat/completions", post(openai))
        .with_state(state)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
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
}

/// What the scripted model needs to know about a request, from either API.
#[derive(Debug, Default)]
struct Convo {
    model: String,
    system: String,
    tools: Vec<(String, Value)>,
    message_count: usize,
    assistant_turns: usize,
    tool_calls_so_far: usize,
    first_user_text: String,
    last_user_text: String,
    stream: bool,
    include_usage: bool,
}

impl Convo {
    /// Remembers a user message's text: the first one (before any assistant
    /// turn) names the preferred modules, the last one is what to answer.
    fn user_text(&mut self, t: String) {
        if self.first_user_text.is_empty() && self.assistant_turns == 0 {
            self.first_user_text = t.clone();
        }
        if !t.is_empty() {
            self.last_user_text = t;
        }
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn parse_anthropic(v: &Value) -> Convo {
    let mut c = Convo {
        model: v["model"].as_str().unwrap_or("claude-sandbox").to_string(),
        system: text_of(&v["system"]),
        stream: v["stream"].as_bool().unwrap_or(false),
        ..Convo::default()
    };
    for t in v["tools"].as_array().into_iter().flatten() {
        if let Some(n) = t["name"].as_str() {
            c.tools.push((n.to_string(), t["input_schema"].clone()));
        }
    }
    let msgs: &[Value] = v["messages"].as_array().map_or(&[], Vec::as_slice);
    c.message_count = msgs.len();
    for m in msgs {
        match m["role"].as_str() {
            Some("assistant") => {
                c.assistant_turns += 1;
                c.tool_calls_so_far += m["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|b| b["type"] == "tool_use")
                    .count();
            }
            Some("user") => c.user_text(text_of(&m["content"])),
            _ => {}
        }
    }
    c
}

fn parse_openai(v: &Value) -> Convo {
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
                c.tool_calls_so_far += m["tool_calls"].as_array().map_or(0, Vec::len);
            }
            Some("user") => {
                c.message_count += 1;
                c.user_text(text_of(&m["content"]));
            }
            // Tool results belong to the user turn after an assistant turn.
            _ => {}
        }
    }
    c.system = systems.join("\n");
    c
}

// ---------------------------------------------------------------- directives

fn directive(system: &str, name: &str) -> bool {
    system.contains(&format!("[sandbox:{name}]"))
}

/// `[sandbox:call=NAME]`: the first turn calls the LLM-side tool NAME with
/// `{}`, offered or not — a model that calls a tool it was never given.
fn directive_call(system: &str) -> Option<&str> {
    let start = system.find("[sandbox:call=")? + "[sandbox:call=".len();
    let rest = &system[start..];
    Some(rest[..rest.find(']')?].trim())
}

fn directive_tools(system: &str) -> Option<usize> {
    let start = system.find("[sandbox:tools=")? + "[sandbox:tools=".len();
    let rest = &system[start..];
    let end = rest.find(']')?;
    rest[..end].trim().parse().ok()
}

fn rng_for(seed: u64, parts: &[&[u8]]) -> StdRng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    StdRng::seed_from_u64(u64::from_le_bytes(b))
}

// ---------------------------------------------------------------- the reply

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Tool {
        id: String,
        name: String,
        input: Value,
        /// Cut the JSON mid-way (the max-tokens directive).
        truncate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    EndTurn,
    ToolUse,
    MaxTokens,
}

#[derive(Debug)]
struct Reply {
    kind: &'static str,
    pieces: Vec<Piece>,
    stop: Stop,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

fn module_of(tool: &str) -> &str {
    tool.split('_').next().unwrap_or(tool)
}

const SUMMARIES: &[&str] = &[
    "That covers today: I captured what mattered and tidied up a few loose ends.",
    "Done for now. The essentials are logged and I'll pick up the rest tomorrow.",
    "All set — I went through my usual routine and everything important is recorded.",
    "Good session. I updated what I needed and I'm wrapping up for the day.",
];

const OPENERS: &[&str] = &[
    "Let me take care of that.",
    "First, I'll get this written down.",
    "Okay, next thing on my list.",
    "I'll check on this now.",
];

const WORDS: &[&str] = &[
    "groceries",
    "call mom",
    "weekly review",
    "morning run",
    "book club notes",
    "dentist appointment",
    "project plan",
    "water the plants",
    "read two chapters",
    "plan the weekend",
];

fn summary(rng: &mut StdRng) -> Reply {
    Reply {
        kind: "main",
        pieces: vec![Piece::Text(
            SUMMARIES[rng.random_range(0..SUMMARIES.len())].to_string(),
        )],
        stop: Stop::EndTurn,
    }
}

fn tool_id(api: Api, convo: &Convo, i: usize, rng: &mut StdRng) -> String {
    let prefix = match api {
        Api::Anthropic => "toolu_sb",
        Api::OpenAi => "call_sb",
    };
    format!(
        "{prefix}{:03}{i}{:012x}",
        convo.message_count,
        rng.random::<u64>() >> 16
    )
}

/// Tools the persona would reach for: those of modules named in the first
/// user message, else all; `spaces_*` only when nothing else exists.
fn candidates(convo: &Convo) -> Vec<usize> {
    let mentioned = words(&convo.first_user_text);
    let not_spaces: Vec<usize> = (0..convo.tools.len())
        .filter(|&i| !convo.tools[i].0.starts_with("spaces_"))
        .collect();
    let pool = if not_spaces.is_empty() {
        (0..convo.tools.len()).collect()
    } else {
        not_spaces
    };
    let preferred: Vec<usize> = pool
        .iter()
        .copied()
        .filter(|&i| mentioned.contains(&module_of(&convo.tools[i].0).to_lowercase()))
        .collect();
    if preferred.is_empty() {
        pool
    } else {
        preferred
    }
}

fn main_turn(api: Api, convo: &Convo, seed: u64) -> Reply {
    let sys = convo.system.as_str();
    let mut rng = rng_for(
        seed,
        &[sys.as_bytes(), &(convo.message_count as u64).to_le_bytes()],
    );
    let first = convo.message_count <= 1;
    if let Some(name) = directive_call(sys).filter(|_| first) {
        return Reply {
            kind: "main",
            pieces: vec![Piece::Tool {
                id: tool_id(api, convo, 0, &mut rng),
                name: name.to_string(),
                input: json!({}),
                truncate: false,
            }],
            stop: Stop::ToolUse,
        };
    }
    if directive(sys, "no-tools") || convo.tools.is_empty() {
        return summary(&mut rng);
    }
    let pool = candidates(convo);
    if directive(sys, "max-tokens") && first {
        let (name, schema) = &convo.tools[pool[rng.random_range(0..pool.len())]];
        let mut input = fabricate(schema, &mut rng, 0, true);
        if input.as_object().is_some_and(|o| o.is_empty()) {
            input = json!({"note": "a long note that never ends"});
        }
        return Reply {
            kind: "main",
            pieces: vec![
                Piece::Text("Let me write all of this down.".into()),
                Piece::Tool {
                    id: tool_id(api, convo, 0, &mut rng),
                    name: name.clone(),
                    input,
                    truncate: true,
                },
            ],
            stop: Stop::MaxTokens,
        };
    }
    if directive(sys, "parallel-error") {
        if !first {
            return summary(&mut rng);
        }
        let (name, schema) = &convo.tools[pool[rng.random_range(0..pool.len())]];
        let valid = fabricate(schema, &mut rng, 0, true);
        // Prefer a tool that can be given a schema-violating argument.
        let breakable: Vec<usize> = pool
            .iter()
            .copied()
            .chain(0..convo.tools.len())
            .filter(|&i| breakable_field(&convo.tools[i].1).is_some())
            .collect();
        let j = breakable.first().copied().unwrap_or(pool[0]);
        let (bad_name, bad_schema) = &convo.tools[j];
        let bad = invalidate(bad_schema, fabricate(bad_schema, &mut rng, 0, true));
        return Reply {
            kind: "main",
            pieces: vec![
                Piece::Text("I'll do these two at once.".into()),
                Piece::Tool {
                    id: tool_id(api, convo, 0, &mut rng),
                    name: name.clone(),
                    input: valid,
                    truncate: false,
                },
                Piece::Tool {
                    id: tool_id(api, convo, 1, &mut rng),
                    name: bad_name.clone(),
                    input: bad,
                    truncate: false,
                },
            ],
            stop: Stop::ToolUse,
        };
    }
    let exact = directive_tools(sys);
    let target = exact.unwrap_or_else(|| rng_for(seed, &[sys.as_bytes()]).random_range(3..=8));
    if convo.tool_calls_so_far >= target {
        return summary(&mut rng);
    }
    let remaining = target - convo.tool_calls_so_far;
    let n = if exact.is_none() && remaining >= 2 && rng.random_ratio(1, 4) {
        2
    } else {
        1
    };
    let mut pieces = Vec::new();
    if rng.random_bool(0.5) {
        pieces.push(Piece::Text(
            OPENERS[rng.random_range(0..OPENERS.len())].to_string(),
        ));
    }
    for i in 0..n {
        let (name, schema) = &convo.tools[pool[rng.random_range(0..pool.len())]];
        let mut input = fabricate(schema, &mut rng, 0, true);
        if exact.is_none() && breakable_field(schema).is_some() && rng.random_ratio(1, 6) {
            input = invalidate(schema, input);
        }
        pieces.push(Piece::Tool {
            id: tool_id(api, convo, i, &mut rng),
            name: name.clone(),
            input,
            truncate: false,
        });
    }
    Reply {
        kind: "main",
        pieces,
        stop: Stop::ToolUse,
    }
}

const NOTES: &[&str] = &[
    "Quick to use, did what I needed.",
    "Works, but a few steps felt clumsy.",
    "Handy; I'd like better search.",
    "Solid today, no surprises.",
    "Confusing error when I got something wrong.",
];

fn rating_turn(convo: &Convo, seed: u64) -> Reply {
    let sys = convo.system.as_str();
    let mut rng = rng_for(
        seed,
        &[
            sys.as_bytes(),
            b"rating",
            &(convo.message_count as u64).to_le_bytes(),
        ],
    );
    let text_reply = |t: String| Reply {
        kind: "rating",
        pieces: vec![Piece::Text(t)],
        stop: Stop::EndTurn,
    };
    if directive(sys, "rating-garbage") {
        return text_reply(
            "Honestly it was a fine day overall; nothing stood out enough to score.".into(),
        );
    }
    let prompt_words = words(&convo.last_user_text);
    let modules: Vec<&str> = MODULES
        .iter()
        .copied()
        .filter(|m| prompt_words.contains(&m.to_lowercase()))
        .collect();
    // Keep the prompt's order, which is what a model tends to do.
    let mut modules = modules;
    modules.sort_by_key(|m| {
        prompt_words
            .iter()
            .position(|w| *w == m.to_lowercase())
            .unwrap_or(usize::MAX)
    });
    let mut ratings: Vec<Value> = Vec::new();
    if directive(sys, "rating-out-of-range") {
        let odd = [json!(7), json!(0), json!(3.6)];
        for (m, r) in modules.iter().zip(odd.iter()) {
            ratings.push(json!({"module": m, "rating": r, "notes": "out of range on purpose"}));
        }
        ratings.push(json!({"module": "invoices", "rating": 4, "notes": "not asked about"}));
    } else {
        for m in &modules {
            ratings.push(json!({
                "module": m,
                "rating": rng.random_range(1..=5),
                "notes": NOTES[rng.random_range(0..NOTES.len())],
            }));
        }
    }
    let body = json!({ "ratings": ratings });
    let text = match rng.random_range(0..3) {
        0 => body.to_string(),
        1 => format!(
            "```json\n{}\n```",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        ),
        _ => format!("Here is how today felt: {body} That's my honest take."),
    };
    text_reply(text)
}

// ---------------------------------------------------------------- schemas

/// Arguments that satisfy `schema`: required fields always, optional ones
/// about half the time, ranges and lengths respected.
fn fabricate(schema: &Value, rng: &mut StdRng, depth: usize, top: bool) -> Value {
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let pick = branches
            .iter()
            .find(|b| b.get("type").and_then(Value::as_str) != Some("null"));
        if let Some(b) = pick {
            return fabricate(b, rng, depth, top);
        }
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.is_empty()
    {
        return e[rng.random_range(0..e.len())].clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() || top => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if depth > 4 {
                return Value::Object(out);
            }
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if required.contains(&k.as_str()) || rng.random_bool(0.5) {
                        out.insert(k.clone(), fabricate(s, rng, depth + 1, false));
                    }
                }
            }
            Value::Object(out)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
            let max = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(min.max(2))
                .max(min);
            let n = rng.random_range(min..=max.min(min + 2));
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type":"string"}));
            Value::Array(
                (0..n)
                    .map(|_| fabricate(&items, rng, depth + 1, false))
                    .collect(),
            )
        }
        "integer" => {
            let (lo, hi) = bounds(schema);
            json!(rng.random_range(lo.ceil() as i64..=hi.floor() as i64))
        }
        "number" => {
            let (lo, hi) = bounds(schema);
            let x: f64 = rng.random_range(lo..=hi);
            json!((x * 10.0).round() / 10.0)
        }
        "boolean" => json!(rng.random_bool(0.5)),
        "null" => Value::Null,
        _ => json!(fake_string(schema, rng)),
    }
}

fn bounds(schema: &Value) -> (f64, f64) {
    let f = |k: &str| schema.get(k).and_then(Value::as_f64);
    let lo = f("minimum")
        .or_else(|| f("exclusiveMinimum").map(|x| x + 1.0))
        .unwrap_or(0.0);
    let hi = f("maximum")
        .or_else(|| f("exclusiveMaximum").map(|x| x - 1.0))
        .unwrap_or(lo + 100.0)
        .max(lo);
    (lo, hi)
}

fn fake_string(schema: &Value, rng: &mut StdRng) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .expect("static date")
        .with_timezone(&chrono::Utc);
    let s = match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => (base + chrono::Duration::hours(rng.random_range(0..240)))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        Some("date") => (base + chrono::Duration::days(rng.random_range(0..14)))
            .format("%Y-%m-%d")
            .to_string(),
        Some("time") => format!(
            "{:02}:{:02}",
            rng.random_range(7..21),
            15 * rng.random_range(0..4)
        ),
        Some("email") => format!("friend{}@example.com", rng.random_range(1..100)),
        Some("uri") | Some("url") => {
            format!("https://example.com/item/{}", rng.random_range(1..1000))
        }
        Some("uuid") => uuid::Uuid::from_u128(rng.random()).to_string(),
        _ => WORDS[rng.random_range(0..WORDS.len())].to_string(),
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize);
    let mut s = s;
    while s.chars().count() < min {
        s.push('x');
    }
    if let Some(max) = max {
        s = s.chars().take(max).collect();
    }
    s
}

/// The first top-level property that can be made invalid: a string with
/// `minLength ≥ 1` or a number with a `maximum`.
fn breakable_field(schema: &Value) -> Option<(String, Value)> {
    let props = schema.get("properties")?.as_object()?;
    for (k, s) in props {
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
        if ty == "string" && s.get("minLength").and_then(Value::as_u64).unwrap_or(0) >= 1 {
            return Some((k.clone(), json!("")));
        }
        if (ty == "integer" || ty == "number")
            && let Some(max) = s.get("maximum").and_then(Value::as_f64)
        {
            return Some((k.clone(), json!(max as i64 + 1)));
        }
    }
    None
}

/// `args` with one schema-violating value; without a breakable field, a
/// required field is dropped instead.
fn invalidate(schema: &Value, mut args: Value) -> Value {
    let Some(obj) = args.as_object_mut() else {
        return args;
    };
    if let Some((k, bad)) = breakable_field(schema) {
        obj.insert(k, bad);
    } else if let Some(req) = schema
        .get("required")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(Value::as_str)
    {
        obj.remove(req);
    }
    args
}

// ---------------------------------------------------------------- usage

/// Simulated token accounting for one request.
#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    prefix_bytes: u64,
}

fn strip_cache_control(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("cache_control");
    }
    v
}

/// Anthropic-like prompt caching over the request's cacheable elements
/// (tools → system blocks → message blocks): a breakpoint's prefix is written
/// the first time it is seen; a later request reads the longest
/// previously-written prefix within 20 elements before one of its breakpoints.
fn cache_usage(state: &SandboxState, body: &Value) -> (u64, u64, u64) {
    let mut elements: Vec<&Value> = Vec::new();
    elements.extend(body["tools"].as_array().into_iter().flatten());
    elements.extend(body["system"].as_array().into_iter().flatten());
    for m in body["messages"].as_array().into_iter().flatten() {
        elements.extend(m["content"].as_array().into_iter().flatten());
    }
    let mut hasher = Sha256::new();
    hasher.update(body["model"].as_str().unwrap_or("").as_bytes());
    let mut cum = Vec::with_capacity(elements.len());
    let mut hashes = Vec::with_capacity(elements.len());
    let mut breakpoints = Vec::new();
    let mut total = 0u64;
    for (i, e) in elements.iter().enumerate() {
        let s = strip_cache_control(e).to_string();
        total += s.len() as u64;
        hasher.update(s.as_bytes());
        cum.push(total);
        let d = hasher.clone().finalize();
        hashes.push(d.iter().map(|b| format!("{b:02x}")).collect::<String>());
        if e.get("cache_control").is_some() {
            breakpoints.push(i);
        }
    }
    let Some(&last) = breakpoints.last() else {
        return (0, 0, 0);
    };
    let seen = |h: &str| -> bool {
        state
            .db
            .call(|c| {
                c.query_row(
                    "SELECT 1 FROM llm_cache_prefixes WHERE hash = ?1",
                    params![h],
                    |_| Ok(()),
                )
            })
            .is_ok()
    };
    let mut hit: Option<usize> = None;
    for &b in breakpoints.iter().rev() {
        for j in (b.saturating_sub(20)..=b).rev() {
            if hit.is_some_and(|h| h >= j) {
                break;
            }
            if seen(&hashes[j]) {
                hit = Some(j);
                break;
            }
        }
    }
    for &b in &breakpoints {
        let h = hashes[b].clone();
        let _ = state.db.call(|c| {
            c.execute(
                "INSERT OR IGNORE INTO llm_cache_prefixes (hash) VALUES (?1)",
                params![h],
            )
        });
    }
    let read = hit.map_or(0, |j| cum[j]);
    (cum[last], read, cum[last] - read)
}

fn pieces_bytes(pieces: &[Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.len() as u64,
            Piece::Tool { name, input, .. } => (name.len() + input.to_string().len()) as u64,
        })
        .sum()
}

fn record(
    state: &SandboxState,
    api: Api,
    kind: &str,
    turn: usize,
    body_bytes: usize,
    t: Tokens,
    status: u16,
) {
    let at = super::db::now_iso();
    let r = state.db.call(|c| {
        c.execute(
            "INSERT INTO llm_requests (at, api, kind, turn, body_bytes, cached_prefix_bytes,
                input_tokens, output_tokens, cache_read, cache_write, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                at,
                api.label(),
                kind,
                turn as i64,
                body_bytes as i64,
                t.prefix_bytes as i64,
                t.input as i64,
                t.output as i64,
                t.cache_read as i64,
                t.cache_write as i64,
                status as i64
            ],
        )
    });
    if let Err(e) = r {
        tracing::warn!("sandbox llm: cannot record request: {e}");
    }
}

// ---------------------------------------------------------------- handlers

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"type":"error","error":{"type": kind, "message": message}})),
    )
        .into_response()
}

async fn read_request(req: Request) -> Result<(HeaderMap, bool, Vec<u8>), Response> {
    let inject = req.extensions().get::<InjectSseError>().is_some();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .map_err(|e| {
            error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &e.to_string(),
            )
        })?;
    Ok((parts.headers, inject, bytes.to_vec()))
}

async fn anthropic(State(state): State<SandboxState>, req: Request) -> Response {
    let (headers, inject, bytes) = match read_request(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !headers.contains_key("x-api-key") && !headers.contains_key(header::AUTHORIZATION) {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        );
    }
    serve(state, Api::Anthropic, inject, bytes).await
}

async fn openai(State(state): State<SandboxState>, req: Request) -> Response {
    let (_, inject, bytes) = match read_request(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    serve(state, Api::OpenAi, inject, bytes).await
}

async fn serve(state: SandboxState, api: Api, inject: bool, bytes: Vec<u8>) -> Response {
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "body is not a JSON object",
            );
        }
    };
    if !body["messages"].is_array() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: field required",
        );
    }
    let convo = match api {
        Api::Anthropic => parse_anthropic(&body),
        Api::OpenAi => parse_openai(&body),
    };
    if state.opts.llm_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(state.opts.llm_latency_ms)).await;
    }
    let reply = if convo.tools.is_empty() {
        rating_turn(&convo, state.opts.seed)
    } else {
        main_turn(api, &convo, state.opts.seed)
    };
    let (prefix, read, write) = match api {
        Api::Anthropic => cache_usage(&state, &body),
        Api::OpenAi => (0, 0, 0),
    };
    let tokens = Tokens {
        input: ((bytes.len() as u64) / 4)
            .saturating_sub(read / 4 + write / 4)
            .max(1),
        output: (pieces_bytes(&reply.pieces) / 4).max(1),
        cache_read: read / 4,
        cache_write: write / 4,
        prefix_bytes: prefix,
    };
    record(
        &state,
        api,
        reply.kind,
        convo.assistant_turns + 1,
        bytes.len(),
        tokens,
        200,
    );
    let mut rng = rng_for(
        state.opts.seed,
        &[b"split", &(convo.message_count as u64).to_le_bytes()],
    );
    match (api, convo.stream) {
        (Api::Anthropic, true) => sse(anthropic_events(&convo, &reply, tokens, inject, &mut rng)),
        (Api::Anthropic, false) => {
            axum::Json(anthropic_message(&convo, &reply, tokens)).into_response()
        }
        (Api::OpenAi, true) => sse(openai_events(&convo, &reply, tokens, inject, &mut rng)),
        (Api::OpenAi, false) => axum::Json(openai_message(&convo, &reply, tokens)).into_response(),
    }
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

fn stop_str(api: Api, stop: Stop) -> &'static str {
    match (api, stop) {
        (Api::Anthropic, Stop::EndTurn) => "end_turn",
        (Api::Anthropic, Stop::ToolUse) => "tool_use",
        (Api::Anthropic, Stop::MaxTokens) => "max_tokens",
        (Api::OpenAi, Stop::EndTurn) => "stop",
        (Api::OpenAi, Stop::ToolUse) => "tool_calls",
        (Api::OpenAi, Stop::MaxTokens) => "length",
    }
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

fn msg_id(convo: &Convo) -> String {
    format!("msg_sandbox_{:04}", convo.message_count)
}

fn anthropic_usage(t: Tokens, output: u64) -> Value {
    json!({
        "input_tokens": t.input,
        "cache_creation_input_tokens": t.cache_write,
        "cache_read_input_tokens": t.cache_read,
        "output_tokens": output,
    })
}

fn frame(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

fn anthropic_events(
    convo: &Convo,
    reply: &Reply,
    t: Tokens,
    inject: bool,
    rng: &mut StdRng,
) -> Vec<String> {
    let mut out = vec![frame(
        "message_start",
        &json!({"type":"message_start","message":{
            "id": msg_id(convo), "type":"message", "role":"assistant", "model": convo.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": anthropic_usage(t, 1),
        }}),
    )];
    if inject {
        out.push(frame(
            "content_block_start",
            &json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ));
        out.push(frame(
            "content_block_delta",
            &json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me"}}),
        ));
        out.push(frame(
            "error",
            &json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ));
        return out;
    }
    for (i, p) in reply.pieces.iter().enumerate() {
        match p {
            Piece::Text(text) => {
                out.push(frame(
                    "content_block_start",
                    &json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}}),
                ));
                for part in split_random(text, 4, rng) {
                    out.push(frame(
                        "content_block_delta",
                        &json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":part}}),
                    ));
                }
            }
            Piece::Tool {
                id,
                name,
                input,
                truncate,
            } => {
                out.push(frame(
                    "content_block_start",
                    &json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
                ));
                if rng.random_bool(0.5) {
                    out.push(frame("ping", &json!({"type":"ping"})));
                }
                let json_text = if *truncate {
                    cut_json(input)
                } else {
                    input.to_string()
                };
                for part in std::iter::once(String::new()).chain(split_random(&json_text, 5, rng)) {
                    out.push(frame(
                        "content_block_delta",
                        &json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":part}}),
                    ));
                }
            }
        }
        out.push(frame(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":i}),
        ));
    }
    out.push(frame(
        "message_delta",
        &json!({"type":"message_delta","delta":{"stop_reason": stop_str(Api::Anthropic, reply.stop),"stop_sequence":null},
                "usage": anthropic_usage(t, t.output)}),
    ));
    out.push(frame("message_stop", &json!({"type":"message_stop"})));
    out
}

fn anthropic_message(convo: &Convo, reply: &Reply, t: Tokens) -> Value {
    let content: Vec<Value> = reply
        .pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Text(text) => Some(json!({"type":"text","text":text})),
            Piece::Tool { truncate: true, .. } => None,
            Piece::Tool {
                id, name, input, ..
            } => Some(json!({"type":"tool_use","id":id,"name":name,"input":input})),
        })
        .collect();
    json!({
        "id": msg_id(convo), "type": "message", "role": "assistant", "model": convo.model,
        "content": content, "stop_reason": stop_str(Api::Anthropic, reply.stop),
        "stop_sequence": null, "usage": anthropic_usage(t, t.output),
    })
}

fn openai_usage(t: Tokens) -> Value {
    let prompt = t.input + t.cache_read + t.cache_write;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": t.output,
        "total_tokens": prompt + t.output,
        "prompt_tokens_details": {"cached_tokens": t.cache_read},
    })
}

fn chunk(convo: &Convo, delta: Value, finish: Option<&str>) -> String {
    let v = json!({
        "id": format!("chatcmpl-sandbox-{}", convo.message_count),
        "object": "chat.completion.chunk", "created": 1_760_000_000u64, "model": convo.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        "usage": null,
    });
    format!("data: {v}\n\n")
}

fn openai_events(
    convo: &Convo,
    reply: &Reply,
    t: Tokens,
    inject: bool,
    rng: &mut StdRng,
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
    out.push(chunk(
        convo,
        json!({}),
        Some(stop_str(Api::OpenAi, reply.stop)),
    ));
    if convo.include_usage {
        let v = json!({
            "id": format!("chatcmpl-sandbox-{}", convo.message_count),
            "object": "chat.completion.chunk", "created": 1_760_000_000u64, "model": convo.model,
            "choices": [], "usage": openai_usage(t),
        });
        out.push(format!("data: {v}\n\n"));
    }
    out.push("data: [DONE]\n\n".to_string());
    out
}

fn openai_message(convo: &Convo, reply: &Reply, t: Tokens) -> Value {
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
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": format!("chatcmpl-sandbox-{}", convo.message_count),
        "object": "chat.completion", "created": 1_760_000_000u64, "model": convo.model,
        "choices": [{"index": 0, "message": message, "finish_reason": stop_str(Api::OpenAi, reply.stop), "logprobs": null}],
        "usage": openai_usage(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 20},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5},
                "dueAt": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date-time"}]},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "done": {"type": "boolean"}
            },
            "required": ["title", "priority"]
        })
    }

    #[test]
    fn fabricated_arguments_respect_the_schema() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let v = fabricate(&schema(), &mut rng, 0, true);
            let title = v["title"].as_str().unwrap();
            assert!((1..=20).contains(&title.chars().count()));
            let p = v["priority"].as_i64().unwrap();
            assert!((1..=5).contains(&p));
            if let Some(d) = v.get("dueAt") {
                chrono::DateTime::parse_from_rfc3339(d.as_str().unwrap()).unwrap();
            }
            for t in v
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert!(t == "a" || t == "b");
            }
        }
    }

    #[test]
    fn invalidation_breaks_min_length_first() {
        let mut rng = StdRng::seed_from_u64(2);
        let v = invalidate(&schema(), fabricate(&schema(), &mut rng, 0, true));
        assert_eq!(v["title"], "");
    }

    #[test]
    fn directives_parse() {
        assert_eq!(directive_tools("x [sandbox:tools=4] y"), Some(4));
        assert_eq!(directive_tools("x"), None);
        assert_eq!(directive_call("x [sandbox:call=me_x] y"), Some("me_x"));
        assert!(directive("a [sandbox:no-tools]", "no-tools"));
    }

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
