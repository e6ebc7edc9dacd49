//! The layering of ARCHITECTURE.md as a test: a module may import only
//! modules of a lower layer. A lower module importing a higher one (or two
//! clients importing each other) is how a cycle starts, and then a change to
//! the command line ripples into the daemon, or the sandbox starts to agree
//! with the client. Reads `src/` of this repository only.
//!
//! Why a test and not `cargo modules`: it needs no install, runs with the
//! suite, and its table is the architecture's own statement, kept next to
//! the code it checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import modules of lower layers
/// only; modules in one layer do not import each other.
const LAYERS: &[&[&str]] = &[
    // leaves: no knowledge of anything else in the crate
    &["redact", "shutdown", "sse"],
    // shared helpers over the leaves
    &["password", "catalog", "http"],
    &["config"],
    // the clients and local state: they know nothing of each other
    &["platform", "mcp", "llm", "state"],
    &["metrics"],
    // what bridges clients, and what reads the state
    &["runner", "report"],
    &["doctor", "conformance"],
    // below both the command line and the daemon
    &["exit"],
    &["daemon"],
    &["cli"],
];

/// Imports within one layer that are allowed, each with its reason.
const SIDEWAYS: &[(&str, &str, &str)] = &[(
    "state",
    "platform",
    "the outbox stores the platform's batch shapes as they are posted",
)];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate's top-level modules a file's code names (`crate::x`, also
/// inside `use crate::{x, y::z}`), comments left out.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e}}`: the first segment of each item at depth 0
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphanumeric() || c == '_') => {
                        found.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn a_module_imports_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "src/{}: module `{module}` is in no layer of this test (add it to LAYERS and to ARCHITECTURE.md)",
                rel.display()
            ));
            continue;
        };
        for used in imports(&std::fs::read_to_string(file).unwrap()) {
            if used == module || used == "self" {
                continue;
            }
            let Some(theirs) = layer_of(&used) else {
                continue; // a macro or a type re-exported at the root
            };
            let sideways_ok = SIDEWAYS
                .iter()
                .any(|(from, to, _)| *from == module && *to == used);
            if theirs > own || (theirs == own && !sideways_ok) {
                problems.push(format!(
                    "src/{}: `{module}` (layer {own}) imports `{used}` (layer {theirs})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths_but_not_comments() {
    let found = imports(
        "use crate::{config::{Config, Need}, http};\nlet x = crate::state::now(); // crate::cli::run\n",
    );
    let want: BTreeSet<String> = ["config", "http", "state"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, want);
}
