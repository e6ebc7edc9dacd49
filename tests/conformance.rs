//! `conformance`, the real binary, against the sandbox: all checks pass on
//! the faithful twin, and breaking ONE contract behaviour in the sandbox
//! (`mana_sandbox::Breakage`) makes exactly the check that covers it fail,
//! by name, while the others still pass (or are skipped because they need
//! the failed one). The sandbox and the checks keep each other honest.

mod common;

use common::{Out, Shell, TEST_SEED_SECRET};
use mana_sandbox::{Breakage, DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};
use serde_json::Value;

/// Every check of a run with `llm=`, in the order the command runs them.
const CHECKS: &[&str] = &[
    "admin.upsert",
    "auth.login",
    "auth.wrong_password",
    "auth.spaces",
    "admin.upsert_idempotent",
    "admin.list",
    "admin.show",
    "admin.validation",
    "admin.bad_jwt",
    "internal.bad_service_key",
    "internal.due",
    "internal.actions",
    "internal.actions_idempotent",
    "internal.feedback",
    "internal.feedback_idempotent",
    "internal.empty_batch",
    "internal.unknown_persona",
    "mcp.initialize",
    "mcp.initialized",
    "mcp.tools_list",
    "mcp.tools_call",
    "mcp.tool_modules",
    "mcp.tool_answers",
    "mcp.delete",
    "mcp.deleted_session",
    "mcp.missing_bearer",
    "mcp.session_token",
    "llm.request",
    "cleanup.delete_persona",
];

async fn sandbox(breakage: Vec<Breakage>) -> Sandbox {
    Sandbox::start(SandboxOptions {
        breakage,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

fn shell(sb: &Sandbox) -> Shell {
    let mut sh = Shell::against(&sb.url(), DEV_ADMIN_JWT, DEV_SERVICE_KEY, TEST_SEED_SECRET);
    sh.set("ANTHROPIC_API_KEY", "sk-ant-conformance-test");
    sh
}

fn against(sb: &Sandbox) -> String {
    let u = sb.url();
    format!("auth={u},api={u},mcp={u},llm={u}")
}

/// Runs `conformance --json` and returns the report with the run's output.
async fn run_json(sb: &Sandbox) -> (Value, Out) {
    let sh = shell(sb);
    let out = sh
        .run(&["conformance", "--against", &against(sb), "--json"])
        .await;
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON report ({e}):\n{}\n{}",
            out.stdout, out.stderr
        )
    });
    (report, out)
}

fn by_status<'a>(report: &'a Value, status: &str) -> Vec<&'a str> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// No throw-away persona (nor its user) is left in the sandbox.
fn nothing_left(sb: &Sandbox) {
    assert_eq!(
        sb.db()
            .count("SELECT COUNT(*) FROM personas WHERE email LIKE 'conformance-%'"),
        0,
        "the throw-away persona was not deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_against_the_sandbox() {
    let sb = sandbox(Vec::new()).await;
    let (report, out) = run_json(&sb).await;
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, CHECKS, "{report:#}");
    assert_eq!(
        by_status(&report, "pass").len(),
        CHECKS.len(),
        "{report:#}\n{}",
        out.stderr
    );
    assert_eq!(report["ok"], true);
    out.expect_code(0);
    nothing_left(&sb);

    // The human form: one line per check, a ✓ on each, and a summary.
    let sh = shell(&sb);
    let human = sh.run(&["conformance", "--against", &against(&sb)]).await;
    human.expect_code(0);
    for name in CHECKS {
        assert!(
            human
                .stdout
                .lines()
                .any(|l| l.starts_with("✓ ") && l.contains(name)),
            "no ✓ line for {name}:\n{}",
            human.stdout
        );
    }
    assert!(
        human
            .stdout
            .contains(&format!("{} passed, 0 failed, 0 skipped", CHECKS.len())),
        "{}",
        human.stdout
    );
    nothing_left(&sb);
    sb.shutdown().await;
}

/// Breaks `breakage` and expects exactly `check` to fail; every skipped check
/// must say it needs a check that did not pass, everything else passes, and
/// the persona is deleted all the same.
async fn breaks_exactly(breakage: Breakage, check: &str, skipped: &[&str]) {
    let sb = sandbox(vec![breakage]).await;
    let (report, out) = run_json(&sb).await;
    out.expect_code(1);
    assert_eq!(report["ok"], false);
    assert_eq!(by_status(&report, "fail"), [check], "{report:#}");
    assert_eq!(by_status(&report, "skip"), skipped, "{report:#}");
    let failed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .unwrap();
    assert!(
        failed["expected"].as_str().is_some_and(|s| !s.is_empty())
            && failed["got"].as_str().is_some_and(|s| !s.is_empty()),
        "a failure says what was expected and what came: {failed:#}"
    );
    assert_eq!(
        by_status(&report, "pass").len(),
        CHECKS.len() - 1 - skipped.len(),
        "{report:#}"
    );
    assert!(by_status(&report, "pass").contains(&"cleanup.delete_persona"));
    nothing_left(&sb);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_access_token_fails_auth_login() {
    // No JWT: the space list and every MCP check that needs the persona's
    // JWT cannot run; the MCP check without a bearer still can.
    let mut skipped = vec!["auth.spaces"];
    skipped.extend(
        CHECKS
            .iter()
            .filter(|c| c.starts_with("mcp.") && **c != "mcp.missing_bearer"),
    );
    breaks_exactly(Breakage::LoginWithoutAccessToken, "auth.login", &skipped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_delete_202_fails_mcp_delete() {
    breaks_exactly(Breakage::McpDelete202, "mcp.delete", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_batches_that_duplicate_fail_the_idempotency_checks() {
    let sb = sandbox(vec![Breakage::NoIdempotency]).await;
    let (report, out) = run_json(&sb).await;
    out.expect_code(1);
    assert_eq!(
        by_status(&report, "fail"),
        [
            "internal.actions_idempotent",
            "internal.feedback_idempotent"
        ],
        "{report:#}"
    );
    assert_eq!(by_status(&report, "skip"), Vec::<&str>::new());
    let got = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "internal.actions_idempotent")
        .unwrap()["got"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(got.starts_with("4 rows"), "{got}");
    nothing_left(&sb);
    sb.shutdown().await;
}

#[test]
fn a_bad_against_or_missing_credentials_is_a_usage_error() {
    let sh = Shell::new();
    let out = sh.run_blocking(&["conformance", "--against", "auth=http://127.0.0.1:9"]);
    out.expect_code(2);
    assert!(out.stderr.contains("api=URL is missing"), "{}", out.stderr);

    let out = sh.run_blocking(&[
        "conformance",
        "--against",
        "auth=http://127.0.0.1:9,api=http://127.0.0.1:9,mcp=http://127.0.0.1:9",
    ]);
    out.expect_code(2);
    assert!(out.stderr.contains("MANA_ADMIN_JWT"), "{}", out.stderr);
    assert!(out.stderr.contains("MANA_SERVICE_KEY"), "{}", out.stderr);
}
