//! The platform's request budget, end to end: the real `mana-personas`
//! binary against a sandbox whose apps/api limits requests like the platform
//! (same headers, same 429), and the rows the platform will take.
//!
//! The sandbox's window is shortened to a few seconds ("200 per 6 s"): the
//! client learns the window from the `X-RateLimit-Reset` headers, so the run
//! has the platform's shape (three windows' worth of requests) in seconds
//! instead of minutes.

mod common;
#[path = "common/tick.rs"]
mod tk;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Shell, TEST_SEED_SECRET};
use mana_sandbox::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};
use serde_json::Value;

const PERSONAS: usize = 160;

/// A catalog of `n` daily personas using todo and notes.
fn write_catalog(path: &Path, n: usize) -> Vec<String> {
    let emails: Vec<String> = (0..n)
        .map(|i| format!("persona.budget{i:03}@mana.test"))
        .collect();
    let personas: Vec<Value> = emails
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.split('@').next().unwrap(),
                "email": e,
                "archetype": "solo-dev",
                "systemPrompt": "Du bist eine Testperson, die ihren Tag ordentlich plant.",
                "moduleMix": {"todo": 0.7, "notes": 0.3},
                "tickCadence": "daily"
            })
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_string_pretty(&serde_json::json!({ "personas": personas })).unwrap(),
    )
    .unwrap();
    emails
}

fn shell(sb: &Sandbox) -> Shell {
    let mut sh = Shell::against(&sb.url(), DEV_ADMIN_JWT, DEV_SERVICE_KEY, TEST_SEED_SECRET);
    sh.set("ANTHROPIC_BASE_URL", &sb.url())
        .set("ANTHROPIC_API_KEY", "sandbox-llm-key");
    sh
}

/// Longer than the shell's default: a 160-persona run waits for the budget.
fn slow(cmd: &mut assert_cmd::Command) {
    cmd.timeout(Duration::from_secs(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_160_persona_seed_and_tick_finish_under_the_budget_with_few_429s() {
    let sb = Sandbox::start(SandboxOptions {
        api_rate_limit: 200,
        api_rate_window: Duration::from_secs(6),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let sh = shell(&sb);
    let catalog = sh.path("catalog-160.json");
    write_catalog(&catalog, PERSONAS);
    let catalog = catalog.display().to_string();

    let seed = sh
        .run_with(&["seed", "--catalog", &catalog, "--concurrency", "8"], slow)
        .await;
    seed.expect_code(0);
    assert!(
        seed.stdout
            .contains(&format!("seeded {PERSONAS} of {PERSONAS} personas")),
        "{}",
        seed.all()
    );

    // The seed used 160 of this window's 200: the tick (321 requests: the
    // due list, then actions + feedback per persona) spans three windows.
    let tick = sh
        .run_with(&["tick", "--once", "--json", "--concurrency", "8"], slow)
        .await;
    tick.expect_code(0);
    let s: Value = serde_json::from_str(&tick.stdout).expect("JSON summary");
    assert_eq!(s["ran"], PERSONAS, "{}", tick.all());
    assert_eq!(s["ok"], PERSONAS, "{}", tick.all());
    assert_eq!(s["failed"].as_array().unwrap().len(), 0, "{}", tick.all());
    assert_eq!(s["outboxPending"], 0, "{}", tick.all());
    assert!(
        s["apiWaits"].as_u64().unwrap() > 0,
        "the tick never waited for the budget: {}",
        tick.all()
    );
    assert!(
        tick.stderr
            .contains("for the platform's request budget (200/min)"),
        "no wait notice: {}",
        tick.stderr
    );
    assert_eq!(
        sb.db()
            .count("SELECT COUNT(DISTINCT persona_id) FROM persona_feedback"),
        PERSONAS as i64
    );

    let r = sb.rate_limit_report();
    // The seed, the due list, and actions + feedback per persona.
    let at_least = PERSONAS + 1 + 2 * PERSONAS;
    assert!(r.requests as usize >= at_least, "{r:?}");
    assert!(
        r.limited_share() <= 0.02,
        "{} of {} apps/api requests were answered 429: {r:?}",
        r.limited,
        r.requests
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn apps_api_answers_like_the_platform_over_its_budget_and_auth_is_not_counted() {
    let sb = Sandbox::start(SandboxOptions {
        api_rate_limit: 3,
        api_rate_window: Duration::from_secs(30),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let due = format!("{}/api/v1/personas/internal/due", sb.url());
    let list = format!("{}/api/v1/personas/admin", sb.url());
    let get = |url: String, key: (&'static str, String)| {
        let http = http.clone();
        async move { http.get(url).header(key.0, key.1).send().await.unwrap() }
    };
    let svc = || ("x-service-key", DEV_SERVICE_KEY.to_string());
    let adm = || ("authorization", format!("Bearer {DEV_ADMIN_JWT}"));
    // Admin and internal routes share one budget.
    let mut remaining = Vec::new();
    for r in [
        get(due.clone(), svc()).await,
        get(list.clone(), adm()).await,
        get(due.clone(), svc()).await,
    ] {
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        remaining.push(
            r.headers()["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = get(list.clone(), adm()).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    let reset: u64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 31, "reset {reset}, now {now}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"error": "Too many requests"}));
    // mana-auth's routes are not apps/api's: no headers, no 429.
    let login = http
        .post(format!("{}/api/v1/auth/login", sb.url()))
        .json(&serde_json::json!({"email": "nobody@mana.test", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_ne!(login.status(), 429);
    assert!(login.headers().get("x-ratelimit-limit").is_none());
    // A client behind another address has its own bucket.
    let other = http
        .get(&due)
        .header("x-service-key", DEV_SERVICE_KEY)
        .header("x-forwarded-for", "10.0.0.7")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let rep = sb.rate_limit_report();
    assert_eq!((rep.requests, rep.limited), (5, 1), "{rep:?}");
    sb.shutdown().await;
}

/// What a recording proxy in front of apps/api saw: (path, body).
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A loopback proxy that records every request body and forwards it to
/// `target` unchanged (status, headers and body back as they came).
async fn recording_proxy(target: String) -> (String, Seen) {
    use axum::body::Bytes;
    use axum::extract::Request;
    use axum::response::{IntoResponse, Response};
    let seen: Seen = Arc::default();
    let rec = seen.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (rec, http, target) = (rec.clone(), http.clone(), target.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body: Bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
            let path = parts.uri.path().to_string();
            rec.lock().unwrap().push((path.clone(), body.to_vec()));
            let mut fwd = http.request(parts.method.clone(), format!("{target}{}", parts.uri));
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    fwd = fwd.header(k, v);
                }
            }
            let resp = fwd.body(body).send().await.unwrap();
            let mut out = Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                if k != "content-length" && k != "transfer-encoding" {
                    out = out.header(k, v);
                }
            }
            out.body(axum::body::Body::from(resp.bytes().await.unwrap()))
                .unwrap()
                .into_response()
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn rows_carry_integers_for_rating_and_latency_and_strings_for_strings() {
    let sb = tk::sandbox(None).await;
    let (proxy, seen) = recording_proxy(sb.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tk::config(&sb.url(), dir.path(), &[]);
    cfg.api_url = proxy;
    tk::seed(&cfg, &tk::catalog_seeds()[..3]).await;
    let runner = mana_personas::runner::Runner::from_config(&cfg).unwrap();
    let summary = tk::run_once(&runner).await;
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let seen = seen.lock().unwrap().clone();
    let bodies = |suffix: &str| -> Vec<Value> {
        seen.iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .map(|(_, b)| serde_json::from_slice(b).expect("a JSON body"))
            .collect()
    };
    let actions: Vec<Value> = bodies("/actions")
        .iter()
        .flat_map(|b| b["actions"].as_array().unwrap().clone())
        .collect();
    let feedback: Vec<Value> = bodies("/feedback")
        .iter()
        .flat_map(|b| b["feedback"].as_array().unwrap().clone())
        .collect();
    assert!(!actions.is_empty() && !feedback.is_empty());
    for a in &actions {
        for k in ["tickId", "toolName", "result"] {
            assert!(a[k].is_string(), "{k} in {a}");
        }
        for k in ["inputHash", "errorMessage"] {
            assert!(a.get(k).is_none_or(Value::is_string), "{k} in {a}");
        }
        // is_u64 is false for 12.0: a float never passes.
        assert!(
            a.get("latencyMs").is_none_or(Value::is_u64),
            "latencyMs in {a}"
        );
    }
    for f in &feedback {
        assert!(f["tickId"].is_string() && f["module"].is_string(), "{f}");
        assert!(f["rating"].is_u64(), "rating in {f}");
        assert!((1..=5).contains(&f["rating"].as_u64().unwrap()), "{f}");
        assert!(f.get("notes").is_none_or(Value::is_string), "notes in {f}");
    }
    sb.shutdown().await;
}

// ------------------------------------------------------------------ doctor

struct Doc {
    sb: Sandbox,
    sh: Shell,
    catalog: PathBuf,
}

/// A sandbox that checks the LLM key, a shell pointed at it, one persona seeded.
async fn doctor_setup() -> Doc {
    let sb = Sandbox::start(SandboxOptions {
        llm_api_key: Some("right-llm-key".into()),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let mut sh = shell(&sb);
    sh.set("ANTHROPIC_API_KEY", "right-llm-key");
    let catalog = sh.path("catalog.json");
    write_catalog(&catalog, 1);
    sh.run(&["seed", "--catalog", &catalog.display().to_string()])
        .await
        .expect_code(0);
    Doc { sb, sh, catalog }
}

impl Doc {
    async fn doctor(&self) -> (i32, Value, String) {
        let out = self
            .sh
            .run(&[
                "doctor",
                "--json",
                "--catalog",
                &self.catalog.display().to_string(),
            ])
            .await;
        let v: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
        (out.code, v, out.all())
    }
}

/// Login requests the sandbox has seen.
fn logins(sb: &Sandbox) -> u64 {
    sb.faults()
        .stats()
        .iter()
        .filter(|e| e.endpoint == "POST /api/v1/auth/login")
        .map(|e| e.requests)
        .sum()
}

fn status_of<'a>(report: &'a Value, step: &str) -> &'a str {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {report}"))["status"]
        .as_str()
        .unwrap()
}

fn failed_steps(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_the_sandbox_in_order_and_prints_no_secret() {
    let d = doctor_setup().await;
    let (code, v, all) = d.doctor().await;
    assert_eq!(code, 0, "{all}");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "configuration",
            "auth reachable",
            "persona login",
            "spaces",
            "MCP initialize",
            "MCP tools",
            "MCP DELETE",
            "admin JWT",
            "service key",
            "request budget",
            "LLM key and model",
            "model not deprecated"
        ]
    );
    assert!(v["ok"].as_bool().unwrap(), "{all}");
    assert!(all.contains("not a JWT; lifetime unknown"), "{all}");
    assert!(all.contains(" tools over "), "{all}");
    for secret in [
        DEV_ADMIN_JWT,
        DEV_SERVICE_KEY,
        TEST_SEED_SECRET,
        "right-llm-key",
    ] {
        assert!(!all.contains(secret), "doctor printed a secret: {all}");
    }
    // The human form: one line per step, then the verdict.
    let out =
        d.sh.run(&["doctor", "--catalog", &d.catalog.display().to_string()])
            .await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("doctor: all 12 steps passed"),
        "{}",
        out.all()
    );
    d.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_step_of_each_wrong_credential() {
    let mut d = doctor_setup().await;
    let cases = [
        (
            "PERSONA_SEED_SECRET",
            "a-different-seed-secret",
            "persona login",
        ),
        ("MANA_ADMIN_JWT", "stale-admin-jwt", "admin JWT"),
        ("MANA_SERVICE_KEY", "wrong-service-key", "service key"),
        ("ANTHROPIC_API_KEY", "wrong-llm-key", "LLM key and model"),
    ];
    for (var, wrong, step) in cases {
        let right = match var {
            "PERSONA_SEED_SECRET" => TEST_SEED_SECRET,
            "MANA_ADMIN_JWT" => DEV_ADMIN_JWT,
            "MANA_SERVICE_KEY" => DEV_SERVICE_KEY,
            _ => "right-llm-key",
        };
        d.sh.set(var, wrong);
        let logins_before = logins(&d.sb);
        let (code, v, all) = d.doctor().await;
        // One login per run, also when it is refused: never retried.
        assert_eq!(logins(&d.sb) - logins_before, 1, "{var}: {all}");
        assert_eq!(code, 1, "{var}: {all}");
        assert_eq!(status_of(&v, step), "failed", "{var}: {all}");
        let failed = failed_steps(&v);
        assert_eq!(failed, [step], "{var}: only its step fails: {all}");
        assert!(
            !all.contains(wrong),
            "{var}: printed the wrong secret: {all}"
        );
        d.sh.set(var, right);
    }
    d.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_check_mcp_compares_catalog_modules_with_the_live_tools() {
    let sb = tk::sandbox(None).await;
    let sh = shell(&sb);
    let catalog = sh.path("catalog.json");
    let v = serde_json::json!({"personas": [{
        "name": "Lena", "email": "persona.lena@mana.test", "archetype": "researcher",
        "systemPrompt": "Du bist Lena, eine Forscherin mit vielen Notizen.",
        "moduleMix": {"notes": 0.5, "articles": 0.3, "calendar": 0.2}, "tickCadence": "daily"
    }]});
    std::fs::write(&catalog, v.to_string()).unwrap();
    let c = catalog.display().to_string();
    sh.run(&["seed", "--catalog", &c]).await.expect_code(0);
    let out = sh.run(&["catalog", "check", &c, "--mcp"]).await;
    out.expect_code(0);
    let text = &out.stdout;
    assert!(
        text.contains("/mcp as persona.lena@mana.test: ") && text.contains(" tools over "),
        "{}",
        out.all()
    );
    assert!(
        text.contains("  articles: weighted by persona.lena@mana.test"),
        "{text}"
    );
    assert!(
        text.contains("  calendar: weighted by persona.lena@mana.test"),
        "{text}"
    );
    assert!(!text.contains("  notes: weighted"), "{text}");
    let unused = text
        .lines()
        .find_map(|l| l.strip_prefix("platform modules no persona uses: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        unused.contains("todo") && unused.contains("mood"),
        "{unused}"
    );
    assert!(!unused.contains("notes"), "{unused}");
    sb.shutdown().await;
}
