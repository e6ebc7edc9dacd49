//! The tool list: mana-mcp's real `tools/list` result, vendored in
//! `fixtures/mana-mcp-tools-list.json` and served as it is (names,
//! descriptions, input schemas), so a client tested here meets the platform's
//! 21 tools and nothing invented.
//!
//! One thing is lost on the way out: every real tool carries
//! `execution: {"taskSupport": "forbidden"}` (2025-11-25), a field rmcp 3.9's
//! `Tool` does not have. A client that omits `execution` treats tasks as
//! unsupported, which is what "forbidden" says.

use std::sync::LazyLock;

use rmcp::model::Tool;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The fixture, compiled in: the sandbox binary needs no data files.
pub const TOOLS_LIST_JSON: &str = include_str!("../../fixtures/mana-mcp-tools-list.json");

#[derive(Deserialize)]
struct ToolsList {
    tools: Vec<Tool>,
}

/// Every tool in the platform's order, parsed once.
pub fn tools() -> &'static [Tool] {
    static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
        serde_json::from_str::<ToolsList>(TOOLS_LIST_JSON)
            .expect("fixtures/mana-mcp-tools-list.json is a tools/list result")
            .tools
    });
    &TOOLS
}

/// The input schema of tool `name`, or `None` for a tool the platform lacks.
pub fn input_schema(name: &str) -> Option<&'static Map<String, Value>> {
    tools()
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.input_schema.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_21_dotted_tools_are_served_verbatim() {
        let raw: Value = serde_json::from_str(TOOLS_LIST_JSON).unwrap();
        let raw = raw["tools"].as_array().unwrap();
        assert_eq!(tools().len(), 21);
        assert_eq!(raw.len(), 21);
        for (t, r) in tools().iter().zip(raw) {
            assert_eq!(t.name, r["name"].as_str().unwrap());
            assert!(t.name.contains('.'), "{}", t.name);
            assert_eq!(t.description.as_deref(), r["description"].as_str());
            assert_eq!(Value::Object((*t.input_schema).clone()), r["inputSchema"]);
        }
        assert!(input_schema("mood.log").is_some());
        assert!(input_schema("mood.value").is_none());
    }
}
