//! Reads the runner's own account of each persona tick from the ledger in
//! `$STATE_DIR/state.db`: when it started and finished, how long it took, and
//! how much of that was spent waiting on the LLM, MCP and the platform.

use std::path::Path;

use serde_json::{Value, json};

/// One persona tick, as the ledger tells it.
#[derive(Debug, Clone)]
pub struct PersonaTick {
    pub started_ms: i64,
    pub finished_ms: i64,
    pub duration_ms: u64,
    pub llm_ms: u64,
    pub mcp_ms: u64,
    pub platform_ms: u64,
    pub outcome: String,
    pub retries: u64,
}

impl PersonaTick {
    pub fn waits_ms(&self) -> u64 {
        self.llm_ms + self.mcp_ms + self.platform_ms
    }
}

fn epoch_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// Every ledger entry of `state_db`.
pub fn read(state_db: &Path) -> anyhow::Result<Vec<PersonaTick>> {
    let c = rusqlite::Connection::open(state_db)?;
    let mut st = c.prepare("SELECT started_at, finished_at, outcome, transcript FROM ledger")?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (started, finished, outcome, transcript) in rows {
        let t: Value = serde_json::from_str(&transcript)?;
        let rep = &t["report"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let retries = t["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| n(&e["retries"]))
            .sum();
        out.push(PersonaTick {
            started_ms: epoch_ms(&started),
            finished_ms: epoch_ms(&finished),
            duration_ms: n(&rep["durationMs"]),
            llm_ms: n(&rep["waits"]["llmMs"]),
            mcp_ms: n(&rep["waits"]["mcpMs"]),
            platform_ms: n(&rep["waits"]["platformMs"]),
            outcome,
            retries,
        });
    }
    Ok(out)
}

/// The most persona ticks in flight at the same moment (ledger timestamps).
pub fn max_overlap(ticks: &[PersonaTick]) -> usize {
    let mut ev: Vec<(i64, i32)> = ticks
        .iter()
        .flat_map(|t| [(t.started_ms, 1), (t.finished_ms, -1)])
        .collect();
    // At equal times, count the end before the start: touching is not overlapping.
    ev.sort();
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Σ, mean and percentiles of the durations and the waits, as JSON.
pub fn stats(ticks: &[PersonaTick]) -> Value {
    let mut d: Vec<u64> = ticks.iter().map(|t| t.duration_ms).collect();
    d.sort_unstable();
    let sum_d: u64 = d.iter().sum();
    let sum = |f: fn(&PersonaTick) -> u64| ticks.iter().map(f).sum::<u64>();
    let (llm, mcp, platform) = (sum(|t| t.llm_ms), sum(|t| t.mcp_ms), sum(|t| t.platform_ms));
    let waits = llm + mcp + platform;
    let mut own: Vec<u64> = ticks
        .iter()
        .map(|t| t.duration_ms.saturating_sub(t.waits_ms()))
        .collect();
    own.sort_unstable();
    json!({
        "personaTicks": ticks.len(),
        "outcomes": ticks.iter().fold(serde_json::Map::new(), |mut m, t| {
            let e = m.entry(t.outcome.clone()).or_insert(json!(0));
            *e = json!(e.as_u64().unwrap_or(0) + 1);
            m
        }),
        "retries": sum(|t| t.retries),
        "sumDurationMs": sum_d,
        "durationMs": {"mean": sum_d as f64 / ticks.len().max(1) as f64,
                        "p50": percentile(&d, 0.5), "p95": percentile(&d, 0.95), "max": d.last().copied().unwrap_or(0)},
        "sumWaitsMs": {"llm": llm, "mcp": mcp, "platform": platform, "total": waits},
        "runnerOwnMsPerTick": {"mean": (sum_d.saturating_sub(waits)) as f64 / ticks.len().max(1) as f64,
                                "p50": percentile(&own, 0.5), "p95": percentile(&own, 0.95)},
        "runnerShare": 1.0 - waits as f64 / sum_d.max(1) as f64,
        "maxInFlight": max_overlap(ticks),
    })
}

/// Where the idle slot-time of a run went, in slot-ms and as shares of
/// `concurrency × run_ms`: outside the ledger's span (before the first
/// persona started and after the last one finished: the tick's drain and due
/// fetch), between the first and the last start (the pool's hand-off from a
/// finished persona to the next), and after the last start (the tail of a
/// finite batch: slots empty as the last personas finish, whatever the pool).
pub fn idle(ticks: &[PersonaTick], concurrency: usize, run_ms: f64) -> Value {
    let c = concurrency as f64;
    let first = ticks.iter().map(|t| t.started_ms).min().unwrap_or(0);
    let last_start = ticks.iter().map(|t| t.started_ms).max().unwrap_or(0);
    let last_end = ticks.iter().map(|t| t.finished_ms).max().unwrap_or(0);
    let mut ev: Vec<(i64, i32)> = ticks
        .iter()
        .flat_map(|t| [(t.started_ms, 1), (t.finished_ms, -1)])
        .collect();
    ev.sort();
    let (mut cur, mut prev) = (0i32, first);
    let (mut handoff, mut tail) = (0f64, 0f64);
    for (t, d) in ev {
        let free = c - cur as f64;
        if prev < last_start {
            handoff += free * (t.min(last_start) - prev) as f64;
            if t > last_start {
                tail += free * (t - last_start) as f64;
            }
        } else {
            tail += free * (t - prev) as f64;
        }
        cur += d;
        prev = t;
    }
    let outside = c * (run_ms - (last_end - first) as f64).max(0.0);
    let total = c * run_ms;
    json!({
        "slotMs": {"outsideSpan": outside, "poolHandoff": handoff, "tail": tail},
        "share": {"outsideSpan": outside / total, "poolHandoff": handoff / total, "tail": tail / total},
        "tailMs": last_end - last_start,
    })
}
