//! The official Anthropic and OpenAI Python SDKs against the sandbox's LLM
//! routes (`tests/sdk/llm_{anthropic,openai}.py`): they parse every answer
//! (streamed and not, tool use, the rating turn) and raise their typed
//! `BadRequestError` / `AuthenticationError` with the real API's body for
//! every malformed request of `tests/sdk/llm_refusals.json`.
//!
//! Needs a Python with the `anthropic` and `openai` packages from PyPI:
//! `$MANA_SDK_PYTHON`, else `target/sdk/venv/bin/python` (where `.ci/run`
//! installs them beside the MCP SDK), else `python3`. Without them the test
//! fails with the install command; it never installs.

use std::path::PathBuf;
use std::process::Command;

use mana_sandbox::{Sandbox, SandboxOptions};
use serde_json::Value;

fn python() -> String {
    if let Ok(p) = std::env::var("MANA_SDK_PYTHON") {
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sdk/venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

fn require(module: &str) {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the {module} Python SDK is missing for {}: `{} -m pip install anthropic openai` \
         (.ci/run installs them into target/sdk/venv)",
        python(),
        python()
    );
}

async fn run(script: &str, module: &str) {
    require(module);
    let refusals = dir().join("llm_refusals.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&refusals).unwrap()).unwrap();
    let sb = Sandbox::start(SandboxOptions {
        llm_api_key: Some(doc["good_key"].as_str().unwrap().to_string()),
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts");
    let tools = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tools.path(), mana_sandbox::mcp::TOOLS_LIST_JSON).unwrap();
    let url = sb.url();
    let script_path = dir().join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(&script_path)
            .arg(&url)
            .arg(tools.path())
            .arg(&refusals)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    for needle in [
        "ok non-streamed day",
        "ok streamed day",
        "ok rating turn",
        "refusals as",
    ] {
        assert!(
            stdout.contains(needle),
            "{script}: no {needle:?} in\n{stdout}"
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn anthropic_python_sdk_plays_a_day_and_gets_every_refusal() {
    run("llm_anthropic.py", "anthropic").await;
}

#[tokio::test]
async fn openai_python_sdk_plays_a_day_and_gets_every_refusal() {
    run("llm_openai.py", "openai").await;
}
