//! The rating-answer parser (`runner::rating::parse`): whatever the model
//! wrote, the rows are valid for the platform.
//!
//! Input: the model's answer as text. An optional first line `#used: a,b,c`
//! sets the modules the persona used (default: a realistic set), so seeds stay
//! readable and the fuzzer can still vary the module list.
//!
//! Invariants: no panic; every rating in 1..=5; notes non-empty and at most
//! 1000 characters; either exactly one `__parse` row, or rows only for used
//! modules (spelled as in `used`), at most one per module; same answer twice,
//! same rows.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mana_personas::runner::rating::{NOTES_CHARS, PARSE_MODULE, parse};

const DEFAULT_USED: [&str; 7] = [
    "todo", "journal", "mood", "notes", "habits", "calendar", "Spaces",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the answer arrives as a Rust String: always UTF-8
    };
    let (used, answer): (Vec<String>, &str) = match text.strip_prefix("#used:") {
        Some(rest) => {
            let (line, answer) = rest.split_once('\n').unwrap_or((rest, ""));
            (line.split(',').map(str::to_string).collect(), answer)
        }
        None => (DEFAULT_USED.iter().map(|s| s.to_string()).collect(), text),
    };

    let rows = parse(answer, &used);
    for r in &rows {
        assert!(
            (1..=5).contains(&r.rating),
            "rating {} outside 1..=5",
            r.rating
        );
        if let Some(n) = &r.notes {
            assert!(!n.is_empty(), "empty notes kept");
            assert!(
                n.chars().count() <= NOTES_CHARS,
                "notes not cut: {}",
                n.chars().count()
            );
        }
    }
    let is_parse_row = rows.len() == 1
        && rows[0].module == PARSE_MODULE
        && !used.iter().any(|u| u == PARSE_MODULE);
    if !is_parse_row {
        assert!(rows.len() <= used.len());
        for (i, r) in rows.iter().enumerate() {
            assert!(
                used.contains(&r.module),
                "row for a module never used: {:?}",
                r.module
            );
            assert!(
                rows[..i].iter().all(|o| o.module != r.module),
                "two rows for {:?}",
                r.module
            );
        }
    }
    assert_eq!(rows, parse(answer, &used), "parse is not deterministic");
});
