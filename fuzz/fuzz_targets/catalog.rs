//! The catalog loader (`catalog::parse`, and `catalog::validate_value` under
//! it): operators hand-edit this file, so every input must end in a catalog
//! or in a precise list of problems.
//!
//! Invariants: no panic; an accepted catalog is non-empty and every persona
//! obeys the contract's rules (email `…@mana.test` with one `@` and no
//! whitespace, unique case-insensitively and found by `by_email`; non-blank
//! name and archetype; prompt ≥ 20 characters; a non-empty moduleMix of finite
//! weights ≥ 0 under non-blank names), and it survives a trip through JSON;
//! a refusal lists at least one problem, every problem is one bounded line,
//! and a persona is kept exactly when no problem names its index.

#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mana_personas::catalog::{self, CatalogError, EMAIL_DOMAIN, MIN_PROMPT_CHARS, Problem};
use serde_json::Value;

/// A problem line carries at most two 80-character excerpts (escaped), a
/// field name and a number, so it stays far below this.
const MAX_PROBLEM_CHARS: usize = 2000;

fn check_problem(p: &Problem) {
    let line = p.to_string();
    assert!(
        !line.contains(['\n', '\r']),
        "problem spans lines: {line:?}"
    );
    assert!(
        line.chars().count() <= MAX_PROBLEM_CHARS,
        "problem line too long: {}",
        line.chars().count()
    );
    assert!(!p.message.is_empty());
}

fn close(a: f64, b: f64) -> bool {
    // serde_json parses floats to within an ulp unless `float_roundtrip` is on.
    a == b || (a - b).abs() <= a.abs().max(b.abs()) * 1e-15
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `catalog::load` refuses non-UTF-8 before parsing
    };
    let path = Path::new("fuzz.json");
    match catalog::parse(text, path) {
        Ok(c) => {
            assert!(!c.personas.is_empty(), "an empty catalog was accepted");
            let mut emails = HashSet::new();
            for p in &c.personas {
                assert!(p.email.ends_with(EMAIL_DOMAIN), "{:?}", p.email);
                assert_eq!(p.email.matches('@').count(), 1, "{:?}", p.email);
                assert!(!p.email.starts_with('@'));
                assert!(!p.email.chars().any(|c| c.is_whitespace() || c.is_control()));
                assert!(
                    emails.insert(p.email.to_lowercase()),
                    "duplicate email {:?}",
                    p.email
                );
                assert!(std::ptr::eq(
                    c.by_email(&p.email).expect("by_email finds it"),
                    p
                ));
                assert!(!p.name.trim().is_empty() && !p.archetype.trim().is_empty());
                assert!(p.system_prompt.chars().count() >= MIN_PROMPT_CHARS);
                assert!(!p.module_mix.is_empty());
                for (m, w) in &p.module_mix {
                    assert!(!m.trim().is_empty());
                    assert!(w.is_finite() && *w >= 0.0, "weight {w}");
                }
                let mut pref = p.preferred_modules();
                pref.sort();
                assert_eq!(pref, p.module_mix.keys().cloned().collect::<Vec<_>>());
            }
            for w in &c.warnings {
                check_problem(w);
            }
            // Writing the personas back out gives the same catalog.
            let again = serde_json::json!({ "personas": c.personas }).to_string();
            let c2 = catalog::parse(&again, path).expect("a written catalog loads");
            assert_eq!(c.personas.len(), c2.personas.len());
            for (a, b) in c.personas.iter().zip(&c2.personas) {
                assert_eq!(
                    (
                        &a.name,
                        &a.email,
                        &a.archetype,
                        &a.system_prompt,
                        a.tick_cadence
                    ),
                    (
                        &b.name,
                        &b.email,
                        &b.archetype,
                        &b.system_prompt,
                        b.tick_cadence
                    )
                );
                assert!(a.module_mix.keys().eq(b.module_mix.keys()));
                assert!(
                    a.module_mix
                        .values()
                        .zip(b.module_mix.values())
                        .all(|(x, y)| close(*x, *y))
                );
            }
        }
        Err(CatalogError::Json { line, message, .. }) => {
            assert!(line >= 1);
            assert!(!message.is_empty() && !message.contains('\n'));
        }
        Err(CatalogError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in &problems {
                check_problem(p);
            }
        }
        Err(CatalogError::Io { .. }) => panic!("parse does no I/O"),
    }

    // The walk itself: a persona is kept exactly when no error names it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let (personas, errors, warnings) = catalog::validate_value(&v);
        for p in errors.iter().chain(&warnings) {
            check_problem(p);
        }
        if let Some(Value::Array(list)) = v.get("personas") {
            let named: HashSet<usize> = errors.iter().filter_map(|p| p.index).collect();
            assert!(
                named.iter().all(|i| *i < list.len()),
                "problem index out of range"
            );
            assert_eq!(
                personas.len() + named.len(),
                list.len(),
                "kept personas and refused ones do not add up"
            );
        } else {
            assert!(personas.is_empty());
            assert!(!errors.is_empty());
        }
    }
});
