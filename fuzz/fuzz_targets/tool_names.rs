//! The MCP ↔ LLM tool-name mapping (`runner::tool_names`): calling the wrong
//! tool silently is the one thing it must never do.
//!
//! Input: MCP tool names, one per line (a second copy of the list with every
//! `.` turned into `_` is tried too, to provoke collisions).
//!
//! Invariants: `ToolNames::build` refuses exactly when two distinct names
//! encode alike, naming two such names; otherwise every name maps to an LLM
//! name matching `^[a-zA-Z0-9_-]{1,64}$`, the LLM names are unique, and every
//! one maps back to its MCP name; names not in the set map to nothing.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use mana_personas::runner::tool_names::{MAX_LEN, ToolNames, encode, module_of};

fn legal(s: &str) -> bool {
    (1..=MAX_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check(names: &[&str]) {
    // The truth, by brute force: which encodings are shared by distinct names.
    let mut by_code: HashMap<String, &str> = HashMap::new();
    let mut clash = false;
    for n in names {
        let e = encode(n);
        assert!(legal(&e), "illegal encoding {e:?} of {n:?}");
        assert_eq!(e, encode(n), "encode is not deterministic");
        match by_code.get(&e) {
            Some(first) if first != n => clash = true,
            _ => {
                by_code.insert(e, n);
            }
        }
        let m = module_of(n);
        assert!(n.starts_with(m) && !m.contains('.'));
    }

    match ToolNames::build(names.iter().copied()) {
        Ok(t) => {
            assert!(
                !clash,
                "two names encode alike and build accepted them: {names:?}"
            );
            let mut seen: HashMap<&str, &str> = HashMap::new();
            for n in names {
                let e = t.llm_name(n).expect("every listed tool has an LLM name");
                assert!(legal(e), "{e:?}");
                assert_eq!(t.mcp_name(e), Some(*n), "{e:?} does not map back");
                if let Some(other) = seen.insert(e, n) {
                    assert_eq!(other, *n, "{other:?} and {n:?} share the LLM name {e:?}");
                }
            }
            // A name outside the set maps to nothing (unless it is in the set).
            let stranger = "\u{1F47E}.not-a-tool";
            if !names.contains(&stranger) {
                assert_eq!(t.llm_name(stranger), None);
            }
        }
        Err(c) => {
            assert!(
                clash,
                "refused a tool set without a collision: {names:?} ({c})"
            );
            assert_ne!(c.first, c.second);
            assert!(names.contains(&c.first.as_str()) && names.contains(&c.second.as_str()));
            assert_eq!(encode(&c.first), c.encoded);
            assert_eq!(encode(&c.second), c.encoded);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text.split('\n').collect();
    check(&names);
    let twins: Vec<String> = names.iter().map(|n| n.replace('.', "_")).collect();
    let both: Vec<&str> = names
        .iter()
        .copied()
        .chain(twins.iter().map(String::as_str))
        .collect();
    check(&both);
});
