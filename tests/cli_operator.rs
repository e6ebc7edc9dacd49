//! The operator's toolkit end to end: the real `mana-personas` binary, in an
//! isolated shell, against a real sandbox started in-process on an ephemeral
//! loopback port. Each test asserts what an operator would check — exit codes,
//! the lines they read, and what the platform (the sandbox's SQLite) now holds.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Out, Shell, TEST_SEED_SECRET, catalog_emails, catalog_json};
use mana_sandbox::{
    DEV_ADMIN_JWT, DEV_SERVICE_KEY, Fault, FaultKind, RouteGroup, Sandbox, SandboxOptions,
};
use serde_json::Value;

/// A sandbox with the well-known dev credentials and a shell pointed at it.
async fn setup() -> (Sandbox, Shell) {
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let sh = Shell::against(&sb.url(), DEV_ADMIN_JWT, DEV_SERVICE_KEY, TEST_SEED_SECRET);
    (sb, sh)
}

fn catalog() -> String {
    catalog_json().display().to_string()
}

fn count(sb: &Sandbox, table: &str) -> i64 {
    sb.db().count(&format!("SELECT COUNT(*) FROM {table}"))
}

/// Emails of the personas the sandbox holds.
fn db_emails(sb: &Sandbox) -> BTreeSet<String> {
    sb.db()
        .call(|c| {
            let mut st = c.prepare("SELECT email FROM personas")?;
            st.query_map([], |r| r.get::<_, String>(0))?.collect()
        })
        .expect("query personas")
}

/// The value after `label` on the stdout line that starts with it.
fn field<'a>(out: &'a Out, label: &str) -> &'a str {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", out.stdout))
        .trim()
}

async fn seed_all(sh: &Shell) -> Out {
    let out = sh.run(&["seed", "--catalog", &catalog()]).await;
    out.expect_code(0);
    out
}

/// Writes our catalog plus one extra persona to `path`, returning the extra email.
fn catalog_with_extra(path: &Path) -> String {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(catalog_json()).unwrap()).unwrap();
    let extra = "persona.extra@mana.test";
    v["personas"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "Extra",
            "email": extra,
            "archetype": "solo-dev",
            "systemPrompt": "Du bist Extra, eine Testperson, die nicht im Katalog steht.",
            "moduleMix": {"todo": 1.0},
            "tickCadence": "daily"
        }));
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    extra.to_string()
}

// ------------------------------------------------------------------- seed

#[tokio::test(flavor = "multi_thread")]
async fn seed_reports_each_persona_and_is_idempotent() {
    let (sb, sh) = setup().await;
    let emails = catalog_emails(&catalog_json());
    assert_eq!(emails.len(), 14);

    let out = seed_all(&sh).await;
    let ok = out.lines_starting("✓");
    assert_eq!(ok.len(), emails.len(), "one ✓ per persona:\n{}", out.stdout);
    for e in &emails {
        assert!(
            ok.iter().any(|l| l.contains(e.as_str())),
            "no ✓ line for {e}"
        );
    }
    assert!(
        out.stdout.contains("seeded 14 of 14 personas via"),
        "{}",
        out.stdout
    );
    assert!(out.lines_starting("✗").is_empty());
    assert_eq!(count(&sb, "personas"), 14);
    assert_eq!(count(&sb, "users"), 14);
    assert_eq!(db_emails(&sb), emails.iter().cloned().collect());

    // Again: the platform upserts by email, so nothing is duplicated.
    let again = seed_all(&sh).await;
    assert_eq!(again.lines_starting("✓").len(), 14);
    assert_eq!(count(&sb, "personas"), 14);
    assert_eq!(count(&sb, "users"), 14);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_dry_run_sends_nothing() {
    let (sb, sh) = setup().await;
    let out = sh
        .run(&["seed", "--dry-run", "--catalog", &catalog()])
        .await;
    out.expect_code(0);
    let would = out.lines_starting("would upsert");
    assert_eq!(would.len(), 14, "{}", out.stdout);
    let endpoint = format!("via POST {}/api/v1/personas/admin", sb.url());
    assert!(
        would.iter().all(|l| l.ends_with(&endpoint)),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dry run: 14 personas, nothing sent"));
    assert_eq!(count(&sb, "personas"), 0);
    assert_eq!(count(&sb, "users"), 0);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_only_one_and_unknown_only() {
    let (sb, sh) = setup().await;
    let out = sh
        .run(&[
            "seed",
            "--catalog",
            &catalog(),
            "--only",
            // Emails are case-insensitive, as in the catalog and tick --persona.
            "Persona.Mira@mana.test",
        ])
        .await;
    out.expect_code(0);
    assert_eq!(out.lines_starting("✓").len(), 1, "{}", out.stdout);
    assert!(out.stdout.contains("seeded 1 of 1"));
    assert_eq!(
        db_emails(&sb),
        BTreeSet::from(["persona.mira@mana.test".to_string()])
    );

    let out = sh
        .run(&[
            "seed",
            "--catalog",
            &catalog(),
            "--only",
            "unknown@mana.test",
        ])
        .await;
    out.expect_code(2);
    assert!(out.stderr.contains("unknown@mana.test"), "{}", out.stderr);
    assert_eq!(count(&sb, "personas"), 1, "nothing more was seeded");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_with_a_wrong_admin_jwt_names_401_stops_and_says_what_to_do() {
    let (sb, mut sh) = setup().await;
    sh.set("MANA_ADMIN_JWT", "wrong");
    let out = sh.run(&["seed", "--catalog", &catalog()]).await;
    out.expect_code(1);
    let all = out.all();
    // The platform's answer to a token it cannot verify: 401, not 403.
    assert!(
        all.contains(&format!(
            "POST {}/api/v1/personas/admin → HTTP 401",
            sb.url()
        )),
        "{all}"
    );
    assert!(all.contains("Invalid or expired token"), "{all}");
    // 401 is final (no retries), and the seed stops instead of sending the
    // rest with the same refused JWT.
    assert!(out.lines_starting("↻").is_empty(), "{all}");
    assert!(out.stdout.contains("seeded 0 of 14"), "{all}");
    assert!(
        out.stdout.contains("stopped:") && out.stdout.contains("15 minutes"),
        "{all}"
    );
    assert!(out.stdout.contains("not done (14)"), "{all}");
    assert_eq!(count(&sb, "personas"), 0);

    // The same for list: a refused admin call is a failure, not a usage error.
    let out = sh.run(&["list"]).await;
    out.expect_code(1);
    assert!(
        out.stderr.contains(&format!(
            "GET {}/api/v1/personas/admin → HTTP 401",
            sb.url()
        )),
        "{}",
        out.stderr
    );

    // A valid JWT without the admin role is 403, for every persona.
    let user_jwt = mana_sandbox::platform::auth::issue_access_token(
        &sb.state,
        "u1",
        "someone@mana.test",
        "user",
        std::time::Duration::from_secs(900),
    );
    sh.set("MANA_ADMIN_JWT", &user_jwt);
    let out = sh.run(&["seed", "--catalog", &catalog()]).await;
    out.expect_code(1);
    assert!(
        out.all().contains(&format!(
            "POST {}/api/v1/personas/admin → HTTP 403",
            sb.url()
        )),
        "{}",
        out.all()
    );
    assert_eq!(out.lines_starting("✗").len(), 14, "{}", out.all());
    sb.shutdown().await;
}

/// A valid token of a user who is not an admin (here a persona's own
/// bearer) is the platform's 403 "Admin access required".
#[tokio::test(flavor = "multi_thread")]
async fn list_with_a_non_admin_token_names_403() {
    let (sb, mut sh) = setup().await;
    seed_all(&sh).await;
    let email = "persona.henrike@mana.test";
    let password = mana_personas::password::derive_raw(TEST_SEED_SECRET.as_bytes(), email);
    let login: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", sb.url()))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The persona's bearer for apps/api: the JWT where the login gives one.
    let persona_token = login["accessToken"]
        .as_str()
        .or(login["token"].as_str())
        .unwrap()
        .to_string();
    sh.set("MANA_ADMIN_JWT", &persona_token);
    let out = sh.run(&["list"]).await;
    out.expect_code(1);
    assert!(
        out.stderr.contains(&format!(
            "GET {}/api/v1/personas/admin → HTTP 403",
            sb.url()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Admin access required"),
        "{}",
        out.stderr
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_retries_a_transient_503() {
    let (sb, sh) = setup().await;
    sb.faults().fail(RouteGroup::Admin, 503, 2);
    let out = seed_all(&sh).await;
    assert_eq!(sb.faults().injected(), 2, "both faults were hit");
    let retries = out.lines_starting("↻");
    assert_eq!(retries.len(), 2, "one ↻ per 503:\n{}", out.stdout);
    assert!(retries.iter().all(|l| l.contains("503")), "{retries:?}");
    assert_eq!(out.lines_starting("✓").len(), 14);
    assert!(out.stdout.contains("seeded 14 of 14"));
    assert_eq!(count(&sb, "personas"), 14);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_admin_prefix_by_config_alone() {
    let (sb, mut sh) = setup().await;
    sh.set("MANA_ADMIN_PREFIX", "/api/v1/admin/personas");
    // The sandbox serves both layouts; a fault only on the legacy path proves
    // the requests really went there.
    sb.faults().push(Fault {
        route: RouteGroup::Admin,
        kind: FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        count: 1,
        path_contains: Some("/api/v1/admin/personas".into()),
    });
    let out = seed_all(&sh).await;
    assert_eq!(sb.faults().injected(), 1);
    let retry = out.lines_starting("↻");
    assert_eq!(retry.len(), 1, "{}", out.stdout);
    assert!(
        retry[0].contains(&format!(
            "retrying POST {}/api/v1/admin/personas (2/5) in",
            sb.url()
        )) && retry[0].contains("HTTP 503"),
        "{retry:?}"
    );
    assert!(!out.all().contains("/api/v1/personas/admin"));
    assert_eq!(count(&sb, "personas"), 14);

    let list = sh.run(&["list", "--json"]).await;
    list.expect_code(0);
    let v: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 14);
    sb.shutdown().await;
}

// ------------------------------------------------------ list, show, login

#[tokio::test(flavor = "multi_thread")]
async fn list_show_and_login() {
    let (sb, sh) = setup().await;
    let emails = catalog_emails(&catalog_json());
    seed_all(&sh).await;

    let out = sh.run(&["list"]).await;
    out.expect_code(0);
    for e in &emails {
        assert!(out.stdout.contains(e.as_str()), "{e} not listed");
    }
    assert!(out.stdout.contains("14 personas"), "{}", out.stdout);

    let out = sh.run(&["list", "--json"]).await;
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).expect("list --json is JSON");
    let listed: BTreeSet<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, emails.iter().cloned().collect());

    let email = "persona.henrike@mana.test";
    let user_id: String = sb
        .db()
        .call(|c| {
            c.query_row(
                "SELECT user_id FROM personas WHERE email = ?1",
                [email],
                |r| r.get(0),
            )
        })
        .unwrap();

    let out = sh.run(&["show", email]).await;
    out.expect_code(0);
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!("<{email}>")) && first.contains(&user_id),
        "{first}"
    );
    assert!(out.stdout.contains("archetype: ceo-busy"), "{}", out.stdout);

    let out = sh.run(&["show", &user_id, "--json"]).await;
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).expect("show --json is JSON");
    assert_eq!(v["persona"]["email"], email);
    assert_eq!(v["persona"]["userId"], user_id.as_str());

    // A persona the platform does not have is a failed lookup (1), not a
    // usage error (2): the command was right.
    let out = sh.run(&["show", "nobody@mana.test"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("nobody@mana.test"), "{}", out.stderr);

    // login: the derived password works, and the PERSONAL space is chosen
    // although the sandbox lists the team space first.
    let out = sh.run(&["login", email]).await;
    out.expect_code(0);
    assert_eq!(field(&out, "userId:"), user_id);
    let space = field(&out, "spaceId:").to_string();
    let kind_of = |id: &str| -> String {
        sb.db()
            .call(|c| {
                c.query_row(
                    "SELECT json_extract(metadata, '$.type') FROM spaces WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
            })
            .unwrap()
    };
    assert_eq!(kind_of(&space), "personal");
    let first_listed: String = sb
        .db()
        .call(|c| {
            c.query_row(
                "SELECT s.id FROM spaces s JOIN members m ON m.space_id = s.id
                 WHERE m.user_id = ?1 ORDER BY s.seq LIMIT 1",
                [&user_id],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(kind_of(&first_listed), "team", "the trap is in place");
    assert_ne!(space, first_listed);
    assert!(
        sb.db().is_member(&user_id, &space),
        "the persona is a member of its space"
    );
    sb.shutdown().await;
}

// ---------------------------------------------------------------- cleanup

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_asks_dry_runs_marks_orphans_and_deletes() {
    let (sb, sh) = setup().await;
    let bigger = sh.path("bigger.json");
    let extra = catalog_with_extra(&bigger);
    let out = sh
        .run(&["seed", "--catalog", &bigger.display().to_string()])
        .await;
    out.expect_code(0);
    assert_eq!(count(&sb, "personas"), 15);

    // Not a terminal, no --yes: refused even with "y" on stdin.
    let out = sh
        .run_with(&["cleanup", "--catalog", &catalog()], |c| {
            c.write_stdin("y\n");
        })
        .await;
    out.expect_code(2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(!out.stdout.contains("deleted"), "{}", out.stdout);
    assert_eq!(count(&sb, "personas"), 15, "nothing deleted");

    let out = sh
        .run(&["cleanup", "--dry-run", "--catalog", &catalog()])
        .await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("will delete 15 personas"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dry run: nothing deleted"));
    let marked: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("[not in catalog]"))
        .collect();
    assert_eq!(marked.len(), 1, "{}", out.stdout);
    assert!(marked[0].contains(&extra), "{marked:?}");
    assert_eq!(count(&sb, "personas"), 15, "dry run deleted nothing");

    // --orphans decides by the catalog: a missing one is refused, never read
    // as "every persona is an orphan".
    let missing = sh.path("missing.json").display().to_string();
    let out = sh
        .run(&["cleanup", "--orphans", "--yes", "--catalog", &missing])
        .await;
    out.expect_code(2);
    assert!(out.stderr.contains("missing.json"), "{}", out.stderr);
    assert_eq!(count(&sb, "personas"), 15, "nothing deleted");
    let out = sh
        .run(&["cleanup", "--orphans", "--yes", "--catalog", &catalog()])
        .await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("deleted 1 of 1 personas"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&extra), "{}", out.stdout);
    assert_eq!(count(&sb, "personas"), 14, "only the orphan went");

    let out = sh.run(&["cleanup", "--yes", "--catalog", &catalog()]).await;
    out.expect_code(0);
    assert_eq!(out.lines_starting("✓").len(), 14, "{}", out.stdout);
    assert!(out.stdout.contains("deleted 14 of 14 personas"));
    assert_eq!(count(&sb, "personas"), 0);
    assert_eq!(count(&sb, "users"), 0);

    let out = sh.run(&["cleanup", "--yes", "--catalog", &catalog()]).await;
    out.expect_code(0);
    assert!(out.stdout.contains("nothing to delete"), "{}", out.stdout);
    sb.shutdown().await;
}

// ----------------------------------------------------------------- config

#[tokio::test(flavor = "multi_thread")]
async fn config_shows_sources_and_hides_secrets() {
    let (sb, sh) = setup().await;
    let out = sh.run(&["config", "--json"]).await;
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).expect("config --json is JSON");
    let settings = v["settings"].as_array().unwrap();
    let get = |k: &str| {
        settings
            .iter()
            .find(|e| e["key"] == k)
            .unwrap_or_else(|| panic!("no {k} in config --json"))
    };
    for k in ["admin_jwt", "service_key", "seed_secret"] {
        assert_eq!(get(k)["value"], "<set>", "{k}");
    }
    assert_eq!(get("anthropic_api_key")["value"], "<unset>");
    assert_eq!(get("api_url")["value"], sb.url().as_str());
    assert_eq!(
        get("api_url")["source"],
        serde_json::json!({"kind": "env", "name": "MANA_API_URL"})
    );
    assert_eq!(get("tick_interval_ms")["source"]["kind"], "default");

    let out = sh.run(&["config"]).await;
    out.expect_code(0);
    let row = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("api_url"))
        .expect("api_url row");
    assert!(row.contains("env MANA_API_URL"), "{row}");
    assert!(!out.all().contains(TEST_SEED_SECRET));
    assert!(!out.all().contains(DEV_ADMIN_JWT));
    assert!(!out.all().contains(DEV_SERVICE_KEY));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_name_the_culprit() {
    let (sb, mut sh) = setup().await;
    let file = sh.path("mana-personas-test.toml");
    std::fs::write(
        &file,
        "api_url = \"http://127.0.0.1:1\"\nconcurrency = 3\nbogus_key = 1\n",
    )
    .unwrap();
    let out = sh
        .run(&["--config", &file.display().to_string(), "config"])
        .await;
    out.expect_code(2);
    assert!(out.stderr.contains("bogus_key"), "{}", out.stderr);
    assert!(out.stderr.contains("line 3"), "{}", out.stderr);

    // A file that is fine is read, and its values name file and line.
    std::fs::write(&file, "concurrency = 3\n").unwrap();
    let out = sh
        .run(&["--config", &file.display().to_string(), "config", "--json"])
        .await;
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let c = v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "concurrency")
        .unwrap();
    assert_eq!(c["value"], "3");
    assert_eq!(c["source"]["kind"], "file");
    assert_eq!(c["source"]["line"], 1);

    sh.set("TICK_INTERVAL_MS", "abc");
    let out = sh.run(&["config"]).await;
    out.expect_code(2);
    assert!(out.stderr.contains("TICK_INTERVAL_MS"), "{}", out.stderr);
    assert!(out.stderr.contains("abc"), "{}", out.stderr);
    sb.shutdown().await;
}

// ---------------------------------------------------------------- catalog

#[tokio::test(flavor = "multi_thread")]
async fn catalog_check() {
    let (sb, sh) = setup().await;
    let out = sh.run(&["catalog", "check", &catalog()]).await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("ok, 14 personas, 7 archetypes"),
        "{}",
        out.stdout
    );

    let broken = sh.path("broken.json");
    std::fs::write(
        &broken,
        serde_json::json!({"personas": [
            {"name": "A", "email": "a@example.com", "archetype": "solo-dev",
             "systemPrompt": "Du bist A, eine Testperson mit genug Text.",
             "moduleMix": {"todo": 1}, "tickCadence": "daily"},
            {"name": "B", "email": "b@mana.test", "archetype": "solo-dev",
             "systemPrompt": "zu kurz", "moduleMix": {"todo": 1}, "tickCadence": "Daily"}
        ]})
        .to_string(),
    )
    .unwrap();
    let out = sh
        .run(&["catalog", "check", &broken.display().to_string()])
        .await;
    out.expect_code(2);
    let e = &out.stderr;
    assert!(e.contains("broken.json"), "{e}");
    // Every problem at once, each located.
    assert!(e.contains("3 problems"), "{e}");
    assert!(
        e.contains("personas[0]") && e.contains("a@example.com"),
        "{e}"
    );
    assert!(
        e.contains("personas[1]") && e.contains("systemPrompt"),
        "{e}"
    );
    assert!(e.contains("tickCadence"), "{e}");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    sb.shutdown().await;
}

// ---------------------------------------------------------------- secrets

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_stdout_or_stderr() {
    const ADMIN: &str = "adm-SECRET-4b1d9e77-never-print";
    const SERVICE: &str = "svc-SECRET-90aa3c15-never-print";
    let sb = Sandbox::start(SandboxOptions {
        admin_jwt: ADMIN.into(),
        service_key: SERVICE.into(),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let sh = Shell::against(&sb.url(), ADMIN, SERVICE, TEST_SEED_SECRET);
    let cat = catalog();
    let email = "persona.jonas@mana.test";

    sb.faults().fail(RouteGroup::Admin, 503, 1);
    seed_all(&sh).await;
    sh.run(&["-vv", "seed", "--catalog", &cat, "--dry-run"])
        .await
        .expect_code(0);
    sh.run(&["list"]).await.expect_code(0);
    sh.run(&["list", "--json"]).await.expect_code(0);
    sh.run(&["show", email]).await.expect_code(0);
    sh.run(&["-vv", "--log-format", "json", "show", email, "--json"])
        .await
        .expect_code(0);
    sh.run(&["login", email]).await.expect_code(0);
    sh.run(&["-vv", "login", email, "--json"])
        .await
        .expect_code(0);
    sh.run(&["config"]).await.expect_code(0);
    sh.run(&["config", "--json"]).await.expect_code(0);
    sh.run(&["cleanup", "--dry-run", "--catalog", &cat])
        .await
        .expect_code(0);
    // Failure paths print server answers and errors: still nothing secret.
    sb.faults().fail(RouteGroup::Auth, 502, 1);
    sh.run(&["login", email]).await.expect_code(0);
    sh.run(&["login", "nobody@mana.test"]).await.expect_code(1);
    sh.run_with(&["list"], |c| {
        c.env("MANA_ADMIN_JWT", "adm-wrong");
    })
    .await
    .expect_code(1);

    // The persona JWTs the logins above were given (read before cleanup
    // deletes the users and, by cascade, their sessions).
    let tokens: Vec<String> = sb
        .db()
        .call(|c| {
            let mut st = c.prepare("SELECT token FROM sessions")?;
            st.query_map([], |r| r.get::<_, String>(0))?.collect()
        })
        .unwrap();
    assert_eq!(tokens.len(), 3, "three successful logins");

    sh.run(&["--production", "seed", "--catalog", &cat, "--only", email])
        .await
        .expect_code(0);
    sh.run(&["cleanup", "--yes", "--catalog", &cat])
        .await
        .expect_code(0);

    let transcript = sh.transcript();
    // The transcript really holds the runs (else the checks below prove nothing).
    for seen in [
        "<set>",
        "userId:",
        "↻",
        "seeded 14 of 14",
        "HTTP 401",
        "15 minutes",
    ] {
        assert!(transcript.contains(seen), "{seen:?} missing:\n{transcript}");
    }
    let secrets = [ADMIN, SERVICE, TEST_SEED_SECRET].map(String::from);
    // No JWT either (a JWT starts with the base64 of `{"`).
    assert!(!transcript.contains("eyJ"), "a JWT leaked:\n{transcript}");
    for secret in secrets.iter().chain(&tokens) {
        assert!(
            !transcript.contains(secret),
            "{secret} leaked:\n{transcript}"
        );
    }
    // Derived passwords are secrets too outside the `password` command.
    for e in catalog_emails(&catalog_json()) {
        let pw = mana_personas::password::derive_raw(TEST_SEED_SECRET.as_bytes(), &e);
        assert!(!transcript.contains(&pw), "password of {e} leaked");
    }
    sb.shutdown().await;
}

/// The platform's `feedbackByModule[].avgRating` is a row count (a platform
/// bug the sandbox mirrors): `show` labels it as the number of ratings and
/// never prints it as an average.
#[tokio::test(flavor = "multi_thread")]
async fn show_labels_the_platforms_avg_rating_as_a_count() {
    let (sb, sh) = setup().await;
    seed_all(&sh).await;
    let email = "persona.henrike@mana.test";
    // Three todo ratings averaging 4.67 and one mood rating of 1.
    sb.db()
        .call(|c| {
            let id: String = c.query_row(
                "SELECT user_id FROM personas WHERE email = ?1",
                [email],
                |r| r.get(0),
            )?;
            for (tick, module, rating) in [("t1", "todo", 5), ("t2", "todo", 5), ("t3", "todo", 4), ("t1", "mood", 1)] {
                c.execute(
                    "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, '2025-06-06T00:00:00.000Z')",
                    rusqlite::params![format!("{tick}-{module}"), id, tick, module, rating],
                )?;
            }
            Ok(())
        })
        .unwrap();
    let out = sh.run(&["show", email]).await;
    out.expect_code(0);
    let fb = out
        .stdout
        .split_once("feedback by module:")
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no feedback table:\n{}", out.stdout));
    assert!(fb.contains("ratings (count)"), "{fb}");
    assert!(
        !fb.to_lowercase().contains("average") && !fb.to_lowercase().contains("avg"),
        "{fb}"
    );
    let row = |m: &str| {
        fb.lines()
            .find(|l| l.split_whitespace().any(|w| w == m))
            .unwrap_or_else(|| panic!("no {m} row:\n{fb}"))
            .to_string()
    };
    let cells = |l: String| {
        l.split(|c: char| c.is_whitespace() || c == '│' || c == '|')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(cells(row("todo")), ["todo", "3"], "{fb}");
    assert_eq!(cells(row("mood")), ["mood", "1"], "{fb}");
    sb.shutdown().await;
}
