//! The summaries as `report` reads them: one [`Row`] per persona tick, from
//! `ledger_report` (schema version 2), through a read-only open of a state
//! directory ([`Ledger`]).
//!
//! Why a read model of its own and not [`Summary`]: a month of 1,000
//! personas is 30,000 summaries; parsing each one's JSON (~2 KiB, most of it
//! notes and action ids the aggregates never look at) was most of the time
//! of a `/report`. A row is a few columns plus two short lists, and the notes
//! stay in the ledger until the report knows which few it shows
//! ([`Ledger::notes`]). A ledger that has no `ledger_report` yet (another daemon's,
//! of an older version: a read-only open cannot migrate it) is read the old
//! way and converted, so the report has one input type and one aggregation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    ErrorClass, Filter, Stage, StateError, Summary, Tokens, WaitsMs, module_of, open_read_only,
    read_summaries,
};
use crate::state::{parse_ts, ts};

/// A rating's note, where it is.
#[derive(Debug, Clone, PartialEq)]
pub enum NoteText {
    /// The rating has no note.
    None,
    /// Read with the row (a ledger converted from JSON or transcripts).
    Here(String),
    /// In the ledger's `summary` JSON: [`Ledger::notes`] reads it.
    InLedger,
}

/// Tool and module names, one allocation each per read: a month of
/// summaries names the same few tools 180,000 times.
#[derive(Default)]
struct Names(HashSet<Arc<str>>);

impl Names {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }
}

/// One tool call (its position in the row's `calls` is its index).
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    /// The MCP name (`todo.create`).
    pub tool: Arc<str>,
    pub ok: bool,
    pub error_class: Option<ErrorClass>,
    pub latency_ms: Option<u64>,
}

impl CallRow {
    /// The module: the text before the first dot.
    pub fn module(&self) -> &str {
        module_of(&self.tool)
    }
}

/// One module rating, without its action ids.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingRow {
    pub module: Arc<str>,
    pub rating: u8,
    pub notes: NoteText,
}

/// One persona tick as the report aggregates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub tick_id: String,
    pub email: String,
    pub archetype: String,
    /// The catalog's weights as JSON (`{}` for none): the report parses only
    /// the newest one of each persona.
    pub module_mix: String,
    pub started_at: DateTime<Utc>,
    pub outcome: String,
    pub stage: Option<Stage>,
    pub calls: Vec<CallRow>,
    pub ratings: Vec<RatingRow>,
    pub tokens: Tokens,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
    pub retries: u64,
    pub waits_ms: WaitsMs,
    pub duration_ms: u64,
}

impl From<Summary> for Row {
    fn from(s: Summary) -> Row {
        Row {
            module_mix: serde_json::to_string(&s.module_mix)
                .expect("a module mix always serialises"),
            tick_id: s.tick_id,
            email: s.email,
            archetype: s.archetype,
            started_at: s.started_at,
            outcome: s.outcome,
            stage: s.stage,
            calls: s
                .calls
                .into_iter()
                .map(|c| CallRow {
                    tool: c.tool.into(),
                    ok: c.ok,
                    error_class: c.error_class,
                    latency_ms: c.latency_ms,
                })
                .collect(),
            ratings: s
                .ratings
                .into_iter()
                .map(|r| RatingRow {
                    module: r.module.into(),
                    rating: r.rating,
                    notes: r.notes.map_or(NoteText::None, NoteText::Here),
                })
                .collect(),
            tokens: s.tokens,
            model: s.model,
            cost_usd: s.cost_usd,
            retries: s.retries,
            waits_ms: s.waits_ms,
            duration_ms: s.duration_ms,
        }
    }
}

/// A state directory's ledger, open read-only for a report.
pub struct Ledger {
    c: Connection,
    path: PathBuf,
    /// `ledger_report` exists (schema version 2).
    has_report: bool,
}

type CallCols<'a> = (&'a str, u8, Option<ErrorClass>, Option<u64>);

impl Ledger {
    /// Opens `dir`'s `state.db` without writing to it (`report` may read
    /// another daemon's live ledger).
    pub fn open(dir: &Path) -> Result<Ledger, StateError> {
        let (c, db) = open_read_only(dir)?;
        let has_report = super::has_table(&c, "ledger_report").map_err(&db)?;
        Ok(Ledger {
            c,
            path: dir.join("state.db"),
            has_report,
        })
    }

    fn db(&self, source: rusqlite::Error) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The rows matching `f`, oldest first.
    pub fn rows(&self, f: &Filter) -> Result<Vec<Row>, StateError> {
        if !self.has_report {
            let v = read_summaries(&self.c, f).map_err(|e| self.db(e))?;
            return Ok(v.into_iter().map(Row::from).collect());
        }
        self.select(f).map_err(|e| self.db(e))
    }

    fn select(&self, f: &Filter) -> rusqlite::Result<Vec<Row>> {
        let since = f.since.map(ts).unwrap_or_default();
        let email = f.email.as_deref().map(str::to_lowercase);
        let mut st = self.c.prepare(
            "SELECT tick_id, email, archetype, module_mix, started_at, outcome, stage, calls, ratings,
                    tokens_input, tokens_output, tokens_cache_read, tokens_cache_write, model, cost_usd,
                    retries, wait_llm_ms, wait_mcp_ms, wait_platform_ms, duration_ms
             FROM ledger_report
             WHERE started_at >= ?1 AND (?2 IS NULL OR lower(email) = ?2) AND (?3 IS NULL OR archetype = ?3)
             ORDER BY started_at",
        )?;
        let mut rows = st.query(params![since, email, f.archetype])?;
        let mut out = Vec::new();
        let mut names = Names::default();
        let n = |r: &rusqlite::Row, i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
        while let Some(r) = rows.next()? {
            let text = |i: usize| r.get_ref(i).map(|v| v.as_bytes().unwrap_or_default());
            let Some(started_at) = std::str::from_utf8(text(4)?).ok().and_then(parse_ts) else {
                continue;
            };
            let calls: Vec<CallCols> = serde_json::from_slice(text(7)?).unwrap_or_default();
            let ratings: Vec<(&str, u8, u8)> = serde_json::from_slice(text(8)?).unwrap_or_default();
            out.push(Row {
                tick_id: r.get(0)?,
                email: r.get(1)?,
                archetype: r.get(2)?,
                module_mix: r.get(3)?,
                started_at,
                outcome: r.get(5)?,
                stage: r
                    .get::<_, Option<String>>(6)?
                    .as_deref()
                    .and_then(Stage::parse),
                calls: calls
                    .into_iter()
                    .map(|(tool, ok, error_class, latency_ms)| CallRow {
                        tool: names.get(tool),
                        ok: ok != 0,
                        error_class,
                        latency_ms,
                    })
                    .collect(),
                ratings: ratings
                    .into_iter()
                    .map(|(module, rating, has_notes)| RatingRow {
                        module: names.get(module),
                        rating,
                        notes: if has_notes != 0 {
                            NoteText::InLedger
                        } else {
                            NoteText::None
                        },
                    })
                    .collect(),
                tokens: Tokens {
                    input: n(r, 9)?,
                    output: n(r, 10)?,
                    cache_read: n(r, 11)?,
                    cache_write: n(r, 12)?,
                },
                model: r.get(13)?,
                cost_usd: r.get(14)?,
                retries: n(r, 15)?,
                waits_ms: WaitsMs {
                    llm: n(r, 16)?,
                    mcp: n(r, 17)?,
                    platform: n(r, 18)?,
                },
                duration_ms: n(r, 19)?,
            });
        }
        Ok(out)
    }

    /// The note of rating `idx` of `row`: the one in the row, or read from the
    /// summary's JSON. `None` when there is none (or the summary was pruned
    /// since the rows were read).
    pub fn notes(&self, row: &Row, idx: usize) -> Option<String> {
        match &row.ratings.get(idx)?.notes {
            NoteText::None => None,
            NoteText::Here(t) => Some(t.clone()),
            NoteText::InLedger => {
                let text: String = self
                    .c
                    .prepare_cached("SELECT summary FROM ledger_summary WHERE tick_id = ?1")
                    .and_then(|mut st| st.query_row(params![row.tick_id], |r| r.get(0)).optional())
                    .ok()??;
                let s: Summary = serde_json::from_str(&text).ok()?;
                s.ratings.into_iter().nth(idx)?.notes
            }
        }
    }
}

impl Ledger {
    /// SQLite's `PRAGMA data_version` of this connection: it changes when
    /// another connection (the runner's) commits to the file. The daemon's
    /// report cache keeps a ledger open to ask this, so a refresh costs one
    /// pragma instead of a rebuild while no tick has written.
    pub fn data_version(&self) -> Result<i64, StateError> {
        self.c
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.db(e))
    }
}
