//! Tool arguments the scripted persona makes up from a tool's input schema:
//! valid ones that pass mana-mcp's zod checks (formats such as `#rrggbb`
//! colours, `YYYY-MM-DD` dates and RFC 3339 date-times, lengths, ranges,
//! enums, nullable unions, no undeclared keys), ids taken from what earlier
//! tool results in the conversation returned, and — on purpose, for a share
//! of calls — one broken value of the kinds a real model gets wrong.
//!
//! Why schema-driven rather than a table per tool: the client offers
//! whatever the MCP server lists, and the sandbox must play with it the way a
//! model reads the schemas. The names it sees are LLM-safe (`todo_create` for
//! `todo.create`, the product's reversible encoding), so a tool's module is
//! the part before the first `_`.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngExt;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

/// The module of an LLM-safe tool name: `habits_create` → `habits`.
pub fn module_of(tool: &str) -> &str {
    tool.split(['_', '.']).next().unwrap_or(tool)
}

/// What the persona learnt from earlier tool results: the ids each module
/// returned (oldest first) and the ids already passed to a tool.
#[derive(Debug, Default)]
pub struct Known {
    ids: BTreeMap<String, Vec<String>>,
    used: BTreeSet<String>,
}

impl Known {
    /// Remembers the ids a call passed and, when it succeeded, the `id` of
    /// every object in its result (JSON text).
    pub fn learn(&mut self, tool: &str, input: &Value, result: Option<&str>, is_error: bool) {
        collect_id_args(input, &mut self.used);
        let Some(text) = result.filter(|_| !is_error) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let ids = self.ids.entry(module_of(tool).to_string()).or_default();
        collect_ids(&v, ids);
    }

    /// An id `module` returned that no call has passed yet: mostly the
    /// newest (what a model just saw), sometimes an older one.
    fn fresh(&self, module: &str, rng: &mut StdRng) -> Option<String> {
        let fresh: Vec<&String> = self
            .ids
            .get(module)?
            .iter()
            .filter(|id| !self.used.contains(*id))
            .collect();
        if fresh.is_empty() {
            return None;
        }
        let i = if rng.random_bool(0.7) {
            fresh.len() - 1
        } else {
            rng.random_range(0..fresh.len())
        };
        Some(fresh[i].clone())
    }
}

fn collect_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(id)) = o.get("id")
                && !out.contains(id)
            {
                out.push(id.clone());
            }
            o.values().for_each(|x| collect_ids(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_ids(x, out)),
        _ => {}
    }
}

fn collect_id_args(input: &Value, out: &mut BTreeSet<String>) {
    let Some(o) = input.as_object() else { return };
    for (_, v) in o.iter().filter(|(k, _)| is_id_key(k)) {
        match v {
            Value::String(s) => {
                out.insert(s.clone());
            }
            Value::Array(a) => out.extend(a.iter().filter_map(Value::as_str).map(String::from)),
            _ => {}
        }
    }
}

/// A property that names something that already exists (`id`, `entryId`,
/// `referenceMediaIds`): its value can only come from an earlier result.
fn is_id_key(k: &str) -> bool {
    k == "id" || k.ends_with("Id") || k.ends_with("Ids")
}

/// The non-null branch of a zod `.nullable()` (`anyOf: [X, {type: null}]`),
/// or the schema itself.
fn unwrap_nullable(schema: &Value) -> &Value {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
        .and_then(|bs| {
            bs.iter()
                .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
        })
        .unwrap_or(schema)
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Valid arguments for a tool of `module` with input `schema`, or `None` when
/// a required id is not known yet (the persona picks another tool).
/// Required fields always, optional ones about half the time.
pub fn fabricate(schema: &Value, module: &str, known: &Known, rng: &mut StdRng) -> Option<Value> {
    let mut out = Map::new();
    let required = required(schema);
    for (k, s) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let needed = required.contains(&k.as_str());
        if is_id_key(k) {
            match known.fresh(module, rng) {
                Some(id) if unwrap_nullable(s).get("type") == Some(&json!("array")) => {
                    out.insert(k.clone(), json!([id]));
                }
                Some(id) => {
                    out.insert(k.clone(), json!(id));
                }
                None if needed => return None,
                None => {}
            }
            continue;
        }
        if needed || rng.random_bool(0.5) {
            match value(k, s, rng, 1) {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None if needed => return None,
                None => {}
            }
        }
    }
    Some(Value::Object(out))
}

/// A valid value for property `key` with `schema`; `None` when the schema
/// asks for something this cannot make (a pattern it does not know).
fn value(key: &str, schema: &Value, rng: &mut StdRng, depth: usize) -> Option<Value> {
    let schema = unwrap_nullable(schema);
    if let Some(c) = schema.get("const") {
        return Some(c.clone());
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.is_empty()
    {
        return Some(e[rng.random_range(0..e.len())].clone());
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    Some(match ty {
        "object" => {
            let mut out = Map::new();
            if depth > 4 {
                return Some(Value::Object(out));
            }
            let required = required(schema);
            for (k, s) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if required.contains(&k.as_str()) || rng.random_bool(0.5) {
                    out.insert(k.clone(), value(k, s, rng, depth + 1)?);
                }
            }
            Value::Object(out)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
            let max = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(min.max(3))
                .max(min);
            let n = rng.random_range(min..=max.min(min + 2));
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            let mut out: Vec<Value> = Vec::new();
            for _ in 0..n {
                let v = value(key, &items, rng, depth + 1)?;
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            // Duplicates dropped may leave fewer than the minimum.
            while (out.len() as u64) < min {
                out.push(value(key, &items, rng, depth + 1)?);
            }
            Value::Array(out)
        }
        "integer" => {
            let (lo, hi) = bounds(schema, true);
            json!(rng.random_range(lo as i64..=hi as i64))
        }
        "number" => {
            let (lo, hi) = bounds(schema, false);
            let x: f64 = rng.random_range(lo..=hi);
            json!(((x * 10.0).round() / 10.0).clamp(lo, hi))
        }
        "boolean" => json!(rng.random_bool(0.5)),
        "null" => Value::Null,
        _ => json!(string(key, schema, rng)?),
    })
}

/// The inclusive range a number may take; without a maximum, a small
/// human-sized one.
fn bounds(schema: &Value, integer: bool) -> (f64, f64) {
    let f = |k: &str| schema.get(k).and_then(Value::as_f64);
    let step = if integer { 1.0 } else { 0.1 };
    let lo = f("minimum")
        .or_else(|| f("exclusiveMinimum").map(|x| x + step))
        .unwrap_or(0.0);
    let hi = f("maximum")
        .or_else(|| f("exclusiveMaximum").map(|x| x - step))
        .unwrap_or(lo + 9.0)
        .max(lo);
    if integer {
        (lo.ceil(), hi.floor().max(lo.ceil()))
    } else {
        (lo, hi)
    }
}

const TITLES: &[&str] = &[
    "Groceries for the week",
    "Call mom",
    "Weekly review",
    "Morning run",
    "Book club notes",
    "Dentist appointment",
    "Project plan",
    "Water the plants",
    "Read two chapters",
    "Plan the weekend",
];

const SENTENCES: &[&str] = &[
    "Slept well and got through the morning without rushing.",
    "A long day at work; the afternoon meeting ran over again.",
    "Took a walk after lunch, which helped me think.",
    "Felt a bit scattered today, so I wrote things down.",
    "Good conversation with a friend over coffee.",
];

const TAGS: &[&str] = &["work", "family", "health", "home", "ideas", "weekend"];

const COLOURS: &[&str] = &[
    "#6366f1", "#22c55e", "#f97316", "#0ea5e9", "#e11d48", "#a855f7",
];

fn pick(list: &[&str], rng: &mut StdRng) -> String {
    list[rng.random_range(0..list.len())].to_string()
}

fn clock(rng: &mut StdRng) -> String {
    format!(
        "{:02}:{:02}",
        rng.random_range(7..21),
        15 * rng.random_range(0..4)
    )
}

/// A plausible string for `key`: formats and the platform's patterns first,
/// then by what the field is for; lengths respected, any pattern checked.
fn string(key: &str, schema: &Value, rng: &mut StdRng) -> Option<String> {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("static date");
    let day = (base + chrono::Duration::days(rng.random_range(0..14)))
        .format("%Y-%m-%d")
        .to_string();
    let pattern = schema.get("pattern").and_then(Value::as_str);
    let mut s = match (schema.get("format").and_then(Value::as_str), pattern) {
        (Some("date-time"), _) => format!("{day}T{}:00Z", clock(rng)),
        (Some("date"), _) => day,
        (Some("time"), _) => clock(rng),
        (Some("email"), _) => format!("friend{}@example.com", rng.random_range(1..100)),
        (Some("uri" | "url"), _) => {
            format!("https://example.com/item/{}", rng.random_range(1..1000))
        }
        (Some("uuid"), _) => uuid::Uuid::from_u128(rng.random()).to_string(),
        (_, Some(p)) if p.contains("#[0-9a-fA-F]{6}") => pick(COLOURS, rng),
        (_, Some(p)) if p.contains(r"\d{4}-\d{2}-\d{2}") => day,
        (_, Some(p)) if p.contains(r"\d{2}:\d{2}") => clock(rng),
        _ => match key {
            "title" | "name" | "source" | "query" => pick(TITLES, rng),
            "icon" => "star".to_string(),
            "tags" => pick(TAGS, rng),
            "withWhom" => "a friend".to_string(),
            _ => pick(SENTENCES, rng),
        },
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    while s.chars().count() < min {
        s.push('.');
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        s = s.chars().take(max as usize).collect();
    }
    if let Some(p) = pattern
        && !regex::Regex::new(p).ok()?.is_match(&s)
    {
        return None;
    }
    Some(s)
}

/// One way to break a field: the wrong value, if this rule applies.
type Breaker = fn(&Value) -> Option<Value>;

/// The mistakes, in the order mana-mcp's refusals of a real model were
/// seen: an empty string under a minimum length, a colour or date in the
/// wrong format, a number over its maximum, a value outside an enum.
const BREAKERS: &[Breaker] = &[
    |s| {
        (s.get("type") == Some(&json!("string"))
            && s.get("minLength").and_then(Value::as_u64).unwrap_or(0) >= 1)
            .then(|| json!(""))
    },
    |s| {
        let p = s.get("pattern").and_then(Value::as_str)?;
        Some(json!(if p.contains('#') { "blue" } else { "tomorrow" }))
    },
    |s| {
        let max = s.get("maximum").and_then(Value::as_f64)?;
        matches!(
            s.get("type").and_then(Value::as_str),
            Some("integer" | "number")
        )
        .then(|| json!(max as i64 + 1))
    },
    |s| s.get("enum").is_some().then(|| json!("sometimes")),
];

/// `args` with one value a real model gets wrong (see [`BREAKERS`]); else a
/// required field left out, else an undeclared key. `None` when the schema
/// accepts anything this could send.
pub fn invalidate(schema: &Value, args: &Value) -> Option<Value> {
    let mut args = args.as_object()?.clone();
    let props = schema.get("properties").and_then(Value::as_object)?;
    let required = required(schema);
    // Fields the call sends or must send come first.
    let mut fields: Vec<(&String, &Value)> = props.iter().filter(|(k, _)| !is_id_key(k)).collect();
    fields.sort_by_key(|(k, _)| !(args.contains_key(*k) || required.contains(&k.as_str())));
    for rule in BREAKERS {
        for (k, s) in &fields {
            if let Some(bad) = rule(unwrap_nullable(s)) {
                args.insert((*k).clone(), bad);
                return Some(Value::Object(args));
            }
        }
    }
    if let Some(r) = required.first() {
        args.remove(*r);
        return Some(Value::Object(args));
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        args.insert("note".into(), json!("one more thing"));
        return Some(Value::Object(args));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
            let v = fabricate(&schema(), "todo", &Known::default(), &mut rng).unwrap();
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
        let v = fabricate(&schema(), "todo", &Known::default(), &mut rng).unwrap();
        assert_eq!(invalidate(&schema(), &v).unwrap()["title"], "");
    }

    #[test]
    fn ids_come_from_earlier_results_of_the_same_module_and_are_used_once() {
        let s = json!({"type":"object","properties":{"id":{"type":"string","format":"uuid"}},"required":["id"]});
        let mut rng = StdRng::seed_from_u64(3);
        let mut known = Known::default();
        assert!(fabricate(&s, "todo", &known, &mut rng).is_none());
        known.learn(
            "todo_create",
            &json!({"title": "x"}),
            Some(r#"{"task":{"id":"t-1"}}"#),
            false,
        );
        known.learn(
            "habits_create",
            &json!({}),
            Some(r#"{"habit":{"id":"h-1"}}"#),
            false,
        );
        known.learn(
            "todo_create",
            &json!({}),
            Some(r#"{"task":{"id":"t-2"}}"#),
            true,
        );
        let v = fabricate(&s, "todo", &known, &mut rng).unwrap();
        assert_eq!(v["id"], "t-1", "the failed call's id is not known");
        known.learn("todo_complete", &v, Some(r#"{"ok":true}"#), false);
        assert!(
            fabricate(&s, "todo", &known, &mut rng).is_none(),
            "t-1 is used"
        );
    }

    /// mana-mcp's 21 tools, as the client offers them to the LLM (dots
    /// become `_`), with their schemas as a `Value`.
    fn platform_tools() -> Vec<(String, Value)> {
        let v: Value = serde_json::from_str(crate::mcp::TOOLS_LIST_JSON).unwrap();
        v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().replace('.', "_"),
                    t["inputSchema"].clone(),
                )
            })
            .collect()
    }

    /// The refusals seen against mana-mcp (`Invalid at color`, `Invalid at
    /// entryDate`, `String must contain at least…`, `Number must be less
    /// than or equal to…`) cannot happen: thousands of made-up argument
    /// sets for each of the 21 real tools pass the sandbox's zod-worded
    /// validator, and every deliberately broken one fails it.
    #[test]
    fn arguments_for_the_21_platform_tools_pass_their_real_schemas() {
        let tools = platform_tools();
        assert_eq!(tools.len(), 21);
        let mut known = Known::default();
        for module in ["todo", "habits", "augur", "me", "notes", "mood", "journal"] {
            let id = uuid::Uuid::from_u128(module.len() as u128 * 7919).to_string();
            known.learn(
                &format!("{module}_list"),
                &json!({}),
                Some(&json!({"items": [{"id": id}]}).to_string()),
                false,
            );
        }
        let mut broken_kinds = BTreeSet::new();
        for (name, schema) in &tools {
            let obj = schema.as_object().unwrap();
            for seed in 0..300 {
                let mut rng = StdRng::seed_from_u64(seed);
                let args = fabricate(schema, module_of(name), &known, &mut rng)
                    .unwrap_or_else(|| panic!("{name}: no arguments with every id known"));
                if let Err(issues) = crate::mcp::validate::parse(obj, &args) {
                    panic!("{name} {args}: {}", crate::mcp::validate::render(&issues));
                }
                if let Some(bad) = invalidate(schema, &args) {
                    let issues = crate::mcp::validate::parse(obj, &bad)
                        .expect_err(&format!("{name}: {bad} should be refused"));
                    for i in issues {
                        broken_kinds
                            .insert(i.message.split(' ').take(3).collect::<Vec<_>>().join(" "));
                    }
                }
            }
        }
        // The kinds of mistakes real models make, all represented.
        for kind in ["String must contain", "Invalid", "Number must be"] {
            assert!(
                broken_kinds.iter().any(|k| k.starts_with(kind)),
                "{kind} in {broken_kinds:?}"
            );
        }
    }

    #[test]
    fn id_taking_tools_wait_for_an_id() {
        let mut rng = StdRng::seed_from_u64(9);
        for (name, schema) in platform_tools() {
            let needs_id = [
                "todo_complete",
                "habits_update",
                "habits_archive",
                "augur_resolveSign",
                "me_generateWithReference",
            ];
            let made = fabricate(&schema, module_of(&name), &Known::default(), &mut rng);
            assert_eq!(made.is_none(), needs_id.contains(&name.as_str()), "{name}");
        }
    }
}
