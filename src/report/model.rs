//! The report's numbers, aggregated from ledger summaries: per module
//! (weekly ratings, the notes behind the worst ones, errors by class,
//! latency, share of calls, cost), trends, module-mix adherence, health and
//! cost. Every renderer draws from this one [`Report`]; its JSON form is the
//! documented, versioned `report --format json` (see `render_json`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::stats::{mean, percentile, round, stddev};
use super::trends::{self, Trends};
use crate::state::summary::rows::{Ledger, NoteText, Row};
use crate::state::summary::{self, ErrorClass, Filter};

/// The version of the JSON form; bumped when a field changes meaning or goes.
pub const VERSION: u32 = 1;

/// How many of the worst-rated notes each module shows.
pub const WORST_NOTES: usize = 3;
/// How many personas "drift furthest" lists.
pub const DRIFTERS: usize = 5;

/// What to report on.
#[derive(Debug, Clone)]
pub struct Query {
    /// The end of the window (now, or a fixed time in tests).
    pub until: DateTime<Utc>,
    /// The window's length in whole days (`--since 28d`).
    pub days: u32,
    pub persona: Option<String>,
    pub archetype: Option<String>,
    /// State directories to read (shards); read-only.
    pub ledgers: Vec<PathBuf>,
}

impl Query {
    pub fn since(&self) -> DateTime<Utc> {
        self.until - Duration::days(self.days.min(100 * 366) as i64)
    }
}

/// Parses `28d`, `4w`, `28` (days).
pub fn parse_since(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, mult) = match s.strip_suffix('d') {
        Some(n) => (n, 1),
        None => match s.strip_suffix('w') {
            Some(n) => (n, 7),
            None => (s, 1),
        },
    };
    num.parse::<u32>()
        .ok()
        .filter(|n| *n > 0 && *n <= 3660)
        .map(|n| n * mult)
        .ok_or_else(|| format!("--since `{s}`: expected a number of days like 28d or 4w"))
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    pub dir: String,
    pub persona_ticks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One week of the window: week 0 is the oldest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Week {
    pub index: usize,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A rating statistic over some ratings.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RatingStat {
    pub count: usize,
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub spread: f64,
}

impl RatingStat {
    pub fn of(v: &[f64]) -> RatingStat {
        RatingStat {
            count: v.len(),
            mean: mean(v).map(|m| round(m, 3)),
            spread: round(stddev(v), 3),
        }
    }
}

/// A rating with its note.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub rating: u8,
    pub notes: String,
    pub email: String,
    pub tick_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleReport {
    pub module: String,
    pub ratings: RatingStat,
    /// One entry per week of the window, oldest first.
    pub weekly: Vec<RatingStat>,
    pub worst_notes: Vec<Note>,
    pub tool_calls: usize,
    /// This module's calls / all calls.
    pub share_of_calls: f64,
    pub errors: usize,
    pub error_rate: f64,
    pub errors_by_class: BTreeMap<ErrorClass, usize>,
    pub latency: Latency,
    /// Tokens and cost attributed by the module's share of each tick's calls.
    pub tokens: f64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaMix {
    pub email: String,
    pub archetype: String,
    pub tool_calls: usize,
    /// Catalog weights, renormalised over the modules that have tools.
    pub target: BTreeMap<String, f64>,
    pub actual: BTreeMap<String, f64>,
    /// Total variation distance: half the sum of |target − actual|, 0..1.
    pub drift: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mix {
    /// Modules seen in tool calls: the only ones a persona can use.
    pub modules_with_tools: Vec<String>,
    pub overall: Option<PersonaMixOverall>,
    pub personas: Vec<PersonaMix>,
    /// Emails of the personas that drift furthest, worst first.
    pub furthest: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaMixOverall {
    /// Each persona's target weighted by its number of calls.
    pub target: BTreeMap<String, f64>,
    pub actual: BTreeMap<String, f64>,
    pub drift: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub persona_ticks: usize,
    pub by_outcome: BTreeMap<String, usize>,
    pub failed_by_stage: BTreeMap<String, usize>,
    pub persona_days: usize,
    pub tokens: summary::Tokens,
    pub tokens_per_persona_day: f64,
    /// Sum over ticks with a priced model.
    pub cost_usd: f64,
    pub cost_per_persona_day: f64,
    /// Ticks whose model has no price: tokens only.
    pub unpriced_ticks: usize,
    pub unpriced_models: Vec<String>,
    pub llm_retries: u64,
    pub wait_ms: summary::WaitsMs,
    pub duration_ms: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: u32,
    pub generated_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archetype: Option<String>,
    pub shards: Vec<Shard>,
    pub weeks: Vec<Week>,
    pub modules: Vec<ModuleReport>,
    pub trends: Trends,
    pub mix: Mix,
    pub health: Health,
}

/// Reads every shard of `q` (read-only) and aggregates. A shard that cannot
/// be read is listed with its error; the others still count.
pub fn load(q: &Query) -> Report {
    let filter = Filter {
        since: Some(q.since()),
        email: q.persona.clone(),
        archetype: q.archetype.clone(),
    };
    let mut shards = Vec::new();
    let mut ledgers = Vec::new();
    let mut all: Vec<Row> = Vec::new();
    // Which ledger each row of `all` came from (for its notes).
    let mut origin: Vec<usize> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for dir in &q.ledgers {
        match Ledger::open(dir).and_then(|l| Ok((l.rows(&filter)?, l))) {
            Ok((v, ledger)) => {
                shards.push(Shard {
                    dir: dir.display().to_string(),
                    persona_ticks: v.len(),
                    error: None,
                });
                // The same tick in two shards (a copied state dir) counts once.
                if q.ledgers.len() > 1 {
                    all.extend(v.into_iter().filter(|s| seen.insert(s.tick_id.clone())));
                } else {
                    all.extend(v);
                }
                origin.resize(all.len(), ledgers.len());
                ledgers.push(ledger);
            }
            Err(e) => shards.push(Shard {
                dir: dir.display().to_string(),
                persona_ticks: 0,
                error: Some(e.to_string()),
            }),
        }
    }
    let notes = |row: usize, idx: usize| ledgers[origin[row]].notes(&all[row], idx);
    build(q, shards, &all, &notes)
}

/// Reads the note of rating `idx` of row `row` (an index into the rows).
pub type Notes<'a> = dyn Fn(usize, usize) -> Option<String> + 'a;

/// The `n` worst of `candidates` (rating, when, row, rating index) with a
/// note: the lowest rating first, the newest of equal ratings first.
pub(super) fn worst(
    mut candidates: Vec<(u8, DateTime<Utc>, usize, usize)>,
    n: usize,
    all: &[Row],
    notes: &Notes,
) -> Vec<Note> {
    candidates.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
    candidates
        .into_iter()
        .filter_map(|(rating, at, row, idx)| {
            let s = &all[row];
            Some(Note {
                rating,
                notes: notes(row, idx)?,
                email: s.email.clone(),
                tick_id: s.tick_id.clone(),
                at,
            })
        })
        .take(n)
        .collect()
}

/// The weeks of the window, oldest first, the last one ending at `until`.
pub fn weeks(q: &Query) -> Vec<Week> {
    let n = q.days.div_ceil(7).max(1) as usize;
    (0..n)
        .map(|i| {
            let back = (n - i) as i64;
            Week {
                index: i,
                start: q.until - Duration::days(7 * back),
                end: q.until - Duration::days(7 * (back - 1)),
            }
        })
        .collect()
}

fn week_of(weeks: &[Week], t: DateTime<Utc>) -> Option<usize> {
    weeks.iter().position(|w| t >= w.start && t < w.end)
}

/// Aggregates `all` (already filtered to the window); `notes` reads the
/// few notes the report shows.
pub fn build(q: &Query, shards: Vec<Shard>, all: &[Row], notes: &Notes) -> Report {
    let weeks = weeks(q);
    let total_calls: usize = all.iter().map(|s| s.calls.len()).sum();

    #[derive(Default)]
    struct Acc {
        ratings: Vec<f64>,
        weekly: Vec<Vec<f64>>,
        /// Ratings with a note: (rating, when, row, rating index).
        notes: Vec<(u8, DateTime<Utc>, usize, usize)>,
        calls: usize,
        errors: usize,
        by_class: BTreeMap<ErrorClass, usize>,
        latencies: Vec<u64>,
        tokens: f64,
        cost: f64,
    }
    fn entry<'a>(acc: &'a mut BTreeMap<String, Acc>, module: &str) -> &'a mut Acc {
        if !acc.contains_key(module) {
            acc.insert(module.to_string(), Acc::default());
        }
        acc.get_mut(module).expect("just inserted")
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for (row, s) in all.iter().enumerate() {
        let week = week_of(&weeks, s.started_at);
        let n = s.calls.len();
        for c in &s.calls {
            let a = entry(&mut acc, c.module());
            a.calls += 1;
            if !c.ok {
                a.errors += 1;
                *a.by_class
                    .entry(c.error_class.unwrap_or(ErrorClass::Other))
                    .or_default() += 1;
            }
            if let Some(l) = c.latency_ms {
                a.latencies.push(l);
            }
            a.tokens += s.tokens.total() as f64 / n as f64;
            a.cost += s.cost_usd.unwrap_or(0.0) / n as f64;
        }
        for (idx, r) in s.ratings.iter().enumerate() {
            let a = entry(&mut acc, &r.module);
            a.ratings.push(r.rating as f64);
            if let Some(w) = week {
                if a.weekly.len() < weeks.len() {
                    a.weekly.resize(weeks.len(), Vec::new());
                }
                a.weekly[w].push(r.rating as f64);
            }
            if r.notes != NoteText::None {
                a.notes.push((r.rating, s.started_at, row, idx));
            }
        }
    }
    let mut modules: Vec<ModuleReport> = acc
        .into_iter()
        // `__parse` and the like: the runner's own rows, not the product's.
        .filter(|(m, _)| !m.starts_with("__"))
        .map(|(module, mut a)| {
            a.weekly.resize(weeks.len(), Vec::new());
            ModuleReport {
                ratings: RatingStat::of(&a.ratings),
                weekly: a.weekly.iter().map(|w| RatingStat::of(w)).collect(),
                worst_notes: worst(a.notes, WORST_NOTES, all, notes),
                tool_calls: a.calls,
                share_of_calls: if total_calls == 0 {
                    0.0
                } else {
                    round(a.calls as f64 / total_calls as f64, 4)
                },
                errors: a.errors,
                error_rate: if a.calls == 0 {
                    0.0
                } else {
                    round(a.errors as f64 / a.calls as f64, 4)
                },
                errors_by_class: a.by_class,
                latency: Latency {
                    p50_ms: percentile(&mut a.latencies, 50.0),
                    p95_ms: percentile(&mut a.latencies, 95.0),
                },
                tokens: round(a.tokens, 1),
                cost_usd: round(a.cost, 6),
                module,
            }
        })
        .collect();
    modules.sort_by(|a, b| {
        b.tool_calls
            .cmp(&a.tool_calls)
            .then(a.module.cmp(&b.module))
    });
    Report {
        version: VERSION,
        generated_at: Utc::now(),
        since: q.since(),
        until: q.until,
        persona: q.persona.clone(),
        archetype: q.archetype.clone(),
        shards,
        trends: trends::find(&weeks, &modules, all, notes),
        mix: mix(all),
        health: health(all),
        weeks,
        modules,
    }
}

/// Shares of `counts`, summing to 1.
fn shares(counts: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let total: f64 = counts.values().sum();
    counts
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| (k.clone(), if total > 0.0 { v / total } else { 0.0 }))
        .collect()
}

/// Half the L1 distance of two distributions.
fn drift(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> f64 {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| (a.get(k).unwrap_or(&0.0) - b.get(k).unwrap_or(&0.0)).abs())
        .sum::<f64>()
        / 2.0
}

fn rounded(m: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    m.into_iter().map(|(k, v)| (k, round(v, 4))).collect()
}

/// Weights or counts per module.
type Weights = BTreeMap<String, f64>;

/// Module-mix adherence: the catalog's weights against the calls made.
pub fn mix(all: &[Row]) -> Mix {
    // Inserted one by one: collecting would sort every call's module first.
    let mut modules: BTreeSet<&str> = BTreeSet::new();
    for c in all.iter().flat_map(|s| &s.calls) {
        modules.insert(c.module());
    }
    let with_tools: BTreeSet<String> = modules.into_iter().map(str::to_string).collect();
    // The newest summary's mix is the persona's current target (parsed once,
    // for the newest only).
    let mut per: BTreeMap<&str, (&str, &str, BTreeMap<&str, f64>)> = BTreeMap::new();
    for s in all {
        let e = per.entry(s.email.as_str()).or_default();
        if !s.module_mix.is_empty() && s.module_mix != "{}" {
            e.1 = &s.module_mix;
        }
        if !s.archetype.is_empty() {
            e.0 = &s.archetype;
        }
        for c in &s.calls {
            *e.2.entry(c.module()).or_default() += 1.0;
        }
    }
    let per = per
        .into_iter()
        .map(|(email, (archetype, weights, counts))| {
            let weights: Weights = serde_json::from_str(weights).unwrap_or_default();
            let counts: Weights = counts
                .into_iter()
                .map(|(m, c)| (m.to_string(), c))
                .collect();
            (email.to_string(), (archetype.to_string(), weights, counts))
        });
    let mut personas = Vec::new();
    let mut overall_target: BTreeMap<String, f64> = BTreeMap::new();
    let mut overall_actual: BTreeMap<String, f64> = BTreeMap::new();
    for (email, (archetype, weights, counts)) in per {
        let calls: f64 = counts.values().sum();
        let target = shares(
            &weights
                .into_iter()
                .filter(|(m, w)| with_tools.contains(m) && *w > 0.0)
                .collect(),
        );
        if target.is_empty() || calls == 0.0 {
            continue;
        }
        let actual = shares(&counts);
        for (m, w) in &target {
            *overall_target.entry(m.clone()).or_default() += w * calls;
        }
        for (m, c) in &counts {
            *overall_actual.entry(m.clone()).or_default() += c;
        }
        personas.push(PersonaMix {
            drift: round(drift(&target, &actual), 4),
            target: rounded(target),
            actual: rounded(actual),
            tool_calls: calls as usize,
            email,
            archetype,
        });
    }
    let overall = (!personas.is_empty()).then(|| {
        let t = shares(&overall_target);
        let a = shares(&overall_actual);
        PersonaMixOverall {
            drift: round(drift(&t, &a), 4),
            target: rounded(t),
            actual: rounded(a),
        }
    });
    let mut order: Vec<&PersonaMix> = personas.iter().collect();
    order.sort_by(|a, b| b.drift.total_cmp(&a.drift).then(a.email.cmp(&b.email)));
    Mix {
        modules_with_tools: with_tools.into_iter().collect(),
        overall,
        furthest: order
            .iter()
            .take(DRIFTERS)
            .map(|p| p.email.clone())
            .collect(),
        personas,
    }
}

/// Persona-ticks by outcome and stage, tokens, cost, retries, waits.
pub fn health(all: &[Row]) -> Health {
    let mut h = Health {
        persona_ticks: all.len(),
        ..Health::default()
    };
    let mut days: HashSet<(&str, chrono::NaiveDate)> = HashSet::new();
    let mut unpriced: BTreeSet<String> = BTreeSet::new();
    for s in all {
        *h.by_outcome.entry(s.outcome.clone()).or_default() += 1;
        if let Some(st) = s.stage {
            *h.failed_by_stage
                .entry(st.as_str().to_string())
                .or_default() += 1;
        }
        days.insert((&s.email, s.started_at.date_naive()));
        h.tokens.add(s.tokens);
        match s.cost_usd {
            Some(c) => h.cost_usd += c,
            None => {
                h.unpriced_ticks += 1;
                unpriced.insert(s.model.clone().unwrap_or_else(|| "unknown".into()));
            }
        }
        h.llm_retries += s.retries;
        h.wait_ms.llm += s.waits_ms.llm;
        h.wait_ms.mcp += s.waits_ms.mcp;
        h.wait_ms.platform += s.waits_ms.platform;
        h.duration_ms += s.duration_ms;
    }
    h.persona_days = days.len();
    let pd = h.persona_days.max(1) as f64;
    h.tokens_per_persona_day = round(h.tokens.total() as f64 / pd, 1);
    h.cost_usd = round(h.cost_usd, 6);
    h.cost_per_persona_day = round(h.cost_usd / pd, 6);
    h.unpriced_models = unpriced.into_iter().collect();
    h
}
