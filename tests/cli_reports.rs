//! What a command tells its operator and its scripts: retries are visible
//! (a dead endpoint is never a silent wait), errors name method, URL and
//! cause without credentials, and every command that reports has `--json`
//! whose stdout parses — on success and on a fatal error alike.
//!
//! The real binary, in an isolated shell; a real sandbox where a platform is
//! needed, and `127.0.0.1:1` (nothing listens there) where none should be.

mod common;

use common::{Out, Shell, TEST_SEED_SECRET, catalog_emails, catalog_json};
use mana_sandbox::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};
use serde_json::Value;

/// A URL whose userinfo must never be printed, on a port nothing listens on.
const DEAD_USER: &str = "url-user-4d1e";
const DEAD_PASSWORD: &str = "url-PASSWORD-9c2f-never-shown";
const ADMIN_JWT: &str = "admin-JWT-5e7a-never-shown";

fn dead_url() -> String {
    format!("http://{DEAD_USER}:{DEAD_PASSWORD}@127.0.0.1:1")
}

/// A shell whose platform is the dead URL.
fn dead_shell() -> Shell {
    let mut sh = Shell::against(&dead_url(), ADMIN_JWT, "svc", TEST_SEED_SECRET);
    sh.set("MANA_API_URL", &dead_url());
    sh
}

fn catalog() -> String {
    catalog_json().display().to_string()
}

/// stdout as one JSON value, or a panic that shows both streams.
#[track_caller]
fn json(out: &Out) -> Value {
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e})\n--- stdout:\n{}\n--- stderr:\n{}",
            out.stdout, out.stderr
        )
    })
}

/// The object has exactly these keys.
#[track_caller]
fn keys(v: &Value, want: &[&str]) {
    let mut got: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    got.sort_unstable();
    let mut want = want.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{v:#}");
}

/// A fatal error under `--json`: `{"error", "exitCode"}` on stdout, the
/// exit code the same.
#[track_caller]
fn fatal(out: &Out, code: i32, says: &str) {
    out.expect_code(code);
    let v = json(out);
    keys(&v, &["error", "exitCode"]);
    assert_eq!(v["exitCode"], code, "{v}");
    assert!(v["error"].as_str().unwrap().contains(says), "{v}");
}

#[track_caller]
fn no_credentials(text: &str) {
    for secret in [DEAD_USER, DEAD_PASSWORD, ADMIN_JWT, TEST_SEED_SECRET] {
        assert!(!text.contains(secret), "{secret} was printed:\n{text}");
    }
}

async fn sandbox() -> (Sandbox, Shell) {
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let sh = Shell::against(&sb.url(), DEV_ADMIN_JWT, DEV_SERVICE_KEY, TEST_SEED_SECRET);
    (sb, sh)
}

// ------------------------------------------------------------- retries

/// `list` against a dead endpoint says each retry on stderr (without `-v`),
/// and the final error names method, URL and cause — never the URL's
/// userinfo or the admin JWT.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_endpoint_shows_each_retry_and_names_the_request() {
    let sh = dead_shell();
    let out = sh.run(&["list"]).await;
    out.expect_code(1);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let url = "http://<redacted>@127.0.0.1:1/api/v1/personas/admin";
    let retries: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("retrying"))
        .collect();
    assert_eq!(
        retries.len(),
        4,
        "five attempts, four retries:\n{}",
        out.stderr
    );
    for (i, line) in retries.iter().enumerate() {
        let want = format!("INFO retrying GET {url} ({}/5) in ", i + 2);
        assert!(line.contains(&want), "{want:?} not in {line:?}");
        assert!(line.ends_with(" s: connection refused"), "{line}");
    }
    let last = out.stderr.lines().last().unwrap_or_default();
    assert_eq!(last, format!("error: GET {url} → connection refused"));
    no_credentials(&sh.transcript());
}

/// `-q` silences the retry lines; `--json` still gets its JSON error; and
/// `seed` names the persona each retry is for, on stderr.
#[tokio::test(flavor = "multi_thread")]
async fn retries_respect_quiet_and_json() {
    let sh = dead_shell();
    let out = sh.run(&["-q", "list", "--json"]).await;
    fatal(
        &out,
        1,
        "GET http://<redacted>@127.0.0.1:1/api/v1/personas/admin → connection refused",
    );
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);

    // One persona: per-persona failures are the report, not a fatal error.
    let email = &catalog_emails(&catalog_json())[0];
    let out = sh
        .run(&["seed", "--catalog", &catalog(), "--only", email, "--json"])
        .await;
    out.expect_code(1);
    let want = format!(
        "↻ {email}: retrying POST http://<redacted>@127.0.0.1:1/api/v1/personas/admin (2/5) in "
    );
    assert!(
        out.stderr.contains(&want),
        "{want:?} not in:\n{}",
        out.stderr
    );
    let v = json(&out);
    assert_eq!(v["failed"], 1, "{v:#}");
    let error = v["personas"][0]["error"].as_str().unwrap();
    assert!(error.ends_with("→ connection refused"), "{error}");
    no_credentials(&sh.transcript());
}

/// Under `--log-format json` the retry lines are JSON log events like every
/// other stderr line.
#[tokio::test(flavor = "multi_thread")]
async fn retry_lines_follow_the_log_format() {
    let sh = dead_shell();
    let out = sh.run(&["--log-format", "json", "list"]).await;
    out.expect_code(1);
    let events: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"))
        })
        .collect();
    let retries: Vec<&Value> = events.iter().filter(|v| v["level"] == "INFO").collect();
    assert_eq!(retries.len(), 4, "{}", out.stderr);
    assert!(
        retries[0]["message"].as_str().unwrap().starts_with(
            "retrying GET http://<redacted>@127.0.0.1:1/api/v1/personas/admin (2/5) in "
        ),
        "{}",
        retries[0]
    );
    no_credentials(&sh.transcript());
}

// ----------------------------------------------------------------- seed

#[tokio::test(flavor = "multi_thread")]
async fn seed_json_reports_every_persona() {
    let (sb, sh) = sandbox().await;
    let emails = catalog_emails(&catalog_json());
    let top = [
        "endpoint", "dryRun", "total", "seeded", "failed", "notTried", "stopped", "personas",
    ];

    let out = sh
        .run(&["seed", "--catalog", &catalog(), "--dry-run", "--json"])
        .await;
    out.expect_code(0);
    let v = json(&out);
    keys(&v, &top);
    assert_eq!(v["dryRun"], true);
    assert_eq!(v["seeded"], 0);
    assert!(
        v["personas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "wouldSeed")
    );

    let out = sh.run(&["seed", "--catalog", &catalog(), "--json"]).await;
    out.expect_code(0);
    let v = json(&out);
    keys(&v, &top);
    assert_eq!(
        v["endpoint"],
        format!("{}/api/v1/personas/admin", sb.url()),
        "{v:#}"
    );
    assert_eq!(
        (v["total"].as_u64(), v["seeded"].as_u64()),
        (Some(14), Some(14))
    );
    assert_eq!(
        (v["failed"].as_u64(), v["notTried"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(v["stopped"].is_null());
    let personas = v["personas"].as_array().unwrap();
    let listed: Vec<&str> = personas
        .iter()
        .map(|p| p["email"].as_str().unwrap())
        .collect();
    assert_eq!(listed, emails, "catalog order");
    for p in personas {
        keys(p, &["email", "status", "userId"]);
        assert_eq!(p["status"], "seeded");
    }

    // Fatal: nothing was attempted.
    let out = sh
        .run(&["seed", "--catalog", "missing.json", "--json"])
        .await;
    fatal(&out, 2, "missing.json");

    // A refused admin JWT stops the run: not fatal, but said in `stopped`,
    // and no persona is counted as seeded.
    let refused = Shell::against(&sb.url(), "wrong", DEV_SERVICE_KEY, TEST_SEED_SECRET);
    let out = refused
        .run(&["seed", "--catalog", &catalog(), "--json"])
        .await;
    out.expect_code(1);
    let v = json(&out);
    keys(&v, &top);
    assert!(
        v["stopped"].as_str().unwrap().contains("15 minutes"),
        "{v:#}"
    );
    assert_eq!(
        (v["seeded"].as_u64(), v["notTried"].as_u64()),
        (Some(0), Some(14))
    );
    no_credentials(&sh.transcript());
    sb.shutdown().await;
}

// -------------------------------------------------------------- cleanup

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_json_reports_the_plan_and_what_was_deleted() {
    let (sb, sh) = sandbox().await;
    sh.run(&["seed", "--catalog", &catalog()])
        .await
        .expect_code(0);
    let top = [
        "onPlatform",
        "dryRun",
        "outcome",
        "planned",
        "deleted",
        "failed",
        "notDeleted",
        "stopped",
        "personas",
    ];

    // Fatal: no terminal to ask, no --yes.
    let out = sh.run(&["cleanup", "--json"]).await;
    fatal(&out, 2, "--yes");

    let out = sh.run(&["cleanup", "--json", "--dry-run"]).await;
    out.expect_code(0);
    let v = json(&out);
    keys(&v, &top);
    assert_eq!(v["outcome"], "dryRun");
    assert_eq!(
        (v["onPlatform"].as_u64(), v["planned"].as_u64()),
        (Some(14), Some(14))
    );
    assert_eq!(v["deleted"], 0);
    for p in v["personas"].as_array().unwrap() {
        keys(p, &["email", "userId", "inCatalog", "status"]);
        assert_eq!(p["status"], "wouldDelete");
    }
    assert!(
        out.stderr.contains("will delete 14 personas"),
        "{}",
        out.stderr
    );

    let out = sh.run(&["cleanup", "--json", "--yes"]).await;
    out.expect_code(0);
    let v = json(&out);
    keys(&v, &top);
    assert_eq!(v["outcome"], "done");
    assert_eq!(v["deleted"], 14, "{v:#}");
    assert!(
        v["personas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "deleted")
    );
    assert_eq!(sb.db().count("SELECT COUNT(*) FROM personas"), 0);

    let out = sh.run(&["cleanup", "--json", "--yes"]).await;
    out.expect_code(0);
    let v = json(&out);
    assert_eq!(v["outcome"], "nothingToDelete");
    assert_eq!(v["personas"], serde_json::json!([]));
    sb.shutdown().await;
}

// -------------------------------------------------------- catalog check

#[tokio::test(flavor = "multi_thread")]
async fn catalog_check_json_with_and_without_mcp() {
    let (sb, sh) = sandbox().await;
    let top = ["path", "ok", "personas", "archetypes", "warnings", "mcp"];
    let out = sh.run(&["catalog", "check", &catalog(), "--json"]).await;
    out.expect_code(0);
    let v = json(&out);
    keys(&v, &top);
    assert_eq!(v["ok"], true);
    assert_eq!(v["personas"], 14);
    assert!(v["mcp"].is_null());
    assert!(v["warnings"].is_array());

    sh.run(&["seed", "--catalog", &catalog()])
        .await
        .expect_code(0);
    let out = sh
        .run(&["catalog", "check", &catalog(), "--mcp", "--json"])
        .await;
    out.expect_code(0);
    let v = json(&out);
    keys(&v, &top);
    let mcp = &v["mcp"];
    keys(
        mcp,
        &[
            "url",
            "persona",
            "tools",
            "modules",
            "modulesWithoutTools",
            "unusedModules",
        ],
    );
    assert!(mcp["tools"].as_u64().unwrap() > 0, "{mcp:#}");
    assert_eq!(mcp["persona"], catalog_emails(&catalog_json())[0].as_str());

    // Fatal: an invalid catalog is a usage error, every problem named.
    let broken = sh.path("broken.json");
    std::fs::write(&broken, r#"{"personas": [{"email": "x"}]}"#).unwrap();
    let out = sh
        .run(&["catalog", "check", &broken.display().to_string(), "--json"])
        .await;
    fatal(&out, 2, "catalog is invalid");
    sb.shutdown().await;
}

/// `doctor` names the services it cannot reach by their URL without its
/// userinfo (it printed `MANA_AUTH_URL` as given).
#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_a_dead_service_without_its_credentials() {
    let sh = dead_shell();
    let out = sh.run(&["doctor"]).await;
    out.expect_code(1);
    assert!(
        out.stdout.contains(
            "cannot reach mana-auth at http://<redacted>@127.0.0.1:1: connection refused"
        ),
        "{}",
        out.stdout
    );
    no_credentials(&sh.transcript());
}

/// `doctor --json` and `report --format json` had JSON output but not the
/// JSON fatal error.
#[test]
fn doctor_and_report_json_fatal_errors_are_json() {
    let sh = Shell::new();
    let out = sh.run_blocking(&["doctor", "--json", "--config", "missing.toml"]);
    fatal(&out, 2, "missing.toml");
    let out = sh.run_blocking(&["report", "--format", "json", "--since", "soon"]);
    fatal(&out, 2, "soon");
}
