//! One parsed copy of each tool's description and schema for the whole
//! process.
//!
//! Why: every persona lists the platform's tools, and the platform answers
//! every one of them with the same 21 schemas. Parsed per persona, those
//! schemas were the largest share of a waiting persona's memory (a third of
//! the heap at the peak, `heaptrack` on 512 personas in flight; BENCHMARKS.md
//! §3). Shared, a persona holds a name and two pointers per tool.
//!
//! Keyed by the tool's JSON as listed (name, description, schema), so a
//! platform that changes a schema gets a new entry, never a stale one. The
//! table is bounded: past [`MAX_ENTRIES`] (a platform whose schemas change on
//! every listing) it starts over, so it cannot grow without end.
//!
//! The schema's top-level `$schema` (mana-mcp's zod output declares draft-07
//! on every tool) is dropped here: it tells the model nothing, and as ~14
//! tokens per tool it was re-read from the cache on every turn (BENCHMARKS.md
//! §5). Nothing else in a schema or description is changed: those are the
//! platform's words.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::Value;

/// More tools than any platform lists; reached only if schemas keep changing.
const MAX_ENTRIES: usize = 1024;

/// A tool's description and input schema, shared by every persona that
/// listed the same tool.
pub(crate) type Shared = (Arc<str>, Arc<Value>);

static TABLE: LazyLock<Mutex<HashMap<String, Shared>>> = LazyLock::new(Default::default);

/// The shared description and schema of one `tools/list` entry.
pub(crate) fn intern(tool: &Value) -> Shared {
    let key = tool.to_string();
    let mut table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = table.get(&key) {
        return s.clone();
    }
    let shared: Shared = (
        tool.get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        Arc::new(match tool.get("inputSchema") {
            Some(Value::Object(o)) => {
                let mut o = o.clone();
                o.remove("$schema");
                Value::Object(o)
            }
            Some(other) => other.clone(),
            None => serde_json::json!({"type": "object"}),
        }),
    );
    if table.len() >= MAX_ENTRIES {
        table.clear();
    }
    table.insert(key, shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tool_is_one_allocation_and_a_changed_one_is_not() {
        let t = serde_json::json!({"name": "todo.create", "description": "Create",
            "inputSchema": {"type": "object", "properties": {"title": {"type": "string"}}}});
        let (d1, s1) = intern(&t);
        let (d2, s2) = intern(&t.clone());
        assert!(Arc::ptr_eq(&s1, &s2) && Arc::ptr_eq(&d1, &d2));
        assert_eq!(&*d1, "Create");
        assert_eq!(s1["properties"]["title"]["type"], "string");
        let mut changed = t.clone();
        changed["inputSchema"]["required"] = serde_json::json!(["title"]);
        let (_, s3) = intern(&changed);
        assert!(!Arc::ptr_eq(&s1, &s3));
        assert_eq!(s3["required"][0], "title");
    }

    #[test]
    fn the_dialect_declaration_is_dropped_and_nothing_else() {
        let schema = serde_json::json!({"type": "object",
            "properties": {"title": {"type": "string", "minLength": 1}},
            "required": ["title"], "additionalProperties": false});
        let mut listed = schema.clone();
        listed["$schema"] = "http://json-schema.org/draft-07/schema#".into();
        let (_, s) = intern(&serde_json::json!({"name": "x.dialect", "inputSchema": listed}));
        assert_eq!(*s, schema);
    }

    #[test]
    fn a_tool_without_a_schema_takes_any_object() {
        let (d, s) = intern(&serde_json::json!({"name": "x.none"}));
        assert_eq!(&*d, "");
        assert_eq!(*s, serde_json::json!({"type": "object"}));
    }
}
