//! MCP tool names have dots (`todo.create`); both LLM APIs accept only
//! `^[a-zA-Z0-9_-]{1,64}$`. This maps every MCP name to an LLM-safe name and
//! back, exactly, and refuses a tool set where two names would collide —
//! silently calling the wrong tool is the one thing it must never do.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Longest name both providers accept.
pub const MAX_LEN: usize = 64;

/// The LLM-safe form of an MCP name: every character outside `[A-Za-z0-9_-]`
/// becomes `_`; a name longer than 64 keeps its first 55 characters plus `_`
/// and 8 hex chars of its SHA-256, so long names stay distinct.
pub fn encode(mcp_name: &str) -> String {
    let safe: String = mcp_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() {
        "_".to_string()
    } else {
        safe
    };
    if safe.len() <= MAX_LEN {
        return safe;
    }
    let digest = Sha256::digest(mcp_name.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}_{hex}", &safe[..MAX_LEN - 9])
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "MCP tools `{first}` and `{second}` both become `{encoded}` for the LLM; refusing an ambiguous tool set"
)]
pub struct Collision {
    pub first: String,
    pub second: String,
    pub encoded: String,
}

/// The two-way table for one session's tool set.
#[derive(Debug, Clone, Default)]
pub struct ToolNames {
    to_mcp: HashMap<String, String>,
    to_llm: HashMap<String, String>,
}

impl ToolNames {
    pub fn build<'a>(mcp_names: impl IntoIterator<Item = &'a str>) -> Result<ToolNames, Collision> {
        let mut t = ToolNames::default();
        for name in mcp_names {
            if t.to_llm.contains_key(name) {
                continue; // the same tool listed twice is not a collision
            }
            let enc = encode(name);
            if let Some(first) = t.to_mcp.get(&enc) {
                return Err(Collision {
                    first: first.clone(),
                    second: name.to_string(),
                    encoded: enc,
                });
            }
            t.to_mcp.insert(enc.clone(), name.to_string());
            t.to_llm.insert(name.to_string(), enc);
        }
        Ok(t)
    }

    /// The name shown to the LLM.
    pub fn llm_name(&self, mcp_name: &str) -> Option<&str> {
        self.to_llm.get(mcp_name).map(String::as_str)
    }

    /// The MCP name of a tool the LLM called; `None` for a name it invented.
    pub fn mcp_name(&self, llm_name: &str) -> Option<&str> {
        self.to_mcp.get(llm_name).map(String::as_str)
    }
}

/// The module of a tool: the MCP name's text before the first dot.
pub fn module_of(mcp_name: &str) -> &str {
    mcp_name.split('.').next().unwrap_or(mcp_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legal(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_LEN
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    #[test]
    fn dotted_names_map_both_ways() {
        let t = ToolNames::build(["todo.create", "notes.search", "newsResearch.list"]).unwrap();
        assert_eq!(t.llm_name("todo.create"), Some("todo_create"));
        assert_eq!(t.mcp_name("todo_create"), Some("todo.create"));
        assert_eq!(t.mcp_name("todo.create"), None, "only LLM names decode");
        assert_eq!(t.mcp_name("invented_tool"), None);
        assert_eq!(module_of("newsResearch.list"), "newsResearch");
    }

    #[test]
    fn collisions_are_refused_with_both_names() {
        let e = ToolNames::build(["todo.create", "todo_create"]).unwrap_err();
        assert_eq!(
            (e.first.as_str(), e.second.as_str(), e.encoded.as_str()),
            ("todo.create", "todo_create", "todo_create")
        );
        assert!(e.to_string().contains("todo.create") && e.to_string().contains("todo_create"));
    }

    #[test]
    fn long_names_stay_legal_and_distinct() {
        let a = format!("{}.a", "m".repeat(80));
        let b = format!("{}.b", "m".repeat(80));
        let t = ToolNames::build([a.as_str(), b.as_str()]).unwrap();
        let (ea, eb) = (t.llm_name(&a).unwrap(), t.llm_name(&b).unwrap());
        assert!(legal(ea) && legal(eb));
        assert_ne!(ea, eb);
    }

    proptest::proptest! {
        #[test]
        fn encoding_round_trips_or_refuses(names in proptest::collection::vec("[a-zA-Z0-9_.\\-/ äß]{1,90}", 1..12)) {
            match ToolNames::build(names.iter().map(String::as_str)) {
                Ok(t) => for n in &names {
                    let e = t.llm_name(n).unwrap();
                    proptest::prop_assert!(legal(e), "{e}");
                    proptest::prop_assert_eq!(t.mcp_name(e), Some(n.as_str()));
                },
                Err(c) => {
                    // A refusal names two different names that really collide.
                    proptest::prop_assert_ne!(&c.first, &c.second);
                    proptest::prop_assert_eq!(encode(&c.first), encode(&c.second));
                }
            }
        }

        /// Never collides silently: on alphabets small enough that collisions
        /// are common (`a.b` vs `a_b`, `/` vs ` `, and names around the
        /// 64-char hash cut), `build` refuses exactly when two distinct names
        /// share an encoding, and otherwise every LLM name is unique and maps
        /// back to its own MCP name.
        #[test]
        fn collisions_are_refused_never_silent(
            names in proptest::collection::vec(
                proptest::prop_oneof![
                    "[ab._/ ]{0,4}",
                    "[ab]{50,60}[._]?[ab]{0,12}",
                    "a{55}_[0-9a-f]{8}",
                ],
                1..10,
            )
        ) {
            let mut by_code: HashMap<String, &str> = HashMap::new();
            let mut clash = false;
            for n in &names {
                let e = encode(n);
                proptest::prop_assert!(legal(&e), "{e}");
                match by_code.get(&e) {
                    Some(first) if *first != n.as_str() => clash = true,
                    _ => {
                        by_code.insert(e, n);
                    }
                }
            }
            match ToolNames::build(names.iter().map(String::as_str)) {
                Ok(t) => {
                    proptest::prop_assert!(!clash, "accepted a colliding set: {names:?}");
                    let mut seen: HashMap<&str, &str> = HashMap::new();
                    for n in &names {
                        let e = t.llm_name(n).unwrap();
                        proptest::prop_assert_eq!(t.mcp_name(e), Some(n.as_str()));
                        if let Some(other) = seen.insert(e, n) {
                            proptest::prop_assert_eq!(other, n.as_str(), "shared LLM name {}", e);
                        }
                    }
                }
                Err(c) => {
                    proptest::prop_assert!(clash, "refused a set without a collision: {names:?}");
                    proptest::prop_assert!(names.contains(&c.first) && names.contains(&c.second));
                    proptest::prop_assert_eq!(encode(&c.first), c.encoded.clone());
                    proptest::prop_assert_eq!(encode(&c.second), c.encoded);
                }
            }
        }
    }
}
