//! `mana-personas daemon`, the real binary as a child process, against a
//! sandbox started in this test process: readiness and systemd's notify
//! protocol, ticks on the interval reflected in `/health` and `/metrics`,
//! overlapping ticks skipped, pause/resume at runtime, SIGTERM in the middle
//! of a slow tick, diag endpoints gone in production, a bad SIGHUP reload.

#[path = "common/tick.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Seed;
use mana_personas::state::State;
use mana_personas::state::summary::{CallSummary, Summary};
use mana_sandbox::{DEV_SERVICE_KEY, Sandbox, SandboxOptions};
use serde_json::{Value, json};

/// A running daemon: its child process, its log lines (JSON), its address.
struct Daemon {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with a clean environment pointing every URL at the sandbox.
fn command(sandbox_url: &str, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mana-personas"));
    c.env_clear()
        .current_dir(home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("MANA_AUTH_URL", sandbox_url)
        .env("MANA_API_URL", sandbox_url)
        .env("MANA_MCP_URL", sandbox_url)
        .env("ANTHROPIC_BASE_URL", sandbox_url)
        .env("ANTHROPIC_API_KEY", "k")
        .env("MANA_SERVICE_KEY", DEV_SERVICE_KEY)
        .env("STATE_DIRECTORY", home.join("state"))
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

impl Daemon {
    /// Starts `daemon --log-format json` and waits until `/health` answers.
    fn start(sandbox_url: &str, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all: Vec<&str> = vec!["daemon", "--log-format", "json", "--listen", &listen];
        all.extend_from_slice(args);
        let mut child = command(sandbox_url, home, env, &all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let d = Daemon {
            child,
            logs,
            base: format!("http://{listen}"),
        };
        d.wait_for("/health to answer", Duration::from_secs(20), || {
            d.get("/health").is_some()
        });
        d
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        http(&self.base, "GET", path, None)
    }

    fn health(&self) -> Value {
        let (_, body) = self.get("/health").expect("/health answers");
        serde_json::from_str(&body).expect("/health is JSON")
    }

    fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        body
    }

    fn post(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let (code, body) = http(&self.base, "POST", path, key).expect("POST answers");
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    fn messages(&self, message: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|v| v["message"] == message)
            .collect()
    }

    #[track_caller]
    fn wait_for(&self, what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out after {limit:?} waiting for {what}\n--- daemon log:\n{}",
            self.log_text()
        );
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit; its exit code and how long it took.
    fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code(), t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!(
            "daemon did not exit within {limit:?}\n--- log:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One exchange with the daemon through reqwest, from the blocking test
/// body (`spawn_blocking` threads may block on the runtime); `None` when
/// nothing listens.
fn http(base: &str, method: &str, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    tokio::runtime::Handle::current().block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{base}{path}");
        let mut req = match method {
            "POST" => client.post(&url),
            _ => client.get(&url),
        };
        if let Some(k) = key {
            req = req.header("X-Service-Key", k);
        }
        let resp = req.send().await.ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.text().await.ok()?))
    })
}

/// The value of one sample line, `name{labels} value`, or 0 when absent
/// (a counter that never moved is not printed for a label set).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|v| v.trim().parse::<f64>().expect("numeric sample"))
        })
        .unwrap_or(0.0)
}

/// Sum of every sample of a family whose labels contain `filter`.
fn metric_sum(text: &str, family: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(filter))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn sandbox_with_latency(ms: u64) -> Sandbox {
    Sandbox::start(SandboxOptions {
        llm_latency_ms: ms,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

/// Seeds `seeds` (the seed secret is the binary's default for tests: the dev
/// fallback outside production).
async fn seed(sb: &Sandbox, home: &Path, seeds: &[Seed]) {
    let cfg = common::config(&sb.url(), &home.join("seed-state"), &[]);
    common::seed(&cfg, seeds).await;
}

fn seeds(n: usize, prefix: &str, directive: &str) -> Vec<Seed> {
    (0..n)
        .map(|i| Seed::daily(&format!("{prefix}{i}@mana.test"), directive))
        .collect()
}

/// Runs blocking test code (the daemon helpers block) beside the sandbox,
/// which needs the runtime to keep serving.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("test body")
}

/// Ready → one tick → `/health` and `/metrics` say exactly what happened;
/// systemd hears READY, STATUS, WATCHDOG and STOPPING; SIGTERM exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn becomes_ready_ticks_and_reports_what_happened() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(3, "ready", "[sandbox:tools=3]")).await;
    let url = sb.url();
    let socket_path = home.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let heard = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = heard.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match notify.recv(&mut buf) {
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => continue,
            }
        }
    });
    let sock = socket_path.display().to_string();
    let heard_in_test = heard.clone();
    let (health, metrics, code, elapsed, daemon_logs) = blocking(move || {
        let mut d = Daemon::start(
            &url,
            &home,
            &[
                ("TICK_INTERVAL_MS", "60000"),
                ("NOTIFY_SOCKET", &sock),
                ("WATCHDOG_USEC", "400000"),
            ],
            &[],
        );
        d.wait_for("the first tick to finish", Duration::from_secs(30), || {
            !d.health()["lastTick"].is_null()
        });
        // Watchdog pings every 200 ms (half of WATCHDOG_USEC).
        d.wait_for("two watchdog pings", Duration::from_secs(10), || {
            heard_in_test
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.contains("WATCHDOG=1"))
                .count()
                >= 2
        });
        let health = d.health();
        let metrics = d.metrics();
        d.signal(libc::SIGTERM);
        let (code, elapsed) = d.wait_exit(Duration::from_secs(20));
        (health, metrics, code, elapsed, d.log_text())
    })
    .await;

    assert_eq!(code, Some(0), "clean stop exits 0\n{daemon_logs}");
    assert!(
        elapsed < Duration::from_secs(5),
        "idle stop is quick: {elapsed:?}"
    );
    // /health
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["paused"], false);
    assert_eq!(health["tickIntervalMs"], 60000);
    assert_eq!(health["inFlight"], 0);
    assert_eq!(health["outboxPending"], 0);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let last = &health["lastTick"];
    assert_eq!(last["due"], 3, "{health}");
    assert_eq!(last["ok"], 3, "{health}");
    assert_eq!(last["failed"], 0, "{health}");
    assert!(last["startedAt"].as_str().unwrap().contains('T'));

    // /metrics against the sandbox's own records.
    let rows = sb.db().count("SELECT COUNT(*) FROM persona_actions");
    let llm_calls = sb.db().count("SELECT COUNT(*) FROM llm_requests");
    assert_eq!(rows, 9, "3 personas × 3 tool calls posted");
    assert_eq!(metric(&metrics, "mana_personas_ticks_started_total"), 1.0);
    assert_eq!(metric(&metrics, "mana_personas_ticks_failed_total"), 0.0);
    assert_eq!(
        metric(
            &metrics,
            r#"mana_personas_persona_runs_total{outcome="ok"}"#
        ),
        3.0
    );
    assert_eq!(
        metric_sum(&metrics, "mana_personas_tool_calls_total", ""),
        rows as f64,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "mana_personas_tool_call_duration_seconds_count"),
        rows as f64
    );
    assert_eq!(
        metric(
            &metrics,
            r#"mana_personas_llm_requests_total{provider="anthropic",status="200"}"#
        ),
        llm_calls as f64
    );
    let input_tokens = sb
        .db()
        .count("SELECT COALESCE(SUM(input_tokens), 0) FROM llm_requests");
    assert_eq!(
        metric(&metrics, r#"mana_personas_llm_tokens_total{kind="input"}"#),
        input_tokens as f64
    );
    assert_eq!(
        metric(&metrics, "mana_personas_tick_duration_seconds_count"),
        1.0
    );
    assert_eq!(metric(&metrics, "mana_personas_outbox_pending"), 0.0);
    assert_eq!(metric(&metrics, "mana_personas_paused"), 0.0);
    assert_eq!(metric(&metrics, "mana_personas_personas_in_flight"), 0.0);
    let last_ok = metric(
        &metrics,
        "mana_personas_last_successful_tick_timestamp_seconds",
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(now - last_ok < 60.0 && last_ok <= now + 1.0, "{last_ok}");

    // One structured event per persona run, with what an operator filters on.
    let runs: Vec<Value> = daemon_logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "persona run")
        .collect();
    assert_eq!(runs.len(), 3, "{daemon_logs}");
    for r in &runs {
        assert_eq!(r["outcome"], "ok");
        assert_eq!(r["actions"], 3);
        assert!(r["persona"].as_str().unwrap().starts_with("ready"));
        assert!(r["tick_id"].as_str().unwrap().len() == 36);
        assert!(r["tokens_in"].as_u64().unwrap() > 0);
        assert!(r["duration_ms"].is_u64());
    }

    // systemd: READY first, a STATUS after the tick, watchdog pings, STOPPING.
    let heard = heard.lock().unwrap().clone();
    assert!(heard[0].contains("READY=1"), "{heard:?}");
    assert!(
        heard
            .iter()
            .any(|m| m.contains("STATUS=last tick") && m.contains("3 ok")),
        "{heard:?}"
    );
    assert!(
        heard.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
        "{heard:?}"
    );
    assert!(heard.last().unwrap().contains("STOPPING=1"), "{heard:?}");
    sb.shutdown().await;
}

/// A tick longer than the interval: later slots are skipped and counted, and
/// two ticks never run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_ticks_are_skipped_and_counted() {
    let sb = sandbox_with_latency(300).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(2, "overlap", "[sandbox:tools=3]")).await;
    let url = sb.url();
    let (metrics, logs) = blocking(move || {
        let mut d = Daemon::start(&url, &home, &[("TICK_INTERVAL_MS", "250")], &[]);
        d.wait_for("a tick to finish", Duration::from_secs(30), || {
            !d.messages("tick finished").is_empty()
        });
        let metrics = d.metrics();
        d.signal(libc::SIGTERM);
        d.wait_exit(Duration::from_secs(20));
        (metrics, d.logs())
    })
    .await;
    let skipped = metric(
        &metrics,
        r#"mana_personas_ticks_skipped_total{reason="overlap"}"#,
    );
    assert!(
        skipped >= 2.0,
        "a >1 s tick on a 250 ms interval skips: {metrics}"
    );
    let skip_logs = logs
        .iter()
        .filter(|v| v["message"] == "tick skipped: the previous tick is still running")
        .count();
    assert!(
        skip_logs as f64 >= skipped,
        "each skip is logged once, at info"
    );
    assert!(logs.iter().all(|v| v["message"]
        != "tick skipped: the previous tick is still running"
        || v["level"] == "INFO"));
    // Never two at once: starts and ends alternate.
    let mut running = false;
    for v in &logs {
        if v["message"] == "tick started" {
            assert!(!running, "a tick started while another ran");
            running = true;
        } else if v["message"] == "tick finished" || v["message"] == "tick failed" {
            running = false;
        }
    }
    sb.shutdown().await;
}

/// RUNNER_PAUSED at start; `resume` (the CLI) and `/control/pause` at runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_at_runtime() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(1, "pause", "[sandbox:tools=2]")).await;
    let url = sb.url();
    blocking(move || {
        let mut d = Daemon::start(
            &url,
            &home,
            &[("TICK_INTERVAL_MS", "300"), ("RUNNER_PAUSED", "true")],
            &[],
        );
        d.wait_for("a paused slot", Duration::from_secs(10), || {
            metric(
                &d.metrics(),
                r#"mana_personas_ticks_skipped_total{reason="paused"}"#,
            ) >= 2.0
        });
        let h = d.health();
        assert_eq!(h["paused"], true, "{h}");
        assert_eq!(h["status"], "paused");
        assert!(h["lastTick"].is_null(), "no tick while paused: {h}");
        let m = d.metrics();
        assert_eq!(metric(&m, "mana_personas_ticks_started_total"), 0.0);
        assert_eq!(metric(&m, "mana_personas_paused"), 1.0);

        // The operator's command, same environment (state directory) as the
        // daemon but no --listen: the daemon listens on a port the
        // configuration does not name, and `resume` must still find it
        // through the address it recorded in the state directory.
        let out = command(&url, &home, &[], &["resume"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("{}) is running", d.base)),
            "{stdout}"
        );
        // The same as JSON: the daemon answered and took it.
        let out = command(&url, &home, &[], &["resume", "--json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).expect("resume --json");
        assert_eq!(
            (
                &v["daemonAnswered"],
                &v["daemonPaused"],
                &v["took"],
                &v["url"]
            ),
            (&json!(true), &json!(false), &json!(true), &json!(d.base)),
            "{v}"
        );
        d.wait_for("a tick after resume", Duration::from_secs(20), || {
            !d.health()["lastTick"].is_null()
        });
        assert_eq!(d.health()["paused"], false);

        // The control endpoint: the key is required, then it pauses at once.
        let (code, _) = d.post("/control/pause", None);
        assert_eq!(code, 401);
        let (code, _) = d.post("/control/pause", Some("wrong-key"));
        assert_eq!(code, 401);
        let (code, body) = d.post("/control/pause", Some(DEV_SERVICE_KEY));
        assert_eq!((code, &body["paused"]), (200, &Value::Bool(true)), "{body}");
        assert_eq!(d.health()["paused"], true);
        let started = metric(&d.metrics(), "mana_personas_ticks_started_total");
        let paused_slots = |d: &Daemon| {
            metric(
                &d.metrics(),
                r#"mana_personas_ticks_skipped_total{reason="paused"}"#,
            )
        };
        let before = paused_slots(&d);
        d.wait_for(
            "two more slots to pass paused",
            Duration::from_secs(10),
            || paused_slots(&d) >= before + 2.0,
        );
        assert_eq!(
            metric(&d.metrics(), "mana_personas_ticks_started_total"),
            started,
            "no tick starts while paused"
        );
        let logs = d.log_text();
        assert!(
            logs.contains("paused: no tick starts until resumed"),
            "{logs}"
        );
        d.signal(libc::SIGTERM);
        let (code, _) = d.wait_exit(Duration::from_secs(20));
        assert_eq!(code, Some(0));
    })
    .await;
    sb.shutdown().await;
}

/// Tick ids and action-row counts the ledger recorded (what the runner
/// produced), by tick.
fn ledger_actions(state_dir: &Path) -> Vec<(String, usize)> {
    let c = rusqlite::Connection::open(state_dir.join("state.db")).unwrap();
    let mut st = c
        .prepare("SELECT tick_id, transcript FROM ledger ORDER BY tick_id")
        .unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (tick, t) = r.unwrap();
            let v: Value = serde_json::from_str(&t).unwrap();
            (tick, v["actions"].as_array().map_or(0, Vec::len))
        })
        .collect()
}

/// SIGTERM while personas wait on a slow LLM: the daemon exits 0 within the
/// grace period (plus the moment it takes to queue), the rows produced so far
/// are in the outbox, and the next start posts each of them exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_tick_exits_within_grace_and_the_next_start_posts_once() {
    let sb = sandbox_with_latency(700).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(3, "term", "[sandbox:tools=6]")).await;
    let url = sb.url();
    let h = home.clone();
    let (code, elapsed, logs) = blocking(move || {
        let mut d = Daemon::start(
            &url,
            &h,
            &[("TICK_INTERVAL_MS", "60000"), ("PERSONA_CONCURRENCY", "3")],
            &["--grace-ms", "1000"],
        );
        // Wait until every persona has made a tool call, then stop.
        d.wait_for("tool calls in flight", Duration::from_secs(30), || {
            metric_sum(&d.metrics(), "mana_personas_tool_calls_total", "") >= 3.0
        });
        d.signal(libc::SIGTERM);
        let (code, elapsed) = d.wait_exit(Duration::from_secs(20));
        (code, elapsed, d.log_text())
    })
    .await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        elapsed < Duration::from_millis(1000 + 2500),
        "exits within the 1 s grace (+ queueing, on a loaded machine): {elapsed:?}\n{logs}"
    );
    assert!(logs.contains("grace period over"), "{logs}");
    let state = home.join("state");
    let produced = ledger_actions(&state);
    assert_eq!(
        produced.len(),
        3,
        "three persona ticks recorded: {produced:?}"
    );
    let total: usize = produced.iter().map(|(_, n)| n).sum();
    assert!(
        total >= 3,
        "work was produced before the stop: {produced:?}"
    );
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_actions"),
        0,
        "nothing posted after the abort: it is queued"
    );

    // The next start: a tick posts the outbox first; twice, to prove once.
    for run in 0..2 {
        let (url, h) = (sb.url(), home.clone());
        let out = blocking(move || {
            command(&url, &h, &[], &["tick", "--once", "--json"])
                .output()
                .unwrap()
        })
        .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["outboxPending"], 0, "{s}");
        if run == 0 {
            assert!(
                s["outboxDelivered"].as_u64().unwrap() > 0,
                "the queued rows go first: {s}"
            );
        } else {
            assert_eq!(
                s["outboxDelivered"], 0,
                "nothing left to deliver twice: {s}"
            );
        }
    }
    for (tick, n) in &produced {
        let posted = sb.db().count(&format!(
            "SELECT COUNT(*) FROM persona_actions WHERE tick_id = '{tick}'"
        ));
        assert_eq!(posted as usize, *n, "tick {tick}: every row once");
    }
    let ids = sb.db().count("SELECT COUNT(*) FROM persona_actions");
    let distinct = sb
        .db()
        .count("SELECT COUNT(DISTINCT id) FROM persona_actions");
    assert_eq!(ids, distinct);
    let pending = rusqlite::Connection::open(state.join("state.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(pending, 0, "the outbox is empty");
    sb.shutdown().await;
}

/// Production mode: the diag endpoints answer 404 like any unknown path;
/// outside production they work (and never return a JWT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diag_endpoints_vanish_in_production() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(1, "diag", "[sandbox:tools=1]")).await;
    let url = sb.url();
    blocking(move || {
        let d = Daemon::start(&url, &home, &[("TICK_INTERVAL_MS", "600000")], &[]);
        let (code, body) = d.get("/diag/login?email=diag0@mana.test").unwrap();
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ok"], true);
        assert!(v["userId"].is_string() && v["spaceId"].is_string(), "{v}");
        assert!(
            !body.to_lowercase().contains("jwt") && !body.contains("eyJ"),
            "{body}"
        );
        let (code, _) = d.get("/diag/login").unwrap();
        assert_eq!(code, 400, "missing email is a clear 400");
        // 202, or 409 "a tick is running" while the start-up tick runs.
        d.wait_for(
            "/diag/tick to start a tick",
            Duration::from_secs(20),
            || {
                let (code, body) = d.post("/diag/tick", None);
                assert!(
                    code == 202 || (code == 409 && body["error"] == "a tick is running"),
                    "{code} {body}"
                );
                code == 202
            },
        );
        drop(d);

        let prod_home = home.join("prod");
        std::fs::create_dir_all(&prod_home).unwrap();
        let d = Daemon::start(
            &url,
            &prod_home,
            &[
                ("TICK_INTERVAL_MS", "600000"),
                ("RUNNER_PAUSED", "true"),
                ("MANA_PRODUCTION", "true"),
                ("PERSONA_SEED_SECRET", "a-production-seed-secret"),
            ],
            &[],
        );
        assert_eq!(d.get("/diag/login?email=diag0@mana.test").unwrap().0, 404);
        assert_eq!(d.post("/diag/tick", None).0, 404);
        assert_eq!(d.get("/health").unwrap().0, 200);
        assert_eq!(d.get("/metrics").unwrap().0, 200);
    })
    .await;
    sb.shutdown().await;
}

/// SIGHUP with a malformed configuration file keeps the daemon running on the
/// old configuration and logs why; a good file is then picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_sighup_reload_keeps_the_daemon_running() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    let url = sb.url();
    blocking(move || {
        let file = home.join("mana-personas.toml");
        std::fs::write(&file, "tick_interval_ms = 600000\nconcurrency = 2\n").unwrap();
        let file_arg = file.display().to_string();
        let mut d = Daemon::start(&url, &home, &[], &["--config", &file_arg]);
        assert_eq!(d.health()["tickIntervalMs"], 600000);

        std::fs::write(&file, "tick_interval_ms = \nconcurrency = [\n").unwrap();
        d.signal(libc::SIGHUP);
        d.wait_for("the reload to fail", Duration::from_secs(10), || {
            !d.messages("reload failed; keeping the previous configuration")
                .is_empty()
        });
        let failed = &d.messages("reload failed; keeping the previous configuration")[0];
        let why = failed["error"].as_str().unwrap();
        assert!(why.contains("mana-personas.toml"), "names the file: {why}");
        assert!(d.child.try_wait().unwrap().is_none(), "still running");
        let h = d.health();
        assert_eq!(h["status"], "ok");
        assert_eq!(h["tickIntervalMs"], 600000, "old configuration kept");

        std::fs::write(&file, "tick_interval_ms = 450000\nconcurrency = 5\n").unwrap();
        d.signal(libc::SIGHUP);
        d.wait_for("the good reload", Duration::from_secs(10), || {
            d.health()["tickIntervalMs"] == 450000
        });
        assert_eq!(d.health()["concurrency"], 5);
        d.signal(libc::SIGTERM);
        assert_eq!(d.wait_exit(Duration::from_secs(20)).0, Some(0));
    })
    .await;
    sb.shutdown().await;
}

/// The due list failing for more than three intervals turns `/health` into a
/// 503 with a reason (a load balancer or monitor sees it); recovery clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_while_the_due_list_keeps_failing() {
    use mana_sandbox::{Fault, FaultKind, RouteGroup};
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    sb.faults().push(Fault {
        route: RouteGroup::Internal,
        kind: FaultKind::Status {
            status: 503,
            retry_after: None,
        },
        count: 1_000_000,
        path_contains: Some("/due".into()),
    });
    let url = sb.url();
    let faults = sb.faults().clone();
    blocking(move || {
        let d = Daemon::start(&url, &home, &[("TICK_INTERVAL_MS", "200")], &[]);
        assert_eq!(
            d.get("/health").unwrap().0,
            200,
            "healthy before any failure"
        );
        d.wait_for("/health to turn 503", Duration::from_secs(30), || {
            d.get("/health").unwrap().0 == 503
        });
        let h = d.health();
        assert_eq!(h["status"], "failing", "{h}");
        let reason = h["reason"].as_str().unwrap();
        assert!(
            reason.contains("every tick has failed")
                && reason.contains("cannot fetch the due personas"),
            "{h}"
        );
        assert!(
            h["lastTick"]["error"].as_str().unwrap().contains("503"),
            "{h}"
        );
        assert!(metric(&d.metrics(), "mana_personas_ticks_failed_total") >= 1.0);
        faults.clear();
        d.wait_for("/health to recover", Duration::from_secs(30), || {
            d.get("/health").unwrap().0 == 200
        });
        assert_eq!(d.health()["status"], "ok");
    })
    .await;
    sb.shutdown().await;
}

/// `tick` without `--once`: the same loop in the foreground, until Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_without_once_repeats_until_ctrl_c() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(1, "loop", "[sandbox:tools=1]")).await;
    let url = sb.url();
    blocking(move || {
        let mut child = command(
            &url,
            &home,
            &[("TICK_INTERVAL_MS", "200")],
            &["tick", "--log-format", "json"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut finished = 0;
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(r#""message":"tick finished""#) {
                finished += 1;
                if finished == 3 {
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
                }
            }
            lines.push(line);
        }
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{}", lines.join("\n"));
        assert!(finished >= 3, "{}", lines.join("\n"));
        let all = lines.join("\n");
        assert!(
            all.contains(r#""listen":"no HTTP""#),
            "no HTTP server: {all}"
        );
        assert!(all.contains("SIGINT"), "{all}");
    })
    .await;
    sb.shutdown().await;
}

/// `pause` with no daemon running says what it did (the switch file) and that
/// nothing answered, naming the state directory — not a wrong "no daemon
/// answers at <default address>" about some other daemon.
#[test]
fn pause_without_a_daemon_says_what_happened_to_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let out = command("http://127.0.0.1:1", home, &[], &["pause"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let state = home.join("state");
    assert!(
        stdout.contains(&format!(
            "switch set to paused in {}",
            state.join("pause").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "no daemon has recorded an address in {}",
            state.display()
        )),
        "{stdout}"
    );
}

/// `pause --json` / `resume --json`: stdout is one JSON object saying what
/// was set, how, and what the daemon said; the lines go to stderr.
#[test]
fn pause_and_resume_report_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    for (cmd, switch) in [("pause", "paused"), ("resume", "running")] {
        let out = command("http://127.0.0.1:1", home, &[], &[cmd, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
        assert_eq!(v["switch"], switch);
        assert_eq!(v["setVia"], "file");
        assert_eq!(
            v["file"],
            home.join("state").join("pause").display().to_string()
        );
        assert_eq!(v["daemonAnswered"], false);
        assert_eq!(v["took"], false);
        assert!(v["daemonPaused"].is_null(), "{v}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("switch set to {switch}")),
            "{stderr}"
        );
    }
}

/// `/report.json` and `/report` serve the daemon's own ledger live, with the
/// `report` command's parameters; a bad `since` is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_report_of_its_own_ledger() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(2, "report", "[sandbox:tools=3]")).await;
    let url = sb.url();
    blocking(move || {
        let d = Daemon::start(&url, &home, &[("TICK_INTERVAL_MS", "300")], &[]);
        let mut report = Value::Null;
        d.wait_for(
            "two persona-ticks in /report.json",
            Duration::from_secs(60),
            || {
                let Some((200, body)) = d.get("/report.json?since=7d") else {
                    return false;
                };
                report = serde_json::from_str(&body).expect("/report.json is JSON");
                report["health"]["personaTicks"].as_u64() >= Some(2)
            },
        );
        assert_eq!(report["version"], 1);
        assert_eq!(report["shards"].as_array().unwrap().len(), 1);
        let modules = report["modules"].as_array().unwrap();
        assert!(!modules.is_empty(), "{report}");

        let (code, one) = d
            .get("/report.json?persona=report0%40mana.test&archetype=test")
            .unwrap();
        assert_eq!(code, 200);
        let one: Value = serde_json::from_str(&one).unwrap();
        assert!(one["health"]["personaTicks"].as_u64() >= Some(1), "{one}");
        assert_eq!(one["persona"], "report0@mana.test");

        let (code, html) = d.get("/report").unwrap();
        assert_eq!(code, 200);
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert_eq!(
            html.matches("<figure class=\"chart\"").count(),
            html.matches("data-module=").count()
        );
        assert!(html.matches("<figure class=\"chart\"").count() >= modules.len());

        let (code, body) = d.get("/report.json?since=yesterday").unwrap();
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("--since `yesterday`"), "{body}");
    })
    .await;
}

/// One request with a deadline: `None` when nothing answered within `limit`.
fn within(method: &str, base: &str, path: &str, limit: Duration) -> Option<(u16, String)> {
    tokio::runtime::Handle::current().block_on(async {
        let client = reqwest::Client::builder().timeout(limit).build().ok()?;
        let url = format!("{base}{path}");
        let req = match method {
            "POST" => client.post(url),
            _ => client.get(url),
        };
        let resp = req.send().await.ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.text().await.ok()?))
    })
}

/// Issue 11.9: another process holding state.db's write lock (a `sqlite3`
/// shell in a transaction) freezes nothing. While it holds the lock, longer
/// than the busy timeout: `/health` answers within 2 s every time (with the
/// last outbox count read, said so), `/diag/tick` answers, the watchdog keeps
/// pinging, and the tick reports the lock instead of hanging; once the lock
/// is gone, a tick runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_db_locked_by_another_process_freezes_nothing() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(2, "locked", "[sandbox:tools=2]")).await;
    let url = sb.url();
    let socket_path = home.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let pings = Arc::new(Mutex::new(0usize));
    let sink = pings.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = notify.recv(&mut buf)
                && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
            {
                *sink.lock().unwrap() += 1;
            }
        }
    });
    let sock = socket_path.display().to_string();
    blocking(move || {
        let mut d = Daemon::start(
            &url,
            &home,
            &[
                ("TICK_INTERVAL_MS", "600000"),
                ("NOTIFY_SOCKET", &sock),
                ("WATCHDOG_USEC", "1000000"),
            ],
            &[],
        );
        d.wait_for("the first tick to finish", Duration::from_secs(30), || {
            !d.health()["lastTick"].is_null()
        });
        let db = rusqlite::Connection::open(home.join("state").join("state.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.execute_batch("BEGIN EXCLUSIVE; CREATE TABLE held_by_a_test (x);")
            .unwrap();
        let answer = |method: &str, path: &str| {
            within(method, &d.base, path, Duration::from_secs(2)).unwrap_or_else(|| {
                panic!(
                    "{method} {path} did not answer within 2 s during the lock\n{}",
                    d.log_text()
                )
            })
        };
        let t0 = Instant::now();
        let (code, body) = answer("POST", "/diag/tick");
        assert_eq!(
            code, 202,
            "a tick starts against the locked database: {body}"
        );
        let pings_before = *pings.lock().unwrap();

        // Longer than the busy timeout (10 s): the tick waits on the lock
        // all along, and everything else answers.
        let mut cached = 0;
        let mut probes = 0;
        while t0.elapsed() < Duration::from_secs(12) {
            let (code, body) = answer("GET", "/health");
            assert_eq!(code, 200, "{body}");
            let h: Value = serde_json::from_str(&body).unwrap();
            if h["outboxPendingCached"] == true {
                assert!(h["stateDb"].as_str().unwrap().contains("lock"), "{h}");
                cached += 1;
            }
            probes += 1;
            if probes == 2 {
                assert_eq!(answer("GET", "/metrics").0, 200);
                // The scheduler loop answers too: the tick is still running.
                let (code, body) = answer("POST", "/diag/tick");
                assert_eq!(code, 409, "{body}");
                assert!(body.contains("a tick is running"), "{body}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        assert!(
            probes >= 5 && cached >= 1,
            "{probes} probes, {cached} cached"
        );
        let pinged = *pings.lock().unwrap() - pings_before;
        assert!(pinged >= 5, "watchdog pings during the lock: {pinged}");

        // The tick reports the lock (and /health's last tick says so).
        d.wait_for(
            "the tick to report the lock",
            Duration::from_secs(30),
            || {
                d.messages("tick failed").iter().any(|m| {
                    m["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("locked by another process"))
                })
            },
        );
        let last = &d.health()["lastTick"];
        assert!(
            last["error"]
                .as_str()
                .unwrap()
                .contains("state.db is locked"),
            "{last}"
        );

        // The lock goes away: the next tick runs.
        db.execute_batch("ROLLBACK;").unwrap();
        drop(db);
        let (code, _) = d.post("/diag/tick", None);
        assert_eq!(code, 202);
        d.wait_for(
            "a tick to finish after the lock",
            Duration::from_secs(30),
            || d.messages("tick finished").len() >= 2,
        );
        d.signal(libc::SIGTERM);
        let (code, _) = d.wait_exit(Duration::from_secs(20));
        assert_eq!(code, Some(0), "{}", d.log_text());
    })
    .await;
    sb.shutdown().await;
}

/// A batch the platform refuses for good is never hidden: `/health` says
/// `outboxDead` (the actions and the feedback waiting for them) and
/// `/metrics` has `mana_personas_outbox_dead`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_batches_show_in_health_and_metrics() {
    let sb = sandbox_with_latency(0).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    seed(&sb, &home, &seeds(1, "dead", "[sandbox:tools=2]")).await;
    sb.faults().push(mana_sandbox::Fault {
        route: mana_sandbox::RouteGroup::Internal,
        kind: mana_sandbox::FaultKind::Respond {
            status: 400,
            body: serde_json::json!({"error": "One or more action rows failed validation"}),
        },
        count: 1,
        path_contains: Some("/actions".into()),
    });
    let url = sb.url();
    let (health, metrics) = blocking(move || {
        let d = Daemon::start(&url, &home, &[("TICK_INTERVAL_MS", "60000")], &[]);
        d.wait_for("the first tick to finish", Duration::from_secs(30), || {
            !d.health()["lastTick"].is_null()
        });
        (d.health(), d.metrics())
    })
    .await;
    assert_eq!(health["outboxDead"], 2, "{health}");
    assert_eq!(health["outboxPending"], 0, "{health}");
    assert_eq!(
        metric(&metrics, "mana_personas_outbox_dead"),
        2.0,
        "{metrics}"
    );
}

/// One summary of a persona tick, for a ledger written directly.
fn bare_summary(tick_id: &str, at: chrono::DateTime<chrono::Utc>) -> Summary {
    Summary {
        tick_id: tick_id.to_string(),
        persona_id: "id-1".into(),
        email: "cache@mana.test".into(),
        archetype: "tester".into(),
        module_mix: Default::default(),
        started_at: at,
        finished_at: at,
        outcome: "ok".into(),
        stage: None,
        error: None,
        calls: vec![CallSummary {
            tool: "todo.create".into(),
            ok: true,
            error_class: None,
            latency_ms: Some(12),
        }],
        ratings: Vec::new(),
        tokens: Default::default(),
        model: None,
        cost_usd: None,
        retries: 0,
        waits_ms: Default::default(),
        duration_ms: 0,
    }
}

/// A refresh of `/report.json` is served from the daemon's cache
/// (`Cache-Status: …; hit`, the same body) until the ledger changes: a
/// summary written by another connection (as a tick's) makes the next one a
/// rebuild that counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_refresh_is_cached_until_the_ledger_changes() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_path_buf();
    let state = home.join("state");
    let now = chrono::Utc::now();
    State::open(&state)
        .unwrap()
        .summary_write(&bare_summary("t-1", now - chrono::Duration::hours(1)))
        .unwrap();
    blocking(move || {
        let d = Daemon::start(
            "http://127.0.0.1:9",
            &home,
            &[("RUNNER_PAUSED", "true")],
            &[],
        );
        let get = |path: &str| {
            let url = format!("{}{path}", d.base);
            tokio::runtime::Handle::current().block_on(async move {
                let resp = reqwest::get(url).await.unwrap();
                assert_eq!(resp.status(), 200);
                let status = resp.headers()["cache-status"].to_str().unwrap().to_string();
                (status, resp.text().await.unwrap())
            })
        };
        let ticks = |body: &str| {
            serde_json::from_str::<Value>(body).unwrap()["health"]["personaTicks"].as_u64()
        };
        let (first, body1) = get("/report.json?since=7d");
        assert_eq!(first, "mana-personas; fwd=miss");
        assert_eq!(ticks(&body1), Some(1));
        let (again, body2) = get("/report.json?since=7d");
        assert_eq!(again, "mana-personas; hit");
        assert_eq!(body1, body2, "the cached page is the same page");
        // Other parameters are another page.
        assert_eq!(get("/report.json?since=8d").0, "mana-personas; fwd=miss");

        State::open(&state)
            .unwrap()
            .summary_write(&bare_summary("t-2", chrono::Utc::now()))
            .unwrap();
        let (after, body3) = get("/report.json?since=7d");
        assert_eq!(after, "mana-personas; fwd=miss");
        assert_eq!(ticks(&body3), Some(2));
        assert_eq!(get("/report.json?since=7d").0, "mana-personas; hit");
    })
    .await;
}
