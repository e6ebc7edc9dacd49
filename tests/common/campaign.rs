//! The fault campaign's machinery: a sandbox with a known fault rate on every
//! route, the real binary driven like an operator would (its own state
//! directory, a clean environment, output to files so a SIGKILL cannot lose
//! or block it), and the bookkeeping that proves afterwards, from the sandbox
//! database, the runner's ledger and its outbox, that every row a persona tick
//! reported as posted or queued arrived exactly once.
//!
//! Why the ledger: `tick --once --json` prints only totals; the ledger keeps
//! each persona tick's exact rows (the same `ActionRow`s that went into the
//! outbox) and how the tick said they were delivered.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mana_sandbox::faults::EndpointStats;
use mana_sandbox::{FaultKind, RouteGroup, Sandbox};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// The campaign's dice: `FAULT_CAMPAIGN_SEED` replays a run, else a fixed seed.
pub fn campaign_seed() -> u64 {
    std::env::var("FAULT_CAMPAIGN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_240_917)
}

/// A catalog of `n` daily personas. Three in four make exactly two tool calls
/// (`[sandbox:tools=2]`, to keep the campaign's size known); the rest play
/// free (3–8 calls, parallel calls, wrong arguments), like a real model.
pub fn write_catalog(path: &Path, n: usize) {
    let personas: Vec<Value> = (0..n)
        .map(|i| {
            let directive = if i % 4 == 3 { "" } else { " [sandbox:tools=2]" };
            let archetype = ["adhd-student", "ceo-busy", "solo-dev", "researcher"][i % 4];
            json!({
                "name": format!("Camp {i}"),
                "email": format!("camp.p{i:03}@mana.test"),
                "archetype": archetype,
                "systemPrompt": format!("Du bist Person {i} der Fehlerkampagne und hältst deinen Tag in Mana fest.{directive}"),
                "moduleMix": {"todo": 0.4, "notes": 0.3, "mood": 0.2, "habits": 0.1},
                "tickCadence": "daily"
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&json!({ "personas": personas })).unwrap();
    std::fs::write(path, text).expect("write catalog");
}

/// Every way the sandbox can fail a request on `route` (SSE errors only on
/// the LLM: elsewhere the marker means nothing).
pub fn kinds_for(route: RouteGroup) -> Vec<FaultKind> {
    let status = |status, retry_after| FaultKind::Status {
        status,
        retry_after,
    };
    let mut v = vec![
        status(503, None),
        status(429, Some(0)),
        status(429, Some(1)),
        status(529, None),
        FaultKind::Delay { ms: 150 },
        FaultKind::Drop,
        FaultKind::DropAfter,
    ];
    if route == RouteGroup::Llm {
        v.push(FaultKind::SseError);
    }
    v
}

/// Standing random rules on every route group, each with its own seed.
pub fn start_faults(sb: &Sandbox, rate: f64, seed: u64) {
    for (i, route) in RouteGroup::ALL.into_iter().enumerate() {
        sb.faults()
            .random(route, rate, kinds_for(route), seed.wrapping_add(i as u64));
    }
}

/// How the binary is run: which provider, and where its output goes.
pub struct Bin {
    pub url: String,
    pub home: PathBuf,
    pub state_dir: PathBuf,
    pub env: Vec<(String, String)>,
    runs: std::sync::atomic::AtomicUsize,
}

impl Bin {
    /// A clean environment pointing every URL at `url`, the given secrets,
    /// state in `home/state`.
    pub fn new(
        url: &str,
        home: &Path,
        admin_jwt: &str,
        service_key: &str,
        seed_secret: &str,
    ) -> Bin {
        let h = home.display().to_string();
        let env = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", h.clone()),
            ("XDG_CONFIG_HOME", format!("{h}/config")),
            ("XDG_STATE_HOME", format!("{h}/xdg-state")),
            ("MANA_AUTH_URL", url.to_string()),
            ("MANA_API_URL", url.to_string()),
            ("MANA_MCP_URL", url.to_string()),
            ("ANTHROPIC_BASE_URL", url.to_string()),
            ("OPENAI_BASE_URL", format!("{url}/v1")),
            ("MANA_ADMIN_JWT", admin_jwt.to_string()),
            ("MANA_SERVICE_KEY", service_key.to_string()),
            ("PERSONA_SEED_SECRET", seed_secret.to_string()),
            // The campaign's sandbox runs without apps/api's budget; the
            // client must not pace itself to the 200/min prior either (220
            // personas plus retries would wait for windows, not faults).
            ("API_RATE_LIMIT_PER_MIN", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Bin {
            url: url.to_string(),
            home: home.to_path_buf(),
            state_dir: home.join("state"),
            env,
            runs: Default::default(),
        }
    }

    /// Sets (or replaces) a variable for every later run.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// The LLM provider and its key for every later run.
    pub fn provider(&mut self, openai: bool, key: &str) {
        if openai {
            self.set("LLM_PROVIDER", "openai");
            self.set("OPENAI_API_KEY", key);
        } else {
            self.set("LLM_PROVIDER", "anthropic");
            self.set("ANTHROPIC_API_KEY", key);
        }
    }

    /// Spawns `args` with stdout and stderr going to fresh files.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.home.join(format!("run-{n:02}.stdout"));
        let err = self.home.join(format!("run-{n:02}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_mana-personas"))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.home)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn mana-personas");
        Running {
            child,
            out,
            err,
            started: Utc::now(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Runs `args` to the end (bounded by `limit`).
    pub async fn run(&self, args: &[&str], limit: Duration) -> Finished {
        self.spawn(args).wait(limit).await
    }
}

/// A running binary.
pub struct Running {
    pub child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
    pub started: DateTime<Utc>,
    pub args: Vec<String>,
}

/// What a finished (or killed) run left behind.
#[derive(Debug, Clone)]
pub struct Finished {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub args: Vec<String>,
}

impl Finished {
    /// The `--json` summary on stdout.
    #[track_caller]
    pub fn summary(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout of {:?} is one JSON object ({e}):\n{}\n--- stderr (tail):\n{}",
                self.args,
                self.stdout,
                tail(&self.stderr, 3000)
            )
        })
    }
}

/// The last `n` bytes of `s` (on a char boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

impl Running {
    /// Waits for the exit without blocking the runtime (the sandbox is in it).
    pub async fn wait(mut self, limit: Duration) -> Finished {
        let deadline = tokio::time::Instant::now() + limit;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{:?} did not finish within {limit:?}; stderr tail:\n{}",
                    self.args,
                    tail(
                        &std::fs::read_to_string(&self.err).unwrap_or_default(),
                        3000
                    )
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        self.finish(status.code())
    }

    /// SIGKILL, then collect what it printed.
    pub fn kill(mut self) -> Finished {
        self.child.kill().expect("SIGKILL");
        let st = self.child.wait().expect("reap");
        self.finish(st.code())
    }

    fn finish(self, code: Option<i32>) -> Finished {
        Finished {
            code,
            stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err).unwrap_or_default(),
            started: self.started,
            ended: Utc::now(),
            args: self.args,
        }
    }
}

/// Makes every persona due again (the platform moves `lastActiveAt` only when
/// an actions batch is accepted; the campaign wants everyone every run).
pub fn make_all_due(sb: &Sandbox) {
    sb.db()
        .call(|c| c.execute("UPDATE personas SET last_active_at = NULL", []))
        .expect("reset lastActiveAt");
}

// ------------------------------------------------------------- bookkeeping

/// One persona tick as the runner's ledger recorded it.
#[derive(Debug, Clone)]
pub struct LedgerTick {
    pub tick_id: String,
    pub persona_id: String,
    pub email: String,
    pub started_at: DateTime<Utc>,
    /// `ok`, `zero_actions`, `failed`.
    pub outcome: String,
    pub error: Option<String>,
    /// `posted`, `queued`, `refused`, `nothing`.
    pub delivery: String,
    pub actions: Vec<Value>,
    pub feedback: Vec<Value>,
}

fn open_state(state_dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(state_dir.join("state.db")).expect("open state.db");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// Every ledger entry.
pub fn ledger(state_dir: &Path) -> Vec<LedgerTick> {
    let c = open_state(state_dir);
    let mut st = c
        .prepare("SELECT tick_id, persona_id, email, started_at, outcome, transcript FROM ledger ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })
    .unwrap()
    .map(|row| {
        let (tick_id, persona_id, email, started, outcome, transcript) = row.unwrap();
        let t: Value = serde_json::from_str(&transcript).expect("transcript is JSON");
        let report = &t["report"];
        LedgerTick {
            tick_id,
            persona_id,
            email,
            started_at: DateTime::parse_from_rfc3339(&started)
                .expect("started_at")
                .with_timezone(&Utc),
            outcome,
            error: report["error"].as_str().map(str::to_string),
            delivery: report["delivery"]["state"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
            actions: t["actions"].as_array().cloned().unwrap_or_default(),
            feedback: t["feedback"].as_array().cloned().unwrap_or_default(),
        }
    })
    .collect()
}

/// One outbox entry, as a snapshot after a kill sees it.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub persona_id: String,
    pub tick_id: String,
    pub kind: String,
    pub rows: Vec<Value>,
    pub dead: bool,
}

/// The whole outbox (live and dead entries).
pub fn outbox(state_dir: &Path) -> Vec<OutboxEntry> {
    if !state_dir.join("state.db").exists() {
        return Vec::new();
    }
    let c = open_state(state_dir);
    let mut st = c
        .prepare("SELECT persona_id, tick_id, kind, body, dead FROM outbox ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        let kind: String = r.get(2)?;
        let body: Vec<u8> = r.get(3)?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(OutboxEntry {
            persona_id: r.get(0)?,
            tick_id: r.get(1)?,
            rows: v[kind.as_str()].as_array().cloned().unwrap_or_default(),
            kind,
            dead: r.get::<_, i64>(4)? != 0,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Personas with tool calls in the runner's journal: persona ticks a killed
/// run left unfinished, which the next start queues as their actions batches.
pub fn journaled_personas(state_dir: &Path) -> BTreeSet<String> {
    if !state_dir.join("state.db").exists() {
        return BTreeSet::new();
    }
    let c = open_state(state_dir);
    // A runner without the journal (before issue 11.5) has no such table.
    let Ok(mut st) = c.prepare("SELECT DISTINCT persona_id FROM journal") else {
        return BTreeSet::new();
    };
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The rows of one tick id on the sandbox side.
#[derive(Debug, Clone, Default)]
pub struct StoredTick {
    pub persona_ids: BTreeSet<String>,
    /// Row id → the row as the runner's JSON spells it.
    pub actions: BTreeMap<String, Value>,
    pub feedback: BTreeMap<String, Value>,
}

/// Every action and feedback row the sandbox stored, by tick id.
pub fn stored(sb: &Sandbox) -> BTreeMap<String, StoredTick> {
    let mut by_tick: BTreeMap<String, StoredTick> = BTreeMap::new();
    sb.db()
        .call(|c| {
            let mut st = c.prepare(
                "SELECT id, persona_id, tick_id, tool_name, input_hash, result, error_message, latency_ms FROM persona_actions",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    json!({
                        "tickId": r.get::<_, String>(2)?,
                        "toolName": r.get::<_, String>(3)?,
                        "inputHash": r.get::<_, Option<String>>(4)?,
                        "result": r.get::<_, String>(5)?,
                        "errorMessage": r.get::<_, Option<String>>(6)?,
                        "latencyMs": r.get::<_, Option<i64>>(7)?,
                    }),
                ))
            })?;
            for row in rows {
                let (id, persona, tick, v) = row?;
                let t = by_tick.entry(tick).or_default();
                t.persona_ids.insert(persona);
                t.actions.insert(id, v);
            }
            let mut st = c.prepare(
                "SELECT id, persona_id, tick_id, module, rating, notes FROM persona_feedback",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    json!({
                        "tickId": r.get::<_, String>(2)?,
                        "module": r.get::<_, String>(3)?,
                        "rating": r.get::<_, i64>(4)?,
                        "notes": r.get::<_, Option<String>>(5)?,
                    }),
                ))
            })?;
            for row in rows {
                let (id, persona, tick, v) = row?;
                let t = by_tick.entry(tick).or_default();
                t.persona_ids.insert(persona);
                t.feedback.insert(id, v);
            }
            Ok(())
        })
        .expect("read the sandbox rows");
    by_tick
}

/// The row as stored, from the runner's JSON (absent optional fields are null).
fn normal_action(v: &Value) -> Value {
    json!({
        "tickId": v["tickId"], "toolName": v["toolName"], "inputHash": v["inputHash"],
        "result": v["result"], "errorMessage": v["errorMessage"], "latencyMs": v["latencyMs"],
    })
}

fn normal_feedback(v: &Value) -> Value {
    json!({"tickId": v["tickId"], "module": v["module"], "rating": v["rating"], "notes": v["notes"]})
}

/// The platform's ids for a tick's batches: `{tickId}-{i}-{tool}` (cut to 255
/// characters) and `{tickId}-{module}`.
pub fn expected_rows(
    tick_id: &str,
    actions: &[Value],
    feedback: &[Value],
) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let a = actions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let tool = v["toolName"].as_str().unwrap_or("");
            let id: String = format!("{tick_id}-{i}-{tool}").chars().take(255).collect();
            (id, normal_action(v))
        })
        .collect();
    let f = feedback
        .iter()
        .map(|v| {
            let m = v["module"].as_str().unwrap_or("");
            (format!("{tick_id}-{m}"), normal_feedback(v))
        })
        .collect();
    (a, f)
}

/// The millisecond timestamp inside a UUIDv7 tick id.
pub fn uuid7_time(tick_id: &str) -> Option<DateTime<Utc>> {
    let u = uuid::Uuid::parse_str(tick_id).ok()?;
    let (secs, nanos) = u.get_timestamp()?.to_unix();
    DateTime::from_timestamp(secs as i64, nanos)
}

/// What the campaign counted; printed at the end.
#[derive(Debug, Default)]
pub struct Tallies {
    pub runs: usize,
    pub killed_runs: usize,
    pub persona_ticks: usize,
    pub by_outcome: BTreeMap<String, usize>,
    pub by_delivery: BTreeMap<String, usize>,
    pub action_rows: usize,
    pub feedback_rows: usize,
    /// Ticks whose rows only a post-kill outbox snapshot knew about.
    pub snapshot_only_ticks: usize,
    /// Ticks delivered by a run killed before it wrote the ledger.
    pub orphan_ticks: usize,
    /// `tools/call`s the sandbox's MCP ran (its `mcp_calls` log).
    pub tool_calls: usize,
    /// Of those, calls no action row on the platform accounts for.
    pub calls_without_row: usize,
    pub failure_reasons: BTreeMap<String, usize>,
}

/// A reason's kind, for the tally: up to and including its `HTTP nnn`, else
/// its first 70 characters; ids are blanked so equal reasons count together.
fn reason_class(e: &str) -> String {
    let cut = match e.find("HTTP ") {
        Some(i) if e[i + 5..].chars().take(3).all(|c| c.is_ascii_digit()) => {
            &e[..(i + 8).min(e.len())]
        }
        _ => e,
    };
    let words: Vec<String> = cut
        .split_whitespace()
        .map(|w| {
            if w.len() >= 16 && w.chars().filter(|c| c.is_ascii_hexdigit()).count() >= 12 {
                ":id".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    words.join(" ").chars().take(70).collect()
}

/// A run that was SIGKILLed: when it ran, and its outbox right after the kill.
#[derive(Debug, Clone)]
pub struct Kill {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub outbox: Vec<OutboxEntry>,
}

/// The campaign's verdict, given the runs that were killed. Panics with the first violations found;
/// returns the tallies.
pub fn verify(sb: &Sandbox, state_dir: &Path, kills: &[Kill]) -> Tallies {
    let mut t = Tallies::default();
    let mut problems: Vec<String> = Vec::new();
    let ledger = ledger(state_dir);
    let stored = stored(sb);

    // The outbox is empty: nothing left to send, nothing refused.
    let left = outbox(state_dir);
    if !left.is_empty() {
        problems.push(format!(
            "the outbox still holds {} entries, e.g. {:?}",
            left.len(),
            &left[0]
        ));
    }

    let mut seen_ticks: BTreeSet<&str> = BTreeSet::new();
    let mut accounted_rows = 0usize;
    for l in &ledger {
        t.persona_ticks += 1;
        *t.by_outcome.entry(l.outcome.clone()).or_default() += 1;
        *t.by_delivery.entry(l.delivery.clone()).or_default() += 1;
        if !seen_ticks.insert(&l.tick_id) {
            problems.push(format!("tick id {} twice in the ledger", l.tick_id));
        }
        if l.outcome == "failed" {
            match l.error.as_deref().map(str::trim) {
                Some(e) if !e.is_empty() => {
                    *t.failure_reasons.entry(reason_class(e)).or_default() += 1
                }
                _ => problems.push(format!(
                    "{} failed without a reason ({})",
                    l.email, l.tick_id
                )),
            }
        }
        let got = stored.get(&l.tick_id).cloned().unwrap_or_default();
        match l.delivery.as_str() {
            "posted" | "queued" => {
                let (ea, ef) = expected_rows(&l.tick_id, &l.actions, &l.feedback);
                accounted_rows += ea.len() + ef.len();
                if ea.is_empty() {
                    problems.push(format!("{} says {} with no actions", l.tick_id, l.delivery));
                }
                if got.actions != ea {
                    problems.push(format!(
                        "{} ({}, {}): {} action rows expected, {} stored; differing ids: {:?}",
                        l.tick_id,
                        l.email,
                        l.delivery,
                        ea.len(),
                        got.actions.len(),
                        diff_keys(&ea, &got.actions)
                    ));
                }
                if got.feedback != ef {
                    problems.push(format!(
                        "{} ({}, {}): {} feedback rows expected, {} stored; differing ids: {:?}",
                        l.tick_id,
                        l.email,
                        l.delivery,
                        ef.len(),
                        got.feedback.len(),
                        diff_keys(&ef, &got.feedback)
                    ));
                }
                if !got.persona_ids.is_empty()
                    && got.persona_ids != BTreeSet::from([l.persona_id.clone()])
                {
                    problems.push(format!(
                        "{}: rows under personas {:?}, not {}",
                        l.tick_id, got.persona_ids, l.persona_id
                    ));
                }
            }
            "nothing" => {
                if !got.actions.is_empty() || !got.feedback.is_empty() {
                    problems.push(format!(
                        "{} posted nothing but the sandbox has {} rows for it",
                        l.tick_id,
                        got.actions.len() + got.feedback.len()
                    ));
                }
            }
            other => problems.push(format!(
                "{} ({}): delivery {other}: the campaign injects only transient faults",
                l.tick_id, l.email
            )),
        }
    }

    // Rows the ledger does not know: only from runs that were killed.
    let mut snapshot: BTreeMap<&str, (Vec<Value>, Vec<Value>, &str)> = BTreeMap::new();
    for k in kills {
        for e in &k.outbox {
            let s = snapshot.entry(e.tick_id.as_str()).or_insert((
                Vec::new(),
                Vec::new(),
                e.persona_id.as_str(),
            ));
            if e.kind == "actions" {
                s.0 = e.rows.clone();
            } else {
                s.1 = e.rows.clone();
            }
        }
    }
    for (tick, got) in &stored {
        t.action_rows += got.actions.len();
        t.feedback_rows += got.feedback.len();
        if seen_ticks.contains(tick.as_str()) {
            continue;
        }
        if let Some((a, f, persona)) = snapshot.get(tick.as_str()) {
            t.snapshot_only_ticks += 1;
            let (ea, ef) = expected_rows(tick, a, f);
            // A snapshot may have been taken after the actions went out and
            // been deleted: then only the feedback is in it, and vice versa.
            let actions_ok = if a.is_empty() {
                contiguous(tick, &got.actions)
            } else {
                got.actions == ea
            };
            let feedback_ok = f.is_empty() || got.feedback == ef;
            accounted_rows += got.actions.len() + got.feedback.len();
            if !actions_ok
                || !feedback_ok
                || got.persona_ids != BTreeSet::from([persona.to_string()])
            {
                problems.push(format!(
                    "{tick}: rows differ from the outbox snapshot taken after the kill (actions {} vs {}, feedback {} vs {})",
                    got.actions.len(),
                    ea.len(),
                    got.feedback.len(),
                    ef.len()
                ));
            }
            continue;
        }
        let in_killed_run = uuid7_time(tick).is_some_and(|at| {
            kills
                .iter()
                .any(|k| at >= k.from - chrono::Duration::seconds(1) && at <= k.to)
        });
        if in_killed_run && contiguous(tick, &got.actions) && got.persona_ids.len() == 1 {
            t.orphan_ticks += 1;
            accounted_rows += got.actions.len() + got.feedback.len();
        } else {
            problems.push(format!(
                "{tick}: {} action and {} feedback rows that no ledger entry, no outbox and no killed run account for",
                got.actions.len(),
                got.feedback.len()
            ));
        }
    }

    // Every tool call the platform ran has its row (issue 11.5: with the
    // journal, even a call made just before a SIGKILL).
    let (calls, missing) = tool_calls_without_rows(sb);
    t.tool_calls = calls;
    t.calls_without_row = missing.iter().map(|m| m.1).sum();
    if calls == 0 && t.action_rows > 0 {
        // The sandbox logs a call it could not record only as an error: an
        // empty log would make the check above prove nothing.
        problems.push(format!(
            "the MCP call log is empty while {} action rows are stored",
            t.action_rows
        ));
    }
    if t.calls_without_row > 0 {
        problems.push(format!(
            "{} of {calls} tool calls the MCP ran have no action row; e.g. (persona, tool, inputHash) {:?}",
            t.calls_without_row,
            &missing[..missing.len().min(4)]
        ));
    }

    // Every stored row is one expected row: the ledger's (and the kill
    // snapshots') batches account for the whole table, nothing more.
    if accounted_rows != t.action_rows + t.feedback_rows {
        problems.push(format!(
            "the sandbox holds {} rows, the accounted ticks {}",
            t.action_rows + t.feedback_rows,
            accounted_rows
        ));
    }

    if !problems.is_empty() {
        panic!(
            "{} violations; the first ones:\n  {}",
            problems.len(),
            problems
                .iter()
                .take(15)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    t
}

/// (persona, tool, input hash): what a tool call and its action row share.
pub type CallKey = (String, String, String);

/// The calls the sandbox's MCP ran (`mcp_calls`), and per (persona, tool,
/// input hash) how many of them no action row accounts for. A call is matched
/// to rows by what both sides know: who, which tool, and the hash of the
/// arguments (the runner's `input_hash`, over the arguments as sent). Rows
/// may outnumber calls (calls refused before MCP, in flight at a deadline or
/// a kill, transport failures are error rows too); never the other way round.
pub fn tool_calls_without_rows(sb: &Sandbox) -> (usize, Vec<(CallKey, usize)>) {
    type Key = CallKey;
    let mut calls: BTreeMap<Key, usize> = BTreeMap::new();
    let mut rows: BTreeMap<Key, usize> = BTreeMap::new();
    let mut total = 0;
    sb.db()
        .call(|c| {
            let mut st = c.prepare("SELECT user_id, tool, arguments FROM mcp_calls")?;
            let it = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in it {
                let (user, tool, args) = row?;
                let v: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
                let hash = mana_personas::runner::batch::input_hash(&v);
                *calls.entry((user, tool, hash)).or_default() += 1;
                total += 1;
            }
            let mut st =
                c.prepare("SELECT persona_id, tool_name, input_hash FROM persona_actions")?;
            let it = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                ))
            })?;
            for row in it {
                *rows.entry(row?).or_default() += 1;
            }
            Ok(())
        })
        .expect("read the MCP calls and the action rows");
    let missing = calls
        .into_iter()
        .filter_map(|(k, n)| {
            let have = rows.get(&k).copied().unwrap_or(0);
            (n > have).then(|| (k, n - have))
        })
        .collect();
    (total, missing)
}

/// Ids `{tick}-0-…` to `{tick}-(n-1)-…`, each once: one whole batch.
fn contiguous(tick: &str, rows: &BTreeMap<String, Value>) -> bool {
    let idx: BTreeSet<usize> = rows
        .keys()
        .filter_map(|id| {
            id.strip_prefix(&format!("{tick}-"))?
                .split('-')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    idx.len() == rows.len() && idx.iter().copied().eq(0..rows.len())
}

fn diff_keys(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> Vec<String> {
    let mut d: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| format!("missing/different {k}: want {v}, have {:?}", b.get(k)))
        .chain(
            b.keys()
                .filter(|k| !a.contains_key(*k))
                .map(|k| format!("extra {k}")),
        )
        .collect();
    d.truncate(4);
    d
}

/// The fault tallies as a table: per endpoint, requests, faulted share, kinds.
pub fn fault_table(stats: &[EndpointStats]) -> String {
    let mut s = String::new();
    for e in stats {
        let kinds: Vec<String> = e.injected.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        s.push_str(&format!(
            "  {:<9} {:<52} {:>6} req {:>5} faulted ({:>4.1} %)  {}\n",
            format!("{:?}", e.route),
            e.endpoint,
            e.requests,
            e.faulted(),
            100.0 * e.faulted() as f64 / e.requests.max(1) as f64,
            kinds.join(" ")
        ));
    }
    s
}

/// Per route group: (requests, faults that fail the request, i.e. not `delay`).
pub fn failing_share(stats: &[EndpointStats]) -> BTreeMap<RouteGroup, (u64, u64)> {
    let mut m: BTreeMap<RouteGroup, (u64, u64)> = BTreeMap::new();
    for e in stats {
        let f = m.entry(e.route).or_default();
        f.0 += e.requests;
        f.1 += e
            .injected
            .iter()
            .filter(|(k, _)| k.as_str() != "delay")
            .map(|(_, n)| n)
            .sum::<u64>();
    }
    m
}

/// A seeded RNG for the campaign's own choices (when to kill).
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A kill moment in `[lo, hi)` milliseconds.
pub fn kill_after(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.random_range(lo..hi))
}

// ------------------------------------------------------------------ daemon

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `GET {base}/health` until it answers 200 (its JSON), or panics when
/// the daemon exits or `limit` passes.
pub async fn wait_healthy(base: &str, r: &mut Running, limit: Duration) -> Value {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(st) = r.child.try_wait().unwrap() {
            panic!(
                "the daemon exited ({st}) before it was healthy:\n{}",
                tail(&std::fs::read_to_string(&r.err).unwrap_or_default(), 3000)
            );
        }
        if let Ok(resp) = client.get(format!("{base}/health")).send().await
            && resp.status() == 200
        {
            return resp.json().await.expect("health JSON");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon at {base} was not healthy within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
