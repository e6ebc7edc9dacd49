//! The secrets audit: the real binary runs `config`, `seed`, `login`,
//! `tick --once` and the daemon (both log formats, every log line on:
//! `MANA_PERSONAS_LOG=trace`; the daemon's `/health`, `/metrics`, `/diag/*`
//! and `/control/*` answers are scanned too)
//! against a sandbox that makes the error paths print — a persona whose login
//! is refused (401), an actions POST that keeps failing (500), an LLM that is
//! overloaded (529), dropped connections, an SSE error — with distinctive
//! values for the seed secret, the service key, the admin JWT and the LLM key.
//! None of them, no persona JWT the sandbox ever issued and no derived
//! password may appear in stdout, stderr, the logs, or any byte of the state
//! directory (state.db with its -wal and -shm: outbox, run memory, ledger).

#[path = "common/campaign.rs"]
mod campaign;

use std::path::Path;
use std::time::Duration;

use campaign::{Bin, Finished};
use mana_sandbox::{Fault, FaultKind, RouteGroup, Sandbox, SandboxOptions};
use secrecy::{ExposeSecret, SecretString};

const SEED_SECRET: &str = "SEEDSECRET-7f3a9c2e41b8d6f05a17";
const SERVICE_KEY: &str = "SVCKEY-2b8e61d0c4f9a3e7b512";
const ADMIN_JWT: &str = "ADMINJWT-9d4c07e2b6a1f8355e0c";
const LLM_KEY: &str = "LLMKEY-e5a1c3f7092b4d68a9f1";
const PERSONAS: usize = 6;
const LIMIT: Duration = Duration::from_secs(120);

/// What must never show: the whole value, and a distinctive piece of it (a
/// cut error body could carry half a secret).
struct Needle {
    what: String,
    forms: Vec<String>,
}

fn needle(what: &str, secret: &str, piece: std::ops::Range<usize>) -> Needle {
    Needle {
        what: what.to_string(),
        forms: vec![secret.to_string(), secret[piece].to_string()],
    }
}

/// Every file under `dir`, recursively, as raw bytes.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Logs in as `email` like the platform's own app would, to learn a JWT
/// the sandbox issues to that persona.
async fn persona_jwt(url: &str, email: &str) -> String {
    let pw = mana_personas::password::derive(&SecretString::from(SEED_SECRET), email, false)
        .expect("derive");
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": pw.expose_secret()}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    v["accessToken"].as_str().expect("accessToken").to_string()
}

/// A sandbox with the audit's secrets (its database in `dir`), and the
/// binary pointed at it with every log line on, state in `home/state`.
async fn audited(dir: &Path, home: &Path) -> (Sandbox, Bin) {
    std::fs::create_dir_all(home).unwrap();
    let sb = Sandbox::start(SandboxOptions {
        db_path: Some(dir.join("sandbox.db")),
        admin_jwt: ADMIN_JWT.into(),
        service_key: SERVICE_KEY.into(),
        // The audit runs every command against one sandbox: under apps/api's
        // 200/min it would mostly wait for budget windows (tests/budget.rs
        // covers the pacing).
        api_rate_limit: 0,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts");
    let mut bin = Bin::new(&sb.url(), home, ADMIN_JWT, SERVICE_KEY, SEED_SECRET);
    bin.set("MANA_PERSONAS_LOG", "trace");
    bin.provider(false, LLM_KEY);
    (sb, bin)
}

fn tick_faults(sb: &Sandbox, stuck_persona: &str) {
    let f = sb.faults();
    // One persona's actions batch keeps failing (every attempt of its POST):
    // it stays in the outbox with its error recorded in state.db.
    f.push(Fault {
        route: RouteGroup::Internal,
        kind: FaultKind::Status {
            status: 500,
            retry_after: None,
        },
        count: 5,
        path_contains: Some(format!("/{stuck_persona}/actions")),
    });
    // The LLM is overloaded long enough for one persona to give up.
    f.push(Fault {
        route: RouteGroup::Llm,
        kind: FaultKind::Status {
            status: 529,
            retry_after: Some(0),
        },
        count: 5,
        path_contains: None,
    });
    f.push(Fault {
        route: RouteGroup::Llm,
        kind: FaultKind::SseError,
        count: 1,
        path_contains: None,
    });
    for route in [RouteGroup::Mcp, RouteGroup::Auth, RouteGroup::Internal] {
        f.push(Fault {
            route,
            kind: FaultKind::Drop,
            count: 1,
            path_contains: None,
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_output_logs_or_state() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (sb, mut bin) = audited(dir.path(), &home).await;
    let url = sb.url();
    bin.set("OPENAI_API_KEY", LLM_KEY);
    let catalog = home.join("catalog.json");
    campaign::write_catalog(&catalog, PERSONAS);
    let cat = catalog.display().to_string();
    let emails: Vec<String> = (0..PERSONAS)
        .map(|i| format!("camp.p{i:03}@mana.test"))
        .collect();

    let mut runs: Vec<Finished> = Vec::new();
    let mut run = async |bin: &Bin, args: &[&str], want: &[i32]| {
        let f = bin.run(args, LIMIT).await;
        assert!(
            f.code.is_some_and(|c| want.contains(&c)),
            "{args:?} exit {:?} (wanted {want:?})\n{}",
            f.code,
            campaign::tail(&f.stderr, 3000)
        );
        runs.push(f);
    };

    run(&bin, &["config"], &[0]).await;
    run(&bin, &["--log-format", "json", "config", "--json"], &[0]).await;
    sb.faults().fail(RouteGroup::Admin, 503, 1);
    run(
        &bin,
        &["--log-format", "json", "seed", "--catalog", &cat],
        &[0],
    )
    .await;
    run(&bin, &["login", &emails[0]], &[0]).await;
    run(
        &bin,
        &["--log-format", "json", "login", &emails[1], "--json"],
        &[0],
    )
    .await;
    // A JWT we were given ourselves, as the brief of the audit asks.
    let own_jwt = persona_jwt(&url, &emails[2]).await;

    // Persona 5 cannot log in any more: a 401 on every tick.
    sb.db()
        .call(|c| {
            c.execute(
                "UPDATE users SET password_hash = 'rotated' WHERE email = ?1",
                [&emails[5]],
            )
        })
        .unwrap();

    let stuck: String = sb
        .db()
        .call(|c| {
            c.query_row("SELECT id FROM users WHERE email = ?1", [&emails[0]], |r| {
                r.get(0)
            })
        })
        .unwrap();
    tick_faults(&sb, &stuck);
    run(
        &bin,
        &[
            "--log-format",
            "json",
            "tick",
            "--once",
            "--json",
            "--concurrency",
            "3",
        ],
        &[1],
    )
    .await;
    campaign::make_all_due(&sb);
    tick_faults(&sb, &stuck);
    run(
        &bin,
        &["tick", "--once", "--force", "--concurrency", "3"],
        &[1],
    )
    .await;
    campaign::make_all_due(&sb);
    tick_faults(&sb, &stuck);
    bin.provider(true, LLM_KEY);
    run(
        &bin,
        &[
            "--log-format",
            "json",
            "tick",
            "--once",
            "--force",
            "--concurrency",
            "3",
        ],
        &[1],
    )
    .await;

    // The daemon, at trace in JSON, with the same failures: its HTTP answers
    // (health, metrics, diag, control with a right and a wrong key) are
    // scanned too. It stops on SIGTERM, so its stop path prints as well.
    campaign::make_all_due(&sb);
    tick_faults(&sb, &stuck);
    let port = campaign::free_port();
    let base = format!("http://127.0.0.1:{port}");
    bin.set("TICK_INTERVAL_MS", "600000");
    bin.set("SHUTDOWN_GRACE_MS", "5000");
    bin.set("RUNNER_PAUSED", "true");
    let mut d = bin.spawn(&[
        "--log-format",
        "json",
        "daemon",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--concurrency",
        "3",
    ]);
    campaign::wait_healthy(&base, &mut d, LIMIT).await;
    let http = reqwest::Client::new();
    let mut bodies: Vec<(String, u16, String)> = Vec::new();
    let mut call = async |label: &str, req: reqwest::RequestBuilder| {
        let resp = req.send().await.expect(label);
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        bodies.push((label.to_string(), status, body.clone()));
        body
    };
    // Paused at start: no interval tick gets in the way of the diag one.
    call(
        "POST /diag/tick (paused)",
        http.post(format!("{base}/diag/tick")),
    )
    .await;
    call(
        "POST /control/resume (wrong key)",
        http.post(format!("{base}/control/resume"))
            .header("x-service-key", "not-the-key"),
    )
    .await;
    call(
        "POST /control/resume",
        http.post(format!("{base}/control/resume"))
            .header("x-service-key", SERVICE_KEY),
    )
    .await;
    call("POST /diag/tick", http.post(format!("{base}/diag/tick"))).await;
    call(
        "POST /diag/tick (busy)",
        http.post(format!("{base}/diag/tick")),
    )
    .await;
    for e in [&emails[0], &emails[5]] {
        call(
            &format!("GET /diag/login {e}"),
            http.get(format!("{base}/diag/login?email={}", e.replace('@', "%40"))),
        )
        .await;
    }
    // Let the diag tick finish, reading /health and /metrics meanwhile.
    let mut ticked = false;
    for _ in 0..600 {
        call("GET /metrics", http.get(format!("{base}/metrics"))).await;
        let health: serde_json::Value =
            serde_json::from_str(&call("GET /health", http.get(format!("{base}/health"))).await)
                .unwrap_or_default();
        if health["inFlight"] == 0 && health["lastTick"]["due"].is_u64() {
            ticked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ticked,
        "the daemon's tick never finished: {:?}",
        bodies.last()
    );
    call(
        "POST /control/pause",
        http.post(format!("{base}/control/pause"))
            .header("x-service-key", SERVICE_KEY),
    )
    .await;
    let pid = d.child.id() as i32;
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let f = d.wait(LIMIT).await;
    assert_eq!(f.code, Some(0), "{}", campaign::tail(&f.stderr, 3000));
    runs.push(f);
    let statuses: Vec<(String, u16)> = bodies.iter().map(|(l, s, _)| (l.clone(), *s)).collect();
    for (label, want) in [
        ("POST /diag/tick (paused)", 409),
        ("POST /control/resume (wrong key)", 401),
        ("POST /control/resume", 200),
        ("POST /diag/tick", 202),
        ("POST /diag/tick (busy)", 409),
        ("POST /control/pause", 200),
        ("GET /diag/login camp.p000@mana.test", 200),
        ("GET /diag/login camp.p005@mana.test", 502),
        ("GET /metrics", 200),
    ] {
        assert!(
            statuses.contains(&(label.to_string(), want)),
            "{label} → {want} expected: {statuses:?}"
        );
    }

    // Every session token the sandbox ever issued (the runner's logins and
    // ours), and the JWT we were given ourselves.
    let mut tokens: Vec<String> = sb
        .db()
        .call(|c| {
            let mut st = c.prepare("SELECT token FROM sessions")?;
            st.query_map([], |r| r.get::<_, String>(0))?.collect()
        })
        .unwrap();
    tokens.push(own_jwt);
    assert!(
        tokens.len() >= 3 + 3 * (PERSONAS - 2),
        "the ticks logged in: {} sessions",
        tokens.len()
    );

    let mut needles = vec![
        needle("the seed secret", SEED_SECRET, 11..23),
        needle("the service key", SERVICE_KEY, 7..19),
        needle("the admin JWT", ADMIN_JWT, 9..21),
        needle("the LLM key", LLM_KEY, 7..19),
    ];
    for t in &tokens {
        // A JWT's secret part is its signature (its header is the same for all).
        let part = t.rsplit('.').next().unwrap_or(t);
        needles.push(needle(&format!("persona token {t}"), part, 0..16));
    }
    for e in &emails {
        let pw = mana_personas::password::derive_raw(SEED_SECRET.as_bytes(), e);
        needles.push(needle(&format!("the password of {e}"), &pw, 0..16));
    }

    // The error paths really printed, at trace, in both formats (else the
    // audit proves nothing).
    let all_out: String = runs
        .iter()
        .map(|f| format!("{}\n{}\n", f.stdout, f.stderr))
        .chain(bodies.iter().map(|(_, _, b)| format!("{b}\n")))
        .collect();
    for seen in [
        "HTTP 401",
        "HTTP 500",
        "529",
        "TRACE",
        "\"level\":\"TRACE\"",
        "stays in the outbox",
        "<set>",
        "userId",
        "mana_personas_",
        "missing or wrong X-Service-Key",
        "Invalid email or password",
    ] {
        assert!(all_out.contains(seen), "{seen:?} never printed");
    }
    let state = files_under(&bin.state_dir);
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("state.db")),
        "state files: {names:?}"
    );
    let ledger = campaign::ledger(&bin.state_dir);
    assert!(
        ledger.len() >= 3 * (PERSONAS - 1),
        "ledger: {}",
        ledger.len()
    );
    assert!(
        campaign::outbox(&bin.state_dir)
            .iter()
            .any(|e| !e.rows.is_empty()),
        "a batch waits in the outbox with its error"
    );

    let files = files_under(&home);
    let scan = |form: &str| -> Vec<String> {
        let mut at = Vec::new();
        for f in &runs {
            for (stream, text) in [("stdout", &f.stdout), ("stderr", &f.stderr)] {
                if text.contains(form) {
                    at.push(format!("the {stream} of {:?}", f.args));
                }
            }
        }
        for (name, bytes) in &files {
            if contains(bytes, form) {
                at.push(name.clone());
            }
        }
        for (label, _, body) in &bodies {
            if body.contains(form) {
                at.push(format!("the daemon's answer to {label}"));
            }
        }
        at
    };
    // The scan finds what really is there: persona 0's user id is in the
    // `login` output, in state.db (outbox, ledger) and in `/diag/login`.
    let found = scan(&stuck);
    assert!(
        found.iter().any(|w| w.contains("\"login\""))
            && found.iter().any(|w| w.ends_with("state.db"))
            && found.iter().any(|w| w.contains("/diag/login")),
        "the scan misses a value that is there: {found:?}"
    );
    let mut leaks = Vec::new();
    for n in &needles {
        for form in &n.forms {
            leaks.extend(scan(form).into_iter().map(|w| format!("{} in {w}", n.what)));
        }
    }
    leaks.sort();
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "secrets leaked:\n  {}",
        leaks.join("\n  ")
    );
    println!(
        "secrets audit: {} runs and {} daemon answers, {} bytes of output, {} state files ({} bytes), {} needles ({} persona JWTs): clean",
        runs.len(),
        bodies.len(),
        all_out.len(),
        state.len(),
        state.iter().map(|(_, b)| b.len()).sum::<usize>(),
        needles.len(),
        tokens.len()
    );
}

/// Issue 11.12 and 11.13: a login answered `422 {"received":{…,"password":…}}`
/// (a server echoing the request) and an LLM base URL with a password in its
/// userinfo. The derived passwords and the URL's password appear nowhere —
/// stdout, stderr (at trace), any byte of the state directory (state.db,
/// -wal, -shm), the daemon's `/diag/login` — and state.db with its WAL is
/// 0600. The echoed body itself still shows (`<redacted>` where a secret was).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_passwords_and_url_userinfo_are_redacted_everywhere() {
    use std::os::unix::fs::PermissionsExt;
    const URL_PASSWORD: &str = "URLPASS-4c1e9b7a2d";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (sb, mut bin) = audited(dir.path(), &home).await;
    let url = sb.url();
    let catalog = home.join("catalog.json");
    campaign::write_catalog(&catalog, 2);
    let emails: Vec<String> = (0..2).map(|i| format!("camp.p{i:03}@mana.test")).collect();
    let mut runs: Vec<Finished> = Vec::new();
    let f = bin
        .run(
            &["seed", "--catalog", &catalog.display().to_string()],
            LIMIT,
        )
        .await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);

    // Every login echoes its request in a 422.
    let echo = || Fault {
        route: RouteGroup::Auth,
        kind: FaultKind::Echo { status: 422 },
        count: 1000,
        path_contains: Some("/login".into()),
    };
    sb.faults().push(echo());
    let f = bin.run(&["tick", "--once"], LIMIT).await;
    assert_eq!(f.code, Some(1), "{}", campaign::tail(&f.stderr, 3000));
    assert!(
        f.stdout.contains("HTTP 422") && f.stdout.contains("\"password\":\"<redacted>\""),
        "the ✗ lines show the echoed body, redacted:\n{}",
        f.stdout
    );
    runs.push(f);
    sb.faults().clear();

    // The LLM's URL carries a password (and answers nothing: a closed port).
    let llm = format!(
        "http://urluser:{URL_PASSWORD}@127.0.0.1:{}",
        campaign::free_port()
    );
    bin.set("ANTHROPIC_BASE_URL", &llm);
    for args in [
        &["tick", "--once", "--force"][..],
        &["config"][..],
        &["config", "--json"][..],
    ] {
        let f = bin.run(args, LIMIT).await;
        runs.push(f);
    }
    bin.set("MANA_API_URL", &llm);
    let f = bin
        .run(
            &[
                "seed",
                "--dry-run",
                "--catalog",
                &catalog.display().to_string(),
            ],
            LIMIT,
        )
        .await;
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    runs.push(f);
    bin.set("MANA_API_URL", &url);
    assert!(
        runs[1]
            .stdout
            .contains("cannot reach http://<redacted>@127.0.0.1"),
        "the ✗ line names the URL without its password:\n{}",
        runs[1].stdout
    );

    // The daemon's /diag/login with the echoing login.
    sb.faults().push(echo());
    let port = campaign::free_port();
    let base = format!("http://127.0.0.1:{port}");
    bin.set("TICK_INTERVAL_MS", "600000");
    bin.set("RUNNER_PAUSED", "true");
    let mut d = bin.spawn(&["daemon", "--listen", &format!("127.0.0.1:{port}")]);
    campaign::wait_healthy(&base, &mut d, LIMIT).await;
    let resp = reqwest::get(format!(
        "{base}/diag/login?email={}",
        emails[0].replace('@', "%40")
    ))
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    let diag = resp.text().await.unwrap();
    assert!(
        diag.contains("422") && diag.contains("<redacted>"),
        "{diag}"
    );
    // While the daemon holds the database open, its WAL and SHM exist: all
    // private, like the lock file.
    for name in ["state.db", "state.db-wal", "state.db-shm", "lock"] {
        let p = bin.state_dir.join(name);
        let mode = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
    }
    let mut files = files_under(&bin.state_dir);
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) }, 0);
    runs.push(d.wait(LIMIT).await);

    let mut secrets: Vec<(String, String)> = emails
        .iter()
        .map(|e| {
            (
                format!("the password of {e}"),
                mana_personas::password::derive_raw(SEED_SECRET.as_bytes(), e),
            )
        })
        .collect();
    secrets.push(("the LLM URL's password".into(), URL_PASSWORD.into()));
    files.extend(files_under(&bin.state_dir));
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for f in &runs {
            if f.stdout.contains(secret.as_str()) || f.stderr.contains(secret.as_str()) {
                leaks.push(format!("{what} in the output of {:?}", f.args));
            }
        }
        for (name, bytes) in &files {
            if contains(bytes, secret) {
                leaks.push(format!("{what} in {name}"));
            }
        }
        if diag.contains(secret.as_str()) {
            leaks.push(format!("{what} in /diag/login"));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets leaked:\n  {}",
        leaks.join("\n  ")
    );
}
