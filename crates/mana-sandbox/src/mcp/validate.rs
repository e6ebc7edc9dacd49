//! Tool-argument validation the way mana-mcp does it: the platform declares
//! its tools with zod (v3) schemas, the TypeScript SDK parses the arguments
//! with them and, on failure, answers
//! `MCP error -32602: Input validation error: Invalid arguments for tool X: <issues>`,
//! each issue `<zod message> at <path>` (`tags[2]` for array items), joined
//! by a newline (`getParseErrorMessage` in the SDK's `zod-compat`).
//!
//! Why hand-written and not a JSON-Schema crate: what the model reads is the
//! wording, and the wording is zod's (`Required`, `String must contain at least
//! 1 character(s)`, `Invalid enum value. Expected 'a' | 'b', received 'x'`,
//! `Invalid uuid`, `Unrecognized key(s) in object: 'foo'`); a generic
//! validator reports the same problems in its own words. So this reads the
//! JSON-Schema subset zod-to-json-schema emits for the 21 tools (type incl.
//! integer, min/maxLength, pattern, enum, minimum/maximum/exclusiveMinimum,
//! anyOf with null = `.nullable()`, format uuid/date-time, arrays with
//! items/minItems/maxItems, required, additionalProperties false, default)
//! and reproduces zod v3's semantics: every issue, not the first; lengths in
//! UTF-16 units like JavaScript; `5.0` is an integer; defaults filled in.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::{Map, Value};

/// One zod issue: its message and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub message: String,
    pub path: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Issue {
    /// The SDK's rendering: the message alone at the root, else
    /// `message at a.b[2]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for (i, seg) in self.path.iter().enumerate() {
            match (i, seg) {
                (0, Seg::Key(k)) => write!(f, " at {k}")?,
                (0, Seg::Index(n)) => write!(f, " at {n}")?,
                (_, Seg::Key(k)) => write!(f, ".{k}")?,
                (_, Seg::Index(n)) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// All issues as the SDK joins them.
pub fn render(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(Issue::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses `args` with the tool's input schema: the arguments with defaults
/// filled in and undeclared keys stripped (zod's output), or every issue.
pub fn parse(schema: &Map<String, Value>, args: &Value) -> Result<Value, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut path = Vec::new();
    let out = check(schema, args, &mut path, &mut issues);
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

fn issue(issues: &mut Vec<Issue>, path: &[Seg], message: String) {
    issues.push(Issue {
        message,
        path: path.to_vec(),
    });
}

/// zod v3's `getParsedType` names, for `received ...`.
fn parsed_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A number as JavaScript prints it (`10`, `0.5`).
fn js_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `'a' | 'b'`: zod's `joinValues`.
fn join_values(values: &[Value], sep: &str) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => format!("'{s}'"),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn check(s: &Map<String, Value>, v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Issue>) -> Value {
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
        return check_any_of(alts, v, path, out);
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        // z.enum([...]): a non-string is a type error listing the options.
        if !v.is_string() {
            let expected = join_values(options, " | ");
            issue(
                out,
                path,
                format!("Expected {expected}, received {}", parsed_type(v)),
            );
        } else if !options.contains(v) {
            let expected = join_values(options, " | ");
            let got = v.as_str().unwrap_or_default();
            issue(
                out,
                path,
                format!("Invalid enum value. Expected {expected}, received '{got}'"),
            );
        }
        return v.clone();
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => check_object(s, v, path, out),
        Some("array") => check_array(s, v, path, out),
        Some("string") => {
            match v.as_str() {
                None => issue(
                    out,
                    path,
                    format!("Expected string, received {}", parsed_type(v)),
                ),
                Some(text) => check_string(s, text, path, out),
            }
            v.clone()
        }
        Some(ty @ ("integer" | "number")) => {
            match v.as_f64() {
                None => issue(
                    out,
                    path,
                    format!("Expected number, received {}", parsed_type(v)),
                ),
                Some(x) => {
                    if ty == "integer" && x.fract() != 0.0 {
                        issue(out, path, "Expected integer, received float".into());
                    }
                    check_number(s, x, path, out);
                }
            }
            v.clone()
        }
        Some("boolean") => {
            if !v.is_boolean() {
                issue(
                    out,
                    path,
                    format!("Expected boolean, received {}", parsed_type(v)),
                );
            }
            v.clone()
        }
        Some("null") => {
            if !v.is_null() {
                issue(
                    out,
                    path,
                    format!("Expected null, received {}", parsed_type(v)),
                );
            }
            v.clone()
        }
        _ => v.clone(),
    }
}

/// `anyOf: [X, {type: null}]` is zod's `.nullable()`: null passes, anything
/// else is X's problem with X's wording. Any other union fails as zod's
/// `Invalid input` when no branch takes the value.
fn check_any_of(alts: &[Value], v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Issue>) -> Value {
    let non_null: Vec<&Map<String, Value>> = alts
        .iter()
        .filter_map(Value::as_object)
        .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
        .collect();
    let nullable = non_null.len() < alts.len();
    if v.is_null() && nullable {
        return Value::Null;
    }
    if let [only] = non_null.as_slice() {
        return check(only, v, path, out);
    }
    for alt in &non_null {
        let mut trial = Vec::new();
        let parsed = check(alt, v, path, &mut trial);
        if trial.is_empty() {
            return parsed;
        }
    }
    issue(out, path, "Invalid input".into());
    v.clone()
}

fn check_object(
    s: &Map<String, Value>,
    v: &Value,
    path: &mut Vec<Seg>,
    out: &mut Vec<Issue>,
) -> Value {
    let Some(obj) = v.as_object() else {
        issue(
            out,
            path,
            format!("Expected object, received {}", parsed_type(v)),
        );
        return v.clone();
    };
    let empty = Map::new();
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut parsed = Map::new();
    // Shape order, as zod walks it.
    for (key, prop) in props {
        let prop = prop.as_object().unwrap_or(&empty);
        path.push(Seg::Key(key.clone()));
        match obj.get(key) {
            Some(value) => {
                let p = check(prop, value, path, out);
                parsed.insert(key.clone(), p);
            }
            None => {
                if let Some(default) = prop.get("default") {
                    parsed.insert(key.clone(), default.clone());
                } else if required.contains(&key.as_str()) {
                    issue(out, path, "Required".into());
                }
            }
        }
        path.pop();
    }
    // .strict(): the unknown keys in one issue, after the fields' issues.
    if s.get("additionalProperties") == Some(&Value::Bool(false)) {
        let extra: Vec<Value> = obj
            .keys()
            .filter(|k| !props.contains_key(*k))
            .map(|k| Value::String(k.clone()))
            .collect();
        if !extra.is_empty() {
            let keys = join_values(&extra, ", ");
            issue(out, path, format!("Unrecognized key(s) in object: {keys}"));
        }
    }
    Value::Object(parsed)
}

fn check_array(
    s: &Map<String, Value>,
    v: &Value,
    path: &mut Vec<Seg>,
    out: &mut Vec<Issue>,
) -> Value {
    let Some(items) = v.as_array() else {
        issue(
            out,
            path,
            format!("Expected array, received {}", parsed_type(v)),
        );
        return v.clone();
    };
    let n = items.len() as u64;
    if let Some(min) = s.get("minItems").and_then(Value::as_u64).filter(|&m| n < m) {
        issue(
            out,
            path,
            format!("Array must contain at least {min} element(s)"),
        );
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64).filter(|&m| n > m) {
        issue(
            out,
            path,
            format!("Array must contain at most {max} element(s)"),
        );
    }
    let Some(item_schema) = s.get("items").and_then(Value::as_object) else {
        return v.clone();
    };
    let parsed = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            path.push(Seg::Index(i));
            let p = check(item_schema, item, path, out);
            path.pop();
            p
        })
        .collect();
    Value::Array(parsed)
}

fn check_string(s: &Map<String, Value>, text: &str, path: &[Seg], out: &mut Vec<Issue>) {
    // JavaScript's `length`: UTF-16 code units.
    let n = text.encode_utf16().count() as u64;
    if let Some(min) = s
        .get("minLength")
        .and_then(Value::as_u64)
        .filter(|&m| n < m)
    {
        issue(
            out,
            path,
            format!("String must contain at least {min} character(s)"),
        );
    }
    if let Some(max) = s
        .get("maxLength")
        .and_then(Value::as_u64)
        .filter(|&m| n > m)
    {
        issue(
            out,
            path,
            format!("String must contain at most {max} character(s)"),
        );
    }
    match s.get("format").and_then(Value::as_str) {
        Some("uuid") if !UUID.is_match(text) => issue(out, path, "Invalid uuid".into()),
        Some("date-time") if !DATETIME.is_match(text) => {
            issue(out, path, "Invalid datetime".into())
        }
        _ => {}
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && !matches(pattern, text)
    {
        issue(out, path, "Invalid".into());
    }
}

fn check_number(s: &Map<String, Value>, x: f64, path: &[Seg], out: &mut Vec<Issue>) {
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    if let Some(m) = bound("minimum").filter(|&m| x < m) {
        issue(
            out,
            path,
            format!("Number must be greater than or equal to {}", js_number(m)),
        );
    }
    if let Some(m) = bound("exclusiveMinimum").filter(|&m| x <= m) {
        issue(
            out,
            path,
            format!("Number must be greater than {}", js_number(m)),
        );
    }
    if let Some(m) = bound("maximum").filter(|&m| x > m) {
        issue(
            out,
            path,
            format!("Number must be less than or equal to {}", js_number(m)),
        );
    }
    if let Some(m) = bound("exclusiveMaximum").filter(|&m| x >= m) {
        issue(
            out,
            path,
            format!("Number must be less than {}", js_number(m)),
        );
    }
}

/// zod v3's `uuid` check.
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
        .expect("uuid regex")
});

/// zod v3's (3.25) `datetime()` with its defaults: a real calendar date,
/// optional seconds with any fraction, `Z` only (no offset unless the schema
/// opted in, and the platform's does not say it did).
static DATETIME: LazyLock<Regex> = LazyLock::new(|| {
    let date = r"((\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)-02-29|\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|(02)-(0[1-9]|1\d|2[0-8])))";
    let time = r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?";
    Regex::new(&ascii_digits(&format!("^{date}T{time}Z$"))).expect("datetime regex")
});

/// JavaScript's `\d` is ASCII; the regex crate's is Unicode.
fn ascii_digits(pattern: &str) -> String {
    pattern.replace(r"\d", "[0-9]")
}

/// `pattern` as JavaScript's RegExp would match it (the patterns in the
/// catalog are ASCII classes and anchors), compiled once per pattern.
fn matches(pattern: &str, text: &str) -> bool {
    static CACHE: LazyLock<Mutex<HashMap<String, Option<Regex>>>> = LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(&ascii_digits(pattern)).ok());
    // A pattern the regex crate cannot read is the catalog's problem, not
    // the caller's: let the value through rather than refuse every call.
    re.as_ref().is_none_or(|re| re.is_match(text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mcp::catalog::input_schema;

    fn errors(tool: &str, args: Value) -> String {
        render(&parse(input_schema(tool).unwrap(), &args).unwrap_err())
    }

    fn parsed(tool: &str, args: Value) -> Value {
        parse(input_schema(tool).unwrap(), &args).unwrap_or_else(|e| panic!("{}", render(&e)))
    }

    // The expected texts were produced by zod 3 (`zod/v3`) and the SDK's
    // `getParseErrorMessage` on the same schemas.
    #[test]
    fn wording_is_zods() {
        assert_eq!(errors("todo.create", json!({})), "Required at title");
        assert_eq!(
            errors("todo.create", json!({"title": ""})),
            "String must contain at least 1 character(s) at title"
        );
        assert_eq!(
            errors("todo.create", json!({"title": 5})),
            "Expected string, received number at title"
        );
        assert_eq!(
            errors("todo.create", json!({"title": "x", "foo": 1, "bar": 2})),
            "Unrecognized key(s) in object: 'foo', 'bar'"
        );
        assert_eq!(
            errors("todo.create", json!({"title": "x", "dueDate": "morgen"})),
            "Invalid datetime at dueDate"
        );
        assert_eq!(
            errors("todo.complete", json!({"id": "nope"})),
            "Invalid uuid at id"
        );
        assert_eq!(
            errors("notes.create", json!({"title": "x", "color": "red"})),
            "Invalid at color"
        );
        assert_eq!(
            errors(
                "journal.add",
                json!({"content": "x", "entryDate": "21.11.2026"})
            ),
            "Invalid at entryDate"
        );
        assert_eq!(
            errors("todo.list", json!({"limit": 0})),
            "Number must be greater than 0 at limit"
        );
        assert_eq!(
            errors("mood.log", json!({"level": 2.5, "emotion": "calm"})),
            "Expected integer, received float at level"
        );
        assert_eq!(
            errors(
                "mood.log",
                json!({"level": 5, "emotion": "calm", "tags": ["a", 1]})
            ),
            "Expected string, received number at tags[1]"
        );
        assert_eq!(
            errors(
                "me.generateWithReference",
                json!({"prompt": "p", "referenceMediaIds": []})
            ),
            "Array must contain at least 1 element(s) at referenceMediaIds"
        );
        assert_eq!(
            errors("habits.create", json!({"title": "x", "targetPerDay": 0})),
            "Number must be greater than 0 at targetPerDay"
        );
    }

    #[test]
    fn every_issue_in_shape_order_then_unknown_keys() {
        let emotions = "'happy' | 'calm' | 'energized' | 'grateful' | 'excited' | 'loved' | \
                        'hopeful' | 'neutral' | 'bored' | 'tired' | 'sad' | 'anxious' | 'angry' | \
                        'stressed' | 'frustrated' | 'overwhelmed'";
        assert_eq!(
            errors(
                "mood.log",
                json!({"zzz": true, "emotion": "x", "level": 11})
            ),
            format!(
                "Number must be less than or equal to 10 at level\n\
                 Invalid enum value. Expected {emotions}, received 'x' at emotion\n\
                 Unrecognized key(s) in object: 'zzz'"
            )
        );
        assert_eq!(
            errors("mood.log", json!({"level": 0, "emotion": 3})),
            format!(
                "Number must be greater than or equal to 1 at level\n\
                 Expected {emotions}, received number at emotion"
            )
        );
    }

    #[test]
    fn valid_arguments_pass_with_defaults_filled_in() {
        let todo = parsed(
            "todo.create",
            json!({"title": "Einkaufen", "dueDate": null}),
        );
        assert_eq!(todo["priority"], "medium");
        assert_eq!(todo["dueDate"], Value::Null);
        parsed(
            "todo.create",
            json!({"title": "x", "dueDate": "2026-11-21T10:00:00.123Z"}),
        );
        parsed(
            "todo.create",
            json!({"title": "x", "dueDate": "2026-11-21T10:00Z"}),
        );
        assert_eq!(
            errors(
                "todo.create",
                json!({"title": "x", "dueDate": "2026-11-21T10:00:00+01:00"})
            ),
            "Invalid datetime at dueDate"
        );
        parsed(
            "todo.complete",
            json!({"id": "00000000-0000-4000-8000-000000000000"}),
        );
        let mood = parsed(
            "mood.log",
            json!({"level": 10.0, "emotion": "calm", "time": "08:30"}),
        );
        assert_eq!(mood["secondaryEmotions"], json!([]));
        assert_eq!(mood["activity"], Value::Null);
        let habit = parsed(
            "habits.create",
            json!({"title": "Kaffee", "color": "#A0b1C2"}),
        );
        assert_eq!(habit["icon"], "star");
        // No additionalProperties: false on spaces.list: extras are stripped.
        assert_eq!(parsed("spaces.list", json!({"x": 1})), json!({}));
        // Lengths count UTF-16 units, as JavaScript does.
        let emoji = "😀".repeat(250);
        parsed("todo.create", json!({"title": emoji}));
        assert_eq!(
            errors("todo.create", json!({"title": format!("{emoji}x")})),
            "String must contain at most 500 character(s) at title"
        );
        // JavaScript's \d is ASCII only.
        assert_eq!(
            errors("mood.today", json!({"date": "٢٠٢٦-11-21"})),
            "Invalid at date"
        );
    }
}
