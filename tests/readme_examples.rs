//! Every command the README shows works as written: after the sandbox and a
//! `seed` of the shipped catalog, each one-shot `mana-personas …` line of the
//! README's shell blocks is run by the real binary, in an operator's shell
//! pointed at the sandbox, and must exit 0.
//!
//! Why: a new operator copies these lines first. An example naming a persona
//! the shipped catalog does not have, or a flag that no longer exists, fails
//! here instead of on their terminal.

mod common;

use common::{Shell, TEST_SEED_SECRET};
use mana_sandbox::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};

/// The README as shipped.
const README: &str = include_str!("../README.md");

/// Commands that do not end by themselves or need something the test does not
/// start: the daemon and the loop run until a signal, `sandbox` serves,
/// `demo` starts its own sandbox (covered by its own test), `pause`/`resume`
/// talk to a running daemon, `conformance` names a deployment by URL (its
/// own test, `tests/conformance.rs`, runs it against the sandbox).
fn long_running_or_external(args: &[String]) -> bool {
    let sub = args.first().map(String::as_str).unwrap_or("");
    match sub {
        "daemon" | "sandbox" | "demo" | "pause" | "resume" | "conformance" => true,
        "tick" => !args.iter().any(|a| a == "--once"),
        _ => false,
    }
}

/// The `mana-personas …` lines of the README's ```sh blocks, comments cut.
fn examples() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in README.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && (t == "```sh" || t == "```bash" || t == "```shell");
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = t.split(" #").next().unwrap_or("").trim();
        let Some(rest) = code.strip_prefix("mana-personas ") else {
            continue;
        };
        // A shell redirection is the operator's, not an argument.
        let args: Vec<String> = rest
            .split_whitespace()
            .take_while(|w| !w.starts_with('>') && !w.starts_with('|'))
            .map(str::to_string)
            .collect();
        if !long_running_or_external(&args) {
            out.push(args);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_example_runs_as_written() {
    let examples = examples();
    assert!(
        examples.len() >= 8,
        "the README's examples were not found: {examples:?}"
    );
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let url = sb.url();
    let mut sh = Shell::against(&url, DEV_ADMIN_JWT, DEV_SERVICE_KEY, TEST_SEED_SECRET);
    sh.set("ANTHROPIC_BASE_URL", &url)
        .set("ANTHROPIC_API_KEY", "sandbox-llm-key")
        .set("OPENAI_BASE_URL", &format!("{url}/v1"))
        .set("OPENAI_API_KEY", "sandbox-llm-key");
    // The examples name `catalog.json` in the working directory, as in a checkout.
    std::fs::copy(common::catalog_json(), sh.path("catalog.json")).expect("copy catalog");
    sh.run(&["seed", "--catalog", "catalog.json"])
        .await
        .expect_code(0);

    let mut failures = Vec::new();
    for args in &examples {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sh.run(&argv).await;
        if out.code != 0 {
            failures.push(format!(
                "`mana-personas {}` exited {}:\n{}",
                args.join(" "),
                out.code,
                common::cut_lines(&out.all(), 12)
            ));
        }
    }
    sb.shutdown().await;
    assert!(
        failures.is_empty(),
        "README examples that do not work as written:\n\n{}",
        failures.join("\n\n")
    );
}
