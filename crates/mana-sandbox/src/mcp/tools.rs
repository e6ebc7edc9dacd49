//! The sandbox's tool set: the platform's dotted names, draft-07 input
//! schemas like the recorded TypeScript-SDK server's, a small validator for
//! exactly the keywords those schemas use, and the handlers over SQLite.
//!
//! Why a hand validator and not a JSON-Schema crate: the schemas use seven
//! keywords, and the messages should read like the SDK's
//! (`Input validation error: ...`) so the model sees what it would in prod.

use std::sync::Arc;

use rmcp::model::Tool;
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::McpCaller;
use crate::db::{Db, now_iso};

/// One table for every kind of item, keyed by (user, space): the sandbox
/// needs isolation between personas, not a relational model.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS mcp_items (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    space_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mcp_items_owner ON mcp_items(user_id, space_id, kind);
"#;

fn schema(properties: Value, required: &[&str]) -> Arc<Map<String, Value>> {
    let mut s = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": properties,
    });
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    match s {
        Value::Object(m) => Arc::new(m),
        _ => unreachable!("json! object"),
    }
}

/// Every tool, in listing order, built once (every list page and every call
/// reads it).
pub fn definitions() -> &'static [Tool] {
    static TOOLS: std::sync::LazyLock<Vec<Tool>> = std::sync::LazyLock::new(build_definitions);
    &TOOLS
}

fn build_definitions() -> Vec<Tool> {
    let t = |name: &'static str, desc: &'static str, s| Tool::new(name, desc, s);
    vec![
        t(
            "todo.create",
            "Create a todo in the current space.",
            schema(
                json!({
                    "title": {"type": "string", "minLength": 1, "maxLength": 500, "description": "Short title of the todo"},
                    "description": {"type": "string", "maxLength": 5000},
                    "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
                    "dueDate": {"description": "ISO 8601 date-time or null", "anyOf": [
                        {"type": "string", "format": "date-time"}, {"type": "null"}
                    ]}
                }),
                &["title"],
            ),
        ),
        t(
            "todo.list",
            "List todos in the current space.",
            schema(json!({"includeCompleted": {"type": "boolean"}}), &[]),
        ),
        t(
            "todo.complete",
            "Mark a todo as completed.",
            schema(json!({"id": {"type": "string", "minLength": 1}}), &["id"]),
        ),
        t(
            "journal.add",
            "Add a journal entry.",
            schema(
                json!({
                    "content": {"type": "string", "minLength": 1, "maxLength": 20000},
                    "mood": {"type": "string", "maxLength": 100}
                }),
                &["content"],
            ),
        ),
        t(
            "notes.create",
            "Create a note.",
            schema(
                json!({
                    "title": {"type": "string", "minLength": 1, "maxLength": 500},
                    "content": {"type": "string", "minLength": 1, "maxLength": 50000}
                }),
                &["title", "content"],
            ),
        ),
        t(
            "notes.search",
            "Search notes by text.",
            schema(
                json!({"query": {"type": "string", "minLength": 1, "maxLength": 500}}),
                &["query"],
            ),
        ),
        t(
            "mood.log",
            "Log the current mood (1 = awful, 10 = great).",
            schema(
                json!({
                    "value": {"type": "integer", "minimum": 1, "maximum": 10},
                    "note": {"type": "string", "maxLength": 1000}
                }),
                &["value"],
            ),
        ),
        t(
            "mood.today",
            "Today's mood entries.",
            schema(json!({}), &[]),
        ),
        t(
            "habits.create",
            "Create a habit to track.",
            schema(
                json!({"name": {"type": "string", "minLength": 1, "maxLength": 200}}),
                &["name"],
            ),
        ),
        t("habits.list", "List habits.", schema(json!({}), &[])),
        t(
            "spaces.list",
            "List the spaces the user can access.",
            schema(json!({}), &[]),
        ),
    ]
}

/// Runs tool `name`: `Ok` is the JSON to pretty-print into the result, `Err`
/// the text of an `isError: true` result.
pub fn call(
    db: &Db,
    who: &McpCaller,
    name: &str,
    args: &Map<String, Value>,
) -> Result<Value, String> {
    let Some(tool) = definitions().iter().find(|t| t.name == name) else {
        return Err(format!("Tool {name} not found"));
    };
    validate(&tool.input_schema, args)
        .map_err(|e| format!("Input validation error: Invalid arguments for tool {name}: {e}"))?;
    let s = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    let now = now_iso();
    match name {
        "todo.create" => {
            let todo = json!({
                "id": new_id("todo"),
                "title": s("title"),
                "description": s("description"),
                "priority": s("priority").unwrap_or_else(|| "medium".into()),
                "dueDate": args.get("dueDate").cloned().unwrap_or(Value::Null),
                "completed": false,
                "completedAt": null,
                "createdAt": now,
            });
            insert(db, who, "todo", &todo)?;
            Ok(json!({ "todo": todo }))
        }
        "todo.list" => {
            let all = args
                .get("includeCompleted")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let todos: Vec<Value> = list(db, who, "todo")?
                .into_iter()
                .filter(|t| all || t["completed"] != json!(true))
                .collect();
            Ok(json!({ "todos": todos }))
        }
        "todo.complete" => {
            let id = s("id").unwrap_or_default();
            let Some(mut todo) = get(db, who, "todo", &id)? else {
                return Err(format!("Todo not found: {id}"));
            };
            todo["completed"] = json!(true);
            todo["completedAt"] = json!(now);
            update(db, &id, &todo)?;
            Ok(json!({ "todo": todo }))
        }
        "journal.add" => {
            let entry = json!({"id": new_id("journal"), "content": s("content"), "mood": s("mood"), "createdAt": now});
            insert(db, who, "journal", &entry)?;
            Ok(json!({ "entry": entry }))
        }
        "notes.create" => {
            let note = json!({"id": new_id("note"), "title": s("title"), "content": s("content"), "createdAt": now});
            insert(db, who, "note", &note)?;
            Ok(json!({ "note": note }))
        }
        "notes.search" => {
            let q = s("query").unwrap_or_default().to_lowercase();
            let hit =
                |n: &Value, k: &str| n[k].as_str().is_some_and(|v| v.to_lowercase().contains(&q));
            let notes: Vec<Value> = list(db, who, "note")?
                .into_iter()
                .filter(|n| hit(n, "title") || hit(n, "content"))
                .collect();
            Ok(json!({ "notes": notes }))
        }
        "mood.log" => {
            let mood = json!({"id": new_id("mood"), "value": args.get("value"), "note": s("note"), "createdAt": now});
            insert(db, who, "mood", &mood)?;
            Ok(json!({ "mood": mood }))
        }
        "mood.today" => {
            let today = &now[..10];
            let moods: Vec<Value> = list(db, who, "mood")?
                .into_iter()
                .filter(|m| {
                    m["createdAt"]
                        .as_str()
                        .is_some_and(|c| c.starts_with(today))
                })
                .collect();
            Ok(json!({ "moods": moods }))
        }
        "habits.create" => {
            let habit = json!({"id": new_id("habit"), "name": s("name"), "createdAt": now});
            insert(db, who, "habit", &habit)?;
            Ok(json!({ "habit": habit }))
        }
        "habits.list" => Ok(json!({ "habits": list(db, who, "habit")? })),
        "spaces.list" => {
            let spaces = db
                .call(|c| {
                    let mut st = c.prepare(
                        "SELECT s.id, s.name FROM spaces s JOIN members m ON m.space_id = s.id
                         WHERE m.user_id = ?1 ORDER BY s.seq",
                    )?;
                    st.query_map(params![who.user_id], |r| {
                        Ok(json!({"id": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?}))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db_err)?;
            Ok(json!({ "spaces": spaces }))
        }
        other => Err(format!("Tool {other} not found")),
    }
}

fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn db_err(e: rusqlite::Error) -> String {
    format!("Internal error: {e}")
}

fn insert(db: &Db, who: &McpCaller, kind: &str, item: &Value) -> Result<(), String> {
    db.call(|c| {
        c.execute(
            "INSERT INTO mcp_items (id, user_id, space_id, kind, data, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                item["id"].as_str(),
                who.user_id,
                who.space_id,
                kind,
                item.to_string(),
                item["createdAt"].as_str()
            ],
        )
    })
    .map(|_| ())
    .map_err(db_err)
}

fn list(db: &Db, who: &McpCaller, kind: &str) -> Result<Vec<Value>, String> {
    db.call(|c| {
        let mut st = c.prepare(
            "SELECT data FROM mcp_items WHERE user_id = ?1 AND space_id = ?2 AND kind = ?3 ORDER BY seq",
        )?;
        st.query_map(params![who.user_id, who.space_id, kind], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(db_err)
    .map(|rows| {
        rows.iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    })
}

fn get(db: &Db, who: &McpCaller, kind: &str, id: &str) -> Result<Option<Value>, String> {
    db.call(|c| {
        c.query_row(
            "SELECT data FROM mcp_items WHERE id = ?1 AND user_id = ?2 AND space_id = ?3 AND kind = ?4",
            params![id, who.user_id, who.space_id, kind],
            |r| r.get::<_, String>(0),
        )
        .optional()
    })
    .map_err(db_err)
    .map(|d| d.and_then(|d| serde_json::from_str(&d).ok()))
}

fn update(db: &Db, id: &str, item: &Value) -> Result<(), String> {
    db.call(|c| {
        c.execute(
            "UPDATE mcp_items SET data = ?2 WHERE id = ?1",
            params![id, item.to_string()],
        )
    })
    .map(|_| ())
    .map_err(db_err)
}

/// Checks `args` against an object schema using `required`, `properties`,
/// `type`, `minLength`/`maxLength`, `minimum`/`maximum`, `enum`, `anyOf` and
/// `format: date-time`. Returns the first problem, naming the field.
pub fn validate(schema: &Map<String, Value>, args: &Map<String, Value>) -> Result<(), String> {
    for req in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !args.contains_key(req) {
            return Err(format!("Required at {req}"));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (key, value) in args {
        if let Some(prop) = props.and_then(|p| p.get(key)).and_then(Value::as_object) {
            check(prop, value).map_err(|e| format!("{e} at {key}"))?;
        }
    }
    Ok(())
}

fn check(s: &Map<String, Value>, v: &Value) -> Result<(), String> {
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let mut last = String::from("Invalid input");
        for alt in any.iter().filter_map(Value::as_object) {
            match check(alt, v) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        return Err(last);
    }
    if let Some(ty) = s.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "null" => v.is_null(),
            _ => true,
        };
        if !ok {
            return Err(format!(
                "Invalid input: expected {ty}, received {}",
                type_name(v)
            ));
        }
    }
    if let Some(opts) = s.get("enum").and_then(Value::as_array)
        && !opts.contains(v)
    {
        return Err(format!(
            "Invalid option: expected one of {}",
            Value::Array(opts.clone())
        ));
    }
    if let Some(text) = v.as_str() {
        let n = text.chars().count() as u64;
        if let Some(min) = s
            .get("minLength")
            .and_then(Value::as_u64)
            .filter(|&m| n < m)
        {
            return Err(format!(
                "Too small: expected string to have >={min} characters"
            ));
        }
        if let Some(max) = s
            .get("maxLength")
            .and_then(Value::as_u64)
            .filter(|&m| n > m)
        {
            return Err(format!(
                "Too big: expected string to have <={max} characters"
            ));
        }
        if s.get("format").and_then(Value::as_str) == Some("date-time")
            && chrono::DateTime::parse_from_rfc3339(text).is_err()
        {
            return Err("Invalid ISO datetime".into());
        }
    }
    if let Some(x) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64).filter(|&m| x < m) {
            return Err(format!("Too small: expected number to be >={min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64).filter(|&m| x > m) {
            return Err(format!("Too big: expected number to be <={max}"));
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(name: &str) -> Arc<Map<String, Value>> {
        definitions()
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .input_schema
            .clone()
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn validator_applies_each_declared_rule() {
        let todo = schema_of("todo.create");
        assert!(validate(&todo, &args(json!({"title": "x"}))).is_ok());
        assert!(validate(&todo, &args(json!({"title": "x", "dueDate": null}))).is_ok());
        assert!(
            validate(
                &todo,
                &args(json!({"title": "x", "dueDate": "2026-11-21T10:00:00Z"}))
            )
            .is_ok()
        );
        let e = validate(&todo, &args(json!({"title": ""}))).unwrap_err();
        assert_eq!(
            e,
            "Too small: expected string to have >=1 characters at title"
        );
        assert!(
            validate(&todo, &args(json!({})))
                .unwrap_err()
                .contains("Required at title")
        );
        assert!(validate(&todo, &args(json!({"title": "x", "priority": "meh"}))).is_err());
        assert!(validate(&todo, &args(json!({"title": "x", "dueDate": "tomorrow"}))).is_err());
        let mood = schema_of("mood.log");
        assert!(validate(&mood, &args(json!({"value": 10}))).is_ok());
        assert!(validate(&mood, &args(json!({"value": 11}))).is_err());
        assert!(validate(&mood, &args(json!({"value": 0}))).is_err());
        assert!(validate(&mood, &args(json!({"value": 2.5}))).is_err());
        assert!(validate(&mood, &args(json!({"value": "5"}))).is_err());
    }

    #[test]
    fn tool_names_are_dotted_and_unique() {
        let names: Vec<_> = definitions().iter().map(|t| t.name.clone()).collect();
        assert_eq!(names.len(), 11);
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), names.len());
        assert!(names.iter().all(|n| n.contains('.')));
    }
}
