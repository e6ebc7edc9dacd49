//! The ledger's long-lived part: one compact summary per persona tick (who,
//! when, how it ended and at which stage, each tool call's module, result,
//! error class and latency, each rating with the action rows it is about,
//! tokens, model, cost), kept for `LEDGER_SUMMARY_DAYS` (default 400) while
//! full transcripts go after `LEDGER_RETENTION_DAYS`.
//!
//! Why a table of its own (`ledger_summary`): `report` reads months of these,
//! which must stay small and fast, and the transcript table keeps its shape
//! (the change is additive; ledgers from before it are migrated on open by
//! [`migrate`], which builds summaries from the transcripts they still hold).
//!
//! Why here, below the runner: the report reads it without knowing the
//! runner, and the same [`from_transcript`] builds a summary for the runner
//! and for the migration, so both agree.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{State, StateError, parse_ts, ts};

pub mod rows;

pub use super::error_class::{ErrorClass, classify};

/// The schema version `PRAGMA user_version` holds once the summary table
/// exists, old transcripts have been summarised (1) and every summary's
/// report fields are in `ledger_report` (2).
pub const SCHEMA_VERSION: i64 = 2;

/// `ledger_summary`: the whole summary as JSON (`trace`, the notes).
/// `ledger_report` (version 2): what `report` aggregates, one short row per
/// summary. Why a table of its own: parsing 30,000 JSON texts of ~2 KiB was
/// most of a `/report` over a month of 1,000 personas (seconds), and the
/// fields as columns of `ledger_summary` would have left its ~2 KiB rows one
/// to a page; here a scan reads ~0.4 KiB a row and no notes. `calls` is
/// `[[tool, ok 0|1, error class|null, latency ms|null], …]`, `ratings`
/// `[[module, rating, has notes 0|1], …]` (the report reads the few notes it
/// shows from `ledger_summary`).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ledger_summary (
    tick_id     TEXT PRIMARY KEY,
    persona_id  TEXT NOT NULL,
    email       TEXT NOT NULL,
    archetype   TEXT NOT NULL DEFAULT '',
    started_at  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    summary     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_summary_started ON ledger_summary(started_at);
CREATE TABLE IF NOT EXISTS ledger_report (
    tick_id            TEXT NOT NULL UNIQUE,
    email              TEXT NOT NULL,
    archetype          TEXT NOT NULL,
    started_at         TEXT NOT NULL,
    outcome            TEXT NOT NULL,
    stage              TEXT,
    model              TEXT,
    cost_usd           REAL,
    tokens_input       INTEGER NOT NULL,
    tokens_output      INTEGER NOT NULL,
    tokens_cache_read  INTEGER NOT NULL,
    tokens_cache_write INTEGER NOT NULL,
    retries            INTEGER NOT NULL,
    wait_llm_ms        INTEGER NOT NULL,
    wait_mcp_ms        INTEGER NOT NULL,
    wait_platform_ms   INTEGER NOT NULL,
    duration_ms        INTEGER NOT NULL,
    module_mix         TEXT NOT NULL,
    calls              TEXT NOT NULL,
    ratings            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_report_started ON ledger_report(started_at);
"#;

/// Where a failed persona tick stopped (issue 12's stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    SignIn,
    Spaces,
    Mcp,
    ToolNames,
    Llm,
    Rating,
    Delivery,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::SignIn => "sign_in",
            Stage::Spaces => "spaces",
            Stage::Mcp => "mcp",
            Stage::ToolNames => "tool_names",
            Stage::Llm => "llm",
            Stage::Rating => "rating",
            Stage::Delivery => "delivery",
        }
    }

    /// The stage named by [`Stage::as_str`] (the `stage` column).
    pub fn parse(s: &str) -> Option<Stage> {
        [
            Stage::SignIn,
            Stage::Spaces,
            Stage::Mcp,
            Stage::ToolNames,
            Stage::Llm,
            Stage::Rating,
            Stage::Delivery,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// Tokens by kind, as the provider billed them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Tokens {
    pub fn add(&mut self, o: Tokens) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
    }
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }
}

/// Time spent waiting on each dependency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitsMs {
    pub llm: u64,
    pub mcp: u64,
    pub platform: u64,
}

/// One tool call; its position in [`Summary::calls`] is the index of the
/// platform's row id `{tickId}-{i}-{tool}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallSummary {
    /// The MCP name (`todo.create`).
    pub tool: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

impl CallSummary {
    /// The module: the text before the first dot.
    pub fn module(&self) -> &str {
        module_of(&self.tool)
    }
}

/// One module rating and the action rows it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RatingSummary {
    pub module: String,
    pub rating: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Row ids (`{tickId}-{i}-{tool}`) of this tick's calls of the module.
    #[serde(default)]
    pub action_ids: Vec<String>,
}

/// One persona tick, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub tick_id: String,
    pub persona_id: String,
    pub email: String,
    #[serde(default)]
    pub archetype: String,
    /// The catalog's target weights for this persona when it ran.
    #[serde(default)]
    pub module_mix: BTreeMap<String, f64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `ok`, `zero_actions` or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub calls: Vec<CallSummary>,
    #[serde(default)]
    pub ratings: Vec<RatingSummary>,
    #[serde(default)]
    pub tokens: Tokens,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// US dollars; `None` when the model has no price (tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// LLM call retries.
    #[serde(default)]
    pub retries: u64,
    #[serde(default)]
    pub waits_ms: WaitsMs,
    #[serde(default)]
    pub duration_ms: u64,
}

/// The module of an MCP tool name: the text before the first dot.
pub fn module_of(tool: &str) -> &str {
    // A byte scan, not `split('.')`: the report asks this of every call of a
    // month (180,000 for 1,000 personas), and names are a few bytes long.
    match tool.bytes().position(|b| b == b'.') {
        Some(i) => &tool[..i],
        None => tool,
    }
}

/// The platform's id of action row `i` of a tick.
pub fn action_row_id(tick_id: &str, i: usize, tool: &str) -> String {
    format!("{tick_id}-{i}-{tool}")
}

/// What the transcript does not hold: who the persona is, where it failed,
/// which model, what it cost.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub archetype: String,
    pub module_mix: BTreeMap<String, f64>,
    pub stage: Option<Stage>,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
    /// Error classes the runner knows better than the text (by call index).
    pub classes: BTreeMap<usize, ErrorClass>,
}

/// Builds the summary of one persona tick from its ledger transcript (the
/// `actions`, `feedback`, `report` and `events` the runner writes).
#[allow(clippy::too_many_arguments)] // the ledger row's columns, all required
pub fn from_transcript(
    tick_id: &str,
    persona_id: &str,
    email: &str,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: &str,
    t: &Value,
    extra: Extra,
) -> Summary {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let calls: Vec<CallSummary> = t["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, a)| {
            let ok = a["result"].as_str() != Some("error");
            CallSummary {
                tool: a["toolName"].as_str().unwrap_or_default().to_string(),
                ok,
                error_class: (!ok).then(|| {
                    extra
                        .classes
                        .get(&i)
                        .copied()
                        .unwrap_or_else(|| classify(a["errorMessage"].as_str().unwrap_or("")))
                }),
                latency_ms: a["latencyMs"].as_u64(),
            }
        })
        .collect();
    let ratings = t["feedback"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let module = f["module"].as_str().unwrap_or_default().to_string();
            let action_ids = calls
                .iter()
                .enumerate()
                .filter(|(_, c)| c.module() == module)
                .map(|(i, c)| action_row_id(tick_id, i, &c.tool))
                .collect();
            RatingSummary {
                rating: n(&f["rating"]).min(255) as u8,
                notes: f["notes"].as_str().map(str::to_string),
                action_ids,
                module,
            }
        })
        .collect();
    let rep = &t["report"];
    let tokens = serde_json::from_value(rep["tokens"].clone()).unwrap_or_default();
    let retries = t["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| n(&e["retries"]))
        .sum();
    Summary {
        tick_id: tick_id.to_string(),
        persona_id: persona_id.to_string(),
        email: email.to_string(),
        archetype: extra.archetype,
        module_mix: extra.module_mix,
        started_at,
        finished_at,
        outcome: outcome.to_string(),
        stage: extra.stage,
        error: rep["error"].as_str().map(str::to_string),
        calls,
        ratings,
        tokens,
        model: extra.model,
        cost_usd: extra.cost_usd,
        retries,
        waits_ms: WaitsMs {
            llm: n(&rep["waits"]["llmMs"]),
            mcp: n(&rep["waits"]["mcpMs"]),
            platform: n(&rep["waits"]["platformMs"]),
        },
        duration_ms: n(&rep["durationMs"]),
    }
}

/// Brings a ledger forward: from before the summary table (version 0), it
/// creates the tables and summarises every transcript still kept
/// (archetype, model and cost unknown for those); from version 1, it fills
/// `ledger_report` from each summary's JSON. Runs once per file
/// (`PRAGMA user_version`), in one transaction.
pub(crate) fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = c.transaction()?;
    tx.execute_batch(SCHEMA)?;
    // Version 1's rows: their JSON into `ledger_report`, a thousand at a
    // time (a year of summaries is hundreds of MB of JSON).
    let mut after = 0i64;
    loop {
        let batch: Vec<(i64, String)> = tx
            .prepare_cached(
                "SELECT rowid, summary FROM ledger_summary WHERE rowid > ?1 ORDER BY rowid LIMIT 1000",
            )?
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        after = *last;
        for (_, text) in batch {
            if let Ok(sum) = serde_json::from_str::<Summary>(&text) {
                insert_report(&tx, &sum)?;
            }
        }
    }
    let old: Vec<[String; 7]> = tx
        .prepare(
            "SELECT tick_id, persona_id, email, started_at, finished_at, outcome, transcript FROM ledger
             WHERE tick_id NOT IN (SELECT tick_id FROM ledger_summary)",
        )?
        .query_map([], seven_texts)?
        .collect::<Result<_, _>>()?;
    for [tick, persona, email, started, finished, outcome, text] in old {
        let t: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (Some(s), Some(f)) = (parse_ts(&started), parse_ts(&finished)) else {
            continue;
        };
        let sum = from_transcript(
            &tick,
            &persona,
            &email,
            s,
            f,
            &outcome,
            &t,
            Extra::default(),
        );
        insert(&tx, &sum)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// `s.calls` as the `calls` column holds them.
fn calls_column(s: &Summary) -> String {
    let v: Vec<(&str, u8, Option<ErrorClass>, Option<u64>)> = s
        .calls
        .iter()
        .map(|c| (c.tool.as_str(), c.ok as u8, c.error_class, c.latency_ms))
        .collect();
    serde_json::to_string(&v).expect("a list of calls always serialises")
}

/// `s.ratings` as the `ratings` column holds them.
fn ratings_column(s: &Summary) -> String {
    let v: Vec<(&str, u8, u8)> = s
        .ratings
        .iter()
        .map(|r| (r.module.as_str(), r.rating, r.notes.is_some() as u8))
        .collect();
    serde_json::to_string(&v).expect("a list of ratings always serialises")
}

/// Writes both tables: the whole summary and its report row.
fn insert(c: &Connection, s: &Summary) -> rusqlite::Result<()> {
    let text = serde_json::to_string(s).expect("a summary always serialises");
    c.prepare_cached(
        "INSERT INTO ledger_summary (tick_id, persona_id, email, archetype, started_at, outcome, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(tick_id) DO UPDATE SET outcome = excluded.outcome, summary = excluded.summary",
    )?
    .execute(params![
        s.tick_id,
        s.persona_id,
        s.email,
        s.archetype,
        ts(s.started_at),
        s.outcome,
        text
    ])?;
    insert_report(c, s)
}

/// The report row of a summary (alone when migrating a version-1 ledger,
/// whose `ledger_summary` rows are already there and stay as they are).
fn insert_report(c: &Connection, s: &Summary) -> rusqlite::Result<()> {
    let mix = serde_json::to_string(&s.module_mix).expect("a module mix always serialises");
    c.prepare_cached(
        "INSERT OR REPLACE INTO ledger_report (tick_id, email, archetype, started_at, outcome, stage, model,
             cost_usd, tokens_input, tokens_output, tokens_cache_read, tokens_cache_write, retries,
             wait_llm_ms, wait_mcp_ms, wait_platform_ms, duration_ms, module_mix, calls, ratings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        s.tick_id,
        s.email,
        s.archetype,
        ts(s.started_at),
        s.outcome,
        s.stage.map(Stage::as_str),
        s.model,
        s.cost_usd,
        s.tokens.input as i64,
        s.tokens.output as i64,
        s.tokens.cache_read as i64,
        s.tokens.cache_write as i64,
        s.retries as i64,
        s.waits_ms.llm as i64,
        s.waits_ms.mcp as i64,
        s.waits_ms.platform as i64,
        s.duration_ms as i64,
        mix,
        calls_column(s),
        ratings_column(s),
    ])
    .map(|_| ())
}

/// Which summaries to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only ticks that started at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only this persona (email, case-insensitive).
    pub email: Option<String>,
    pub archetype: Option<String>,
}

fn select(c: &Connection, f: &Filter) -> rusqlite::Result<Vec<Summary>> {
    let since = f.since.map(ts).unwrap_or_default();
    let email = f.email.as_deref().map(str::to_lowercase);
    let mut st = c.prepare_cached(
        "SELECT summary FROM ledger_summary
         WHERE started_at >= ?1 AND (?2 IS NULL OR lower(email) = ?2) AND (?3 IS NULL OR archetype = ?3)
         ORDER BY started_at",
    )?;
    let rows = st.query_map(params![since, email, f.archetype], |r| {
        r.get_ref(0)
            .map(|v| serde_json::from_slice::<Summary>(v.as_bytes().unwrap_or_default()).ok())
    })?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(s) = r? {
            out.push(s);
        }
    }
    Ok(out)
}

impl State {
    /// Stores (or replaces) one persona tick's summary.
    pub fn summary_write(&self, s: &Summary) -> Result<(), StateError> {
        self.call(|c| insert(c, s))
    }

    /// Drops summaries that started before `now - days`. Returns how many.
    pub fn summary_prune(&self, days: u32, now: DateTime<Utc>) -> Result<usize, StateError> {
        let days = days.min(100 * 366);
        let cutoff = ts(now - chrono::Duration::days(days as i64));
        self.call(|c| {
            c.execute(
                "DELETE FROM ledger_report WHERE started_at < ?1",
                params![cutoff],
            )?;
            c.execute(
                "DELETE FROM ledger_summary WHERE started_at < ?1",
                params![cutoff],
            )
        })
    }

    /// Summaries matching `f`, oldest first.
    pub fn summaries(&self, f: &Filter) -> Result<Vec<Summary>, StateError> {
        self.call(|c| select(c, f))
    }

    /// One summary by tick id.
    pub fn summary_get(&self, tick_id: &str) -> Result<Option<Summary>, StateError> {
        use rusqlite::OptionalExtension;
        self.call(|c| {
            c.query_row(
                "SELECT summary FROM ledger_summary WHERE tick_id = ?1",
                params![tick_id],
                |r| r.get::<_, String>(0),
            )
            .optional()
        })
        .map(|o| o.and_then(|t| serde_json::from_str(&t).ok()))
    }
}

/// Opens `dir`'s state database read-only.
fn open_read_only(
    dir: &Path,
) -> Result<(Connection, impl Fn(rusqlite::Error) -> StateError), StateError> {
    let path = dir.join("state.db");
    if !path.is_file() {
        return Err(StateError::Dir {
            path: dir.to_path_buf(),
            message: "has no state.db".into(),
        });
    }
    let p = path.clone();
    let db = move |source| StateError::Db {
        path: p.clone(),
        source,
    };
    let c = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&db)?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&db)?;
    Ok((c, db))
}

/// Whether the ledger has table `name` (older ledgers lack the newer ones).
pub(crate) fn has_table(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The tick ids of `email`'s last `n` persona ticks in `dir`, newest first
/// (from the summaries and the transcripts both: either may be gone).
pub fn recent_ticks(dir: &Path, email: &str, n: usize) -> Result<Vec<String>, StateError> {
    let (c, db) = open_read_only(dir)?;
    let sql = if has_table(&c, "ledger_summary").map_err(&db)? {
        "SELECT tick_id, started_at FROM ledger_summary WHERE lower(email) = ?1
         UNION SELECT tick_id, started_at FROM ledger WHERE lower(email) = ?1
         ORDER BY 2 DESC LIMIT ?2"
    } else {
        "SELECT tick_id, started_at FROM ledger WHERE lower(email) = ?1 ORDER BY 2 DESC LIMIT ?2"
    };
    let mut st = c.prepare(sql).map_err(&db)?;
    let rows = st
        .query_map(params![email.to_lowercase(), n as i64], |r| r.get(0))
        .map_err(&db)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(&db)?;
    Ok(rows)
}

/// One persona tick as the ledger in `dir` still has it: the transcript (gone
/// after `LEDGER_RETENTION_DAYS`) and the summary (gone after
/// `LEDGER_SUMMARY_DAYS`, or absent in a ledger from before summaries).
pub fn read_tick(
    dir: &Path,
    tick_id: &str,
) -> Result<(Option<Value>, Option<Summary>), StateError> {
    use rusqlite::OptionalExtension;
    let (c, db) = open_read_only(dir)?;
    let transcript: Option<String> = c
        .query_row(
            "SELECT transcript FROM ledger WHERE tick_id = ?1",
            params![tick_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(&db)?;
    let summary: Option<String> = if has_table(&c, "ledger_summary").map_err(&db)? {
        c.query_row(
            "SELECT summary FROM ledger_summary WHERE tick_id = ?1",
            params![tick_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(&db)?
    } else {
        None
    };
    Ok((
        transcript.and_then(|t| serde_json::from_str(&t).ok()),
        summary.and_then(|t| serde_json::from_str(&t).ok()),
    ))
}

/// The summaries matching `f` in an open ledger that has no `ledger_report`
/// yet (a read-only open of another daemon's ledger cannot migrate it): from
/// the JSON texts (version 1), or, before the summary table, summarised in
/// memory from the transcripts (version 0).
fn read_summaries(c: &Connection, f: &Filter) -> rusqlite::Result<Vec<Summary>> {
    if has_table(c, "ledger_summary")? {
        return select(c, f);
    }
    let mut st = c.prepare(
        "SELECT tick_id, persona_id, email, started_at, finished_at, outcome, transcript FROM ledger
         WHERE started_at >= ?1 ORDER BY started_at",
    )?;
    let since = f.since.map(ts).unwrap_or_default();
    let rows: Vec<[String; 7]> = st
        .query_map(params![since], seven_texts)?
        .collect::<Result<_, _>>()?;
    let email = f.email.as_deref().map(str::to_lowercase);
    Ok(rows
        .into_iter()
        .filter(|r| email.as_deref().is_none_or(|e| r[2].to_lowercase() == e))
        .filter(|_| f.archetype.is_none())
        .filter_map(|[tick, persona, email, started, finished, outcome, text]| {
            let t: Value = serde_json::from_str(&text).ok()?;
            Some(from_transcript(
                &tick,
                &persona,
                &email,
                parse_ts(&started)?,
                parse_ts(&finished)?,
                &outcome,
                &t,
                Extra::default(),
            ))
        })
        .collect())
}

/// The seven text columns both ledger reads select (migration and `report`),
/// as one array: one place decides how such a row is read.
fn seven_texts(r: &rusqlite::Row) -> rusqlite::Result<[String; 7]> {
    Ok([
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ])
}
