//! The official MCP clients against the sandbox: the Python SDK (`mcp`) and
//! the TypeScript SDK (`@modelcontextprotocol/sdk`) run the scripts in
//! `tests/sdk/` against a real sandbox on loopback, as a persona signed in
//! through the sandbox's login. The sandbox must answer them as mana-mcp
//! does: every answer parsed, the platform's 21 tools in one page, the real
//! texts, DELETE accepted without a warning.
//!
//! The SDKs come from the registries, installed by `.ci/run` (never
//! vendored): `MANA_SDK_PYTHON` names a Python whose environment has `mcp`,
//! `MANA_SDK_NODE_PATH` a `node_modules` with the TypeScript SDK; without
//! them the test looks in `target/sdk/` (where `.ci/run` installs) and
//! otherwise FAILS with the install commands: a missing SDK is not a pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mana_sandbox::{DEV_ADMIN_JWT, Sandbox, SandboxOptions};
use serde_json::{Value, json};

const EMAIL: &str = "sdk-anna@mana.test";
const PASSWORD: &str = "sdk-password-1234";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const NPM_INSTALL: &str =
    "mkdir -p target/sdk/node && npm install --prefix target/sdk/node @modelcontextprotocol/sdk";

/// `env` if set, else `fallback` under the repository; it must exist.
fn sdk_path(env: &str, fallback: &str, install: &str) -> PathBuf {
    let (path, source) = match std::env::var_os(env) {
        Some(p) => (PathBuf::from(p), format!("{env} is set")),
        None => (repo().join(fallback), format!("{env} is not set")),
    };
    assert!(
        path.exists(),
        "{source} and {} does not exist: the SDK is not installed.\n\
         Run .ci/run (it installs it), or:\n  {install}\n(then unset {env} or point it there)",
        path.display()
    );
    path
}

fn python() -> PathBuf {
    sdk_path(
        "MANA_SDK_PYTHON",
        "target/sdk/venv/bin/python",
        "python3 -m venv target/sdk/venv && target/sdk/venv/bin/pip install mcp",
    )
}

fn node_modules() -> PathBuf {
    let dir = sdk_path(
        "MANA_SDK_NODE_PATH",
        "target/sdk/node/node_modules",
        NPM_INSTALL,
    );
    assert!(
        dir.join("@modelcontextprotocol/sdk").exists(),
        "{} has no @modelcontextprotocol/sdk: the SDK is not installed.\n\
         Run .ci/run (it installs it), or:\n  {NPM_INSTALL}",
        dir.display()
    );
    dir
}

/// A sandbox with one persona, seeded through the admin endpoint and signed
/// in through the login: its token and personal space.
async fn persona_sandbox() -> (Sandbox, String, String) {
    let sb = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let http = reqwest::Client::new();
    let seeded = http
        .post(format!("{}/api/v1/personas/admin", sb.url()))
        .bearer_auth(DEV_ADMIN_JWT)
        .json(&json!({
            "email": EMAIL, "name": "Anna", "password": PASSWORD, "archetype": "sdk",
            "systemPrompt": "Du bist Anna und probierst die Mana-App aus.",
            "moduleMix": {"todo": 1.0, "mood": 0.5},
        }))
        .send()
        .await
        .unwrap();
    assert!(seeded.status().is_success(), "seed: {}", seeded.status());
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", sb.url()))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"]
        .as_str()
        .or(login["token"].as_str())
        .unwrap_or_else(|| panic!("no token in {login}"))
        .to_string();
    // The space list takes the session token (mana-auth's bearer plugin);
    // MCP takes only the JWT.
    let session_token = login["token"].as_str().unwrap_or_default().to_string();
    let orgs: Value = http
        .get(format!("{}/api/auth/organization/list", sb.url()))
        .bearer_auth(&session_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let space = orgs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["metadata"]
                .as_str()
                .is_some_and(|m| m.contains("personal"))
        })
        .and_then(|o| o["id"].as_str())
        .unwrap_or_else(|| panic!("no personal space in {orgs}"))
        .to_string();
    (sb, token, space)
}

/// Runs a script, returns the JSON it printed.
async fn run(mut cmd: tokio::process::Command, what: &str) -> Value {
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 120 s"))
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{stdout}\n{stderr}"))
}

fn platform_tool_names() -> Value {
    let v: Value = serde_json::from_str(mana_sandbox::mcp::TOOLS_LIST_JSON).unwrap();
    v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect()
}

/// What both SDKs must have seen.
fn assert_sdk_run(what: &str, out: &Value, sb: &Sandbox) {
    assert_eq!(out["warnings"], json!([]), "{what}: {out:#}");
    assert_eq!(out["tools"], platform_tool_names(), "{what}");
    assert_eq!(out["nextCursor"], Value::Null, "{what}");
    // Both SDKs ask for the newest handshake revision: priming events included.
    assert_eq!(out["protocolVersion"], "2025-11-25", "{what}");

    assert_eq!(out["valid"]["isError"], false, "{what}: {out:#}");
    let task: Value = serde_json::from_str(out["valid"]["texts"][0].as_str().unwrap()).unwrap();
    assert_eq!(task["task"]["title"], "Einkaufen", "{what}");
    assert_eq!(out["invalid"]["isError"], true, "{what}");
    let invalid = out["invalid"]["texts"][0].as_str().unwrap();
    assert!(
        invalid.starts_with(
            "MCP error -32602: Input validation error: Invalid arguments for tool mood.log: \
             Number must be less than or equal to 10 at level\nInvalid enum value. Expected 'happy'"
        ),
        "{what}: {invalid}"
    );
    assert_eq!(
        out["unknown"],
        json!({"isError": true, "texts": ["MCP error -32602: Tool nope.nope not found"]}),
        "{what}"
    );
    // Closed with a DELETE the SDK accepted.
    let exchanges = out["exchanges"].as_array().unwrap();
    assert_eq!(
        exchanges.last(),
        Some(&json!(["DELETE", "", 200])),
        "{what}: {exchanges:?}"
    );
    assert!(
        exchanges.contains(&json!(["POST", "notifications/initialized", 202])),
        "{what}: {exchanges:?}"
    );
    // The valid call landed in the persona's data.
    assert_eq!(
        sb.db()
            .count("SELECT COUNT(*) FROM mcp_items WHERE kind = 'todo'"),
        1,
        "{what}"
    );
}

#[tokio::test]
async fn mcp_python_sdk_client_parses_every_answer() {
    let python = python();
    let (sb, token, space) = persona_sandbox().await;
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(repo().join("tests/sdk/mcp_python.py"))
        .arg(format!("{}/mcp", sb.url()))
        .arg(&token)
        .arg(&space);
    let out = run(cmd, "MCP Python SDK").await;
    assert_sdk_run("MCP Python SDK", &out, &sb);
    // A 2026-07-28 client probes server/discover first and falls back to
    // initialize on the SDK's 400, as against the platform.
    assert_eq!(
        out["exchanges"][0],
        json!(["POST", "server/discover", 400]),
        "{out:#}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn mcp_typescript_sdk_client_parses_every_answer() {
    let node_path = node_modules();
    let (sb, token, space) = persona_sandbox().await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.env("NODE_PATH", &node_path)
        .arg(repo().join("tests/sdk/mcp_ts.mjs"))
        .arg(format!("{}/mcp", sb.url()))
        .arg(&token)
        .arg(&space);
    let out = run(cmd, "MCP TypeScript SDK").await;
    assert_sdk_run("MCP TypeScript SDK", &out, &sb);
    assert_eq!(out["terminated"], true, "{out:#}");
    sb.shutdown().await;
}
