//! Signing in like the real platform (issue 9), against the sandbox over
//! loopback: the JWT is `accessToken` and expires mid-tick, a 401 from MCP
//! means "sign in again" once, refused logins are never retried (lockout),
//! the space list's bearer fallback, tools a persona may not call, catalog
//! modules without tools, the admin JWT file re-read, and the model's
//! retirement warning.

mod common;
#[path = "common/tick.rs"]
mod tick;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Shell, TEST_SEED_SECRET};
use mana_personas::platform::auth::SpacesBearer;
use mana_personas::runner::Runner;
use mana_personas::runner::persona::RunOutcome;
use mana_sandbox::{
    DEV_ADMIN_JWT, DEV_SERVICE_KEY, Fault, FaultKind, OrgsBearer, RouteGroup, Sandbox,
    SandboxOptions,
};
use tick::{Seed, actions_of, run_once};

async fn sandbox(opts: SandboxOptions) -> Sandbox {
    Sandbox::start(opts).await.expect("sandbox starts")
}

/// `POST /mcp` requests the sandbox has seen.
fn mcp_posts(sb: &Sandbox) -> u64 {
    sb.faults()
        .stats()
        .iter()
        .filter(|s| s.endpoint == "POST /mcp")
        .map(|s| s.requests)
        .sum()
}

/// Error rows that speak of a refused bearer.
fn auth_error_rows(sb: &Sandbox, user_id: &str) -> Vec<String> {
    actions_of(sb, user_id)
        .into_iter()
        .filter_map(|(_, _, _, err, _)| err)
        .filter(|e| e.contains("401") || e.to_lowercase().contains("token"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persona_tick_that_outlives_its_jwt_signs_in_again_and_records_no_auth_errors() {
    // A 2-second JWT and a model that takes 1.2 s per turn: by the second
    // tool call the first JWT is gone.
    let sb = sandbox(SandboxOptions {
        jwt_ttl: Duration::from_secs(2),
        llm_latency_ms: 1200,
        ..SandboxOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tick::config(&sb.url(), dir.path(), &[]);
    let email = "slow.day@mana.test";
    let ids = tick::seed(&cfg, &[Seed::daily(email, "[sandbox:tools=3]")]).await;
    let r = tick::runner(&cfg);
    let s = run_once(&r).await;
    assert_eq!((s.ran, s.ok), (1, 1), "{:?}", s.failed);
    let rows = actions_of(&sb, &ids[email]);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(auth_error_rows(&sb, &ids[email]).is_empty(), "{rows:?}");
    assert!(
        sb.db().login_attempts(email) >= 2,
        "the persona signed in again ({} logins)",
        sb.db().login_attempts(email)
    );
    sb.shutdown().await;
}

/// Seeds a warm-up persona that makes no tool call and runs it, returning
/// how many `POST /mcp` a persona sends before its first tools/call
/// (initialize, initialized, every tools/list page).
async fn mcp_posts_before_first_call(
    sb: &Sandbox,
    r: &Runner,
    cfg: &mana_personas::config::Config,
) -> u64 {
    tick::seed(
        cfg,
        &[Seed::daily("warmup@mana.test", "[sandbox:no-tools]")],
    )
    .await;
    let before = mcp_posts(sb);
    run_once(r).await;
    mcp_posts(sb) - before
}

/// A persona of two tool calls whose first `tools/call` is answered 401
/// `times` times in a row, as an expired JWT is: the sandbox, its directory,
/// the runner, the persona's user id and the MCP requests before that call.
async fn first_call_refused(
    email: &str,
    times: u32,
) -> (Sandbox, tempfile::TempDir, Runner, String, u64) {
    let sb = sandbox(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tick::config(&sb.url(), dir.path(), &[]);
    let r = tick::runner(&cfg);
    let k = mcp_posts_before_first_call(&sb, &r, &cfg).await;
    let ids = tick::seed(&cfg, &[Seed::daily(email, "[sandbox:tools=2]")]).await;
    sb.faults().push(Fault {
        route: RouteGroup::Mcp,
        kind: FaultKind::Delay { ms: 0 },
        count: k as u32,
        path_contains: None,
    });
    sb.faults().fail(RouteGroup::Mcp, 401, times);
    let uid = ids[email].clone();
    (sb, dir, r, uid, k)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_from_mcp_mid_tick_signs_in_again_once_and_repeats_the_call() {
    let email = "refused.once@mana.test";
    let (sb, _dir, r, uid, k) = first_call_refused(email, 1).await;
    let s = run_once(&r).await;
    assert_eq!((s.ran, s.ok), (1, 1), "{:?}", s.failed);
    assert_eq!(sb.faults().injected(), k + 1, "the 401 was served");
    let rows = actions_of(&sb, &uid);
    assert_eq!(
        rows.len(),
        2,
        "the 401 is not a row, its repeat is: {rows:?}"
    );
    assert!(rows.iter().all(|r| r.2 == "ok"), "{rows:?}");
    assert_eq!(sb.db().login_attempts(email), 2, "one login, one renewal");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_401_after_signing_in_again_fails_the_persona_with_the_reason() {
    let email = "refused.twice@mana.test";
    let (sb, _dir, r, uid, _) = first_call_refused(email, 2).await;
    let s = run_once(&r).await;
    assert_eq!(s.failed.len(), 1, "{s:?}");
    let e = &s.failed[0].error;
    assert!(e.contains("401") && e.contains("signing in again"), "{e}");
    assert!(actions_of(&sb, &uid).is_empty(), "a 401 is never a row");
    assert_eq!(sb.db().login_attempts(email), 2, "exactly one renewal");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_seed_secret_costs_one_login_per_persona_and_then_backs_off() {
    let sb = sandbox(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let seeded = tick::config(&sb.url(), dir.path(), &[]);
    let emails = ["wrong.a@mana.test", "wrong.b@mana.test"];
    let seeds: Vec<Seed> = emails.iter().map(|e| Seed::daily(e, "")).collect();
    tick::seed(&seeded, &seeds).await;
    let cfg = tick::config(
        &sb.url(),
        dir.path(),
        &[("seed_secret", "not-the-secret-they-were-seeded-with")],
    );
    let r = tick::runner(&cfg);
    let s = run_once(&r).await;
    assert_eq!(s.failed.len(), 2, "{s:?}");
    for f in &s.failed {
        assert!(
            f.error.contains("wrong PERSONA_SEED_SECRET")
                && f.error.contains("seeded with another secret"),
            "{}",
            f.error
        );
    }
    for e in emails {
        assert_eq!(sb.db().login_attempts(e), 1, "{e}: never retried");
    }
    // The next tick respects the backoff: no login at all.
    let s = run_once(&r).await;
    assert_eq!(s.ran, 0, "{s:?}");
    assert_eq!(s.skipped.len(), 2);
    for e in emails {
        assert_eq!(sb.db().login_attempts(e), 1, "{e}");
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_account_backs_the_persona_off_until_retry_after() {
    let sb = sandbox(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tick::config(&sb.url(), dir.path(), &[]);
    let email = "locked@mana.test";
    let ids = tick::seed(&cfg, &[Seed::daily(email, "")]).await;
    // Five wrong passwords lock the account, as the platform does.
    let http = reqwest::Client::new();
    for i in 0..5 {
        let r = http
            .post(format!("{}/api/v1/auth/login", sb.url()))
            .json(&serde_json::json!({"email": email, "password": format!("wrong-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = tick::runner(&cfg);
    let s = run_once(&r).await;
    assert_eq!(s.failed.len(), 1, "{s:?}");
    assert!(
        s.failed[0].error.contains("ACCOUNT_LOCKED"),
        "{}",
        s.failed[0].error
    );
    assert_eq!(sb.db().login_attempts(email), 6, "one login, not retried");
    let now = chrono::Utc::now();
    let id = &ids[email];
    assert!(
        r.state
            .may_run(id, now + chrono::Duration::minutes(28))
            .unwrap()
            .is_err(),
        "held past the 5-minute failure backoff, until Retry-After (30 min)"
    );
    assert!(
        r.state
            .may_run(id, now + chrono::Duration::minutes(31))
            .unwrap()
            .is_ok()
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_account_says_re_seed_this_persona() {
    let sb = sandbox(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tick::config(&sb.url(), dir.path(), &[]);
    let email = "unstamped@mana.test";
    tick::seed(&cfg, &[Seed::daily(email, "")]).await;
    sb.db().set_email_verified(email, false);
    let s = run_once(&tick::runner(&cfg)).await;
    assert_eq!(s.failed.len(), 1, "{s:?}");
    let e = &s.failed[0].error;
    assert!(
        e.contains("EMAIL_NOT_VERIFIED") && e.contains("re-seed this persona"),
        "{e}"
    );
    assert_eq!(sb.db().login_attempts(email), 1);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_space_list_falls_back_to_the_session_token_and_login_says_which_bearer_worked() {
    for (mode, expected) in [
        (OrgsBearer::Session, SpacesBearer::SessionToken),
        (OrgsBearer::Jwt, SpacesBearer::Jwt),
    ] {
        let sb = sandbox(SandboxOptions {
            orgs_bearer: mode,
            ..SandboxOptions::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = tick::config(&sb.url(), dir.path(), &[("seed_secret", TEST_SEED_SECRET)]);
        let email = "spaces@mana.test";
        tick::seed(&cfg, &[Seed::daily(email, "")]).await;
        let r = tick::runner(&cfg);
        let signed = r
            .auth
            .sign_in(&cfg.seed_secret, email, false)
            .await
            .expect("signs in");
        assert_eq!(signed.spaces_bearer, expected, "{mode:?}");
        assert_eq!(signed.space.kind.as_deref(), Some("personal"));
        assert!(signed.session.expires_at.is_some(), "exp read from the JWT");

        let sh = Shell::against(&sb.url(), DEV_ADMIN_JWT, DEV_SERVICE_KEY, TEST_SEED_SECRET);
        let out = sh.run(&["login", email]).await;
        out.expect_code(0);
        assert!(
            out.stdout.contains("bearer:  accessToken (JWT, expires "),
            "{}",
            out.stdout
        );
        let spaces = match expected {
            SpacesBearer::Jwt => "spaces:  accepted the JWT\n",
            SpacesBearer::SessionToken => "spaces:  accepted the session token",
        };
        assert!(out.stdout.contains(spaces), "{}", out.stdout);
        // Neither token is printed: JWTs start with base64 of `{"`.
        assert!(!out.all().contains("eyJ"), "{}", out.all());
        let tokens: Vec<String> = sb
            .db()
            .call(|c| {
                let mut st = c.prepare("SELECT token FROM sessions")?;
                st.query_map([], |r| r.get::<_, String>(0))?.collect()
            })
            .unwrap();
        assert_eq!(tokens.len(), 2);
        for t in tokens {
            assert!(!out.all().contains(&t), "session token leaked");
        }
        sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_tools_are_never_offered_and_a_forced_call_is_refused_locally() {
    let sb = sandbox(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tick::config(&sb.url(), dir.path(), &[("tools_deny", "todo.*")]);
    let r = tick::runner(&cfg);
    // How many MCP posts a persona without tool calls costs.
    let quiet = mcp_posts_before_first_call(&sb, &r, &cfg).await;

    // Denied tools are not offered: the scripted model only calls what it was given.
    let email = "no.todos@mana.test";
    let ids = tick::seed(&cfg, &[Seed::daily(email, "[sandbox:tools=4]")]).await;
    let s = run_once(&r).await;
    assert_eq!(s.ok, 1, "{:?}", s.failed);
    let rows = actions_of(&sb, &ids[email]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| !r.0.starts_with("todo.")), "{rows:?}");

    // A model that calls a denied tool anyway gets an error row; MCP never
    // sees the call (the same posts as a day without any tool call).
    let email = "forced@mana.test";
    let ids = tick::seed(
        &cfg,
        &[Seed::daily(
            email,
            "[sandbox:call=todo_create] [sandbox:no-tools]",
        )],
    )
    .await;
    let before = mcp_posts(&sb);
    let s = run_once(&r).await;
    assert_eq!(s.ok, 1, "{:?}", s.failed);
    let rows = actions_of(&sb, &ids[email]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (tool, _, result, err, _) = &rows[0];
    assert_eq!((tool.as_str(), result.as_str()), ("todo.create", "error"));
    let err = err.as_deref().unwrap_or_default();
    assert!(
        err.contains("refused locally") && err.contains("TOOLS_DENY"),
        "{err}"
    );
    assert_eq!(mcp_posts(&sb) - before, quiet, "no tools/call reached MCP");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn modules_without_tools_are_left_out_of_the_prompt_with_one_warning() {
    let sb = sandbox(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tick::config(&sb.url(), dir.path(), &[]);
    let email = "persona.lena@mana.test";
    let mut seed = Seed::daily(email, "[sandbox:tools=2]");
    seed.module_mix = BTreeMap::from([
        ("todo".to_string(), 0.5),
        ("articles".to_string(), 0.3),
        ("notes".to_string(), 0.2),
    ]);
    tick::seed(&cfg, &[seed]).await;
    let r = tick::runner(&cfg);
    let s = run_once(&r).await;
    assert_eq!(s.ok, 1, "{:?}", s.failed);
    let rep = &s.reports[0];
    assert_eq!(rep.outcome, RunOutcome::Ok);
    let warned: Vec<&String> = rep
        .warnings
        .iter()
        .filter(|w| w.contains("articles"))
        .collect();
    assert_eq!(
        warned,
        ["persona.lena: moduleMix 'articles' has no tools on this platform"],
        "{:?}",
        rep.warnings
    );
    let transcript: String = rusqlite::Connection::open(r.state.path())
        .unwrap()
        .query_row("SELECT transcript FROM ledger", [], |r| r.get(0))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&transcript).unwrap();
    let prompt = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "session")
        .and_then(|e| e["prompt"].as_str())
        .unwrap()
        .to_string();
    assert!(prompt.contains("todo (0.5), notes (0.2)"), "{prompt}");
    assert!(!prompt.contains("articles"), "{prompt}");
    sb.shutdown().await;
}

/// Waits (on a condition, not a clock) until the sandbox has seen an admin request.
async fn until_an_admin_request_arrived(sb: &Sandbox) {
    for _ in 0..1000 {
        let n: u64 = sb
            .faults()
            .stats()
            .iter()
            .filter(|s| s.route == RouteGroup::Admin)
            .map(|s| s.requests)
            .sum();
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no admin request arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_rereads_the_jwt_file_on_a_401_and_stops_with_advice_when_it_is_stale() {
    let sb = sandbox(SandboxOptions::default()).await;
    let mut sh = Shell::against(&sb.url(), "unused", DEV_SERVICE_KEY, TEST_SEED_SECRET);
    let jwt_file = sh.path("admin.jwt");
    let jwt_file_s = jwt_file.display().to_string();
    sh.set("MANA_ADMIN_JWT", "");
    let catalog = common::catalog_json().display().to_string();

    // The file holds an expired admin JWT; the first request is held back
    // until the operator has put a fresh one in. The 401 re-reads it.
    std::fs::write(&jwt_file, sb.admin_access_token(Duration::ZERO)).unwrap();
    sb.faults().push(Fault {
        route: RouteGroup::Admin,
        kind: FaultKind::Delay { ms: 3000 },
        count: 1,
        path_contains: None,
    });
    let run = {
        let args = [
            "seed",
            "--catalog",
            &catalog,
            "--jwt-file",
            &jwt_file_s,
            "--concurrency",
            "1",
        ]
        .map(String::from);
        let cmd = sh.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || {
            let mut cmd = cmd;
            cmd.output().unwrap()
        })
    };
    until_an_admin_request_arrived(&sb).await;
    std::fs::write(&jwt_file, sb.admin_access_token(Duration::from_secs(900))).unwrap();
    let out = run.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = common::catalog_emails(&common::catalog_json()).len();
    assert!(stdout.contains(&format!("seeded {n} of {n}")), "{stdout}");

    // A file that stays stale: stop, say how to get a fresh JWT and what was done.
    std::fs::write(&jwt_file, sb.admin_access_token(Duration::ZERO)).unwrap();
    let out = sh
        .run(&["seed", "--catalog", &catalog, "--jwt-file", &jwt_file_s])
        .await;
    out.expect_code(1);
    for want in [
        "stopped:",
        "15 minutes",
        "accessToken",
        "--jwt-file",
        "done (0): none",
        "not done (",
    ] {
        assert!(
            out.stdout.contains(want),
            "{want:?} missing:\n{}",
            out.stdout
        );
    }
    // And `list` says the same.
    let out = sh.run(&["list", "--jwt-file", &jwt_file_s]).await;
    out.expect_code(1);
    assert!(
        out.stderr.contains("HTTP 401") && out.stderr.contains("15 minutes"),
        "{}",
        out.stderr
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tick_on_a_retiring_model_warns_with_its_date() {
    let sb = sandbox(SandboxOptions::default()).await;
    let mut sh = Shell::against(&sb.url(), DEV_ADMIN_JWT, DEV_SERVICE_KEY, TEST_SEED_SECRET);
    sh.set("ANTHROPIC_BASE_URL", &sb.url());
    sh.set("ANTHROPIC_API_KEY", "k");
    sh.set("LLM_MODEL", "claude-sonnet-4-5");
    let out = sh.run(&["tick", "--once"]).await;
    out.expect_code(0);
    assert!(
        out.stderr.contains("claude-sonnet-4-5") && out.stderr.contains("2026-11-30"),
        "{}",
        out.stderr
    );
    sh.set("LLM_MODEL", "claude-sonnet-4-6");
    let out = sh.run(&["tick", "--once"]).await;
    out.expect_code(0);
    assert!(!out.stderr.contains("retired"), "{}", out.stderr);
    sb.shutdown().await;
}
