//! `trace` on the ledger of a real tick against the sandbox: the story has
//! the prompt, each model turn, each tool call with its arguments and
//! latency, the rating turn and the posted row ids (the platform's own); once
//! the transcript is pruned, the summary alone is told and the story says so.

#[path = "common/tick.rs"]
mod common;

use std::path::Path;

use common::{Seed, actions_of, feedback_of};
use mana_personas::state::State;

fn trace(state: &Path, args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mana-personas"))
        .env_clear()
        .env("HOME", home.path())
        .current_dir(home.path())
        .arg("trace")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_tells_a_real_tick_and_then_its_summary() {
    let sb = common::sandbox(None).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = common::config(&sb.url(), &state, &[]);
    let email = "trace.me@mana.test";
    let ids = common::seed(&cfg, &[Seed::daily(email, "")]).await;
    let r = common::runner(&cfg);
    let s = common::run_once(&r).await;
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    let tick_id = s.reports[0].tick_id.clone();
    let rows = actions_of(&sb, &ids[email]);
    let ratings = feedback_of(&sb, &ids[email]);
    assert!(!rows.is_empty() && !ratings.is_empty());

    let (code, story, err) = tokio::task::spawn_blocking({
        let state = state.clone();
        move || trace(&state, &[email])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        story.contains(&format!("persona tick {tick_id}")),
        "{story}"
    );
    assert!(
        story.contains("system prompt: You are a test persona"),
        "{story}"
    );
    assert!(story.contains("prompt:\n"), "{story}");
    assert!(story.contains("model turn 1 ("), "{story}");
    assert!(story.contains("rating turn:"), "{story}");
    // Every posted row, by the id the platform gives it, with its call's
    // arguments told above.
    for (i, (tool, ..)) in rows.iter().enumerate() {
        assert!(
            story.contains(&format!("  {tick_id}-{i}-{tool} ")),
            "row {i} {tool} missing:\n{story}"
        );
        assert!(story.contains(&format!("→ {tool} #{i} ")), "{story}");
    }
    assert!(story.contains(", arguments {"), "{story}");
    for (_, module, rating, _) in &ratings {
        assert!(story.contains(&format!("  {module} {rating}★")), "{story}");
    }
    assert!(story.contains("tokens: input "), "{story}");
    assert!(!story.contains("has been pruned"));

    // --json: the summary agrees with the platform's rows.
    let (code, json, err) = tokio::task::spawn_blocking({
        let (state, tick_id) = (state.clone(), tick_id.clone());
        move || trace(&state, &[&tick_id, "--json"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["pruned"], false);
    assert_eq!(
        v[0]["summary"]["calls"].as_array().unwrap().len(),
        rows.len()
    );
    assert_eq!(v[0]["summary"]["archetype"], "test");
    // The default model, whatever it is today (the test configures none).
    assert_eq!(
        v[0]["summary"]["model"],
        mana_personas::llm::anthropic::DEFAULT_MODEL
    );

    // The transcript pruned: the summary alone, said so.
    drop(r);
    let st = State::open(&state).unwrap();
    assert_eq!(
        st.ledger_prune(1, chrono::Utc::now() + chrono::Duration::days(2))
            .unwrap(),
        1
    );
    drop(st);
    let (code, story, err) = tokio::task::spawn_blocking({
        let state = state.clone();
        move || trace(&state, &[email])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(story.contains("has been pruned"), "{story}");
    for (i, (tool, ..)) in rows.iter().enumerate() {
        assert!(
            story.contains(&format!("  {tick_id}-{i}-{tool}\n")),
            "{story}"
        );
    }

    let (code, _, err) = tokio::task::spawn_blocking({
        let state = state.clone();
        move || trace(&state, &["nobody@mana.test"])
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("no persona tick of nobody@mana.test"), "{err}");
}
