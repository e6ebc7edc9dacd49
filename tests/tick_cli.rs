//! `mana-personas tick --once`, the real binary, against a sandbox started in
//! this test process: the JSON summary, exit codes, sharding, and a SIGKILL
//! between the LLM work and the POST that must lose nothing.

#[path = "common/tick.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Seed, json_stdout as summary_of, output, requests_seen};
use mana_sandbox::{Fault, FaultKind, RouteGroup, Sandbox};
use serde_json::Value;

/// The binary with a clean environment pointing at `url`; state under `home`.
fn tick_cmd(url: &str, home: &Path, extra_env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut all = vec!["tick", "--once"];
    all.extend_from_slice(args);
    let mut c = common::binary(url, home, &all);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c
}

struct Env {
    sb: Sandbox,
    home: tempfile::TempDir,
    ids: BTreeMap<String, String>,
}

async fn setup(seeds: &[Seed], db: Option<PathBuf>) -> Env {
    let sb = common::sandbox(db).await;
    let home = tempfile::tempdir().unwrap();
    // Only used to seed: same URLs and (dev) seed secret the binary derives with.
    let cfg = common::config(&sb.url(), &home.path().join("seed-state"), &[]);
    let ids = common::seed(&cfg, seeds).await;
    Env { sb, home, ids }
}

/// [`setup`] with a model that takes `llm_latency_ms` per answer: a run that
/// is still in its persona ticks when the test acts on it.
async fn setup_slow_llm(llm_latency_ms: u64, seeds: &[Seed]) -> Env {
    let sb = Sandbox::start(mana_sandbox::SandboxOptions {
        llm_latency_ms,
        ..mana_sandbox::SandboxOptions::default()
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let cfg = common::config(&sb.url(), &home.path().join("seed-state"), &[]);
    let ids = common::seed(&cfg, seeds).await;
    Env { sb, home, ids }
}

/// Every actions POST is answered 503 (until the faults are cleared): the
/// tick's batches stay in the outbox.
fn refuse_actions(sb: &Sandbox) {
    sb.faults().push(Fault {
        route: RouteGroup::Internal,
        kind: FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        count: 1000,
        path_contains: Some("/actions".into()),
    });
}

fn seeds(n: usize, directive: &str) -> Vec<Seed> {
    (0..n)
        .map(|i| Seed::daily(&format!("cli.p{i}@mana.test"), directive))
        .collect()
}

/// The platform will refuse `email`'s login from now on (its password changed).
fn refuse_login(sb: &Sandbox, email: &str) {
    sb.db()
        .call(|c| {
            c.execute(
                "UPDATE users SET password_hash = 'changed' WHERE email = ?1",
                [email],
            )
        })
        .unwrap();
}

/// Test 11a: `--json` prints one JSON object with the documented keys; exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_summary_has_every_key_and_exit_0() {
    let env = setup(&seeds(2, "[sandbox:tools=2]"), None).await;
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["--json"])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary_of(&o);
    for k in [
        "due",
        "ran",
        "ok",
        "failed",
        "skipped",
        "actions",
        "actionErrors",
        "ratings",
        "tokens",
        "durationMs",
    ] {
        assert!(s.get(k).is_some(), "key {k} missing in {s}");
    }
    for k in ["input", "output", "cacheRead", "cacheWrite"] {
        assert!(s["tokens"][k].is_u64(), "tokens.{k} in {s}");
    }
    assert_eq!(s["due"], 2);
    assert_eq!(s["ran"], 2);
    assert_eq!(s["ok"], 2);
    assert_eq!(s["failed"], serde_json::json!([]));
    assert_eq!(s["actions"], 4);
    assert!(s["tokens"]["input"].as_u64().unwrap() > 0);
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 4);
}

/// Test 11b: a persona that fails makes the tick exit 1, still with a summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_persona_exits_1() {
    let env = setup(&seeds(2, "[sandbox:tools=1]"), None).await;
    refuse_login(&env.sb, "cli.p0@mana.test");
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["--json"])).await;
    assert_eq!(o.status.code(), Some(1));
    let s = summary_of(&o);
    assert_eq!(s["ok"], 1);
    assert_eq!(s["failed"][0]["persona"], "cli.p0@mana.test");
    // The failure keeps where it stopped (issue 12): a refused login.
    assert_eq!(s["failed"][0]["stage"], "sign_in", "{s}");
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 1);
}

/// The failure's stage comes from what failed, not from the error's words:
/// a refused login is `sign_in` even when the email says "space", a persona
/// without a space is `spaces` (the same sign-in call finds both), and a
/// refused MCP initialize or model call is `mcp` or `llm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_stage_is_what_failed() {
    let seeds = [
        Seed::daily("cli.spacey@mana.test", "[sandbox:tools=1]"),
        Seed::daily("cli.homeless@mana.test", "[sandbox:tools=1]"),
        Seed::daily("cli.p1@mana.test", "[sandbox:tools=1]"),
    ];
    let env = setup(&seeds, None).await;
    refuse_login(&env.sb, "cli.spacey@mana.test");
    env.sb
        .db()
        .call(|c| {
            c.execute(
                "DELETE FROM members WHERE user_id = (SELECT id FROM users WHERE email = 'cli.homeless@mana.test')",
                [],
            )
        })
        .unwrap();
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["--json"])).await;
    assert_eq!(o.status.code(), Some(1));
    let s = summary_of(&o);
    let stage = |email: &str| {
        s["failed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["persona"] == email)
            .map(|f| f["stage"].clone())
    };
    assert_eq!(stage("cli.spacey@mana.test").unwrap(), "sign_in", "{s}");
    assert_eq!(stage("cli.homeless@mana.test").unwrap(), "spaces", "{s}");

    // Later steps, one refusal each (a 400 is not retried): the MCP server
    // refuses initialize, then the model refuses the first main turn.
    for (route, stage) in [(RouteGroup::Mcp, "mcp"), (RouteGroup::Llm, "llm")] {
        env.sb.faults().push(Fault {
            route,
            kind: FaultKind::Status {
                status: 400,
                retry_after: None,
            },
            count: 1,
            path_contains: None,
        });
        let args = ["--json", "--force", "--persona", "cli.p1@mana.test"];
        let admin = [("MANA_ADMIN_JWT", mana_sandbox::DEV_ADMIN_JWT)];
        let o = output(tick_cmd(&env.sb.url(), env.home.path(), &admin, &args)).await;
        assert_eq!(
            o.status.code(),
            Some(1),
            "{route:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let s = summary_of(&o);
        assert_eq!(s["failed"][0]["persona"], "cli.p1@mana.test", "{s}");
        assert_eq!(s["failed"][0]["stage"], stage, "{s}");
    }
}

/// A tick whose rows stayed in the outbox is not a clean success: exit 3,
/// the summary says how many batches wait, and the next tick posts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_batches_exit_3_and_the_next_tick_posts_them() {
    let env = setup(&seeds(1, "[sandbox:tools=1]"), None).await;
    refuse_actions(&env.sb);
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["--json"])).await;
    let s = summary_of(&o);
    assert_eq!(
        o.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(s["failed"], serde_json::json!([]), "{s}");
    assert!(s["outboxPending"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 0);

    env.sb.faults().clear();
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["--json"])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(summary_of(&o)["outboxPending"], 0);
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 1);
}

/// `-q`: the summary (the answer) and nothing else on stdout — no per-persona
/// lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_prints_only_the_summary() {
    let env = setup(&seeds(2, "[sandbox:tools=1]"), None).await;
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["-q"])).await;
    assert_eq!(o.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("tick: 2 due, 2 ran"), "{stdout}");
    assert!(!stdout.contains('✓'), "{stdout}");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `--persona X --force` runs X although the platform does not list it as due
/// (it ran a moment ago); a persona the platform does not have is an error,
/// not a skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_persona_runs_when_not_due_and_an_unknown_one_is_an_error() {
    let env = setup(&seeds(2, "[sandbox:tools=1]"), None).await;
    let url = env.sb.url();
    let admin = [("MANA_ADMIN_JWT", mana_sandbox::DEV_ADMIN_JWT)];
    let o = output(tick_cmd(&url, env.home.path(), &[], &["--json"])).await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 2);

    // Not due any more: without --force it is skipped, saying why.
    let args = ["--json", "--persona", "cli.p0@mana.test"];
    let o = output(tick_cmd(&url, env.home.path(), &admin, &args)).await;
    let s = summary_of(&o);
    assert_eq!(s["ran"], 0, "{s}");
    assert!(
        s["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("--force"),
        "{s}"
    );

    let args = ["--json", "--persona", "cli.p0@mana.test", "--force"];
    let o = output(tick_cmd(&url, env.home.path(), &admin, &args)).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary_of(&o);
    assert_eq!(
        (s["ran"].as_u64(), s["ok"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let id = &env.ids["cli.p0@mana.test"];
    let ticks = env.sb.db().count(&format!(
        "SELECT COUNT(DISTINCT tick_id) FROM persona_actions WHERE persona_id = '{id}'"
    ));
    assert_eq!(ticks, 2, "the forced run is a second tick of cli.p0");

    let args = ["--persona", "nobody@mana.test", "--force"];
    let o = output(tick_cmd(&url, env.home.path(), &admin, &args)).await;
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("nobody@mana.test") && stderr.contains("no such persona"),
        "{stderr}"
    );
}

/// A log line written while a persona is in flight (here the LLM client's
/// retry) carries that persona and its tick id, so it can be tied to one of
/// many personas in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_of_a_persona_carry_its_email_and_tick_id() {
    let env = setup(&seeds(2, "[sandbox:tools=1]"), None).await;
    env.sb.faults().push(Fault {
        route: RouteGroup::Llm,
        kind: FaultKind::Status {
            status: 529,
            retry_after: None,
        },
        count: 1,
        path_contains: None,
    });
    let o = output(tick_cmd(
        &env.sb.url(),
        env.home.path(),
        &[("PERSONA_CONCURRENCY", "2")],
        &["--json", "--log-format", "json"],
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(summary_of(&o)["ok"], 2);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let retry: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "LLM call failed, retrying")
        .unwrap_or_else(|| panic!("no retry line in:\n{stderr}"));
    let span = &retry["span"];
    assert_eq!(span["name"], "persona", "{retry}");
    let email = span["persona"].as_str().unwrap_or_default();
    assert!(
        email.starts_with("cli.p") && email.ends_with("@mana.test"),
        "{retry}"
    );
    let tick_id = span["tick_id"].as_str().unwrap_or_default();
    let owner = env.sb.db().count(&format!(
        "SELECT COUNT(*) FROM persona_actions a JOIN personas p ON p.user_id = a.persona_id
         WHERE a.tick_id = '{tick_id}' AND p.email = '{email}'"
    ));
    assert_eq!(
        owner, 1,
        "the span's tick id is that persona's tick: {retry}"
    );
}

/// Test 11c: a bad configuration exits 2 before doing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_exits_2() {
    let env = setup(&seeds(1, "[sandbox:tools=1]"), None).await;
    let o = output(tick_cmd(
        &env.sb.url(),
        env.home.path(),
        &[("PERSONA_CONCURRENCY", "0")],
        &["--json"],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("PERSONA_CONCURRENCY") || err.contains("concurrency"),
        "the message names the setting: {err}"
    );
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM llm_requests"), 0);
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 0);
}

/// Test 11d: `--shard 0/2` and `--shard 1/2` together run every due persona
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_cover_every_persona_once() {
    let env = setup(&seeds(6, "[sandbox:tools=1]"), None).await;
    let url = env.sb.url();
    let mut ran = 0;
    for shard in ["0/2", "1/2"] {
        let o = output(tick_cmd(
            &url,
            env.home.path(),
            &[],
            &["--json", "--shard", shard],
        ))
        .await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{shard}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        ran += summary_of(&o)["ran"].as_u64().unwrap();
    }
    assert_eq!(ran, 6);
    let per_persona: Vec<(String, i64, i64)> = env
        .sb
        .db()
        .call(|c| {
            let mut st = c.prepare(
                "SELECT persona_id, COUNT(*), COUNT(DISTINCT tick_id) FROM persona_actions GROUP BY persona_id",
            )?;
            st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    let covered: BTreeSet<String> = per_persona.iter().map(|p| p.0.clone()).collect();
    let all: BTreeSet<String> = env.ids.values().cloned().collect();
    assert_eq!(covered, all);
    assert!(
        per_persona.iter().all(|p| p.1 == 1 && p.2 == 1),
        "each persona ran once: {per_persona:?}"
    );
}

/// Test 8: SIGKILL after the rows are in the outbox but before the platform
/// answered the POST; the next `tick --once` delivers them, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_between_llm_work_and_post_loses_nothing() {
    let dbdir = tempfile::tempdir().unwrap();
    let env = setup(
        &seeds(2, "[sandbox:tools=3]"),
        Some(dbdir.path().join("sandbox.db")),
    )
    .await;
    let url = env.sb.url();
    env.sb.faults().push(Fault {
        route: RouteGroup::Internal,
        kind: FaultKind::Delay { ms: 20_000 },
        count: 10,
        path_contains: Some("/actions".into()),
    });
    let mut child = tick_cmd(
        &url,
        env.home.path(),
        &[("PERSONA_CONCURRENCY", "2")],
        &["--json"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn tick");

    // Wait (bounded) until both personas' actions batches are in the outbox.
    let state_db = env.home.path().join("state").join("state.db");
    let deadline = Instant::now() + Duration::from_secs(15);
    let queued: Vec<(String, String, i64)> = loop {
        assert!(
            Instant::now() < deadline,
            "the outbox never held both batches"
        );
        if let Some(child_status) = child.try_wait().unwrap() {
            panic!("tick ended before the kill: {child_status}");
        }
        let rows = state_db.exists().then(|| {
            rusqlite::Connection::open(&state_db).and_then(|c| {
                c.busy_timeout(Duration::from_secs(1))?;
                let mut st = c.prepare(
                    "SELECT persona_id, tick_id, rows FROM outbox WHERE kind = 'actions' ORDER BY id",
                )?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
        });
        match rows {
            Some(Ok(r)) if r.len() == 2 => break r,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    env.sb.faults().clear();
    // The killed run posted nothing yet (its POSTs are stuck in the delay).
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 0);

    let o = output(tick_cmd(&url, env.home.path(), &[], &["--json"])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary_of(&o);
    assert_eq!(s["outboxDelivered"].as_u64(), Some(4), "{s}");
    assert_eq!(s["outboxPending"].as_u64(), Some(0), "{s}");
    assert_eq!(s["ran"], 0, "the delivered personas are no longer due: {s}");

    let persona_ids: BTreeSet<String> = queued.iter().map(|q| q.0.clone()).collect();
    assert_eq!(persona_ids, env.ids.values().cloned().collect());
    for (persona, tick, rows) in &queued {
        let n = env.sb.db().count(&format!(
            "SELECT COUNT(*) FROM persona_actions WHERE persona_id = '{persona}' AND tick_id = '{tick}'"
        ));
        assert_eq!(n, *rows, "{persona}: rows of tick {tick}");
        assert!(*rows > 0);
    }
    let total: i64 = queued.iter().map(|q| q.2).sum();
    assert_eq!(
        env.sb.db().count("SELECT COUNT(*) FROM persona_actions"),
        total
    );
    let outbox_left: i64 = rusqlite::Connection::open(&state_db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(outbox_left, 0);
    // The sandbox is not shut down: its delayed handlers of the killed run
    // would hold a graceful shutdown for 20 s. The runtime drops them.
}

/// The tool calls the sandbox's MCP ran for `user_id`, as (tool, input hash)
/// with how many times each: the hash the runner puts into the call's row.
fn mcp_calls_of(sb: &Sandbox, user_id: &str) -> BTreeMap<(String, String), usize> {
    let calls: Vec<(String, String)> = sb
        .db()
        .call(|c| {
            let mut st =
                c.prepare("SELECT tool, arguments FROM mcp_calls WHERE user_id = ?1 ORDER BY seq")?;
            st.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("read mcp_calls");
    let mut m = BTreeMap::new();
    for (tool, args) in calls {
        let v: Value = serde_json::from_str(&args).expect("arguments are JSON");
        *m.entry((tool, mana_personas::runner::batch::input_hash(&v)))
            .or_default() += 1;
    }
    m
}

/// Issue 11.5: a SIGKILL mid-persona, after a tool call already changed the
/// platform and before the tick's end. The next `tick --once` posts the
/// killed tick's journal as that tick's actions batch: every call the MCP ran
/// has exactly one row, under the killed tick's id, and the persona (no
/// longer due) is not run and paid for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_mid_persona_posts_the_calls_already_made_once() {
    // A slow model: the kill lands while the second turn waits on it.
    let Env { sb, home, ids } = setup_slow_llm(700, &seeds(1, "[sandbox:tools=4]")).await;
    let user = ids.values().next().unwrap().clone();

    let mut child = tick_cmd(&sb.url(), home.path(), &[], &["--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tick");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.db().count("SELECT COUNT(*) FROM mcp_calls") == 0 {
        assert!(Instant::now() < deadline, "no tool call reached MCP");
        if let Some(st) = child.try_wait().unwrap() {
            panic!("tick ended before the kill: {st}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let made = mcp_calls_of(&sb, &user);
    assert!(!made.is_empty());
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_actions"),
        0,
        "the killed run posted nothing"
    );
    let state_db = home.path().join("state").join("state.db");
    let killed_tick: String = rusqlite::Connection::open(&state_db)
        .unwrap()
        .query_row("SELECT last_tick_id FROM runs", [], |r| r.get(0))
        .unwrap();

    let o = output(tick_cmd(&sb.url(), home.path(), &[], &["--json"])).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let s = summary_of(&o);
    assert_eq!(s["outboxDelivered"], 1, "the journal's batch: {s}");
    assert_eq!(s["outboxPending"], 0, "{s}");
    assert_eq!(s["ran"], 0, "the persona is no longer due: {s}");
    assert!(
        err.contains(&format!("tick {killed_tick} was interrupted"))
            && err.contains("recorded before the crash are posted now"),
        "{err}"
    );

    // Every call the MCP ran has exactly one row; the only other rows are
    // calls in flight at the kill (an error row each, never twice).
    let rows = common::actions_of(&sb, &user);
    assert!(rows.iter().all(|r| r.4 == killed_tick), "{rows:?}");
    let mut by_call: BTreeMap<(String, String), Vec<&common::ActionDbRow>> = BTreeMap::new();
    for r in &rows {
        by_call
            .entry((r.0.clone(), r.1.clone().unwrap_or_default()))
            .or_default()
            .push(r);
    }
    for (call, n) in &made {
        let got = by_call.get(call).map_or(0, Vec::len);
        assert_eq!(got, *n, "{call:?}: {n} run by MCP, {got} rows: {rows:?}");
    }
    for (call, rs) in &by_call {
        if !made.contains_key(call) {
            assert!(
                rs.iter()
                    .all(|r| r.2 == "error"
                        && r.3.as_deref().is_some_and(|e| e.contains("in flight"))),
                "{call:?} has rows but MCP never ran it: {rs:?}"
            );
        }
    }
    assert!(
        common::feedback_of(&sb, &user).is_empty(),
        "no rating turn happened in the killed tick"
    );
    let journal_left: i64 = rusqlite::Connection::open(&state_db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal_left, 0);
}

/// Issue 11.1: two `tick --once` on one state directory (a cron run beside a
/// manual one) must not run the personas twice. With a slow LLM the first
/// still holds the state directory when the second starts: exactly one runs
/// the personas, the other exits 4 naming the holder, and every persona has
/// one tick id on the platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tick_on_the_same_state_dir_exits_4_naming_the_holder() {
    let Env { sb, home, ids } = setup_slow_llm(400, &seeds(3, "[sandbox:tools=2]")).await;
    let spawn = |c: Command| -> std::process::Child {
        let mut c = c;
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("the binary starts")
    };
    let a = spawn(tick_cmd(&sb.url(), home.path(), &[], &["--json"]));
    let b = spawn(tick_cmd(&sb.url(), home.path(), &[], &["--json"]));
    let (oa, ob) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    let (ran, locked) = match (oa.status.code(), ob.status.code()) {
        (Some(0), Some(4)) => (oa, ob),
        (Some(4), Some(0)) => (ob, oa),
        other => panic!(
            "wanted one 0 and one 4, got {other:?}\n--- a:\n{}\n--- b:\n{}",
            String::from_utf8_lossy(&oa.stderr),
            String::from_utf8_lossy(&ob.stderr)
        ),
    };
    assert_eq!(summary_of(&ran)["ran"], 3);
    let err = String::from_utf8_lossy(&locked.stderr);
    assert!(
        err.contains("in use by another process")
            && err.contains("pid ")
            && err.contains("tick --once")
            && err.contains("since "),
        "{err}"
    );
    for (email, id) in &ids {
        let ticks: BTreeSet<String> = common::actions_of(&sb, id)
            .into_iter()
            .map(|r| r.4)
            .collect();
        assert_eq!(ticks.len(), 1, "{email}: tick ids {ticks:?}");
    }
    // The lock dies with its process: the next run takes it.
    let o = output(tick_cmd(&sb.url(), home.path(), &[], &["--json"])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Spawns `c`, waits (bounded) until the sandbox saw one more request on
/// `needle` than before — the tick is now stuck in it — then sends SIGTERM
/// and returns how long the exit took, and the output.
async fn sigterm_while_stuck_in(sb: &Sandbox, mut c: Command, needle: &str) -> (Duration, Output) {
    let before = requests_seen(sb, needle);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("spawn tick");
    let deadline = Instant::now() + Duration::from_secs(20);
    while requests_seen(sb, needle) == before {
        assert!(Instant::now() < deadline, "the tick never reached {needle}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (t0.elapsed(), out)
}

/// Issue 11.8: SIGTERM reaches every await of `tick --once` — the start-up
/// drain of the outbox, the due fetch and a persona's delivery — against a
/// platform that hangs:
/// the exit comes at once (tick --once has no grace), exit 1, and the queued
/// batch stays queued for the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_tick_stuck_in_its_drain_or_due_fetch() {
    let env = setup(&seeds(1, "[sandbox:tools=1]"), None).await;
    let url = env.sb.url();
    // A tick whose actions batch stays queued.
    refuse_actions(&env.sb);
    let o = output(tick_cmd(&url, env.home.path(), &[], &["--json"])).await;
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.sb.faults().clear();

    // The platform hangs on the drain's POST.
    let hang = |path: &str| Fault {
        route: RouteGroup::Internal,
        kind: FaultKind::Delay { ms: 120_000 },
        count: 100,
        path_contains: Some(path.into()),
    };
    env.sb.faults().push(hang("/actions"));
    let (took, out) = sigterm_while_stuck_in(
        &env.sb,
        tick_cmd(&url, env.home.path(), &[], &["--json"]),
        "/actions",
    )
    .await;
    assert!(took < Duration::from_secs(5), "drain: exit took {took:?}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary_of(&out);
    assert_eq!(s["interrupted"], true, "{s}");
    assert!(s["outboxPending"].as_u64().unwrap() >= 1, "{s}");
    env.sb.faults().clear();

    // The platform hangs on the due list (the outbox drains first, now fine).
    env.sb.faults().push(hang("/due"));
    let (took, out) = sigterm_while_stuck_in(
        &env.sb,
        tick_cmd(&url, env.home.path(), &[], &["--json"]),
        "/due",
    )
    .await;
    assert!(
        took < Duration::from_secs(5),
        "due fetch: exit took {took:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary_of(&out)["interrupted"], true);
    env.sb.faults().clear();
    assert_eq!(env.sb.db().count("SELECT COUNT(*) FROM persona_actions"), 1);

    // The platform hangs on the persona's own delivery, right after its day
    // (the outbox is empty, the due list answers): the POST is given up at
    // once too, and the batch stays queued for the next run.
    env.sb.faults().push(hang("/actions"));
    let (took, out) = sigterm_while_stuck_in(
        &env.sb,
        tick_cmd(
            &url,
            env.home.path(),
            &[("MANA_ADMIN_JWT", mana_sandbox::DEV_ADMIN_JWT)],
            &["--json", "--persona", "cli.p0@mana.test", "--force"],
        ),
        "/actions",
    )
    .await;
    assert!(
        took < Duration::from_secs(5),
        "delivery: exit took {took:?}"
    );
    let s = summary_of(&out);
    assert_eq!(s["ran"], 1, "{s}");
    assert!(s["outboxPending"].as_u64().unwrap() >= 1, "{s}");
    env.sb.faults().clear();
}

/// Issue 11.14: a due entry whose userId is a path (`../admin/<id>`) is
/// skipped with a warning — no request leaves for another path (the admin
/// routes see nothing from the tick) — while the plain entry runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_entry_whose_user_id_is_a_path_is_skipped() {
    let env = setup(&seeds(2, "[sandbox:tools=1]"), None).await;
    let victim = &env.ids["cli.p0@mana.test"];
    let plain = &env.ids["cli.p1@mana.test"];
    let entry = |id: &str, email: &str| {
        serde_json::json!({
            "userId": id, "email": email, "archetype": "test",
            "systemPrompt": "You are a test persona. [sandbox:tools=1]",
            "moduleMix": {"todo": 1.0}, "tickCadence": "daily", "lastActiveAt": null,
        })
    };
    env.sb.faults().push(Fault {
        route: RouteGroup::Internal,
        kind: FaultKind::Respond {
            status: 200,
            body: serde_json::json!({"personas": [
                entry(&format!("../admin/{victim}"), "cli.p0@mana.test"),
                entry(plain, "cli.p1@mana.test"),
            ]}),
        },
        count: 1,
        path_contains: Some("/due".into()),
    });
    let admin_before = requests_seen(&env.sb, "/admin");
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["--json"])).await;
    let s = summary_of(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{s}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        requests_seen(&env.sb, "/admin"),
        admin_before,
        "a request left for an admin path"
    );
    let weird: Vec<String> = env
        .sb
        .faults()
        .stats()
        .iter()
        .map(|s| s.endpoint.clone())
        .filter(|e| e.contains("..") || e.contains("%2") || e.contains("/admin/"))
        .collect();
    assert!(weird.is_empty(), "{weird:?}");
    assert_eq!(
        (s["due"].as_u64(), s["ran"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert!(
        s["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a plain id"),
        "{s}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a plain id"));
    assert_eq!(common::actions_of(&env.sb, plain).len(), 1);
    assert!(common::actions_of(&env.sb, victim).is_empty());
}

/// Issue 11.2: a due list with each persona twice, an upper-cased email copy
/// of a persona (same userId) and entries that are not personas (`null`, no
/// userId, a number as userId): each persona runs once, as its first entry;
/// each bad entry is skipped with a warning naming its index; the copy's
/// failed login never happens, so the real persona's run memory is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_malformed_due_entries_run_each_persona_once() {
    let env = setup(&seeds(2, "[sandbox:tools=2]"), None).await;
    let p0 = &env.ids["cli.p0@mana.test"];
    let p1 = &env.ids["cli.p1@mana.test"];
    let entry = |id: &serde_json::Value, email: &str| {
        serde_json::json!({
            "userId": id, "email": email, "archetype": "test",
            "systemPrompt": "You are a test persona. [sandbox:tools=2]",
            "moduleMix": {"todo": 1.0}, "tickCadence": "daily", "lastActiveAt": null,
        })
    };
    let (id0, id1) = (Value::from(p0.as_str()), Value::from(p1.as_str()));
    env.sb.faults().push(Fault {
        route: RouteGroup::Internal,
        kind: FaultKind::Respond {
            status: 200,
            body: serde_json::json!({"personas": [
                entry(&id0, "cli.p0@mana.test"),
                entry(&id1, "cli.p1@mana.test"),
                entry(&id0, "cli.p0@mana.test"),
                entry(&id0, "CLI.P0@MANA.TEST"),
                null,
                {"email": "nobody@mana.test"},
                entry(&Value::from(7), "seven@mana.test"),
                entry(&id1, "cli.p1@mana.test"),
            ]}),
        },
        count: 1,
        path_contains: Some("/due".into()),
    });
    let o = output(tick_cmd(&env.sb.url(), env.home.path(), &[], &["--json"])).await;
    let s = summary_of(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{s}\n{stderr}");
    assert_eq!(
        (s["due"].as_u64(), s["ran"].as_u64(), s["ok"].as_u64()),
        (Some(8), Some(2), Some(2)),
        "{s}"
    );
    let skipped = s["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 6, "{s}");
    let reasons = |word: &str| {
        skipped
            .iter()
            .filter(|k| k["reason"].as_str().unwrap().contains(word))
            .count()
    };
    assert_eq!((reasons("duplicate"), reasons("malformed")), (3, 3), "{s}");
    for i in [4, 5, 6] {
        assert!(
            stderr.contains(&format!("due entry #{i} skipped")),
            "{stderr}"
        );
    }
    assert_eq!(
        stderr.matches("repeats personas").count(),
        1,
        "one warning for all duplicates: {stderr}"
    );
    // Each persona ran once: one tick id each.
    for id in [p0, p1] {
        let ticks: BTreeSet<String> = common::actions_of(&env.sb, id)
            .into_iter()
            .map(|r| r.4)
            .collect();
        assert_eq!(ticks.len(), 1, "{id}: {ticks:?}");
    }
    // The real persona's run memory: a success, no failure, no hold.
    let db = rusqlite::Connection::open(env.home.path().join("state/state.db")).unwrap();
    let (outcome, failures, error, next): (String, i64, Option<String>, Option<String>) = db
        .query_row(
            "SELECT outcome, consecutive_failures, last_error, next_eligible_at FROM runs WHERE persona_id = ?1",
            [p0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (outcome.as_str(), failures, error, next),
        ("ok", 0, None, None)
    );
}
