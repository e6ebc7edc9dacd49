//! The report scenario: `/report` on a running daemon (the release binary,
//! paused so it only serves) over 30 days × 1,000 personas of ledger
//! summaries, written through the library's state API. Measures each
//! request's wall time from this process, cold (the first request after a
//! summary was written to the live ledger, as by a tick: the daemon rebuilds)
//! and warm (the refresh right after it: the daemon's cached page), and the
//! ledger's size on disk.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mana_personas::state::State;
use mana_personas::state::summary::{
    CallSummary, ErrorClass, RatingSummary, Summary, Tokens, WaitsMs,
};
use serde_json::{Value, json};

pub const PERSONAS: usize = 1000;
pub const DAYS: usize = 30;
/// Timed requests per path, cold and warm each; p50, p95 and the slowest are
/// reported.
pub const REQUESTS: usize = 20;

const TOOLS: &[&str] = &[
    "todo.create",
    "todo.list",
    "notes.create",
    "mood.log",
    "habits.check",
    "journal.write",
];

/// Persona `p`'s summary of day `day` (days back from `now`).
fn summary(now: DateTime<Utc>, day: usize, p: usize) -> Summary {
    let at = now - chrono::Duration::days(day as i64) - chrono::Duration::minutes(p as i64);
    let tick_id = format!("{day:02}-{p:04}-0198c6a2-7f4e-7000-8000-000000000000");
    let calls: Vec<CallSummary> = (0..6)
        .map(|i| {
            let tool = TOOLS[(p + i + day) % TOOLS.len()];
            let ok = !(p + i + day).is_multiple_of(9);
            CallSummary {
                tool: tool.to_string(),
                ok,
                error_class: (!ok).then_some(ErrorClass::Validation),
                latency_ms: Some(20 + ((p * 7 + i * 13 + day) % 180) as u64),
            }
        })
        .collect();
    let ratings = ["todo", "notes", "mood"]
        .iter()
        .enumerate()
        .map(|(i, m)| RatingSummary {
            module: m.to_string(),
            rating: (1 + (p + i + day) % 5) as u8,
            notes: Some(format!(
                "{m} worked, but finding yesterday's entry took longer than it should (persona {p})"
            )),
            action_ids: vec![format!("{tick_id}-{i}-{m}.create")],
        })
        .collect();
    Summary {
        tick_id: tick_id.clone(),
        persona_id: format!("user-{p}"),
        email: format!("persona{p}@mana.test"),
        archetype: ["planner", "journaler", "casual"][p % 3].to_string(),
        module_mix: [
            ("todo", 0.4),
            ("notes", 0.3),
            ("mood", 0.2),
            ("calendar", 0.1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        started_at: at,
        finished_at: at + chrono::Duration::seconds(40),
        outcome: if p.is_multiple_of(50) { "failed" } else { "ok" }.to_string(),
        stage: None,
        error: None,
        calls,
        ratings,
        tokens: Tokens {
            input: 12_000,
            output: 1_500,
            cache_read: 30_000,
            cache_write: 2_000,
        },
        model: Some("claude-sonnet-4-5".into()),
        cost_usd: Some(0.0705),
        retries: p.is_multiple_of(7) as u64,
        waits_ms: WaitsMs {
            llm: 30_000,
            mcp: 4_000,
            platform: 800,
        },
        duration_ms: 40_000,
    }
}

/// Writes the summaries; returns the state directory's size in bytes.
pub fn write_ledger(dir: &Path) -> anyhow::Result<u64> {
    let st = State::open(dir)?;
    let now = Utc::now();
    for day in 0..DAYS {
        for p in 0..PERSONAS {
            st.summary_write(&summary(now, day, p))?;
        }
    }
    drop(st);
    // Fold the WAL into the file, as a daemon's checkpoints would.
    let c = rusqlite::Connection::open(dir.join("state.db"))?;
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(c);
    let size = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(size)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(3070)
}

/// Starts the paused daemon on `state`, times `REQUESTS` requests of each
/// path, stops it.
pub async fn measure(bin: &Path, home: &Path, state: &Path) -> anyhow::Result<Value> {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin)
        .env_clear()
        .current_dir(home)
        .env("HOME", home)
        .env("STATE_DIRECTORY", state)
        .env("RUNNER_PAUSED", "true")
        .env("MANA_SERVICE_KEY", "bench")
        .env("ANTHROPIC_API_KEY", "bench")
        .args(["daemon", "--listen", &listen])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    while http.get(format!("{base}/health")).send().await.is_err() {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "the daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The bench writes "ticks" into the live ledger through its own
    // connection, as the daemon's runner would: each makes the next request a
    // cold one (the daemon's cache is keyed on the ledger's data_version).
    let st = State::open(state)?;
    let mut extra = 0;
    let mut out = serde_json::Map::new();
    for path in ["/report.json?since=30d", "/report?since=30d"] {
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        let mut bytes = 0;
        let mut ticks = 0;
        // One untimed request first: the page cache, like a live daemon's.
        get(&http, &format!("{base}{path}")).await?;
        for _ in 0..REQUESTS {
            extra += 1;
            st.summary_write(&summary(Utc::now(), 0, PERSONAS + extra))?;
            let (ms, status, body) = get(&http, &format!("{base}{path}")).await?;
            anyhow::ensure!(status.contains("miss"), "{path}: cold was {status}");
            cold.push(ms);
            bytes = body.len();
            if path.starts_with("/report.json") {
                let v: Value = serde_json::from_str(&body)?;
                ticks = v["health"]["personaTicks"].as_u64().unwrap_or(0);
            }
            let (ms, status, _) = get(&http, &format!("{base}{path}")).await?;
            anyhow::ensure!(status.contains("hit"), "{path}: warm was {status}");
            warm.push(ms);
        }
        out.insert(
            path.to_string(),
            json!({"cold": stats(cold), "warm": stats(warm), "requests": REQUESTS,
                   "bodyBytes": bytes, "personaTicks": ticks}),
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(Value::Object(out))
}

/// One timed GET: milliseconds, its `Cache-Status`, its body.
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(f64, String, String)> {
    let t = Instant::now();
    let resp = http.get(url).send().await?;
    anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
    let status = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.text().await?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, status, body))
}

/// p50, p95 (nearest rank), min and max of `ms`.
fn stats(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| ms[((p / 100.0 * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    json!({"p50Ms": rank(50.0), "p95Ms": rank(95.0), "minMs": ms[0], "maxMs": ms[ms.len() - 1]})
}
