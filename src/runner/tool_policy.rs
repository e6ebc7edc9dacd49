//! Which of the platform's tools a persona may call, and which are offered to
//! the LLM.
//!
//! Why: the platform offers tools that cost money or reach outside the
//! persona's own data (`me.generateWithReference` generates images through a
//! paid service). Operators decide with `TOOLS_DENY` / `TOOLS_ALLOW` (glob
//! patterns on MCP names); a denied tool is never offered, and a call of one
//! anyway is refused here, before MCP. `TOOLS_OFFER=preferred` offers only the
//! persona's moduleMix modules plus [`CORE_TOOLS`], a cost lever (fewer tool
//! schemas in every request).
//!
//! Globs: `*` is any run of characters (dots included), `?` one character.
//! A dozen lines instead of `globset`/`wildmatch`: MCP names have no path
//! separators, so those crates' separator rules would only be something to
//! switch off, and the matcher is pinned by the tests below.

use std::collections::BTreeMap;

use crate::mcp::ToolInfo;

use super::tool_names::module_of;

/// Offered with `TOOLS_OFFER=preferred` whatever the persona's modules: what
/// a persona needs to find its way around.
pub const CORE_TOOLS: &[&str] = &["spaces.list"];

/// The default of `TOOLS_DENY` (defined with the setting).
pub const DEFAULT_DENY: &str = crate::config::keys::DEFAULT_TOOLS_DENY;

/// `TOOLS_OFFER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offer {
    /// Every permitted tool.
    #[default]
    All,
    /// The permitted tools of the persona's moduleMix modules plus [`CORE_TOOLS`].
    Preferred,
}

/// The operator's rules, from configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolPolicy {
    /// A tool matching any of these is denied.
    pub deny: Vec<String>,
    /// When non-empty, only tools matching one of these are permitted.
    pub allow: Vec<String>,
    pub offer: Offer,
}

/// Splits a setting's value into patterns: commas or whitespace between them.
pub fn patterns(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// `*` any run of characters, `?` exactly one; everything else literal.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point: linear for these patterns.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

impl ToolPolicy {
    /// The policy `cfg` describes (`TOOLS_DENY`, `TOOLS_ALLOW`, `TOOLS_OFFER`).
    pub fn from_config(cfg: &crate::config::Config) -> ToolPolicy {
        ToolPolicy {
            deny: patterns(&cfg.tools_deny),
            allow: patterns(&cfg.tools_allow),
            offer: match cfg.tools_offer.as_str() {
                "preferred" => Offer::Preferred,
                _ => Offer::All,
            },
        }
    }

    /// Why `mcp_name` may not be called, or `None` when it may.
    pub fn refusal(&self, mcp_name: &str) -> Option<String> {
        if let Some(p) = self.deny.iter().find(|p| glob(p, mcp_name)) {
            return Some(format!("denied by TOOLS_DENY pattern `{p}`"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| glob(p, mcp_name)) {
            return Some("not matched by any TOOLS_ALLOW pattern".to_string());
        }
        None
    }

    /// The tools of a tool list split into (permitted, denied) by the deny
    /// and allow rules, in list order. `doctor` prints both halves.
    pub fn partition<'a>(&self, tools: &'a [ToolInfo]) -> (Vec<&'a ToolInfo>, Vec<&'a ToolInfo>) {
        tools.iter().partition(|t| self.refusal(&t.name).is_none())
    }

    /// Whether a permitted tool is offered to a persona with `module_mix`
    /// (always, unless `TOOLS_OFFER=preferred`).
    pub fn offers(&self, mcp_name: &str, module_mix: &BTreeMap<String, f64>) -> bool {
        match self.offer {
            Offer::All => true,
            Offer::Preferred => {
                CORE_TOOLS.contains(&mcp_name)
                    || module_mix
                        .get(module_of(mcp_name))
                        .is_some_and(|w| *w > 0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> ToolInfo {
        ToolInfo {
            name: name.into(),
            description: "".into(),
            input_schema: serde_json::json!({"type": "object"}).into(),
        }
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("me.*", "me.generateWithReference"));
        assert!(glob("*.delete*", "todo.deleteAll"));
        assert!(glob("todo.?ist", "todo.list"));
        assert!(glob("*", "anything.at.all"));
        assert!(!glob("me.*", "meta.x"));
        assert!(!glob("todo.list", "todo.lists"));
        assert!(!glob("todo.lis?", "todo.lis"));
        assert!(glob("a*b*c", "a.x.b.y.c"));
        assert!(!glob("a*b*c", "a.x.b.y.d"));
    }

    #[test]
    fn deny_wins_over_allow_and_the_default_denies_the_paid_tool() {
        let p = ToolPolicy {
            deny: patterns(DEFAULT_DENY),
            ..Default::default()
        };
        let tools = [tool("todo.create"), tool("me.generateWithReference")];
        let (ok, denied) = p.partition(&tools);
        assert_eq!(ok.len(), 1);
        assert_eq!(denied[0].name, "me.generateWithReference");

        let p = ToolPolicy {
            deny: patterns("todo.complete"),
            allow: patterns("todo.*, spaces.list"),
            offer: Offer::All,
        };
        assert!(p.refusal("todo.create").is_none());
        assert!(p.refusal("todo.complete").unwrap().contains("TOOLS_DENY"));
        assert!(p.refusal("notes.create").unwrap().contains("TOOLS_ALLOW"));
    }

    #[test]
    fn preferred_offers_the_mix_and_the_core() {
        let p = ToolPolicy {
            offer: Offer::Preferred,
            ..Default::default()
        };
        let mix: BTreeMap<String, f64> = [("todo".to_string(), 0.5), ("mood".to_string(), 0.0)]
            .into_iter()
            .collect();
        assert!(p.offers("todo.create", &mix));
        assert!(p.offers("spaces.list", &mix));
        assert!(
            !p.offers("mood.log", &mix),
            "a zero weight is not a preference"
        );
        assert!(!p.offers("notes.create", &mix));
    }
}
